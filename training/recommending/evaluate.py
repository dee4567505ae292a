"""PROTOCOLS §2 table: every baseline (and any extra model) fitted and scored in one run.

Two splits from the same line items: test (last basket held out) and inner validation
(penultimate basket held out, last basket never seen). Selection reads inner validation only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pandas as pd

from training.recommending.baselines import BASELINES
from training.recommending.data import RecData, protocol_split
from training.recommending.metrics import Scorer, evaluate_scorer

SPLITS = {"test": False, "inner_validation": True}
PROTOCOL = "recsys_cj (PROTOCOLS §2)"
PRIMARY = "HR@10"

ScorerFactory = Callable[[RecData], Scorer]
OnRow = Callable[[str, str, dict[str, Any]], None]


def split_summary(data: RecData) -> dict[str, Any]:
    """Sizes and skip counts of one split (what a reader needs to trust the table)."""
    return {
        "users": data.n_users,
        "catalog": data.n_items,
        "evaluated": int(len(data.eval_users)),
        "new_positive_share": float(data.is_new.mean()) if len(data.is_new) else float("nan"),
        "train_pairs": int(data.train.nnz),
        "split_time": str(data.split_time),
        "skipped": dict(data.skipped),
    }


def evaluate_split(
    data: RecData,
    scorers: dict[str, ScorerFactory],
    split: str = "test",
    on_row: OnRow | None = None,
) -> dict[str, dict[str, Any]]:
    """Fit each factory on `data` and score it; rows carry fit and scoring seconds."""
    rows: dict[str, dict[str, Any]] = {}
    for name, factory in scorers.items():
        t0 = time.perf_counter()
        scorer = factory(data)
        t1 = time.perf_counter()
        row: dict[str, Any] = dict(evaluate_scorer(data, scorer))
        row["fit_s"] = round(t1 - t0, 2)
        row["eval_s"] = round(time.perf_counter() - t1, 2)
        rows[name] = row
        if on_row is not None:
            on_row(split, name, row)
    return rows


def evaluate_protocol(
    items: pd.DataFrame,
    products: pd.DataFrame,
    scorers: dict[str, ScorerFactory] | None = None,
    on_row: OnRow | None = None,
) -> dict[str, Any]:
    """Baselines plus `scorers` (name -> factory fitted on a RecData) on test and inner validation.

    Returns {"test": {model: metrics}, "inner_validation": {...}, "splits": {split: summary}}.
    """
    models: dict[str, ScorerFactory] = {**BASELINES, **(scorers or {})}
    out: dict[str, Any] = {"splits": {}}
    for split, inner in SPLITS.items():
        t0 = time.perf_counter()
        data = protocol_split(items, products, inner=inner)
        summary = split_summary(data)
        summary["split_s"] = round(time.perf_counter() - t0, 2)
        out["splits"][split] = summary
        out[split] = evaluate_split(data, models, split, on_row)
    return out


def select_on_inner(table: dict[str, Any], names: list[str], metric: str = PRIMARY) -> str:
    """The name among `names` with the best inner-validation `metric` (never reads test)."""
    inner = table["inner_validation"]
    return max(names, key=lambda n: inner[n][metric])


def quality(
    items: pd.DataFrame,
    products: pd.DataFrame,
    extra: dict[str, ScorerFactory] | None = None,
    data: str = "Complete Journey",
    on_row: OnRow | None = None,
) -> dict[str, Any]:
    """DESIGN §5 bench object: test HR@10 of the model chosen on inner validation vs the best
    baseline chosen the same way (models = `extra` when given, else the baselines themselves)."""
    table = evaluate_protocol(items, products, extra, on_row)
    baselines = list(BASELINES)
    candidates = list(extra) if extra else baselines
    model = select_on_inner(table, candidates)
    base = select_on_inner(table, baselines)
    value = table["test"][model][PRIMARY]
    base_value = table["test"][base][PRIMARY]
    return {
        "figure": "recommender_quality",
        "protocol": PROTOCOL,
        "data": data,
        "n": table["splits"]["test"]["evaluated"],
        "value": value,
        "unit": PRIMARY,
        "model": model,
        "baseline": base,
        "baseline_value": base_value,
        "ratio": value / base_value if base_value else float("nan"),
        "selected_on": "inner_validation",
        "test": table["test"],
        "inner_validation": table["inner_validation"],
        "splits": table["splits"],
    }
