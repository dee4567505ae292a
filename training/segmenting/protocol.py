"""PROTOCOLS §3 (`segmentation_rfm`): RFM per household, the fixed protocol space, scores.

Every segmenter is judged in the same space whatever features it uses: log1p(R, F, M) →
StandardScaler, Euclidean silhouette over all households, the smallest segment's share and the
mean adjusted Rand index over bootstrap refits. The baseline is K-Means (n_init 10, seed 42) on
that space. Works on any retailer's line items (`training.datasets` shape): the reference date
comes from the data (last transaction date + 1 day), never from CJ constants.

Bad input rules (counted, never silent):
- line items with a missing customer_id, transaction_id or timestamp are dropped
  (`rfm.attrs["skipped_rows"]`); a NaN sales_value counts as 0 spend (`nan_sales_rows`);
- a household with one basket is fine (F = 1);
- rows of an RFM frame with a NaN or infinite R, F or M cannot be placed in the space: they are
  dropped before scoring and counted (`skipped_households` in every score).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, silhouette_score
from sklearn.preprocessing import StandardScaler

RFM_COLUMNS: tuple[str, ...] = ("recency_days", "frequency", "monetary")
PROTOCOL = "segmentation_rfm (PROTOCOLS §3)"
SEED = 42

# A fit function takes the rows to fit on and returns a predictor for any rows of that shape.
Predictor = Callable[[np.ndarray], np.ndarray]
FitFn = Callable[[np.ndarray], Predictor]


def rfm_frame(items: pd.DataFrame) -> pd.DataFrame:
    """One row per customer (index customer_id): recency_days, frequency, monetary (PROTOCOLS §3).

    Reference = midnight starting the day after the data's last transaction; R = whole days
    elapsed from the customer's last purchase to it (a purchase on the last day has R = 0),
    F = distinct transaction_ids, M = sum of sales_value.
    """
    keys = ["customer_id", "transaction_id", "transaction_timestamp"]
    valid = items[keys].notna().all(axis=1)
    df = items.loc[valid, [*keys, "sales_value"]]
    if df.empty:
        raise ValueError("no line items with customer_id, transaction_id and timestamp")
    stamps = pd.to_datetime(df["transaction_timestamp"])
    reference = stamps.max().normalize() + pd.Timedelta(days=1)
    sales = df["sales_value"].astype("float64")
    g = pd.DataFrame(
        {"customer_id": df["customer_id"], "ts": stamps, "tx": df["transaction_id"], "m": sales}
    ).groupby("customer_id", sort=True)
    out = pd.DataFrame(
        {
            # Completed days (floor), which reproduces the protocol's measured baseline exactly.
            "recency_days": (reference - g["ts"].max()).dt.days.astype("float64"),
            "frequency": g["tx"].nunique().astype("float64"),
            "monetary": g["m"].sum(min_count=0),  # NaN sales count as 0 (rule above)
        }
    )
    out.attrs.update(
        reference_date=str(reference.date()),
        skipped_rows=int((~valid).sum()),
        nan_sales_rows=int(sales.isna().sum()),
    )
    return out


def clean_rfm(rfm: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """(rows with finite, non-negative R, F, M; how many rows were dropped)."""
    values = rfm[list(RFM_COLUMNS)].to_numpy(dtype=np.float64)
    ok = np.isfinite(values).all(axis=1) & (values >= 0).all(axis=1)
    return rfm.loc[ok], int((~ok).sum())


def protocol_space(rfm: pd.DataFrame) -> np.ndarray:
    """log1p(R, F, M) standardised on the rows given (the fixed scoring space)."""
    values = rfm[list(RFM_COLUMNS)].to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValueError("R, F, M must be finite: drop bad rows with clean_rfm first")
    return StandardScaler().fit_transform(np.log1p(values))


def score_assignments(
    rfm: pd.DataFrame, labels: Sequence[int] | np.ndarray, *, sample_size: int | None = None
) -> dict[str, Any]:
    """Silhouette in protocol space (all rows unless `sample_size`), smallest share, sizes.

    Rows with NaN/inf/negative R, F or M are dropped with their labels and counted.
    """
    labels = np.asarray(labels)
    if len(labels) != len(rfm):
        raise ValueError(f"got {len(labels)} labels for {len(rfm)} rows")
    values = rfm[list(RFM_COLUMNS)].to_numpy(dtype=np.float64)
    ok = np.isfinite(values).all(axis=1) & (values >= 0).all(axis=1)
    kept, labels = rfm.loc[ok], labels[ok]
    ids, counts = np.unique(labels, return_counts=True)
    sizes = {int(i): int(c) for i, c in zip(ids, counts, strict=True)}
    if 2 <= len(ids) < len(kept):
        size = sample_size if sample_size and sample_size < len(kept) else None
        sil = float(
            silhouette_score(protocol_space(kept), labels, sample_size=size, random_state=SEED)
        )
    else:
        sil = -1.0  # one segment (or one row per segment) has no silhouette: the worst score
    return {
        "silhouette": sil,
        "smallest_share": float(counts.min() / counts.sum()) if len(counts) else 0.0,
        "sizes": sizes,
        "n": int(len(kept)),
        "skipped_households": int((~ok).sum()),
    }


def bootstrap_ari(fit_fn: FitFn, x: np.ndarray, n: int = 20, seed: int = SEED) -> float:
    """Mean ARI between the full-data assignment and `n` refits on bootstrap resamples.

    Each refit sees rows drawn with replacement and then assigns every row of `x`.
    """
    x = np.asarray(x)
    reference = fit_fn(x)(x)
    rng = np.random.default_rng(seed)
    scores = []
    for _ in range(n):
        rows = rng.integers(0, len(x), size=len(x))
        scores.append(adjusted_rand_score(reference, fit_fn(x[rows])(x)))
    return float(np.mean(scores))


def kmeans_fit(k: int, *, n_init: int = 10, seed: int = SEED) -> FitFn:
    """A fit function: K-Means on the given matrix, predicting nearest centroids."""

    def fit(x: np.ndarray) -> Predictor:
        return KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(x).predict

    return fit


def kmeans_baseline(rfm: pd.DataFrame, k: int) -> np.ndarray:
    """The protocol baseline's assignment: K-Means (n_init 10, seed 42) on protocol space."""
    return kmeans_fit(k)(protocol_space(rfm))(protocol_space(rfm))


def passes_criterion(
    k: int,
    smallest_share: float | None,
    ari: float | None,
    *,
    min_k: int = 4,
    min_segment_share: float = 0.05,
    min_ari: float = 0.9,
) -> bool:
    """The selection gates: k >= min_k, smallest segment and bootstrap ARI at their thresholds
    (an unmeasured share or ARI passes, so a run without bootstraps still selects)."""
    return (
        k >= min_k
        and (smallest_share is None or smallest_share >= min_segment_share)
        and (ari is None or ari >= min_ari)
    )


def relaxed_pool(
    candidates: list[Any],
    key: Callable[[Any], tuple[int, float | None, float | None]],
    *,
    min_k: int = 4,
    min_segment_share: float = 0.05,
    min_ari: float = 0.9,
) -> tuple[list[Any], bool]:
    """(the candidates the criterion may pick from, whether every gate held).

    When nothing passes all gates they are relaxed in a fixed order, so a tenant still gets a
    usable model and the miss is reported: first the ARI gate goes (k and segment size are
    what a marketer sees), then the segment-size gate, then k.
    """
    levels = [
        {"min_k": min_k, "min_segment_share": min_segment_share, "min_ari": min_ari},
        {"min_k": min_k, "min_segment_share": min_segment_share, "min_ari": -1.0},
        {"min_k": min_k, "min_segment_share": 0.0, "min_ari": -1.0},
    ]
    for level, gates in enumerate(levels):
        pool = [c for c in candidates if passes_criterion(*key(c), **gates)]
        if pool:
            return pool, level == 0
    return list(candidates), False


def choose(candidates: list[dict[str, Any]], **gates: Any) -> tuple[dict[str, Any], bool]:
    """(the candidate the criterion picks, whether it passed every gate).

    Candidates carry k, smallest_share, ari and silhouette (held-back rows); among those that
    pass the gates (relaxed as `relaxed_pool` says when none do) the highest silhouette wins,
    ties to smaller k.
    """
    pool, met = relaxed_pool(candidates, lambda c: (c["k"], c["smallest_share"], c["ari"]), **gates)
    return min(pool, key=lambda c: (-c["silhouette"], c["k"])), met


SegmenterFactory = Callable[[int], Any]  # k -> an unfitted CustomerSegmenter-like model


def rfm_segmenter(
    weights: dict[str, float], *, n_init: int = 10, seed: int = SEED, **opts: Any
) -> SegmenterFactory:
    """Factory of the platform's segmenter on the RFM columns with these feature weights;
    `opts` say how centroids are estimated (bagging, soft refinement: `CustomerSegmenter`)."""
    from training.models.segmenter import CustomerSegmenter

    def make(k: int) -> Any:
        return CustomerSegmenter(
            k=k,
            n_components=len(RFM_COLUMNS),
            n_init=n_init,
            random_state=seed,
            feature_names=RFM_COLUMNS,
            weights=[float(weights.get(c, 0.0)) for c in RFM_COLUMNS],
            **opts,
        )

    return make


def _model_fit(factory: SegmenterFactory, k: int) -> FitFn:
    def fit(x: np.ndarray) -> Predictor:
        model = factory(k).fit(pd.DataFrame(x, columns=list(RFM_COLUMNS)))
        return lambda z: model.pipeline.predict(pd.DataFrame(z, columns=list(RFM_COLUMNS)))

    return fit


def _score_model(
    factory: SegmenterFactory, k: int, rfm: pd.DataFrame, n_boot: int, seed: int
) -> dict[str, Any]:
    """Fit on all rows; protocol-space and own-space silhouettes, smallest share, ARI."""
    model = factory(k).fit(rfm[list(RFM_COLUMNS)])
    labels = model.predict(rfm[list(RFM_COLUMNS)])
    score = score_assignments(rfm, labels)
    own = model.pipeline[:-1].transform(rfm[list(RFM_COLUMNS)])
    raw = rfm[list(RFM_COLUMNS)].to_numpy(dtype=np.float64)
    return {
        "silhouette": score["silhouette"],
        "silhouette_own": float(silhouette_score(own, labels)) if len(score["sizes"]) > 1 else -1.0,
        "smallest_share": score["smallest_share"],
        "ari": bootstrap_ari(_model_fit(factory, k), raw, n=n_boot, seed=seed),
    }


def evaluate_protocol(
    items: pd.DataFrame,
    model_factories: dict[str, SegmenterFactory],
    ks: Sequence[int] = range(2, 9),
    *,
    n_boot: int = 20,
    seed: int = SEED,
) -> dict[str, Any]:
    """The §3 table: per k, the K-Means baseline and each model on all households."""
    rfm, skipped = clean_rfm(rfm_frame(items))
    x = protocol_space(rfm)
    table: dict[str, Any] = {}
    for k in ks:
        labels = kmeans_fit(k)(x)(x)
        score = score_assignments(rfm, labels)
        row = {
            "kmeans_log_rfm": {
                "silhouette": score["silhouette"],
                "smallest_share": score["smallest_share"],
                "ari": bootstrap_ari(kmeans_fit(k), x, n=n_boot, seed=seed),
            }
        }
        for name, factory in model_factories.items():
            row[name] = _score_model(factory, k, rfm, n_boot, seed)
        table[str(k)] = row
    return {"n": len(rfm), "skipped_households": skipped, "by_k": table}


def select_on_inner_split(
    rfm: pd.DataFrame,
    model_factories: dict[str, SegmenterFactory],
    ks: Sequence[int],
    *,
    holdout_fraction: float = 0.2,
    n_boot: int = 20,
    seed: int = SEED,
    **gates: Any,
) -> tuple[dict[str, Any], bool, list[dict[str, Any]]]:
    """Apply the criterion on a seeded customer split: fit on train, gates on train,
    silhouette on the held-back customers (protocol space fitted on them)."""
    order = np.random.default_rng(seed).permutation(len(rfm))
    n_hold = max(1, int(round(len(rfm) * holdout_fraction)))
    train, hold = rfm.iloc[np.sort(order[n_hold:])], rfm.iloc[np.sort(order[:n_hold])]
    raw = train[list(RFM_COLUMNS)].to_numpy(dtype=np.float64)
    candidates = []
    for name, factory in model_factories.items():
        for k in ks:
            model = factory(k).fit(train[list(RFM_COLUMNS)])
            fitted = model.predict(train[list(RFM_COLUMNS)])
            held = model.predict(hold[list(RFM_COLUMNS)])
            candidates.append(
                {
                    "model": name,
                    "k": int(k),
                    "silhouette": score_assignments(hold, held)["silhouette"],
                    "smallest_share": float(np.bincount(fitted, minlength=k).min() / len(fitted)),
                    "ari": bootstrap_ari(_model_fit(factory, k), raw, n=n_boot, seed=seed),
                }
            )
    chosen, met = choose(candidates, **gates)
    return chosen, met, candidates


def quality(
    items: pd.DataFrame,
    *,
    ks: Sequence[int] = range(2, 9),
    n_boot: int = 20,
    config: str | None = None,
    variants: dict[str, dict[str, Any]] | None = None,
) -> dict:
    """DESIGN §5 bench figure `segmenter_quality`: ours at the k the criterion picks on the
    inner split (segmenter config, default configs/segmenter.yaml: feature sets, gates, n_init,
    seed, centroid estimation) vs the baseline at the same k. `variants` (name -> centroid
    options over the config's) are scored in the table beside ours, never selected."""
    from training.config import load_segmenter_config

    cfg = load_segmenter_config(config)
    gates = {
        "min_k": cfg.min_k,
        "min_segment_share": cfg.min_segment_share,
        "min_ari": cfg.min_ari,
    }
    # Only sets computable from R, F, M are judged here (rfm_frame has no behaviour features).
    sets = {name: w for name, w in cfg.feature_sets.items() if set(w) <= set(RFM_COLUMNS)}
    opts = {"n_init": cfg.n_init, "seed": cfg.seed, **cfg.centroid_options()}
    factories = {f"ours_{name}": rfm_segmenter(w, **opts) for name, w in sets.items()}
    extra = {
        f"{variant}_{name}": rfm_segmenter(w, **{**opts, **changes})
        for variant, changes in (variants or {}).items()
        for name, w in sets.items()
    }
    rfm, _ = clean_rfm(rfm_frame(items))
    chosen, met, candidates = select_on_inner_split(
        rfm,
        factories,
        ks,
        holdout_fraction=cfg.holdout_fraction,
        n_boot=n_boot,
        seed=cfg.seed,
        **gates,
    )
    table = evaluate_protocol(items, {**factories, **extra}, ks, n_boot=n_boot, seed=cfg.seed)
    row = table["by_k"][str(chosen["k"])]
    ours, base = row[chosen["model"]], row["kmeans_log_rfm"]
    return {
        "figure": "segmenter_quality",
        "protocol": PROTOCOL,
        "data": "complete journey line items (all departments), one row per household",
        "n": table["n"],
        "value": ours["silhouette"],
        "unit": "silhouette (protocol space)",
        "baseline": "kmeans_log_rfm",
        "baseline_value": base["silhouette"],
        "ratio": ours["silhouette"] / base["silhouette"],
        "chosen_k": chosen["k"],
        "chosen_model": chosen["model"],
        "ours_centroids": cfg.centroid_options(),
        "variants": {name: {**opts, **changes} for name, changes in (variants or {}).items()},
        "criterion": (
            f"on a seeded {cfg.holdout_fraction:.0%} customer hold-back: k >= {cfg.min_k}, "
            f"smallest segment >= {cfg.min_segment_share:.0%} and bootstrap ARI >= "
            f"{cfg.min_ari} on train, then max held-back protocol silhouette"
        ),
        "criterion_met": met,
        "goal_met": bool(
            chosen["k"] >= 4
            and ours["silhouette"] >= base["silhouette"]
            and ours["smallest_share"] >= 0.05
            and ours["ari"] >= 0.9
        ),
        "selection": candidates,
        "table": table,
    }
