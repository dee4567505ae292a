"""A fitted scikit-learn IsolationForest's scoring as a few numpy gathers (serving path).

`IsolationForest.score_samples` walks its trees one by one through joblib, with a
configuration context and warning filters per tree: ~16 ms for 200 trees even for a single
row, which dominated the anomaly route. The arithmetic is small: every tree sends a row to one
leaf; the row's path length is the leaf's depth plus the expected depth of the samples left in
it; the score is 2 ** (-mean path length / c(max_samples)). Here all trees are flattened into
one node table (leaves point to themselves), and all (row, tree) pairs descend together,
one gather per level. Trees compare in float32, as scikit-learn's do, so the leaves are the
same; `tests/unit/test_anomaly.py` checks equality with `score_samples`.
"""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.ensemble._iforest import _average_path_length


class FastIsolationForest:
    """`scores(X)` equals `-forest.score_samples(X)` for the fitted `forest`."""

    def __init__(self, forest: IsolationForest) -> None:
        lefts, rights, features, thresholds, values, roots = [], [], [], [], [], []
        offset, depth = 0, 0
        for tree, cols, path, avg in zip(
            forest.estimators_,
            forest.estimators_features_,
            forest._decision_path_lengths,
            forest._average_path_length_per_tree,
            strict=True,
        ):
            t = tree.tree_
            nodes = np.arange(t.node_count)
            leaf = t.children_left == -1
            lefts.append(np.where(leaf, nodes, t.children_left) + offset)
            rights.append(np.where(leaf, nodes, t.children_right) + offset)
            # the tree sees only its features subset: map to columns of X
            features.append(np.where(leaf, 0, np.asarray(cols)[np.maximum(t.feature, 0)]))
            thresholds.append(np.where(leaf, np.inf, t.threshold))
            values.append(np.asarray(path, dtype=np.float64) + avg - 1.0)
            roots.append(offset)
            offset += t.node_count
            depth = max(depth, t.max_depth)
        self.left = np.concatenate(lefts).astype(np.int64)
        self.right = np.concatenate(rights).astype(np.int64)
        self.feature = np.concatenate(features).astype(np.int64)
        self.threshold = np.concatenate(thresholds)
        self.value = np.concatenate(values)
        self.roots = np.asarray(roots, dtype=np.int64)
        self.depth = int(depth)
        self.denominator = len(forest.estimators_) * float(
            _average_path_length([forest._max_samples])[0]
        )

    def scores(self, X: np.ndarray) -> np.ndarray:
        """Anomaly scores in (0, 1] of rows `X` [n, features] (higher = more anomalous)."""
        x = np.asarray(X, dtype=np.float32).astype(np.float64)  # the trees' float32 view
        n = len(x)
        if n == 0:
            return np.zeros(0)
        node = np.broadcast_to(self.roots, (n, len(self.roots))).copy()
        rows = np.arange(n)[:, None]
        for _ in range(self.depth):
            go_left = x[rows, self.feature[node]] <= self.threshold[node]
            node = np.where(go_left, self.left[node], self.right[node])
        depths = self.value[node].sum(axis=1)
        if self.denominator == 0:
            return np.ones(n)
        return 2.0 ** (-depths / self.denominator)
