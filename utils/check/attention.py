"""Exercises of notebook 05: additive attention (forward and backward), the doubly stochastic penalty, and
the REINFORCE surrogate (PyTorch).

Each known mistake is written as a function of the forward's inputs (h, V, W_h, W_v, w and the upstream
gradients), never of a cache layout; `_on_cache` adapts one to the (dz, dalpha, cache) signature the
backward exercise has.
"""

import copy

import numpy as np

from .. import attend, attention
from ..gradcheck import numerical_gradient
from .battery import _gradient_gap, call_checked, describe_inputs, returns, value_test
from .compare import Failure, as_array, assert_close
from .core import Exercise, LearnerError, call_learner, register
from .rnn_basics import FLOAT32

NB = "05"


# --- attention_forward ---------------------------------------------------------------------------

def _attention_args(N=None, L=None, dtype=np.float64, w_scale=1.0, tied=False):
    """Random inputs; sizes all differ (so a transposed weight or a wrong axis cannot go unnoticed).

    tied: every location holds the same feature vector, so every score ties. w_scale multiplies w: at 1000 the
    scores reach thousands, where exp overflows unless the maximum is subtracted first.
    """

    def make(rng):
        n = N or int(rng.integers(2, 5))
        n_loc = L or int(rng.integers(5, 9))
        D, H, A = (int(k) for k in rng.permutation([3, 4, 6]) + rng.integers(0, 2, 3) * 7)
        V = rng.standard_normal((n, n_loc, D))
        if tied:
            V = np.repeat(V[:, :1], n_loc, axis=1)
        return {"h": rng.uniform(-1, 1, (n, H)).astype(dtype), "V": V.astype(dtype),
                "W_h": (rng.standard_normal((H, A)) / np.sqrt(H)).astype(dtype),
                "W_v": (rng.standard_normal((D, A)) / np.sqrt(D)).astype(dtype),
                "w": (w_scale * rng.standard_normal(A)).astype(dtype)}

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
        ("very large scores (|e| in the thousands)", value_test(_attention_args(w_scale=1000.0), FORWARD_RETURNS,
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

BACKWARD_GRADS = ("dh", "dV", "dW_h", "dW_v", "dw")
BACKWARD_HINT = ("Follow each gradient back one operation at a time: z = sum_i alpha_i V_i, then the softmax, the "
                 "tanh and the two products. W_h, W_v and w are shared by every example and location, so their "
                 "gradients sum over both; dh sums over the locations.")


def _backward_test(make_args, **tol):
    return value_test(make_args, returns(*BACKWARD_GRADS), **({"rtol": 1e-7} | tol), hint=BACKWARD_HINT)



def _backward_args(N=None, L=None, dtype=np.float64, with_dalpha=True):
    """The backward's arguments: upstream gradients and the reference forward's cache."""

    def make(rng):
        inputs = _attention_args(N=N, L=L, dtype=dtype)(rng)
        z, alpha, cache = attention.attention_forward(**inputs)
        dalpha = rng.standard_normal(alpha.shape).astype(dtype) if with_dalpha else None
        return {"dz": rng.standard_normal(z.shape).astype(dtype), "dalpha": dalpha, "cache": cache}

    return make


def _on_cache(wrong):
    """A mistake written as wrong(h, V, W_h, W_v, w, dz, dalpha) -> grads, called as backward(dz, dalpha, cache)."""

    def backward(dz, dalpha, cache):
        return wrong(*cache[:5], dz, dalpha)

    return backward


def _backward_variant(score_path=True, value_path=True, softmax_jacobian=True, tanh_grad=True,
                      sum_locations=True, use_dalpha=True):
    """attention_backward from the forward's inputs, with one step of the chain rule changed."""

    def wrong(h, V, W_h, W_v, w, dz, dalpha):
        hidden = np.tanh(V @ W_v + (h @ W_h)[:, None, :])
        alpha = attention.softmax(hidden @ w, axis=1)
        da_total = np.einsum("nd,nld->nl", dz, V) + (dalpha if use_dalpha and dalpha is not None else 0)
        de = alpha * (da_total - np.sum(alpha * da_total, axis=1, keepdims=True)) if softmax_jacobian \
            else alpha * da_total
        dhid = de[:, :, None] * w
        da = dhid * (1 - hidden**2) if tanh_grad else dhid
        dV = (alpha[:, :, None] * dz[:, None, :] if value_path else 0) + (da @ W_v.T if score_path else 0)
        dsum = da.sum(axis=1) if sum_locations else da[:, 0]
        dW_v = np.einsum("nld,nla->da", V, da) if sum_locations else V[:, 0].T @ da[:, 0]
        return dsum @ W_h.T, dV, h.T @ dsum, dW_v, np.einsum("nl,nla->a", de, hidden)

    return wrong


def _backward_numeric(N=None, L=None):
    """The learner's backward on the reference cache, against centred differences of the reference forward
    (z and alpha both used downstream)."""

    def test(fn, ex):
        rng = np.random.default_rng()
        inputs = _attention_args(N=N, L=L)(rng)
        z, alpha, cache = attention.attention_forward(**inputs)
        dz, dalpha = rng.standard_normal(z.shape), rng.standard_normal(alpha.shape)
        got = returns(*BACKWARD_GRADS)(call_checked(fn, {"dz": dz, "dalpha": dalpha, "cache": cache}))
        for name in BACKWARD_GRADS:
            wrt = name[1:]

            def f(value, wrt=wrt):
                z_, a_, _ = attention.attention_forward(**{**inputs, wrt: value})
                return float(np.sum(z_ * dz) + np.sum(a_ * dalpha))

            num = numerical_gradient(f, inputs[wrt].copy())
            mine = as_array(name, got[name], num)
            gap = _gradient_gap(mine, num, np.max(np.abs(num)), 1e-6)
            if gap:
                raise Failure(f"`{name}` disagrees with the numerical gradient: {gap}\n"
                              f"Inputs: {describe_inputs(inputs)}",
                              f"Follow {name} back through z = sum_i alpha_i V_i, the softmax, the tanh and the "
                              "products, one operation at a time.")

    return test


register(Exercise(
    "attention_backward", NB, attention.attention_backward,
    tests=[
        ("values against the reference", _backward_test(_backward_args())),
        ("dalpha = None (only z used downstream)", _backward_test(_backward_args(with_dalpha=False))),
        ("one example (N=1)", _backward_test(_backward_args(N=1))),
        ("one location (L=1): the scores get no gradient", _backward_test(_backward_args(L=1), atol=1e-12)),
        ("against numerical gradients", _backward_numeric()),
        ("float32 inputs", _backward_test(_backward_args(dtype=np.float32), **FLOAT32)),
    ],
    mistakes=[
        (_on_cache(_backward_variant(score_path=False)),
         "dV misses the path through the scores: V enters twice, in z = sum_i alpha_i V_i and in the scores "
         "tanh(V W_v + h W_h); dV = alpha_i dz + (da @ W_v.T) at each location."),
        (_on_cache(_backward_variant(value_path=False)),
         "dV misses the direct path through z = sum_i alpha_i V_i: add alpha_i * dz at each location."),
        (_on_cache(_backward_variant(softmax_jacobian=False)),
         "The softmax's backward is de_i = alpha_i * (dalpha_i - sum_j alpha_j dalpha_j): every alpha_j depends on "
         "every score, so the sum term is needed (alpha * dalpha alone is not enough)."),
        (_on_cache(_backward_variant(tanh_grad=False)),
         "The tanh's derivative is missing: multiply by (1 - hidden**2), read off the cached tanh output."),
        (_on_cache(_backward_variant(sum_locations=False)),
         "dh, dW_h and dW_v must sum over all L locations: h W_h was added to every location's row, and W_v is "
         "shared by every location (like the weights over time steps in notebook 02)."),
        (_on_cache(_backward_variant(use_dalpha=False)),
         "dalpha, the gradient arriving at alpha from outside (a penalty on alpha), is ignored: add it to the "
         "gradient that z sends to alpha, dz . V_i, before the softmax's backward. Treat None as zeros."),
    ],
))


# --- doubly_stochastic_penalty -------------------------------------------------------------------

PENALTY_RETURNS = returns("penalty", "dalpha")
PENALTY_HINT = ("penalty = mean over the captions of sum_i (1 - sum_t mask_t alpha_ti)**2, and "
                "dalpha_ti = -2 (1 - sum_t mask_t alpha_ti) * mask_t / N.")


def _penalty_test(make_args, **tol):
    return value_test(make_args, PENALTY_RETURNS, **({"rtol": 1e-9} | tol), hint=PENALTY_HINT)


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


def _scalar(name, value):
    """A learner's one-number output as a float, or a Failure saying what it was instead."""
    try:
        return float(np.asarray(value, dtype=np.float64).reshape(()))
    except (TypeError, ValueError):
        raise Failure(f"`{name}` should be one number; got {type(value).__name__}"
                      f"{'' if not hasattr(value, 'shape') else ' of shape ' + str(np.shape(value))}.",
                      "Sum over the locations, average over the captions: the penalty is a single float.") from None


def _penalty_numeric(fn, ex):
    """dalpha against centred differences of the learner's own penalty."""
    args = _penalty_args()(np.random.default_rng())
    out = PENALTY_RETURNS(call_checked(fn, args))
    mine = as_array("dalpha", out["dalpha"], args["alpha"])

    def value(a):
        return _scalar("penalty", PENALTY_RETURNS(call_learner(fn, a, args["mask"]))["penalty"])

    num = numerical_gradient(value, args["alpha"].copy())
    gap = _gradient_gap(mine, num, max(np.max(np.abs(num)), np.max(np.abs(mine))), 1e-6)
    if gap:
        raise Failure(f"`dalpha` disagrees with the numerical gradient of your own penalty: {gap}\n"
                      f"Inputs: {describe_inputs(args)}",
                      "d/dalpha_ti of (1 - sum_t alpha_ti)^2 is -2 (1 - sum_t alpha_ti) at a real step, 0 at padding; "
                      "divide by N for the mean.")


register(Exercise(
    "doubly_stochastic_penalty", NB, attention.doubly_stochastic_penalty,
    tests=[
        ("values (float64)", _penalty_test(_penalty_args())),
        ("every caption one real step", _penalty_test(_penalty_args(one_step=True))),
        ("one time step (T=1)", _penalty_test(_penalty_args(T=1))),
        ("one caption (N=1)", _penalty_test(_penalty_args(N=1))),
        ("mask given as 0.0 / 1.0", _penalty_test(_penalty_args(as_float=True))),
        ("against numerical gradients", _penalty_numeric),
        ("float32 inputs", _penalty_test(_penalty_args(dtype=np.float32), **FLOAT32)),
    ],
    mistakes=[
        (_penalty_variant(masked=False),
         "Padded steps are counted: a caption's attention after its <END> never happens, so multiply alpha by "
         "the mask before summing over time."),
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

def _policy(rng, N, K, dtype):
    """A random categorical policy (N, K) as numpy: logits, one sampled choice per row, and costs."""
    logits = rng.standard_normal((N, K)) * 1.5
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    choice = np.array([rng.choice(K, p=row) for row in p])
    return {"logits": logits.astype(dtype), "choice": choice, "cost": (3 + 2 * rng.standard_normal(N)).astype(dtype)}


def _reinforce_case(N=None, dtype=np.float64, equal=False, bonus=True):
    def make(rng):
        n = N or int(rng.integers(3, 8))
        case = _policy(rng, n, int(rng.integers(3, 6)), dtype)
        case["baseline"] = float(rng.uniform(1, 4))
        if equal:  # every example's cost equals the baseline: the only gradient left is the entropy bonus
            case["cost"] = np.full(n, case["baseline"], dtype=dtype)
        case["entropy_weight"] = float(rng.uniform(0.05, 0.5)) if bonus else 0.0
        case["decay"] = float(rng.choice([0.9, 0.7]))
        return case

    return make


def _run_reinforce(fn, case):
    """Build the tensors of `case`, call fn, backpropagate its surrogate; numbers and the gradients it sent.

    Returns {"surrogate", "new_baseline", "dlogits", "dcost"} as numpy (dcost zeros when cost got no gradient).
    Raises Failure for outputs of the wrong kind and LearnerError for the learner's own exceptions.
    """
    import torch

    dtype = torch.float64 if case["logits"].dtype == np.float64 else torch.float32
    logits = torch.tensor(case["logits"], dtype=dtype, requires_grad=True)
    cost = torch.tensor(case["cost"], dtype=dtype, requires_grad=True)  # differentiable, like a caption loss
    log_p = logits.log_softmax(dim=1)
    log_prob = log_p.gather(1, torch.as_tensor(case["choice"])[:, None])[:, 0]
    entropy = -(log_p.exp() * log_p).sum(dim=1)
    cost_before = cost.detach().clone()
    out = call_learner(fn, log_prob, cost, entropy, case["baseline"], case["entropy_weight"], case["decay"])
    if not torch.equal(cost.detach(), cost_before):
        raise Failure("Your function modified its input `cost` in place.",
                      "Work on a new tensor (cost - baseline), not cost.sub_(...) or a detached view of it.")
    if not isinstance(out, tuple | list) or len(out) != 2:
        raise Failure("Expected the function to return a tuple (surrogate, new_baseline).",
                      "End your function with `return surrogate, new_baseline`.")
    surrogate, new_baseline = out
    if not isinstance(surrogate, torch.Tensor) or surrogate.numel() != 1:
        raise Failure(f"`surrogate` should be a one-number torch tensor (a loss to call .backward() on); got "
                      f"{type(surrogate).__name__}{'' if not hasattr(surrogate, 'shape') else tuple(surrogate.shape)}.",
                      "Average over the examples with .mean(), and keep it a tensor (no .item()).")
    if not surrogate.requires_grad:
        raise Failure("`surrogate` carries no gradient: it must be computed from log_prob (and entropy).",
                      "Do not detach log_prob; detach only the cost and the baseline.")
    if isinstance(new_baseline, torch.Tensor):
        if new_baseline.requires_grad:
            raise Failure("`new_baseline` carries gradient: it is a running average of past costs, a constant for "
                          "every later step, and a tensor with a graph keeps every earlier batch's graph alive.",
                          "Return a float: decay * baseline + (1 - decay) * float(cost.detach().mean()).")
        new_baseline = new_baseline.item() if new_baseline.numel() == 1 else new_baseline
    try:
        surrogate.reshape(()).backward()
    except RuntimeError as exc:  # e.g. an in-place change of a tensor autograd needed
        raise LearnerError(exc) from exc
    return {"surrogate": surrogate.item(), "new_baseline": new_baseline,
            "dlogits": logits.grad.double().numpy(),
            "dcost": np.zeros(len(case["cost"])) if cost.grad is None else cost.grad.double().numpy()}


def _matches(got, want, rtol=1e-6, atol=1e-9):
    try:
        for name, value in want.items():
            assert_close(name, got[name], value, rtol, atol)
    except Failure:
        return False
    return True


def _reinforce_value_test(make_case, rtol=1e-9, atol=0.0):
    """Surrogate, new baseline and the gradients the surrogate sends, against the reference's."""

    def test(fn, ex):
        case = make_case(np.random.default_rng())
        got = _run_reinforce(fn, copy.deepcopy(case))
        want = _run_reinforce(ex.reference, copy.deepcopy(case))
        if np.any(got["dcost"] != 0):
            raise Failure("The surrogate sends gradient into `cost`: the cost (reward) is a number that scores "
                          "the choice, not something this term should change.",
                          "Use (cost - baseline).detach(): only log_prob (and entropy) may carry gradient here.")
        try:
            for name in ("surrogate", "dlogits"):
                assert_close(name, got[name], want[name], rtol, atol)
            # a float carried through a float32 tensor (torch's default) is still a right baseline
            assert_close("new_baseline", got["new_baseline"], want["new_baseline"], max(rtol, 1e-6), atol)
        except Failure as f:
            for wrong, hint in ex.mistakes:
                try:
                    theirs = _run_reinforce(wrong, copy.deepcopy(case))
                except Exception:
                    continue
                if _matches(got, {k: theirs[k] for k in ("surrogate", "new_baseline", "dlogits")}):
                    f.hint = hint
                    break
            f.message += (f"\nInputs: log_prob, cost, entropy ({len(case['cost'])},), baseline={case['baseline']:.3f}, "
                          f"entropy_weight={case['entropy_weight']:.3f}, decay={case['decay']}")
            raise

    return test


def _bandit(rng):
    """A 4-armed bandit: fixed costs per arm and a policy softmax(theta). Returns theta, costs, and the exact
    gradient of the expected cost J = sum_k p_k c_k, which is p * (c - J)."""
    theta = rng.standard_normal(4)
    costs = np.array([10.0, 11.0, 12.5, 14.0])[rng.permutation(4)]  # all far from 0: a baseline matters
    p = np.exp(theta - theta.max())
    p /= p.sum()
    return theta, costs, p, p * (costs - p @ costs)


def _bandit_estimates(fn, theta, costs, baseline, n, rng, per_sample=False):
    """The learner's gradient estimate of d E[cost] / d theta from n draws: one estimate, or n of them (one draw
    each, per_sample). Entropy bonus off."""
    import torch

    p = np.exp(theta - theta.max())
    p /= p.sum()
    choice = rng.choice(4, size=n, p=p)
    groups = [choice[k:k + 1] for k in range(n)] if per_sample else [choice]
    out = []
    for arms in groups:
        t = torch.tensor(theta, requires_grad=True)
        log_p = t.log_softmax(dim=0)
        log_prob = log_p[torch.as_tensor(arms)]
        entropy = -(log_p.exp() * log_p).sum().expand(len(arms))
        cost = torch.tensor(costs[arms])
        result = call_learner(fn, log_prob, cost, entropy, baseline, 0.0, 0.9)
        if not isinstance(result, tuple | list) or len(result) != 2 or not hasattr(result[0], "backward"):
            raise Failure("Expected the function to return a tuple (surrogate tensor, new_baseline).")
        result[0].reshape(()).backward()
        out.append(t.grad.numpy().copy())
    return np.array(out)


def _bandit_unbiased(fn, ex):
    """With a fixed baseline the estimate averages to the exact gradient (within 6 standard errors)."""
    rng = np.random.default_rng()
    theta, costs, p, exact = _bandit(rng)
    n = 4000
    for baseline in (0.0, float(p @ costs)):
        est = _bandit_estimates(fn, theta, costs, baseline, n, rng)[0]
        # the per-draw estimator's spread, from the reference on the same policy: exact, not a guess
        draws = _bandit_estimates(ex.reference, theta, costs, baseline, 600, rng, per_sample=True)
        bound = 6 * draws.std(axis=0) / np.sqrt(n) + 1e-9
        if np.any(np.abs(est - exact) > bound):
            k = int(np.argmax(np.abs(est - exact) / bound))
            hint = ("The estimate points the opposite way: minimise the cost, so the surrogate is "
                    "+(cost - baseline) * log_prob." if np.dot(est, exact) < 0 else
                    "Subtract the baseline you were given (the average of earlier costs), not one that includes this "
                    "batch's costs, and average over the examples.")
            raise Failure(f"On a 4-armed bandit with costs {costs.tolist()} and baseline {baseline:.2f}, the "
                          f"gradient of your surrogate averaged over {n} draws is {np.round(est, 4).tolist()}; the "
                          f"exact gradient of the expected cost is {np.round(exact, 4).tolist()} (arm {k} is off by "
                          f"{abs(est[k] - exact[k]):.3g}, allowed {bound[k]:.3g}, six standard errors).", hint)


def _bandit_variance(fn, ex):
    """Subtracting a baseline near the mean cost shrinks the spread of single-draw estimates."""
    rng = np.random.default_rng()
    theta, costs, p, _ = _bandit(rng)
    spread = {b: _bandit_estimates(fn, theta, costs, b, 300, rng, per_sample=True).var(axis=0).sum()
              for b in (0.0, float(p @ costs))}
    if not spread[float(p @ costs)] < spread[0.0] / 4:
        raise Failure(f"With costs {costs.tolist()}, single-draw estimates have total variance {spread[0.0]:.3g} with "
                      f"baseline 0 and {spread[float(p @ costs)]:.3g} with the baseline at the mean cost; a baseline "
                      "this close to the mean should cut it many times over.",
                      "Use the baseline you are given: the surrogate is (cost - baseline) * log_prob.")


def _bandit_descends(fn, ex):
    """Twenty gradient steps on the surrogate lower the expected cost."""
    import torch

    rng = np.random.default_rng()
    theta, costs, p, _ = _bandit(rng)
    start = float(p @ costs)
    t, baseline = theta.copy(), 0.0
    for _ in range(20):
        est = _bandit_estimates(fn, t, costs, baseline, 200, rng)[0]
        t = t - 0.5 * est / max(1e-12, np.abs(est).max())  # steps of 0.5 along the estimate's direction
        baseline = start
    q = torch.tensor(t).softmax(dim=0).numpy()
    if not q @ costs < start - 0.2 * (start - costs.min()):
        raise Failure(f"Twenty steps of gradient descent on your surrogate moved the expected cost of a bandit from "
                      f"{start:.3f} to {q @ costs:.3f} (the best arm costs {costs.min():.1f}).",
                      "The surrogate is minimised: +(cost - baseline) * log_prob lowers the probability of choices "
                      "that cost more than the baseline.")


def _reinforce_variant(baseline=True, detach=True, sign=1, bonus=1, reduce="mean", update_first=False, decay_swap=False,
                       baseline_grad=False):
    """reinforce_loss with one thing wrong."""

    def wrong(log_prob, cost, entropy, b, entropy_weight=0.0, decay=0.9):
        d = (1 - decay) if decay_swap else decay
        new = d * b + (1 - d) * (cost.mean() if baseline_grad else float(cost.detach().mean()))
        used = new if update_first else b
        advantage = cost - (used if baseline else 0)
        advantage = advantage.detach() if detach else advantage
        term = advantage * log_prob
        surrogate = sign * (term.mean() if reduce == "mean" else term.sum())
        return surrogate - bonus * entropy_weight * entropy.mean(), new

    return wrong


register(Exercise(
    "reinforce_loss", NB, attend.reinforce_loss,
    tests=[
        ("values and gradients (float64)", _reinforce_value_test(_reinforce_case())),
        ("one example (N=1)", _reinforce_value_test(_reinforce_case(N=1))),
        ("every cost equals the baseline: only the bonus is left", _reinforce_value_test(_reinforce_case(equal=True))),
        ("no entropy bonus (entropy_weight=0)", _reinforce_value_test(_reinforce_case(bonus=False))),
        ("float32 tensors", _reinforce_value_test(_reinforce_case(dtype=np.float32), **FLOAT32)),
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
