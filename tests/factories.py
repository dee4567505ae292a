"""Test data factories: small generated data with a known answer."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.catalog import SEGMENTER_FEATURES

# Mean feature vectors of four customer archetypes, in SEGMENTER_FEATURES order.
ARCHETYPES = {
    "loyal": [5, 120, 6000, 50, 12, 300, 0.10, 0.02, 700, 0.30, 3],
    "lapsed": [300, 8, 250, 30, 6, 40, 0.10, 0.01, 650, 0.30, 1],
    "new": [10, 6, 200, 33, 7, 35, 0.12, 0.02, 40, 0.30, 1],
    "deal": [20, 40, 1200, 30, 10, 120, 0.45, 0.20, 500, 0.60, 2],
}
SHARE_FEATURES = ("discount_share", "coupon_share", "weekend_share")


def make_customers(n_per_group: int = 60, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Customers drawn around each archetype (multiplicative noise keeps values positive).

    Returns the features (index customer_id, columns SEGMENTER_FEATURES) and the true group.
    """
    rng = np.random.default_rng(seed)
    rows, truth = [], []
    for gid, means in enumerate(ARCHETYPES.values()):
        m = np.array(means, dtype=float)
        rows.append(m * rng.lognormal(0.0, 0.12, size=(n_per_group, len(m))))
        truth += [gid] * n_per_group
    x = np.vstack(rows)
    shares = [SEGMENTER_FEATURES.index(c) for c in SHARE_FEATURES]
    x[:, shares] = np.clip(x[:, shares], 0, 1)
    index = pd.Index([f"c{i:04d}" for i in range(len(x))], name="customer_id")
    return pd.DataFrame(x, columns=SEGMENTER_FEATURES, index=index), np.array(truth)


def serving(deployment: type, bundle: object, tenant: str = "default", version: str = "1"):
    """A model deployment of class `deployment` serving `bundle` as `tenant`'s `version`, as if
    the registry had loaded it (for tests of the deployment's own reads and caches)."""
    from training.registry import Loaded

    replica = deployment(tenant)
    replica._loaded = {tenant: Loaded(bundle, f"{tenant}.{deployment.spec.key}", version, "run")}
    return replica
