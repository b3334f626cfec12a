"""Exercises of notebook 05: additive attention (forward and backward), the doubly stochastic penalty, and
the REINFORCE surrogate (PyTorch).

Each known mistake is written from the forward's inputs (h, V, W_h, W_v, w and the upstream gradients),
never from a cache layout, so it is recognised whatever the learner's forward put in its cache.
"""

import numpy as np

from .. import attend, attention
from .battery import (
    _cache_hint,
    _paired_cache,
    _safe_select,
    backward_test,
    call,
    call_vjp,
    describe_inputs,
    known_mistake,
    numeric_gradient_test,
    returns,
    snapshot,
    value_test,
)
from .compare import Failure, compare_outputs, kind
from .core import Exercise, register
from .rnn_basics import FLOAT32

NB = "05"


# --- attention_forward ---------------------------------------------------------------------------

def _attention_args(N=None, L=None, dtype=np.float64, large=False, tied=False):
    """Random inputs; sizes all differ (so a transposed weight or a wrong axis cannot go unnoticed).

    tied: every location holds the same feature vector, so every score ties. large: w is scaled so that the
    largest score is 3000, where exp overflows unless the maximum is subtracted first.
    """

    def make(rng):
        n = N or int(rng.integers(2, 5))
        n_loc = L or int(rng.integers(5, 9))
        D, H, A = (int(k) for k in rng.permutation([3, 4, 6]) + rng.integers(0, 2, 3) * 7)
        V = rng.standard_normal((n, n_loc, D))
        if tied:
            V = np.repeat(V[:, :1], n_loc, axis=1)
        h, W_h, W_v = rng.uniform(-1, 1, (n, H)), rng.standard_normal((H, A)) / np.sqrt(H), \
            rng.standard_normal((D, A)) / np.sqrt(D)
        w = rng.standard_normal(A)
        if large:
            scores = np.tanh(V @ W_v + (h @ W_h)[:, None, :]) @ w
            w = w * 3000 / scores.flat[np.argmax(np.abs(scores))]  # the largest |score| becomes +3000
        return {"h": h.astype(dtype), "V": V.astype(dtype), "W_h": W_h.astype(dtype), "W_v": W_v.astype(dtype),
                "w": w.astype(dtype)}

    return make


def _forward_variant(axis=1, squash=np.tanh, weights="alpha", stable=True):
    """attention_forward with one thing wrong: the softmax's axis, the squashing function, what weights z."""

    def wrong(h, V, W_h, W_v, w):
        scores = squash(V @ W_v + (h @ W_h)[:, None, :]) @ w
        shifted = scores - scores.max(axis=axis, keepdims=True) if stable else scores
        alpha = np.exp(shifted) / np.exp(shifted).sum(axis=axis, keepdims=True)
        z = np.einsum("nl,nld->nd", alpha if weights == "alpha" else scores, V)
        return z, alpha, None

    return wrong


FORWARD_RETURNS = returns("z", "alpha", "cache")
FORWARD_HINT = ("Check each step against its formula: hidden = tanh(V @ W_v + (h @ W_h)[:, None, :]) (N, L, A), "
                "e = hidden @ w (N, L), alpha = softmax(e) over axis 1, z = sum over i of alpha[:, i, None] * V[:, i].")


def _forward_test(make_args, **tol):
    return value_test(make_args, FORWARD_RETURNS, **({"rtol": 1e-9} | tol), hint=FORWARD_HINT)


register(Exercise(
    "attention_forward", NB, attention.attention_forward,
    tests=[
        ("values (float64)", _forward_test(_attention_args())),
        ("one example (N=1)", _forward_test(_attention_args(N=1))),
        ("one location (L=1): alpha = 1 and z = V", _forward_test(_attention_args(L=1))),
        ("identical locations tie: alpha = 1 / L", _forward_test(_attention_args(tied=True))),
        ("very large scores (|e| in the thousands)", value_test(_attention_args(large=True), FORWARD_RETURNS,
                                                                1e-9)),
        ("float32 inputs", _forward_test(_attention_args(dtype=np.float32), **FLOAT32)),
    ],
    mistakes=[
        (_forward_variant(axis=0),
         "alpha is normalised over the batch (axis 0); attention is a distribution over the L locations of each "
         "example: softmax over axis 1, so that alpha.sum(axis=1) is 1 for every example."),
        (_forward_variant(squash=lambda a: a),
         "The tanh is missing: e = tanh(V W_v + h W_h) @ w. Without it the score is linear in V and h, and "
         "h can only add the same amount to every location's score, which softmax ignores."),
        (_forward_variant(weights="scores"),
         "z is weighted by the raw scores e; weight by alpha = softmax(e), which is positive and sums to 1, "
         "so z is an average of the feature vectors."),
        (_forward_variant(squash=np.tanh, weights="alpha", axis=1, stable=False),
         "Subtract each row's maximum score before np.exp: exp of a score in the thousands is inf, and "
         "inf / inf is NaN. Softmax does not change when the same number is subtracted from every score."),
    ],
))


# --- attention_backward --------------------------------------------------------------------------

BACKWARD_OUTPUTS, BACKWARD_UPSTREAM = ("z", "alpha"), ("dz", "dalpha")
BACKWARD_GRADS = ("dh", "dV", "dW_h", "dW_v", "dw")
BACKWARD_HINT = ("Follow each gradient back one operation at a time: z = sum_i alpha_i V_i, then the softmax, the "
                 "tanh and the two products. W_h, W_v and w are shared by every example and location, so their "
                 "gradients sum over both; dh sums over the locations.")


def _backward_variant(score_path=True, value_path=True, softmax_jacobian=True, tanh_grad=True,
                      sum_locations=True, use_dalpha=True):
    """attention_backward from the forward's inputs and the upstream (dz, dalpha), one step of the chain rule
    changed."""

    def wrong(inputs, ups):
        h, V, W_h, W_v, w = inputs.values()
        dz, dalpha = ups
        hidden = np.tanh(V @ W_v + (h @ W_h)[:, None, :])
        alpha = attention.softmax(hidden @ w, axis=1)
        da_total = np.einsum("nd,nld->nl", dz, V) + (dalpha if use_dalpha and dalpha is not None else 0)
        de = alpha * (da_total - np.sum(alpha * da_total, axis=1, keepdims=True)) if softmax_jacobian \
            else alpha * da_total
        dhid = de[:, :, None] * w
        da = dhid * (1 - hidden**2) if tanh_grad else dhid
        dV = (alpha[:, :, None] * dz[:, None, :] if value_path else 0) + (da @ W_v.T if score_path else 0)
        # sum_locations: True, False (location 0 only, everywhere), "h first" (dh and dW_h from location 0 only)
        # or "h mean" (dh and dW_h from the mean over the locations)
        dsum = {True: da.sum(axis=1), "h mean": da.mean(axis=1)}.get(sum_locations, da[:, 0])
        dW_v = V[:, 0].T @ da[:, 0] if sum_locations is False else np.einsum("nld,nla->da", V, da)
        return dsum @ W_h.T, dV, h.T @ dsum, dW_v, np.einsum("nl,nla->a", de, hidden)

    return wrong


def _backward_test(numeric=False, **kw):
    return backward_test(_attention_args(**kw), BACKWARD_OUTPUTS, BACKWARD_UPSTREAM, BACKWARD_GRADS, numeric=numeric)


def _backward_without_dalpha(trial):
    """Only z is used downstream: dalpha is None, and the backward must treat it as zeros."""
    ex, select = trial.exercise, returns(*BACKWARD_GRADS)
    inputs = _attention_args()(trial.rng)
    ref_outs = ex.forward(*snapshot(inputs).values())
    dz = trial.rng.standard_normal(ref_outs[0].shape)
    cache = _paired_cache(trial, inputs, BACKWARD_OUTPUTS, ref_outs)
    got = _safe_select(select, call(trial.fn, {"dz": dz, "dalpha": None, "cache": cache},
                                    hint=_cache_hint(trial, cache)))
    expected = select(ex.reference(dz.copy(), None, snapshot(ref_outs[-1])))
    try:
        compare_outputs(expected, got, 1e-7)
    except Failure as f:
        f.hint = known_mistake(ex.mistakes, lambda wrong: select(wrong(snapshot(inputs), (dz.copy(), None))),
                               got) or ("dalpha=None means no gradient arrives at alpha from outside: treat it as "
                                        "zeros (`0 if dalpha is None else dalpha`), the rest is unchanged.")
        f.message += f"\nInputs of the forward pass: {describe_inputs(inputs)}, dalpha=None"
        raise


register(Exercise(
    "attention_backward", NB, attention.attention_backward, forward=attention.attention_forward,
    forward_name="attention_forward",
    tests=[
        ("values against the reference", _backward_test()),
        ("dalpha = None (only z used downstream)", _backward_without_dalpha),
        ("one example (N=1)", _backward_test(N=1)),
        ("one location (L=1): the scores get no gradient", _backward_test(L=1)),
        ("against numerical gradients", _backward_test(numeric=True)),
    ],
    mistakes=[
        (_backward_variant(score_path=False),
         "dV misses the path through the scores: V enters twice, in z = sum_i alpha_i V_i and in the scores "
         "tanh(V W_v + h W_h); dV = alpha_i dz + (da @ W_v.T) at each location."),
        (_backward_variant(value_path=False),
         "dV misses the direct path through z = sum_i alpha_i V_i: add alpha_i * dz at each location."),
        (_backward_variant(softmax_jacobian=False),
         "The softmax's backward is de_i = alpha_i * (dalpha_i - sum_j alpha_j dalpha_j): every alpha_j depends on "
         "every score, so the sum term is needed (alpha * dalpha alone is not enough)."),
        (_backward_variant(tanh_grad=False),
         "The tanh's derivative is missing: multiply by (1 - hidden**2), read off the cached tanh output."),
        (_backward_variant(sum_locations=False),
         "dh, dW_h and dW_v must sum over all L locations: h W_h was added to every location's row, and W_v is "
         "shared by every location (like the weights over time steps in notebook 02)."),
        (_backward_variant(sum_locations="h first"),
         "dh and dW_h use location 0 only: h W_h was added to every location's row, so every location sends "
         "gradient back to h. Sum da over the L locations (axis 1) before multiplying by W_h.T and by h."),
        (_backward_variant(sum_locations="h mean"),
         "dh and dW_h are L times too small: they average da over the locations. h W_h was added to every "
         "location's row, so the gradients from the locations add up: sum da over axis 1, not the mean."),
        (_backward_variant(use_dalpha=False),
         "dalpha, the gradient arriving at alpha from outside (a penalty on alpha), is ignored: add it to the "
         "gradient that z sends to alpha, dz . V_i, before the softmax's backward. Treat None as zeros."),
    ],
))


# --- doubly_stochastic_penalty -------------------------------------------------------------------

PENALTY_RETURNS = returns("penalty", "dalpha")
PENALTY_HINT = ("penalty = mean over the captions of sum_i (1 - sum_t mask_t alpha_ti)**2, and "
                "dalpha_ti = -2 (1 - sum_t mask_t alpha_ti) * mask_t / N.")


def _penalty_float32(result):
    """PENALTY_RETURNS, a float32 number accepted as the penalty of float32 inputs (the reference's is a float)."""
    out = PENALTY_RETURNS(result)
    if isinstance(out["penalty"], np.floating):
        out["penalty"] = float(out["penalty"])
    return out


def _penalty_test(make_args, select=PENALTY_RETURNS, **tol):
    return value_test(make_args, select, **({"rtol": 1e-9} | tol), hint=PENALTY_HINT)


def _penalty_args(N=None, T=None, dtype=np.float64, one_step=False, as_float=False):
    """alpha (N, T, L) rows from a Dirichlet (each sums to 1) and a mask of each caption's real steps.

    one_step: every caption has exactly one real step; otherwise lengths vary and at least one caption is
    padded, so a penalty that counts padding always differs.
    """

    def make(rng):
        n, t = N or int(rng.integers(2, 5)), T or int(rng.integers(3, 7))
        L = t + int(rng.integers(2, 5))
        alpha = rng.dirichlet(np.full(L, 0.5), size=(n, t))
        lengths = np.ones(n, int) if one_step else rng.integers(1, t + 1, n)
        if not one_step and t > 1:
            lengths[rng.integers(n)] = int(rng.integers(1, t))  # one caption shorter than T
        mask = np.arange(t)[None] < lengths[:, None]
        return {"alpha": alpha.astype(dtype), "mask": mask.astype(dtype) if as_float else mask}

    return make


def _penalty_variant(masked=True, reduce="mean", over="steps", square=True, grad_masked=True, grad_sign=-2):
    def wrong(alpha, mask):
        m = np.asarray(mask, dtype=np.float64) if masked else np.ones(alpha.shape[:2])
        N = alpha.shape[0]
        scale = N if reduce == "mean" else 1
        if over == "locations":
            gap = 1 - alpha.sum(axis=2) * m                          # (N, T): per step, over the locations
            return float(np.sum(gap**2) / scale), np.zeros_like(alpha) - 2 * gap[..., None] * m[..., None] / scale
        gap = 1 - np.einsum("ntl,nt->nl", alpha, m)
        value = np.sum(gap**2 if square else np.abs(gap)) / scale
        gm = np.asarray(mask, dtype=np.float64) if grad_masked else np.ones(alpha.shape[:2])
        dalpha = grad_sign * (gap if square else np.sign(gap) / 2)[:, None, :] * gm[:, :, None] / scale
        return float(value), dalpha

    return wrong


def _penalty_and_grad(result):
    out = PENALTY_RETURNS(result)
    return out["penalty"], out["dalpha"]


_PENALTY_NUMERIC = numeric_gradient_test(_penalty_args(), _penalty_and_grad, "alpha")


def _penalty_numeric(trial):
    """dalpha against centred differences of the learner's own penalty."""
    try:
        _PENALTY_NUMERIC(trial)
    except Failure as f:
        f.hint = ("d/dalpha_ti of (1 - sum_t alpha_ti)^2 is -2 (1 - sum_t alpha_ti) at a real step, 0 at padding; "
                  "divide by N for the mean.")
        raise


register(Exercise(
    "doubly_stochastic_penalty", NB, attention.doubly_stochastic_penalty,
    tests=[
        ("values (float64)", _penalty_test(_penalty_args())),
        ("every caption one real step", _penalty_test(_penalty_args(one_step=True))),
        ("one time step (T=1)", _penalty_test(_penalty_args(T=1))),
        ("one caption (N=1)", _penalty_test(_penalty_args(N=1))),
        ("mask given as 0.0 / 1.0", _penalty_test(_penalty_args(as_float=True))),
        ("against numerical gradients", _penalty_numeric),
        ("float32 inputs", _penalty_test(_penalty_args(dtype=np.float32), _penalty_float32, **FLOAT32)),
    ],
    mistakes=[
        (_penalty_variant(masked=False),
         "Padded steps are counted: a caption's attention after its <END> never happens, so multiply alpha by "
         "the mask before summing over time."),
        (_penalty_variant(masked=False, grad_masked=False),
         "The mask is ignored: padded steps are counted in the penalty and get a gradient. A caption's attention "
         "after its <END> never happens: multiply alpha by the mask before summing over time, and dalpha too."),
        (_penalty_variant(reduce="sum"),
         "The penalty is summed over the captions; take the mean over the N captions (and divide dalpha by N)."),
        (_penalty_variant(over="locations"),
         "The sum inside the square runs over time, for each location: 1 - sum_t alpha_ti. Summed over the "
         "locations instead, each step's alpha sums to 1 and the penalty says nothing."),
        (_penalty_variant(square=False),
         "Square each location's gap: sum_i (1 - sum_t alpha_ti)**2."),
        (_penalty_variant(grad_sign=2),
         "dalpha has the wrong sign: d/dalpha of (1 - s)^2 is -2 (1 - s). A location that has had too little "
         "attention (s < 1) gets a negative gradient, so descending it raises that attention."),
        (_penalty_variant(grad_masked=False),
         "dalpha is nonzero at padded steps: alpha there does not enter the penalty, so its gradient is 0."),
    ],
))


# --- reinforce_loss (PyTorch) --------------------------------------------------------------------

REINFORCE_WRT = ("log_prob", "entropy", "cost")


def _softmax_rows(logits):
    p = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return p / p.sum(axis=-1, keepdims=True)


def _reinforce_case(N=None, dtype=np.float64, equal=False, bonus=True):
    """A random categorical policy, one choice sampled per example: log_prob, cost and entropy as tensors
    (no graph: call_vjp makes the differentiated ones leaves), a baseline, an entropy weight and a decay.

    equal: every cost equals the baseline, so the only gradient left is the entropy bonus's.
    """

    def make(rng):
        import torch

        n, K = N or int(rng.integers(3, 8)), int(rng.integers(3, 6))
        logits = rng.standard_normal((n, K)) * 1.5
        p = _softmax_rows(logits)
        choice = np.array([rng.choice(K, p=row) for row in p])
        baseline = float(rng.uniform(1, 4))
        cost = np.full(n, baseline) if equal else 3 + 2 * rng.standard_normal(n)
        as_tensor = lambda a: torch.tensor(np.asarray(a, dtype=dtype))  # noqa: E731
        return {"log_prob": as_tensor(np.log(p[np.arange(n), choice])), "cost": as_tensor(cost),
                "entropy": as_tensor(-(p * np.log(p)).sum(axis=1)), "baseline": baseline,
                "entropy_weight": float(rng.uniform(0.05, 0.5)) if bonus else 0.0,
                "decay": float(rng.choice([0.9, 0.7]))}

    return make


def _reinforce_outputs(out):
    """(surrogate, new_baseline) as two floats, or a Failure saying what came back instead."""
    import torch

    got = returns("surrogate", "new_baseline")(out)
    surrogate, new = got["surrogate"], got["new_baseline"]
    if not isinstance(surrogate, torch.Tensor) or surrogate.numel() != 1:
        raise Failure(f"`surrogate` should be a one-number torch tensor (a loss to call .backward() on); got "
                      f"{kind(surrogate)}.",
                      "Average over the examples with .mean(), and keep it a tensor (no .item()).")
    if isinstance(new, torch.Tensor):
        if new.numel() != 1:
            raise Failure(f"`new_baseline` should be one number; got {kind(new)}.",
                          "The baseline is a running average of the batches' mean costs: one float.")
        if new.requires_grad:
            raise Failure("`new_baseline` carries gradient: it is a running average of past costs, a constant for "
                          "every later step, and a tensor with a graph keeps every earlier batch's graph alive.",
                          "Return a float: decay * baseline + (1 - decay) * float(cost.detach().mean()).")
        new = new.detach().double().item()
    if not isinstance(new, int | float | np.integer | np.floating) or isinstance(new, bool):
        raise Failure(f"`new_baseline` should be a float; got {kind(new)}.")
    return {"surrogate": float(surrogate.detach().double().reshape(())), "new_baseline": float(new)}


def _reinforce_gradients(grads, n):
    """The gradients the surrogate sent into log_prob and entropy (numpy), after checking that it sent some into
    log_prob and none into cost."""
    if grads is None or grads[0] is None:
        raise Failure("`surrogate` sends no gradient into log_prob: it must be computed from log_prob, which is how "
                      "the choice's probability learns.", "Do not detach log_prob; detach only the cost and the "
                      "baseline: (cost - baseline).detach() * log_prob.")
    d_log_prob, d_entropy, d_cost = grads
    if d_cost is not None and bool((d_cost != 0).any()):
        raise Failure("The surrogate sends gradient into `cost`: the cost (reward) is a number that scores the "
                      "choice, not something this term should change.",
                      "Use (cost - baseline).detach(): only log_prob (and entropy) may carry gradient here.")
    as_np = lambda g: np.zeros(n) if g is None else g.detach().cpu().numpy()  # noqa: E731
    return {"dlog_prob": as_np(d_log_prob), "dentropy": as_np(d_entropy)}


def _reinforce_run(fn, args, with_grads=True):
    """fn's numbers, and with_grads the gradients its surrogate sends (cotangent 1)."""
    import torch

    if not with_grads:
        return _reinforce_outputs(call(fn, args))
    one = torch.ones((), dtype=args["log_prob"].dtype)
    out, grads = call_vjp(fn, args, REINFORCE_WRT, (one, None))
    return {**_reinforce_outputs(out), **_reinforce_gradients(grads, len(args["cost"]))}


def _reinforce_test(make_case, with_grads=True, rtol=1e-7, atol=0.0):
    """The surrogate's value, the new baseline and (with_grads) the gradients into log_prob and entropy, against
    the reference's."""

    def test(trial):
        ex = trial.exercise
        args = make_case(trial.rng)
        expected = _reinforce_run(ex.reference, snapshot(args), with_grads)
        got = _reinforce_run(trial.fn, args, with_grads)
        try:
            compare_outputs(expected, got, rtol, atol)
        except Failure as f:
            f.hint = known_mistake(ex.mistakes, lambda wrong: _reinforce_run(wrong, snapshot(args), with_grads),
                                   got) or ("surrogate = mean((cost - baseline).detach() * log_prob) - "
                                            "entropy_weight * mean(entropy); new_baseline = decay * baseline + "
                                            "(1 - decay) * mean(cost).")
            f.message += f"\nInputs: {describe_inputs(args)}"
            raise

    return test


# A 4-armed bandit: fixed costs per arm, all far from 0 (so a baseline matters), and a policy softmax(theta).
BANDIT_COSTS = np.array([10.0, 11.0, 12.5, 14.0])


def _bandit(rng):
    """theta, the arms' costs, the policy p and the exact gradient of the expected cost J = sum_k p_k c_k,
    which is p * (c - J)."""
    theta = rng.standard_normal(4)
    costs = BANDIT_COSTS[rng.permutation(4)]
    p = _softmax_rows(theta)
    return theta, costs, p, p * (costs - p @ costs)


def _bandit_estimate(fn, theta, costs, arms, baseline):
    """fn's estimate of d E[cost] / d theta from the draws `arms` (entropy bonus off): the gradient its surrogate
    sends into log_prob, carried to theta through d log p_a / d theta = onehot(a) - p."""
    import torch

    p = _softmax_rows(theta)
    args = {"log_prob": torch.tensor(np.log(p[arms])), "cost": torch.tensor(costs[arms]),
            "entropy": torch.full((len(arms),), float(-(p * np.log(p)).sum()), dtype=torch.float64),
            "baseline": float(baseline), "entropy_weight": 0.0, "decay": 0.9}
    out, grads = call_vjp(fn, args, REINFORCE_WRT, (torch.ones((), dtype=torch.float64), None))
    _reinforce_outputs(out)
    g = _reinforce_gradients(grads, len(arms))["dlog_prob"].astype(np.float64)
    return np.bincount(arms, g, minlength=4) - g.sum() * p


def _per_arm(fn, theta, costs, baseline):
    """fn's single-draw estimate for each arm (row a: the estimate when arm a is drawn). A single draw's estimate
    depends only on the arm, so these four rows give the estimator's exact mean and variance under the policy."""
    return np.array([_bandit_estimate(fn, theta, costs, np.array([a]), baseline) for a in range(4)])


def _bandit_unbiased(trial):
    """With a fixed baseline (0, or the mean cost) the single-draw estimate's exact expectation under the policy is
    the exact gradient, and the estimate from 4000 draws in one batch is within six of its standard errors."""
    rng = trial.rng
    theta, costs, p, exact = _bandit(rng)
    n = 4000
    for baseline in (0.0, float(p @ costs)):
        mean = p @ _per_arm(trial.fn, theta, costs, baseline)
        if not np.allclose(mean, exact, rtol=1e-6, atol=1e-9):
            raise Failure(f"On a 4-armed bandit with costs {costs.tolist()}, policy {np.round(p, 3).tolist()} and "
                          f"baseline {baseline:.2f}, the expectation of your single-draw estimate is "
                          f"{np.round(mean, 4).tolist()}; the exact gradient of the expected cost is "
                          f"{np.round(exact, 4).tolist()}: the estimator is biased.", _bias_hint(mean, exact))
        G = _per_arm(trial.exercise.reference, theta, costs, baseline)
        bound = 6 * np.sqrt(np.maximum(p @ G**2 - exact**2, 0) / n) + 1e-9
        est = _bandit_estimate(trial.fn, theta, costs, rng.choice(4, size=n, p=p), baseline)
        if np.any(np.abs(est - exact) > bound):
            k = int(np.argmax(np.abs(est - exact) / bound))
            raise Failure(f"On a 4-armed bandit with costs {costs.tolist()} and baseline {baseline:.2f}, the "
                          f"gradient of your surrogate from {n} draws in one batch is {np.round(est, 4).tolist()}; the "
                          f"exact gradient of the expected cost is {np.round(exact, 4).tolist()} (arm {k} is off by "
                          f"{abs(est[k] - exact[k]):.3g}, allowed {bound[k]:.3g}, six standard errors).",
                          _bias_hint(est, exact))


def _bias_hint(est, exact):
    if np.dot(est, exact) < 0:
        return ("The estimate points the opposite way: minimise the cost, so the surrogate is "
                "+(cost - baseline) * log_prob.")
    return ("Subtract the baseline you were given (the average of earlier costs), not one that includes this batch's "
            "costs, and average over the examples.")


def _bandit_variance(trial):
    """A baseline at the mean cost shrinks the exact variance of single-draw estimates many times over (about 50
    times on these costs; the test asks for 4)."""
    theta, costs, p, _ = _bandit(trial.rng)
    mean = float(p @ costs)
    spread = {}
    for b in (0.0, mean):
        G = _per_arm(trial.fn, theta, costs, b)
        spread[b] = float(np.sum(p @ G**2 - (p @ G) ** 2))
    if not spread[mean] < spread[0.0] / 4:
        raise Failure(f"With costs {costs.tolist()}, single-draw estimates have total variance {spread[0.0]:.3g} with "
                      f"baseline 0 and {spread[mean]:.3g} with the baseline at the mean cost, {mean:.3g}; a baseline "
                      "this close to the mean should cut it many times over.",
                      "Use the baseline you are given: the surrogate is (cost - baseline) * log_prob.")


def _bandit_descends(trial):
    """From the uniform policy, twenty steps of 0.5 along the estimate (200 draws each) lower the expected cost
    by a fifth of the way to the best arm's; the reference ends within 1.3 % of the way in each of 20,000 seeds.
    It starts uniform because from a random policy that all but ignores the best arm, descent crawls (a softmax
    policy learns little about arms it rarely draws): from random starts the reference fell short in 14 of
    20,000 seeds."""
    rng = trial.rng
    _, costs, _, _ = _bandit(rng)
    t = np.zeros(4)
    start = float(costs.mean())
    for _ in range(20):
        est = _bandit_estimate(trial.fn, t, costs, rng.choice(4, size=200, p=_softmax_rows(t)), start)
        t = t - 0.5 * est / max(1e-12, np.abs(est).max())
    end = float(_softmax_rows(t) @ costs)
    if not end < start - 0.2 * (start - costs.min()):
        raise Failure(f"Twenty steps of gradient descent on your surrogate moved the expected cost of a bandit from "
                      f"{start:.3f} to {end:.3f} (the best arm costs {costs.min():.1f}).",
                      "The surrogate is minimised: +(cost - baseline) * log_prob lowers the probability of choices "
                      "that cost more than the baseline.")


def _reinforce_variant(baseline=True, detach=True, sign=1, bonus=1, reduce="mean", update_first=False,
                       decay_swap=False, baseline_grad=False):
    """reinforce_loss with one thing wrong (baseline_grad: the new baseline keeps the cost's graph)."""

    def wrong(log_prob, cost, entropy, b, entropy_weight=0.0, decay=0.9):
        d = (1 - decay) if decay_swap else decay
        new = d * b + (1 - d) * (cost.mean() if baseline_grad else float(cost.detach().mean()))
        advantage = cost - ((new if update_first else b) if baseline else 0)
        term = (advantage.detach() if detach else advantage) * log_prob
        surrogate = sign * (term.mean() if reduce == "mean" else term.sum())
        return surrogate - bonus * entropy_weight * entropy.mean(), new

    return wrong


register(Exercise(
    "reinforce_loss", NB, attend.reinforce_loss,
    tests=[
        ("values (float64)", _reinforce_test(_reinforce_case(), with_grads=False)),
        ("gradients into log_prob and entropy, none into cost", _reinforce_test(_reinforce_case())),
        ("one example (N=1)", _reinforce_test(_reinforce_case(N=1))),
        ("every cost equals the baseline: only the bonus is left", _reinforce_test(_reinforce_case(equal=True))),
        ("no entropy bonus (entropy_weight=0)", _reinforce_test(_reinforce_case(bonus=False))),
        ("float32 tensors", _reinforce_test(_reinforce_case(dtype=np.float32), **FLOAT32)),
        ("a bandit: the estimate is unbiased", _bandit_unbiased),
        ("a bandit: the baseline reduces the variance", _bandit_variance),
        ("a bandit: descending the surrogate lowers the cost", _bandit_descends),
    ],
    mistakes=[
        (_reinforce_variant(baseline=False),
         "The baseline is not subtracted: use (cost - baseline) * log_prob. The estimate stays unbiased either "
         "way, but without a baseline its variance is far larger."),
        (_reinforce_variant(sign=-1),
         "The sign is reversed: this term is minimised, so it is +(cost - baseline) * log_prob, which makes "
         "choices that cost more than the baseline less likely."),
        (_reinforce_variant(bonus=-1),
         "The entropy term has the wrong sign: a bonus for spreading out is subtracted from the loss, "
         "- entropy_weight * entropy.mean()."),
        (_reinforce_variant(bonus=0),
         "The entropy bonus is missing: subtract entropy_weight * entropy.mean() from the surrogate."),
        (_reinforce_variant(reduce="sum"),
         "Average over the examples (.mean()), as the caption loss is averaged; a sum makes the step size grow with "
         "the batch."),
        (_reinforce_variant(update_first=True),
         "The baseline is updated with this batch's costs before it is subtracted. Subtract the old baseline "
         "(which does not depend on this batch's choices, so the estimate stays unbiased), then update it."),
        (_reinforce_variant(decay_swap=True),
         "The moving average keeps `decay` of the old baseline: decay * baseline + (1 - decay) * mean(cost)."),
    ],
))
