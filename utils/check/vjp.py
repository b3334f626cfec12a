"""Backpropagation through a learner's PyTorch function, for the checks of PyTorch exercises.

Shared by both sides of grading (copied into the sandbox): a graded submission's graph lives in its worker,
so the worker runs these on its side and sends back only the gradients.
"""


def leaf_inputs(mine, paths):
    """Make the differentiated inputs of `mine` (a dict, or a list by position) leaves that require grad; return
    them in the order of paths."""
    keys = list(mine) if isinstance(mine, dict) else list(range(len(mine)))
    leaves = []
    for position, param in paths:
        key = keys[position]
        if param:
            leaves.append(dict(mine[key].named_parameters())[param])
        else:
            mine[key] = mine[key].detach().clone().requires_grad_(True)
            leaves.append(mine[key])
    return leaves


def backpropagate(out, leaves, cotangents):
    """torch.autograd.grad of the outputs weighted by their cotangents, or None if an output has no graph."""
    import torch

    outputs = list(out) if isinstance(out, tuple | list) else [out]
    pairs = [(o, c) for o, c in zip(outputs, cotangents, strict=False) if c is not None]
    if not pairs or not all(isinstance(o, torch.Tensor) and o.requires_grad for o, _ in pairs):
        return None
    try:
        grads = torch.autograd.grad([o.reshape(c.shape) if o.numel() == c.numel() else o for o, c in pairs],
                                    leaves, [c for _, c in pairs], allow_unused=True)
    except RuntimeError:
        return None
    return [None if g is None else g.detach() for g in grads]
