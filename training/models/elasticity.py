"""Log-log price elasticity with fixed effects and cluster-robust standard errors (numpy only).

Model per category: log(units_it) = a_i + w_t + beta * log(price_it) + e_it, where i is an entity
(a store x product pair, or a product) and t a week. The entity effects are absorbed by the
within transformation and the week effects enter as dummies demeaned the same way
(Frisch-Waugh-Lovell), so beta is identified only by price changes *within* an entity, never by
one product being dearer than another. Standard errors are clustered (CR1: G/(G-1) x
(N-1)/(N-K)), by product by default, so a product's repeated weeks count as one cluster; the
confidence interval uses Student's t with G-1 degrees of freedom.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class ElasticityFit:
    """One category's fit: the slope on log price, its clustered SE and CI, and fit quality."""

    elasticity: float
    se: float
    ci_low: float
    ci_high: float
    p_value: float
    n_obs: int
    n_entities: int
    n_clusters: int
    r2_within: float

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def codes(values: np.ndarray) -> np.ndarray:
    """Dense integer codes 0..G-1 of any 1-d array."""
    return np.unique(values, return_inverse=True)[1].ravel()


def within(matrix: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Subtract each group's column means (the within transformation); `groups` are codes."""
    matrix = np.asarray(matrix, dtype=np.float64)
    flat = matrix.ndim == 1
    m = matrix.reshape(len(matrix), -1)
    counts = np.bincount(groups).astype(np.float64)
    means = np.stack([np.bincount(groups, weights=col) for col in m.T], axis=1) / counts[:, None]
    out = m - means[groups]
    return out.ravel() if flat else out


def cluster_robust(
    X: np.ndarray, resid: np.ndarray, clusters: np.ndarray, bread: np.ndarray
) -> np.ndarray:
    """CR1 cluster-robust covariance of OLS coefficients; `bread` = (X'X)^-1, clusters codes."""
    n, k = X.shape
    g = int(clusters.max()) + 1
    scores = np.stack(
        [np.bincount(clusters, weights=X[:, j] * resid, minlength=g) for j in range(k)], axis=1
    )
    meat = scores.T @ scores
    scale = (g / max(g - 1, 1)) * ((n - 1) / max(n - k, 1))
    return scale * bread @ meat @ bread


def hc1(X: np.ndarray, resid: np.ndarray, bread: np.ndarray) -> np.ndarray:
    """White's heteroskedasticity-robust covariance with the HC1 small-sample factor."""
    n, k = X.shape
    meat = (X * resid[:, None] ** 2).T @ X
    return (n / max(n - k, 1)) * bread @ meat @ bread


def fit_elasticity(
    log_units: np.ndarray,
    log_price: np.ndarray,
    entity: np.ndarray,
    week: np.ndarray,
    cluster: np.ndarray,
    *,
    week_effects: bool = True,
    level: float = 0.95,
) -> ElasticityFit:
    """OLS of log units on log price with entity (and week) fixed effects, clustered SEs."""
    y = np.asarray(log_units, dtype=np.float64)
    x = np.asarray(log_price, dtype=np.float64)
    ent, clu = codes(entity), codes(cluster)
    columns = [x]
    if week_effects:
        wk = codes(week)
        dummies = np.zeros((len(y), int(wk.max()) + 1))
        dummies[np.arange(len(y)), wk] = 1.0
        columns.append(dummies[:, 1:])  # one week is the reference
    X = within(np.column_stack(columns), ent)
    yt = within(y, ent)
    keep = np.flatnonzero(np.abs(X).sum(axis=0) > 1e-12)  # weeks no entity varies across
    if 0 not in keep:
        raise ValueError("no within-entity price variation")
    X = X[:, keep]
    bread = np.linalg.pinv(X.T @ X)
    beta = bread @ (X.T @ yt)
    resid = yt - X @ beta
    n_clusters = int(clu.max()) + 1
    cov = cluster_robust(X, resid, clu, bread) if n_clusters > 1 else hc1(X, resid, bread)
    se = float(np.sqrt(max(cov[0, 0], 0.0)))
    dof = max(n_clusters - 1, 1)
    t = stats.t.ppf(0.5 + level / 2, dof)
    b = float(beta[0])
    tss = float(yt @ yt)
    p = float(2 * stats.t.sf(abs(b / se), dof)) if se > 0 else 0.0
    return ElasticityFit(
        elasticity=b,
        se=se,
        ci_low=b - t * se,
        ci_high=b + t * se,
        p_value=p,
        n_obs=len(y),
        n_entities=int(ent.max()) + 1,
        n_clusters=n_clusters,
        r2_within=float(1 - (resid @ resid) / tss) if tss > 0 else 0.0,
    )


def price_changes(
    log_price: np.ndarray, entity: np.ndarray, week: np.ndarray, tol: float
) -> np.ndarray:
    """Per row: 1 where the entity's price moved by more than `tol` (log points) since its
    previous observed week, else 0 (first weeks are 0)."""
    order = np.lexsort((week, entity))
    e, p = np.asarray(entity)[order], np.asarray(log_price, dtype=np.float64)[order]
    moved = np.zeros(len(p), dtype=np.int64)
    moved[1:] = (e[1:] == e[:-1]) & (np.abs(np.diff(p)) > tol)
    out = np.empty_like(moved)
    out[order] = moved
    return out
