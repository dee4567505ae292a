"""BG/NBD "buy till you die" model (Fader, Hardie & Lee 2005): fit, P(alive), P(silent window).

Pure numpy/scipy, no I/O. A customer is summarised by (x, t_x, T): repeat purchases after the
first one, time of the last purchase and age, both measured from the first purchase (weeks here).
While alive a customer buys at Poisson rate lambda ~ Gamma(r, alpha); after each purchase they
drop out with probability p ~ Beta(a, b). The four parameters are fitted by maximum likelihood
(L-BFGS on log-parameters of the closed-form log-likelihood).

Given a customer's history, the posterior of (lambda, p) for an alive customer factorises into
Gamma(r + x, alpha + T) x Beta(a, b + x), which gives every window probability below in closed
form in lambda; the expectation over p is a fixed Gauss-Legendre rule on u = p**a (smooth even
when a < 1).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import betaln, gammaln

QUAD_NODES = 48


@dataclass(frozen=True)
class BGNBD:
    """Fitted BG/NBD parameters (rate shape r and scale alpha, dropout Beta(a, b))."""

    r: float
    alpha: float
    a: float
    b: float

    def to_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


def _arrays(x, t_x, T) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    t_x = np.asarray(t_x, dtype=np.float64)
    T = np.asarray(T, dtype=np.float64)
    if (x < 0).any() or (t_x < 0).any() or (t_x > T + 1e-9).any():
        raise ValueError("BG/NBD needs x >= 0 and 0 <= t_x <= T")
    return x, np.minimum(t_x, T), T


def log_likelihood(params: BGNBD, x, t_x, T) -> np.ndarray:
    """Per-customer log-likelihood of (x, t_x, T) under `params`."""
    x, t_x, T = _arrays(x, t_x, T)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    base = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + betaln(a, b + x) - betaln(a, b)
    stay = -(r + x) * np.log(alpha + T)
    buy = x > 0
    drop = np.full_like(x, -np.inf)
    drop[buy] = np.log(a) - np.log(b + x[buy] - 1.0) - (r + x[buy]) * np.log(alpha + t_x[buy])
    return base + np.logaddexp(stay, drop)


def fit_bgnbd(x, t_x, T, *, start: BGNBD | None = None) -> BGNBD:
    """Maximum-likelihood parameters; raises if the optimiser fails."""
    x, t_x, T = _arrays(x, t_x, T)
    if len(x) < 2:
        raise ValueError("BG/NBD needs at least 2 customers to fit")
    s = start or BGNBD(1.0, max(float(np.mean(T)), 1e-3), 1.0, 1.0)

    def nll(theta: np.ndarray) -> float:
        p = BGNBD(*np.exp(np.clip(theta, -20.0, 20.0)))
        return -float(log_likelihood(p, x, t_x, T).sum()) / len(x)

    theta0 = np.log([s.r, s.alpha, s.a, s.b])
    res = minimize(nll, theta0, method="L-BFGS-B", bounds=[(-12.0, 12.0)] * 4)
    if not np.isfinite(res.fun):
        raise RuntimeError(f"BG/NBD fit failed: {res.message}")
    return BGNBD(*(float(v) for v in np.exp(res.x)))


def p_alive(params: BGNBD, x, t_x, T) -> np.ndarray:
    """P(still alive at T | x, t_x, T); 1 for customers without a repeat purchase."""
    x, t_x, T = _arrays(x, t_x, T)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    log_odds = np.full_like(x, -np.inf)
    buy = x > 0
    log_odds[buy] = (
        np.log(a)
        - np.log(b + x[buy] - 1.0)
        + (r + x[buy]) * (np.log(alpha + T[buy]) - np.log(alpha + t_x[buy]))
    )
    return 1.0 / (1.0 + np.exp(log_odds))


def _p_expect(params: BGNBD, x: np.ndarray, fn) -> np.ndarray:
    """E[fn(p)] per customer under p ~ Beta(a, b + x); fn maps p [k, 1] to values [k, n]."""
    u, w = np.polynomial.legendre.leggauss(QUAD_NODES)
    u, w = (u + 1.0) / 2.0, w / 2.0  # nodes on (0, 1)
    a, bx = params.a, params.b + x
    p = np.maximum(u ** (1.0 / a), 1e-200)  # a << 1 underflows p; the limits are finite
    # density of p in u: (1 - p)^(b + x - 1) / (a B(a, b + x))
    log_dens = (bx[None, :] - 1.0) * np.log1p(-np.minimum(p, 1 - 1e-15))[:, None]
    dens = np.exp(log_dens - np.log(a) - betaln(a, bx)[None, :])
    return (w[:, None] * dens * fn(p[:, None])).sum(axis=0)


def window_stats(params: BGNBD, x, t_x, T, *, lead: float, length: float) -> dict[str, np.ndarray]:
    """Per customer, for the window (T + lead, T + lead + length]:

    - p_alive: P(alive at T);
    - p_silent: P(no purchase in the window), counting dropouts during the lead;
    - expected: expected purchases in the window.
    """
    x, t_x, T = _arrays(x, t_x, T)
    alive = p_alive(params, x, t_x, T)
    shape, scale = params.r + x, params.alpha + T

    def g(c: np.ndarray) -> np.ndarray:  # E[exp(-lambda c)] under Gamma(r + x, alpha + T)
        return np.exp(-shape[None, :] * np.log1p(c / scale[None, :]))

    def g_diff(c1: np.ndarray, c2: np.ndarray) -> np.ndarray:  # g(c1) - g(c2), no cancellation
        d = np.log1p(c2 / scale[None, :]) - np.log1p(c1 / scale[None, :])
        return -g(c1) * np.expm1(-shape[None, :] * d)

    # alive at T: still alive after the lead w.p. exp(-lead lambda p); then silent w.p.
    # exp(-length lambda); the expected count of an alive BG/NBD customer is (1 - e^{-l p t})/p
    buys = _p_expect(params, x, lambda p: g_diff(lead * p, lead * p + length))
    count = _p_expect(params, x, lambda p: g_diff(lead * p, (lead + length) * p) / p)
    silent = 1.0 - alive * np.clip(buys, 0.0, 1.0)
    return {
        "p_alive": alive,
        "p_silent": np.clip(silent, 0.0, 1.0),
        "expected": alive * np.maximum(count, 0.0),
    }


def simulate(params: BGNBD, T, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(x, t_x) of customers of ages T drawn from the model (for tests and checks)."""
    T = np.asarray(T, dtype=np.float64)
    lam = rng.gamma(params.r, 1.0 / params.alpha, size=len(T))
    p = rng.beta(params.a, params.b, size=len(T))
    x, t_x = np.zeros(len(T)), np.zeros(len(T))
    for i in range(len(T)):
        t = 0.0
        while True:
            t += rng.exponential(1.0 / lam[i])
            if t > T[i]:
                break
            x[i] += 1
            t_x[i] = t
            if rng.random() < p[i]:
                break
    return x, t_x
