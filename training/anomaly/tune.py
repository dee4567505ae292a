"""Ray Tune search of the ensemble's contamination, level window and weights on pre-window data.

Judged without touching the protocol window: the panel is cut at the window's start, its last
`window_days` days become a pseudo-window, and injections use seeds 1000.. (never 42..51).
Thresholds only decide votes, not the ranking AUC judges: trials also report `vote_f1` (a store-day
is flagged when any weighted detector votes) so a threshold can be read off the best trials.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from typing import Any

import numpy as np

from training.anomaly.data import DailyPanel, eligible_stores, head, subset, windows_for
from training.anomaly.evaluate import candidates, inject, metrics
from training.models.anomaly import DETECTORS, AnomalyConfig, AnomalyEnsemble

TUNE_SEEDS = (1000, 1001, 1002)


def pseudo_panel(panel: DailyPanel, cfg: AnomalyConfig) -> DailyPanel:
    """Eligible stores, cut before the protocol window (its tail is the pseudo-window)."""
    p = subset(panel, eligible_stores(panel, cfg.min_days))
    pre, _ = windows_for(p, cfg.window_days)
    return head(p, pre.stop)


def apply_params(cfg: AnomalyConfig, params: dict[str, Any]) -> AnomalyConfig:
    """A config with a trial's values (w_<detector> -> weights, threshold -> every threshold)."""
    data = cfg.model_dump()
    weights = dict(data["weights"])
    for key, value in params.items():
        if key.startswith("w_"):
            weights[key[2:]] = float(value)
        elif key == "threshold":
            data["thresholds"] = {d: float(value) for d in DETECTORS}
        else:
            data[key] = value
    if sum(weights.get(d, 0.0) for d in DETECTORS) <= 0:
        weights["shift_lr"] = 1.0  # an all-zero draw means "the default detector alone"
    data["weights"] = weights
    return AnomalyConfig.model_validate(data)


def pseudo_auc(
    panel: DailyPanel, cfg: AnomalyConfig, seeds: tuple[int, ...] = TUNE_SEEDS
) -> tuple[float, float]:
    """(mean ensemble AUC, mean vote F1) on the pseudo-window of a cut `pseudo_panel`."""
    pre, window = windows_for(panel, cfg.window_days)
    cand = candidates(panel, window)
    model = AnomalyEnsemble(cfg).fit(panel, pre)
    aucs, f1s = [], []
    weighted = np.array([cfg.weights.get(d, 0.0) > 0 for d in DETECTORS])
    for seed in seeds:
        injected, labels, kind = inject(panel, window, seed)
        res = model.score(replace(panel, sales=injected), window)
        full = np.full(panel.sales.shape, np.nan)
        full[:, res.days] = res.score
        aucs.append(metrics(full[cand], labels[cand], kind[cand])["auc"])
        flag = res.votes[weighted].any(axis=0)[cand[:, res.days]]
        hit = labels[:, res.days][cand[:, res.days]]
        f1s.append(2 * (flag & hit).sum() / max(flag.sum() + hit.sum(), 1))
    return float(np.mean(aucs)), float(np.mean(f1s))


def _trainable(config: dict[str, Any], panel: DailyPanel, base: dict[str, Any]) -> None:
    """Ray Tune function trial: one config -> pseudo-window AUC."""
    from ray import tune

    cfg = apply_params(AnomalyConfig.model_validate(base), config)
    auc, f1 = pseudo_auc(panel, cfg)
    tune.report({"auc": auc, "vote_f1": f1})


def tune_anomaly(panel: DailyPanel, cfg: AnomalyConfig, num_samples: int = 8) -> dict[str, Any]:
    """Random search over `cfg.search_space`; returns the best params and their pseudo AUC."""
    import ray
    from ray import tune

    if not cfg.search_space:
        raise ValueError("config has an empty search_space")
    started = False
    if not ray.is_initialized():
        ray.init(
            address="local",
            num_cpus=2,
            include_dashboard=False,
            _temp_dir=tempfile.mkdtemp(prefix="ray-anomaly-"),
        )
        started = True
    try:
        space = {k: tune.choice(v) for k, v in cfg.search_space.items()}
        tuner = tune.Tuner(
            tune.with_parameters(_trainable, panel=pseudo_panel(panel, cfg), base=cfg.model_dump()),
            param_space=space,
            tune_config=tune.TuneConfig(
                metric="auc", mode="max", num_samples=num_samples, max_concurrent_trials=2
            ),
            run_config=tune.RunConfig(
                storage_path=tempfile.mkdtemp(prefix="tune-anomaly-"), verbose=0
            ),
        )
        best = tuner.fit().get_best_result()
        return {
            "params": dict(best.config),
            "pseudo_auc": float(best.metrics["auc"]),
            "pseudo_vote_f1": float(best.metrics["vote_f1"]),
        }
    finally:
        if started:
            ray.shutdown()
