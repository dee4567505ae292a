"""Batch scorers: a loaded registry version + a batch of its input rows → score rows.

Pure code, no I/O: each scorer is a callable class that Ray Data's map tasks build once per
worker process and run (`score_shared`: the model arrives through the object store, see
pipelines/jobs/score.py) and the in-process baseline of bench/batch_score.py calls directly.
Every scorer returns a batch with two columns, `entity` (the row's text key) and `payload` (a JSON document), which is what the
`predictions` table and the Redis serving keys hold. They reuse the serving objects' numpy
paths (`FastSegmenter.predict`, `ChurnBundle.analyze`, `HybridScorer.score`,
`ForecastBundle.predict`, `AnomalyBundle.detect`); no model code is repeated here.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from core.predictions import forecast_digest

Batch = dict[str, np.ndarray]


def _out(entities: list[str], payloads: list[dict[str, Any]]) -> Batch:
    return {
        "entity": np.asarray(entities, dtype=object),
        "payload": np.asarray([json.dumps(p, separators=(",", ":")) for p in payloads], object),
    }


class SegmentScorer:
    """customer_id + the segmenter's features → segment id and label."""

    def __init__(self, bundle: Any) -> None:
        self.bundle = bundle
        self.names = list(bundle.fast.feature_names)

    def __call__(self, batch: Batch) -> Batch:
        x = np.column_stack([np.asarray(batch[n], np.float64) for n in self.names])
        segments = self.bundle.fast.predict(x)
        labels = {s: self.bundle.label(int(s)) for s in np.unique(segments)}
        return _out(
            [str(int(c)) for c in batch["customer_id"]],
            [{"segmentId": int(s), "label": labels[s]} for s in segments],
        )


class ChurnScorer:
    """customer_id + the churn view's features → probability, risk band, top-3 drivers."""

    def __init__(self, bundle: Any) -> None:
        from training.churn_run import risk_band

        self.bundle = bundle
        self.names = list(bundle.model.feature_names)
        self.risk_band = risk_band

    def __call__(self, batch: Batch) -> Batch:
        x = np.column_stack([np.asarray(batch[n], np.float64) for n in self.names])
        probabilities, drivers = self.bundle.analyze(x)
        payloads = [
            {
                "probability": round(float(p), 4),
                "riskBand": self.risk_band(float(p)),
                "drivers": [
                    {
                        "feature": d["feature"],
                        "value": round(float(d["value"]), 4),
                        "contribution": round(float(d["contribution"]), 4),
                    }
                    for d in top
                ],
            }
            for p, top in zip(probabilities, drivers, strict=True)
        ]
        return _out([str(int(c)) for c in batch["customer_id"]], payloads)


class RecommendationScorer:
    """customer_id + user index → the hybrid's scores of the household's precomputed candidate
    set (NCF and every blend feature re-computed), best `limit` first.

    `pairs` counts household × candidate pairs scored (the benchmark's rows)."""

    def __init__(self, bundle: Any, limit: int = 20) -> None:
        self.bundle = bundle
        self.limit = int(limit)
        self.product_ids = np.asarray(bundle.product_ids)

    def scores(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(item indices [E, limit], scores [E, limit]) of users [E], best first."""
        items = self.bundle.candidate_items[users]
        scores = self.bundle.scorer.score(users, items)
        k = min(self.limit, items.shape[1])
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        val = np.take_along_axis(scores, top, axis=1)
        order = np.argsort(-val, axis=1, kind="stable")
        return np.take_along_axis(items, np.take_along_axis(top, order, 1), 1), np.take_along_axis(
            val, order, 1
        )

    def __call__(self, batch: Batch) -> Batch:
        users = np.asarray(batch["user"], np.int64)
        items, scores = self.scores(users)
        # The blend's rank-only "bought first" offset is not part of the reported score (as
        # the serving deployment reports it).
        bought = self.bundle.scorer.train[users[:, None], items].toarray() > 0
        scores = scores - bought * np.float32(self.bundle.scorer.blend.bought_offset)
        pids = self.product_ids[items]
        payloads = [
            {
                "items": [
                    {"productId": int(p), "rank": r + 1, "score": round(float(s), 4)}
                    for r, (p, s) in enumerate(zip(prow, srow, strict=True))
                ],
                "candidates": int(self.bundle.candidate_items.shape[1]),
            }
            for prow, srow in zip(pids, scores, strict=True)
        ]
        return _out([str(int(c)) for c in batch["customer_id"]], payloads)


class ForecastScorer:
    """One row per series (store, product, 16-week history, static values, covariates) →
    p10/p50/p90 per week of the horizon; too little history → the mean of the last 4 weeks,
    flagged (the serving deployment's rule, passed in as `min_sales_weeks`)."""

    def __init__(
        self,
        bundle: Any,
        origin: int,
        horizon: int,
        model_horizon: int = 8,
        min_sales_weeks: int = 4,
    ) -> None:
        self.bundle, self.origin, self.horizon = bundle, int(origin), int(horizon)
        self.model_horizon, self.min_sales_weeks = int(model_horizon), int(min_sales_weeks)
        self.weeks = [self.origin + h for h in range(1, self.horizon + 1)]
        self.starts = bundle.week_starts(self.weeks)
        # the weeks of history the model reads (the LSTM's look-back; others read all 16)
        self.lookback = int(getattr(getattr(bundle.model, "cfg", None), "lookback", 16))

    def __call__(self, batch: Batch) -> Batch:
        histories = np.stack(batch["history"]).astype(np.float64)
        n = len(histories)
        active = (histories > 0).sum(axis=1) >= self.min_sales_weeks
        values = np.repeat(histories[:, -4:].mean(axis=1), 3 * self.horizon).reshape(
            n, self.horizon, 3
        )
        names = self.bundle.static_names
        labels = [[str(batch[f"static_{k}"][i]) for k in names] for i in range(n)]
        if active.any():
            rows = np.flatnonzero(active)
            static = {k: [labels[i][j] for i in rows] for j, k in enumerate(names)}
            past = np.stack(batch["past"])[rows] if self.bundle.covariates else None
            future = np.stack(batch["future"])[rows] if self.bundle.future_covariates else None
            full = self.bundle.predict(
                histories[rows], static, self.origin, self.model_horizon, past, future
            )
            values[rows] = full[:, : self.horizon]
        payloads = [
            {
                "method": self.bundle.kind if active[i] else "mean of the last 4 weeks",
                "fallback": not bool(active[i]),
                "originWeek": self.origin,
                # the online inputs scored (units history, static values): serving answers
                # from this score only while it reads the same (serving/deployments/forecaster.py)
                "inputs": forecast_digest(
                    histories[i], labels[i], lookback=self.lookback, active=bool(active[i])
                ),
                "weeks": [
                    {
                        "week": w,
                        "weekStart": s,
                        "p10": round(float(values[i, h, 0]), 3),
                        "p50": round(float(values[i, h, 1]), 3),
                        "p90": round(float(values[i, h, 2]), 3),
                    }
                    for h, (w, s) in enumerate(zip(self.weeks, self.starts, strict=True))
                ],
            }
            for i in range(n)
        ]
        entities = [
            f"{s}:{int(p)}" for s, p in zip(batch["store_id"], batch["product_id"], strict=True)
        ]
        return _out(entities, payloads)


class AnomalyScorer:
    """One row per store (its daily sales, transactions and median unit price over `dates`)
    → the store-days of the last `days` flagged by the ensemble (entity "store:date")."""

    def __init__(self, bundle: Any, dates: np.ndarray, days: int) -> None:
        self.bundle, self.dates = bundle, np.asarray(dates, "datetime64[D]")
        self.days = np.arange(max(0, len(self.dates) - int(days)), len(self.dates))

    def __call__(self, batch: Batch) -> Batch:
        from training.anomaly.data import assemble

        panel = assemble(
            np.asarray(batch["store_id"]).astype(str),
            self.dates,
            np.stack(batch["sales"]).astype(np.float64),
            np.stack(batch["transactions"]).astype(np.float64),
            np.stack(batch["price"]).astype(np.float64),
        )
        flagged = self.bundle.detect(panel, self.days)
        return _out([f"{a['storeId']}:{a['date']}" for a in flagged], flagged)


# Per Ray worker process: the scorer built from the newest model ref it was handed. Ray reuses
# its worker processes across tasks (and across runs of one driver), so a worker fetches and
# unpickles a model once per run, however many blocks it scores. One entry: a long-lived
# worker keeps at most one model (its numpy arrays stay in the node's shared object store).
_WORKER_SCORER: dict[str, Any] = {}


def score_shared(batch: Batch, model_ref: list[Any], scorer: type, kwargs: dict[str, Any]) -> Batch:
    """A Ray Data map function: `batch` scored by `scorer(model, **kwargs)`, built on this worker
    process's first batch of the run and reused after. `model_ref` is `[ObjectRef]`: in a list
    so the ref arrives unresolved (a key for the cache, fetched only on a miss)."""
    key = model_ref[0].hex()
    built = _WORKER_SCORER.get(key)
    if built is None:
        import ray

        _WORKER_SCORER.clear()
        built = _WORKER_SCORER[key] = scorer(ray.get(model_ref[0]), **kwargs)
    return built(batch)


def frame_of(batch: Batch) -> pd.DataFrame:
    """A scorer's output batch as a DataFrame (entity, payload)."""
    return pd.DataFrame({"entity": batch["entity"], "payload": batch["payload"]})
