"""Difference-in-differences against propensity-matched controls (numpy + sklearn only).

Each treated household is matched to its nearest unexposed household(s) on the logit of a
propensity score (logistic regression on standardized pre-period features), with replacement
and within a caliper (a multiple of the logit's standard deviation); treated households with no
control inside the caliper are left out and counted. The effect on the treated is the mean over
matched treated households of (their change from pre-period to window) minus (the mean change of
their matched controls). The CI is a percentile bootstrap over matched treated households (their
matched controls travel with them). Balance is the standardized mean difference of every feature,
before matching (all controls) and after (matched controls, weighted by use), both over the
pooled standard deviation of the unmatched groups.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class DidResult:
    """The matched estimate and what a reader needs to trust it."""

    att: float
    ci_low: float
    ci_high: float
    naive: float
    n_treated: int
    n_matched: int
    n_controls_pool: int
    n_controls_used: int
    smd_before: dict[str, float] = field(default_factory=dict)
    smd_after: dict[str, float] = field(default_factory=dict)
    effects: np.ndarray | None = None  # per matched treated household
    matched: np.ndarray | None = None  # treated row index of each effect


def standardized_differences(
    X_t: np.ndarray, X_c: np.ndarray, w_c: np.ndarray | None = None, *, scale: np.ndarray
) -> np.ndarray:
    """(mean treated - weighted mean control) / scale, per column."""
    mean_c = np.average(X_c, axis=0, weights=w_c) if len(X_c) else np.zeros(X_t.shape[1])
    return (X_t.mean(axis=0) - mean_c) / scale


def pooled_scale(X_t: np.ndarray, X_c: np.ndarray) -> np.ndarray:
    s = np.sqrt((X_t.var(axis=0, ddof=1) + X_c.var(axis=0, ddof=1)) / 2)
    return np.where(s > 1e-12, s, 1.0)


def propensity_logit(X: np.ndarray, treated: np.ndarray, *, c: float = 1.0) -> np.ndarray:
    """Logit of P(treated | X) from an L2 logistic regression on standardized columns."""
    from sklearn.linear_model import LogisticRegression

    mu, sd = X.mean(axis=0), X.std(axis=0)
    Z = (X - mu) / np.where(sd > 1e-12, sd, 1.0)
    model = LogisticRegression(C=c, max_iter=1000).fit(Z, treated.astype(int))
    return model.decision_function(Z)


def nearest_controls(
    score_t: np.ndarray, score_c: np.ndarray, k: int, caliper: float
) -> np.ndarray:
    """[n_treated, k] indices into the controls (with replacement), -1 beyond the caliper."""
    order = np.argsort(score_c)
    sorted_c = score_c[order]
    out = np.full((len(score_t), k), -1, dtype=np.int64)
    for i, s in enumerate(score_t):
        pos = np.searchsorted(sorted_c, s)
        lo, hi = max(pos - k, 0), min(pos + k, len(sorted_c))
        window = np.arange(lo, hi)
        near = window[np.argsort(np.abs(sorted_c[window] - s), kind="stable")][:k]
        ok = np.abs(sorted_c[near] - s) <= caliper
        out[i, : ok.sum()] = order[near[ok]]
    return out


def matched_did(
    delta: np.ndarray,
    treated: np.ndarray,
    X: np.ndarray,
    names: list[str],
    *,
    k: int = 1,
    caliper_sd: float = 0.2,
    bootstrap: int = 500,
    level: float = 0.95,
    seed: int = 0,
    c: float = 1.0,
) -> DidResult:
    """Matched DiD of `delta` (window minus pre-period outcome per household) for `treated`."""
    treated = np.asarray(treated, dtype=bool)
    t_idx, c_idx = np.flatnonzero(treated), np.flatnonzero(~treated)
    X_t, X_c = X[t_idx], X[c_idx]
    scale = pooled_scale(X_t, X_c)
    before = standardized_differences(X_t, X_c, scale=scale)
    logit = propensity_logit(X, treated, c=c)
    caliper = caliper_sd * float(np.std(logit))
    nn = nearest_controls(logit[t_idx], logit[c_idx], k, caliper)
    has = (nn >= 0).any(axis=1)
    dt, dc = delta[t_idx], delta[c_idx]
    effects = np.array(
        [dt[i] - dc[row[row >= 0]].mean() for i, row in enumerate(nn) if has[i]], dtype=np.float64
    )
    weights = np.zeros(len(c_idx))
    for row in nn[has]:
        used = row[row >= 0]
        np.add.at(weights, used, 1.0 / len(used))
    after = (
        standardized_differences(X_t[has], X_c, weights, scale=scale)
        if has.any()
        else np.full(len(names), np.nan)
    )
    if len(effects):
        rng = np.random.default_rng(seed)
        draws = effects[rng.integers(0, len(effects), (bootstrap, len(effects)))].mean(axis=1)
        lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
        att = float(effects.mean())
    else:
        att = lo = hi = float("nan")
    return DidResult(
        att=att,
        ci_low=float(lo),
        ci_high=float(hi),
        naive=float(dt.mean() - dc.mean()),
        n_treated=len(t_idx),
        n_matched=int(has.sum()),
        n_controls_pool=len(c_idx),
        n_controls_used=int((weights > 0).sum()),
        smd_before=dict(zip(names, map(float, before), strict=True)),
        smd_after=dict(zip(names, map(float, after), strict=True)),
        effects=effects,
        matched=t_idx[has],
    )
