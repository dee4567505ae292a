"""Model quality under PROTOCOLS (Complete Journey), baselines computed in the same run.

    python bench/quality.py {forecaster,recommender,anomaly,churn,segmenter} [--quick]
    python bench/quality.py anomaly --dev   # development windows, where anomaly choices are made

Prints one JSON object (DESIGN §5): per-model test and inner-validation metrics, the model
selected by inner-validation MASE, and the ratio of its test MASE to LightGBM's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.ray_runtime import MALLOC_ENV  # noqa: E402


def _round(d):
    if isinstance(d, dict):
        return {k: _round(v) for k, v in d.items()}
    return round(d, 4) if isinstance(d, float) else d


def forecaster(quick: bool, models: list[str] | None) -> dict:
    """`forecast_cj`: naive, mean4, LightGBM, LSTM, TFT and the LSTM + LightGBM quantile blend
    (weights fitted on inner validation) on test and inner validation."""
    from training.forecasting.config import load_forecaster_config
    from training.forecasting.evaluate import MODELS, evaluate_protocol
    from training.forecasting.panel import protocol_frame

    cfg = load_forecaster_config(profile="quick" if quick else None)
    start = time.perf_counter()
    frame = protocol_frame(max(cfg.n_series, cfg.lstm.train_series))
    data_s = time.perf_counter() - start

    def progress(split: str, name: str, row: dict) -> None:
        print(
            f"{split:>16} {name:>8} MASE {row['MASE']:.3f} WAPE {row['WAPE']:.1f}%", file=sys.stderr
        )

    table = evaluate_protocol(frame, models or MODELS, cfg, on_row=progress)
    selected = table["selected"]
    test = table["test"]
    ratio = test[selected]["MASE"] / test["lightgbm"]["MASE"] if "lightgbm" in test else None
    return _round(
        {
            "figure": "forecast_quality",
            "protocol": "forecast_cj (PROTOCOLS §1)",
            "data": "Complete Journey, top 500 (store, product) series by units in weeks 2..44",
            "n": table["n_series"] * 8,
            "profile": "quick" if quick else "default",
            "value": test[selected]["MASE"],
            "unit": "MASE (test, origin 44 -> 45..52)",
            "selected": selected,
            "selected_by": "MASE on inner validation (origin 36 -> 37..44)",
            "baseline": "lightgbm",
            "baseline_value": test.get("lightgbm", {}).get("MASE"),
            "ratio": ratio,
            "test": test,
            "inner_validation": table["inner_validation"],
            "blends": {
                name: {
                    "weights_p10_p50_p90": weights,
                    "fitted_on": "inner validation",
                    "inner_validation_row": "cross-fitted over 2 halves of the series",
                }
                for name, weights in table.get("blends", {}).items()
            },
            "baselines": {k: test[k] for k in ("naive", "mean4", "lightgbm") if k in test},
            "seconds": {"data": round(data_s, 1), **table["seconds"]},
            "lstm_config": cfg.lstm.model_dump(),
        }
    )


def churn(quick: bool, models: list[str] | None) -> dict:
    """`churn_cj`: calibrated LightGBM vs logistic, recency and the fixed LightGBM, 20 splits."""
    from training.churn import load_churn_config
    from training.churn.evaluate import quality
    from training.datasets import cj_line_items

    items, products = cj_line_items()
    cfg = load_churn_config(splits=5 if quick else None)
    return _round(quality(items, products, cfg))


def anomaly(quick: bool, models: list[str] | None, dev: bool = False) -> dict:
    """`anomaly_cj`: each detector, the protocol baselines and the ensemble, seeds 42..51; with
    `--dev` the two development windows before the protocol window instead (seeds 1000..1009)."""
    from training.anomaly.data import daily_panel
    from training.anomaly.evaluate import evaluate_development, quality
    from training.datasets import cj_line_items
    from training.models.anomaly import load_config

    items, _ = cj_line_items()
    if dev:
        res = evaluate_development(daily_panel(items), load_config())
        return _round({"figure": "anomaly_quality_development", **res})
    return _round(quality(daily_panel(items), load_config()))


def recommender(quick: bool, models: list[str] | None) -> dict:
    """`recsys_cj`: popularity, repeat, item-kNN, ALS, NCF alone and the hybrid, one run.

    `--models baselines` scores the four baselines only (about 2 minutes)."""
    from training.datasets import cj_line_items
    from training.recommender_run import judge
    from training.recommending.config import load_recommender_config
    from training.recommending.evaluate import PROTOCOL, evaluate_protocol

    items, products = cj_line_items()
    start = time.perf_counter()
    if models == ["baselines"]:
        table = evaluate_protocol(items, products)
        ours = "item_knn"
    else:
        cfg = load_recommender_config(profile="quick" if quick else None)
        table, *_rest, seconds = judge(
            items, products, cfg, on_step=lambda t: print(t, file=sys.stderr)
        )
        ours = "hybrid"
    test = table["test"]
    base = max(("popularity", "repeat", "item_knn", "als"),
               key=lambda n: table["inner_validation"][n]["HR@10"])  # fmt: skip
    return _round(
        {
            "figure": "recommender_quality",
            "protocol": PROTOCOL,
            "data": "Complete Journey, each household's last basket held out",
            "n": table["splits"]["test"]["evaluated"],
            "profile": "quick" if quick else "default",
            "value": test[ours]["HR@10"],
            "unit": "HR@10 (test, 1 positive among 100)",
            "model": ours,
            "baseline": base,
            "baseline_value": test[base]["HR@10"],
            "ratio": test[ours]["HR@10"] / test[base]["HR@10"],
            "test": test,
            "inner_validation": table["inner_validation"],
            "note": "the hybrid's inner-validation row is in-sample (its blend is fitted there)",
            "seconds": round(time.perf_counter() - start, 1),
        }
    )


# Scored beside ours (configs/segmenter.yaml) in the table, never selected: bagged K-Means with
# a Lloyd polish and no soft refinement (training/segmenting/centroids.py).
SEGMENTER_VARIANTS = {"bagged_kmeans": {"bags": 30, "bag_n_init": 3, "temperature": 0.0}}


def segmenter(quick: bool, models: list[str] | None) -> dict:
    """`segmentation_rfm`: our segmenter (centroids as configured) vs plain log-RFM K-Means at
    every k, with bagged K-Means beside them; `--models ours` leaves the variant out."""
    from training.datasets import cj_line_items
    from training.segmenting.protocol import quality

    items, _ = cj_line_items()
    variants = {} if models == ["ours"] else SEGMENTER_VARIANTS
    start = time.perf_counter()
    out = quality(items, variants=variants)
    return _round({**out, "seconds": round(time.perf_counter() - start, 1)})


FIGURES = {
    "forecaster": forecaster,
    "recommender": recommender,
    "anomaly": anomaly,
    "churn": churn,
    "segmenter": segmenter,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("which", choices=list(FIGURES))
    parser.add_argument("--quick", action="store_true", help="the config's quick profile")
    parser.add_argument("--models", nargs="*", help="subset of models (default: all)")
    parser.add_argument(
        "--dev",
        action="store_true",
        help="anomaly only: the development windows before the protocol window (seeds 1000..1009)",
    )
    args = parser.parse_args()
    if args.dev and args.which != "anomaly":
        parser.error("--dev applies to the anomaly figure only")
    if any(os.environ.get(k) != v for k, v in MALLOC_ENV.items()):
        # glibc reads these at start-up only: re-exec once with them (DESIGN §6, 2.5x on CPU torch)
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **MALLOC_ENV})
    extra = {"dev": True} if args.dev else {}
    print(json.dumps(FIGURES[args.which](args.quick, args.models, **extra), indent=2, default=str))


if __name__ == "__main__":
    main()
