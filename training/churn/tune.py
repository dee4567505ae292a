"""Ray Tune search of the churn LightGBM on inner CV of split 0's training part (no test data).

Each trial samples LightGBM hyperparameters from `cfg.search`, runs `cfg.tune_folds`-fold
stratified CV on the training 75% of protocol split 0 (main population) and reports the mean
validation ROC AUC. Calibration is monotone, so it does not change AUC and is left out here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, train_test_split

from features.churn import FEATURE_NAMES
from training.churn import ChurnConfig
from training.churn.evaluate import ChurnFrame
from training.models.churn import ChurnModel, ChurnParams


def inner_cv_auc(
    X: np.ndarray, y: np.ndarray, params: ChurnParams, folds: int = 5, seed: int = 0
) -> float:
    """Mean validation ROC AUC of uncalibrated LightGBM over stratified folds of (X, y)."""
    params = params.model_copy(update={"calibration": "none"})
    aucs = []
    for tr, va in StratifiedKFold(folds, shuffle=True, random_state=seed).split(X, y):
        model = ChurnModel(params).fit(X[tr], y[tr], FEATURE_NAMES)
        aucs.append(roc_auc_score(y[va], model.raw_score(X[va])))
    return float(np.mean(aucs))


def split0_train(frame: ChurnFrame, cfg: ChurnConfig) -> tuple[np.ndarray, np.ndarray]:
    """The training part of protocol split 0 on the main population."""
    mask = frame.populations["main"]
    X, y = frame.X.to_numpy()[mask], frame.y.to_numpy()[mask]
    tr, _ = train_test_split(np.arange(len(y)), test_size=cfg.test_size, stratify=y, random_state=0)
    return X[tr], y[tr]


def _trial(config: dict[str, Any], X: np.ndarray, y: np.ndarray, base: dict, folds: int) -> None:
    from ray import tune

    params = ChurnParams.model_validate({**base, **config})
    tune.report({"roc_auc": inner_cv_auc(X, y, params, folds=folds)})


def tune_churn(frame: ChurnFrame, cfg: ChurnConfig, num_samples: int | None = None) -> dict:
    """Run the search (Ray must be initialised by the caller); best params and inner AUC."""
    from ray import tune

    X, y = split0_train(frame, cfg)
    space = {k: tune.choice(v) for k, v in cfg.search.model_dump().items()}
    trainable = tune.with_parameters(
        _trial, X=X, y=y, base=cfg.model.model_dump(), folds=cfg.tune_folds
    )
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        param_space=space,
        tune_config=tune.TuneConfig(
            metric="roc_auc",
            mode="max",
            num_samples=num_samples or cfg.tune_samples,
            search_alg=tune.search.BasicVariantGenerator(random_state=cfg.model.seed),
        ),
    )
    results = tuner.fit()
    best = results.get_best_result()
    default_auc = inner_cv_auc(X, y, cfg.model, folds=cfg.tune_folds)
    return {
        "best_params": {k: best.config[k] for k in space},
        "best_inner_auc": float(best.metrics["roc_auc"]),
        "config_inner_auc": default_auc,
        "trials": len(results),
    }
