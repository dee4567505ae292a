"""K-Means + PCA customer segmenter: one sklearn Pipeline plus validation and segment profiles.

Pipeline: log1p on the heavy-tailed money/count features -> StandardScaler -> per-feature
weights -> PCA -> KMeans. Any subset of SEGMENTER_FEATURES can be used (the search picks one).

Segment labels in `profiles` come from `training.segmenting.labels.segment_labels` (mean
recency, frequency and monetary of each segment). `label_segment` below is the first slice's
11-feature rule, kept for callers that still use it. Its rules, relative to the population mean
(ratio = segment / population; 1.0 when the population mean is 0), first match wins:

1. "At risk"           recency_days >= 1.5x (they have stayed away 50% longer than average)
2. "High-value loyal"  monetary >= 1.5x and frequency >= 1.25x
3. "New"               tenure_days <= 0.5x
4. "Deal seekers"      discount_share + coupon_share >= 1.5x
5. "Big-basket"        avg_basket_value >= 1.4x (fewer, larger trips: stock-up shoppers)
6. "Regular"           frequency >= 1.0x
7. "Occasional"        everything else

Two segments with the same label get " (2)", " (3)" … in id order; an empty segment is "Empty".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.cluster import KMeans
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.metrics import silhouette_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from features.catalog import SEGMENTER_FEATURES
from training.segmenting.centroids import fit_kmeans

# Counts and money: right-skewed with long tails, so K-Means would otherwise spend its clusters
# on a handful of big spenders. Shares (0..1) and tenure (roughly uniform) stay linear.
LOG_FEATURES: tuple[str, ...] = (
    "recency_days",
    "frequency",
    "monetary",
    "avg_basket_value",
    "avg_items_per_basket",
    "distinct_products",
    "stores_visited",
)


# Our own pipeline step: MLflow's skops format must be told it is safe to load (it records this
# list in the logged model, so loaders need no extra argument).
SKOPS_TRUSTED_TYPES: list[str] = ["training.models.segmenter.FeatureWeights"]


class FeatureWeights(TransformerMixin, BaseEstimator):
    """Multiply standardised columns by fixed weights (a weight < 1 quiets a feature)."""

    def __init__(self, weights: Sequence[float] = ()) -> None:
        self.weights = weights

    def fit(self, x: np.ndarray, y: Any = None) -> FeatureWeights:
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float64) * np.asarray(self.weights, dtype=np.float64)

    def get_feature_names_out(self, input_features: Any = None) -> Any:
        return input_features


def validate_features(df: pd.DataFrame, feature_names: Sequence[str]) -> pd.DataFrame:
    """Return `df[feature_names]` as float64, or raise ValueError naming the offending column.

    Exactly `feature_names` must be present (identifiers such as customer_id belong in the
    index); values must be numeric and finite; log-transformed features must be >= 0.
    """
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"expected a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in feature_names if c not in df.columns]
    if missing:
        raise ValueError(f"missing required feature column(s): {missing}")
    extra = [str(c) for c in df.columns if c not in set(feature_names)]
    if extra:
        raise ValueError(
            f"unexpected column(s) {extra}; pass exactly {list(feature_names)} "
            "(put identifiers such as customer_id in the index)"
        )
    if len(df) == 0:
        raise ValueError("no rows: the feature frame is empty")
    out = df[list(feature_names)]
    for col in feature_names:
        if not pd.api.types.is_numeric_dtype(out[col]) or pd.api.types.is_bool_dtype(out[col]):
            raise ValueError(f"column {col!r} must be numeric, got dtype {out[col].dtype}")
    out = out.astype("float64")
    for col in feature_names:
        values = out[col].to_numpy()
        n_nan = int(np.isnan(values).sum())
        if n_nan:
            raise ValueError(f"column {col!r} has {n_nan} NaN value(s)")
        if not np.isfinite(values).all():
            raise ValueError(f"column {col!r} has infinite value(s)")
        if col in LOG_FEATURES and (values < 0).any():
            raise ValueError(f"column {col!r} has negative value(s); it must be >= 0")
    return out


def _preprocessor(feature_names: Sequence[str]) -> ColumnTransformer:
    log_cols = [c for c in feature_names if c in LOG_FEATURES]
    lin_cols = [c for c in feature_names if c not in LOG_FEATURES]
    return ColumnTransformer(
        [
            ("log1p", FunctionTransformer(np.log1p, feature_names_out="one-to-one"), log_cols),
            ("linear", "passthrough", lin_cols),
        ],
        verbose_feature_names_out=False,
    )


def segment_silhouette(
    df: pd.DataFrame,
    labels: np.ndarray,
    *,
    sample_size: int | None = None,
    seed: int = 0,
    feature_names: Sequence[str] = SEGMENTER_FEATURES,
) -> float:
    """Silhouette of `labels` in a model-independent space: log1p + standardised on `df` itself.

    Measured before PCA so configs with different n_components (and an older champion) are
    scored in the same space. Returns -1.0 (the worst score) when fewer than 2 segments occur.
    """
    x = validate_features(df, feature_names)
    labels = np.asarray(labels)
    n_labels = len(np.unique(labels))
    if n_labels < 2 or n_labels >= len(x):
        return -1.0
    space = Pipeline([("pre", _preprocessor(feature_names)), ("scale", StandardScaler())])
    z = space.fit_transform(x)
    size = sample_size if sample_size and sample_size < len(x) else None
    return float(silhouette_score(z, labels, sample_size=size, random_state=seed))


def _ratio(segment: float, population: float) -> float:
    return segment / population if population > 0 else 1.0


def label_segment(means: dict[str, float], population: dict[str, float]) -> str:
    """Human label for one segment's mean features (the rule in this module's docstring)."""
    r = {k: _ratio(means[k], population[k]) for k in means}
    promo = _ratio(
        means["discount_share"] + means["coupon_share"],
        population["discount_share"] + population["coupon_share"],
    )
    if r["recency_days"] >= 1.5:
        return "At risk"
    if r["monetary"] >= 1.5 and r["frequency"] >= 1.25:
        return "High-value loyal"
    if r["tenure_days"] <= 0.5:
        return "New"
    if promo >= 1.5:
        return "Deal seekers"
    if r["avg_basket_value"] >= 1.4:
        return "Big-basket"
    if r["frequency"] >= 1.0:
        return "Regular"
    return "Occasional"


class CustomerSegmenter:
    """K-Means on PCA of log/standardised RFM-style features; `pipeline` is a plain sklearn one.

    `bags`/`bag_n_init` (bagged K-Means) and `temperature` (soft refinement) change only how
    the centroids are estimated (`training.segmenting.centroids`); the last step stays a
    fitted plain KMeans, so prediction is nearest-centroid assignment either way.
    """

    def __init__(
        self,
        k: int = 5,
        n_components: int = 5,
        *,
        n_init: int = 10,
        random_state: int = 0,
        feature_names: Sequence[str] = SEGMENTER_FEATURES,
        weights: Sequence[float] | None = None,
        bags: int = 0,
        bag_n_init: int = 3,
        temperature: float = 0.0,
    ) -> None:
        if k < 2:
            raise ValueError(f"k must be >= 2, got {k}")
        if not 1 <= n_components <= len(feature_names):
            raise ValueError(
                f"n_components must be in 1..{len(feature_names)} (the number of features), "
                f"got {n_components}"
            )
        self.k = k
        self.n_components = n_components
        self.n_init = n_init
        self.random_state = random_state
        # Centroid estimation beyond plain K-Means (training.segmenting.centroids): bagging and
        # soft refinement make refits agree; the saved step is still a plain fitted KMeans.
        if bags < 0 or bag_n_init < 1 or temperature < 0:
            raise ValueError(f"need bags >= 0, bag_n_init >= 1, temperature >= 0; got "
                             f"{bags}, {bag_n_init}, {temperature}")  # fmt: skip
        self.bags, self.bag_n_init, self.temperature = bags, bag_n_init, float(temperature)
        self.feature_names: list[str] = list(feature_names)
        # Weights follow feature_names; they are applied in the preprocessor's column order.
        self.weights: list[float] = (
            [1.0] * len(self.feature_names) if weights is None else [float(w) for w in weights]
        )
        # Weight 0 drops a feature from the clustering while it stays an input, so every
        # model takes the same feature vector (online store row, batch frame) whatever it uses.
        if (
            len(self.weights) != len(self.feature_names)
            or min(self.weights) < 0
            or max(self.weights) <= 0
        ):
            raise ValueError(
                f"weights must be {len(self.feature_names)} numbers >= 0, one > 0; "
                f"got {self.weights}"
            )
        self.pipeline: Pipeline | None = None

    @classmethod
    def from_pipeline(cls, pipeline: Pipeline) -> CustomerSegmenter:
        """Wrap an already fitted pipeline (e.g. one loaded from MLflow)."""
        kmeans: KMeans = pipeline.named_steps["kmeans"]
        pca: PCA = pipeline.named_steps["pca"]
        names = [str(c) for c in pipeline.feature_names_in_]
        weights = None
        if "weight" in pipeline.named_steps:  # first-slice pipelines have no weight step
            ordered = [str(c) for c in pipeline.named_steps["pre"].get_feature_names_out()]
            by_name = dict(zip(ordered, pipeline.named_steps["weight"].weights, strict=True))
            weights = [float(by_name[n]) for n in names]
        model = cls(
            k=int(kmeans.n_clusters),
            n_components=int(pca.n_components_),
            n_init=int(kmeans.n_init) if isinstance(kmeans.n_init, int) else 1,
            random_state=kmeans.random_state if kmeans.random_state is not None else 0,
            feature_names=names,
            weights=weights,
        )
        model.pipeline = pipeline
        return model

    def build_pipeline(self) -> Pipeline:
        """The unfitted sklearn pipeline for this configuration."""
        pre = _preprocessor(self.feature_names)
        # The ColumnTransformer reorders columns (log1p block first): weights follow that order.
        by_name = dict(zip(self.feature_names, self.weights, strict=True))
        ordered = [c for c in self.feature_names if c in LOG_FEATURES] + [
            c for c in self.feature_names if c not in LOG_FEATURES
        ]
        return Pipeline(
            [
                ("pre", pre),
                ("scale", StandardScaler()),
                ("weight", FeatureWeights([by_name[c] for c in ordered])),
                ("pca", PCA(n_components=self.n_components, random_state=self.random_state)),
                (
                    "kmeans",
                    KMeans(n_clusters=self.k, n_init=self.n_init, random_state=self.random_state),
                ),
            ]
        )

    def fit(self, df: pd.DataFrame) -> CustomerSegmenter:
        """Fit on a frame holding exactly the feature columns."""
        x = validate_features(df, self.feature_names)
        if len(x) < self.k:
            raise ValueError(f"need at least k={self.k} rows to fit, got {len(x)}")
        pipeline = self.build_pipeline()
        z = pipeline[:-1].fit_transform(x)  # the slice shares (and so fits) the steps
        kmeans = fit_kmeans(z, self.k, n_init=self.n_init, seed=self.random_state, bags=self.bags,
                            bag_n_init=self.bag_n_init, temperature=self.temperature)  # fmt: skip
        pipeline.steps[-1] = ("kmeans", kmeans)
        self.pipeline = pipeline
        return self

    def _fitted(self) -> Pipeline:
        if self.pipeline is None:
            raise RuntimeError("CustomerSegmenter is not fitted; call fit(df) first")
        return self.pipeline

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        """Segment id (0..k-1) for each row."""
        pipeline = self._fitted()
        x = validate_features(df, self.feature_names)
        return pipeline.predict(x).astype(np.int64)

    @property
    def inertia(self) -> float:
        """K-Means inertia on the training rows (in PCA space)."""
        return float(self._fitted().named_steps["kmeans"].inertia_)

    def profiles(self, df: pd.DataFrame, labels: np.ndarray | None = None) -> list[dict[str, Any]]:
        """Per segment: id, label, size, share and the mean of every feature column of `df`.

        `df` holds the model's features and may hold more of SEGMENTER_FEATURES (their means
        are profiled too). Labels come from `segment_labels` on mean recency_days, frequency
        and monetary ("Segment i" when `df` lacks them); an empty segment is "Empty". Sizes sum
        to len(df); pass `labels` to reuse predictions already made.
        """
        from training.segmenting.labels import segment_labels

        cols = [c for c in SEGMENTER_FEATURES if c in df.columns and c not in self.feature_names]
        x = validate_features(df[[*self.feature_names, *cols]], [*self.feature_names, *cols])
        labels = self.predict(x[self.feature_names]) if labels is None else np.asarray(labels)
        if len(labels) != len(x):
            raise ValueError(f"got {len(labels)} labels for {len(x)} rows")
        means_by_id = {int(i): g.mean() for i, g in x.groupby(labels)}
        sizes = [int((labels == seg).sum()) for seg in range(self.k)]
        present = [seg for seg in range(self.k) if sizes[seg]]
        names = {seg: f"Segment {seg}" for seg in present}
        if {"recency_days", "frequency", "monetary"} <= set(x.columns) and present:
            table = pd.DataFrame([means_by_id[seg] for seg in present], index=present)
            table["size"] = [sizes[seg] for seg in present]
            names = dict(zip(present, segment_labels(table), strict=True))
        out: list[dict[str, Any]] = []
        for seg in range(self.k):
            means = {c: float(v) for c, v in means_by_id[seg].items()} if sizes[seg] else None
            out.append(
                {
                    "id": seg,
                    "label": names.get(seg, "Empty"),
                    "size": sizes[seg],
                    "share": sizes[seg] / len(x),
                    "means": means,
                }
            )
        return out

    def __repr__(self) -> str:
        state = "fitted" if self.pipeline is not None else "unfitted"
        return (
            f"CustomerSegmenter(k={self.k}, n_components={self.n_components}, "
            f"features={self.feature_names}, {state})"
        )


class FastSegmenter:
    """The fitted pipeline's arithmetic as numpy: log1p → standardise → PCA → nearest centroid.

    Built from a fitted `CustomerSegmenter`; gives the pipeline's answer in microseconds for
    the per-request path, where sklearn's DataFrame validation costs milliseconds. Input rows
    are in `feature_names` order; no validation beyond shape (the online store is typed).
    """

    def __init__(self, model: CustomerSegmenter) -> None:
        pipeline = model._fitted()
        names = model.feature_names
        pre: ColumnTransformer = pipeline.named_steps["pre"]
        scale: StandardScaler = pipeline.named_steps["scale"]
        pca: PCA = pipeline.named_steps["pca"]
        kmeans: KMeans = pipeline.named_steps["kmeans"]
        # ColumnTransformer emits its blocks in order: log1p columns, then passthrough ones.
        ordered = [str(c) for c in pre.get_feature_names_out()]
        self.feature_names = list(names)
        self._perm = np.array([names.index(c) for c in ordered])
        self._n_log = sum(1 for c in ordered if c in LOG_FEATURES)
        mean = scale.mean_ if scale.with_mean else np.zeros(len(ordered))
        std = scale.scale_ if scale.with_std else np.ones(len(ordered))
        # (x - mean) / std * w: fold the weight into the scale (w = 0 zeroes an unused column).
        inv = 1.0 / std
        if "weight" in pipeline.named_steps:
            inv = inv * np.asarray(pipeline.named_steps["weight"].weights, dtype=np.float64)
        # Fold standardisation, weights and PCA centring into one affine map: z = x' @ W + b.
        components = pca.components_.T * inv[:, None]
        if getattr(pca, "whiten", False):
            components = components / np.sqrt(pca.explained_variance_)[None, :]
        self._w = components
        self._b = -(mean * inv) @ pca.components_.T - pca.mean_ @ pca.components_.T
        if getattr(pca, "whiten", False):
            self._b = self._b / np.sqrt(pca.explained_variance_)
        self._centroids = kmeans.cluster_centers_
        self._c_sq = (self._centroids**2).sum(axis=1)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Segment ids for rows of raw features (shape [n, n_features] or [n_features])."""
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))[:, self._perm]
        x[:, : self._n_log] = np.log1p(x[:, : self._n_log])
        z = x @ self._w + self._b
        # argmin ||z - c||^2 = argmin (||c||^2 - 2 z·c); ||z||^2 is the same for every c.
        return np.argmin(self._c_sq[None, :] - 2.0 * z @ self._centroids.T, axis=1)

    def predict_one(self, features: dict[str, float]) -> int:
        """Segment id of one feature mapping (the online store's row)."""
        return int(self.predict(np.array([features[n] for n in self.feature_names]))[0])
