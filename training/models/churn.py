"""Churn classifier: LightGBM + probability calibration, and the protocol's logistic baseline.

Pure model code shared by training and serving: the only I/O is `save`/`load` of a model
directory (LightGBM model text + JSON). Scoring is numpy in, numpy out.

Calibration is fitted on out-of-fold raw scores of the *training* data (stratified K folds, one
booster per fold), then applied to the booster refitted on all training rows, so the test split
never informs it. Isotonic maps probabilities by linear interpolation between its thresholds;
Platt is a 1-D logistic on the raw margin.

With `btyd_features`, `fit` also fits a BG/NBD model (training/models/btyd.py) on the training
rows' purchase histories (label-free: (x, t_x, T) from the view's columns) and appends its three
features (features.churn.BTYD_DOCS) to the booster's inputs. `feature_names` stays the view's
columns the caller passes; `model_names` adds the derived ones (drivers name them).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from features.churn import BTYD_DOCS, BTYD_INPUTS, LABEL_WEEKS, LEAD_WEEKS, btyd_inputs
from training.models.btyd import BGNBD, fit_bgnbd, window_stats

MODEL_FILE = "booster.txt"
META_FILE = "churn.json"


class ChurnParams(BaseModel):
    """LightGBM and calibration hyperparameters (configs/churn.yaml `model:`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    num_rounds: int = Field(300, ge=1, description="boosting rounds")
    learning_rate: float = Field(0.03, gt=0.0, le=1.0)
    num_leaves: int = Field(15, ge=2)
    min_data_in_leaf: int = Field(20, ge=1)
    feature_fraction: float = Field(1.0, gt=0.0, le=1.0)
    bagging_fraction: float = Field(1.0, gt=0.0, le=1.0)
    lambda_l2: float = Field(0.0, ge=0.0)
    calibration: Literal["isotonic", "platt", "none"] = "isotonic"
    calibration_folds: int = Field(5, ge=2, description="folds for out-of-fold calibration")
    seed: int = 0
    num_threads: int = Field(1, ge=1, description="LightGBM threads (the machine is shared)")
    btyd_features: bool = Field(False, description="append the fitted BG/NBD features")

    def lgb_params(self) -> dict[str, Any]:
        """The LightGBM parameter dict (binary objective, deterministic)."""
        return {
            "objective": "binary",
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_data_in_leaf,
            "feature_fraction": self.feature_fraction,
            "bagging_fraction": self.bagging_fraction,
            "bagging_freq": 1 if self.bagging_fraction < 1.0 else 0,
            "lambda_l2": self.lambda_l2,
            "seed": self.seed,
            "deterministic": True,
            "num_threads": self.num_threads,
            "verbosity": -1,
        }


def _as_matrix(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"expected a 2-D feature matrix, got shape {X.shape}")
    return X


class BtydFeatures:
    """BG/NBD parameters fitted on training rows; appends BTYD_DOCS columns to a view matrix."""

    NAMES = tuple(BTYD_DOCS)

    def __init__(self, params: BGNBD | None = None) -> None:
        self.params = params

    def _inputs(self, X: np.ndarray, names: Sequence[str]) -> tuple[np.ndarray, ...]:
        missing = [n for n in BTYD_INPUTS if n not in names]
        if missing:
            raise ValueError(f"BG/NBD features need the view columns {missing}")
        names = list(names)
        return btyd_inputs(*(X[:, names.index(n)] for n in BTYD_INPUTS))

    def fit(self, X: np.ndarray, names: Sequence[str]) -> BtydFeatures:
        x, t_x, T = self._inputs(_as_matrix(X), names)
        ok = np.isfinite(x) & np.isfinite(t_x) & np.isfinite(T)
        self.params = fit_bgnbd(x[ok], t_x[ok], T[ok])
        return self

    def transform(self, X: np.ndarray, names: Sequence[str]) -> np.ndarray:
        """X with p_alive, p_silent (lead, label weeks) and expected purchase days appended."""
        if self.params is None:
            raise RuntimeError("BG/NBD features are not fitted")
        X = _as_matrix(X)
        stats = window_stats(
            self.params, *self._inputs(X, names), lead=LEAD_WEEKS, length=LABEL_WEEKS
        )
        return np.column_stack([X, stats["p_alive"], stats["p_silent"], stats["expected"]])


class ChurnModel:
    """Calibrated LightGBM churn probability with per-row SHAP drivers."""

    def __init__(self, params: ChurnParams | None = None) -> None:
        self.params = params or ChurnParams()
        self.booster: lgb.Booster | None = None
        self.feature_names: list[str] = []
        self.calibration: dict[str, Any] = {"method": "none"}
        self.btyd: BtydFeatures | None = None

    @property
    def model_names(self) -> list[str]:
        """The booster's columns: the input features, then the derived BG/NBD ones."""
        extra = list(BtydFeatures.NAMES) if self.btyd is not None else []
        return self.feature_names + extra

    def _augment(self, X: np.ndarray) -> np.ndarray:
        X = _as_matrix(X)
        return X if self.btyd is None else self.btyd.transform(X, self.feature_names)

    def _train(self, X: np.ndarray, y: np.ndarray) -> lgb.Booster:
        data = lgb.Dataset(X, label=y.astype(np.float64), free_raw_data=True)
        return lgb.train(self.params.lgb_params(), data, num_boost_round=self.params.num_rounds)

    def fit(self, X: np.ndarray, y: np.ndarray, feature_names: Sequence[str]) -> ChurnModel:
        """Fit calibration on out-of-fold scores, then the booster on all rows."""
        X, y = _as_matrix(X), np.asarray(y).astype(bool)
        if X.shape[1] != len(feature_names):
            raise ValueError(f"{X.shape[1]} columns but {len(feature_names)} feature names")
        self.feature_names = list(feature_names)
        self.btyd = BtydFeatures().fit(X, feature_names) if self.params.btyd_features else None
        X = self._augment(X)
        method = self.params.calibration
        if method != "none":
            folds = StratifiedKFold(
                self.params.calibration_folds, shuffle=True, random_state=self.params.seed
            )
            oof = np.zeros(len(y))
            for tr, va in folds.split(X, y):
                oof[va] = self._train(X[tr], y[tr]).predict(X[va], raw_score=True)
            self.calibration = _fit_calibration(method, oof, y)
        self.booster = self._train(X, y)
        return self

    def raw_score(self, X: np.ndarray) -> np.ndarray:
        """Uncalibrated log-odds margin."""
        if self.booster is None:
            raise RuntimeError("model is not fitted")
        return self.booster.predict(self._augment(X), raw_score=True)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Calibrated churn probability per row, in [0, 1]."""
        return _apply_calibration(self.calibration, self.raw_score(X))

    def drivers(
        self, X: np.ndarray, names: Sequence[str] | None = None, top: int = 3
    ) -> list[list[dict[str, Any]]]:
        """Per row the `top` features whose SHAP contribution pushes most toward churn (> 0)."""
        if self.booster is None:
            raise RuntimeError("model is not fitted")
        X = self._augment(X)
        names = list(names) if names is not None else self.model_names
        contrib = self.booster.predict(X, pred_contrib=True)[:, : X.shape[1]]
        order = np.argsort(-contrib, axis=1)[:, :top]
        out = []
        for r in range(len(X)):
            out.append(
                [
                    {
                        "feature": names[j],
                        "contribution": float(contrib[r, j]),
                        "value": float(X[r, j]),
                    }
                    for j in order[r]
                    if contrib[r, j] > 0
                ]
            )
        return out

    def save(self, path: str | Path) -> None:
        """Write booster text and calibration/feature metadata into directory `path`."""
        if self.booster is None:
            raise RuntimeError("model is not fitted")
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(path / MODEL_FILE))
        meta = {
            "feature_names": self.feature_names,
            "calibration": self.calibration,
            "params": self.params.model_dump(),
            "btyd": self.btyd.params.to_dict() if self.btyd is not None else None,
        }
        (path / META_FILE).write_text(json.dumps(meta, indent=1))

    @classmethod
    def load(cls, path: str | Path) -> ChurnModel:
        """Read a directory written by `save`."""
        path = Path(path)
        meta = json.loads((path / META_FILE).read_text())
        model = cls(ChurnParams.model_validate(meta["params"]))
        model.booster = lgb.Booster(model_file=str(path / MODEL_FILE))
        model.feature_names = list(meta["feature_names"])
        model.calibration = meta["calibration"]
        if meta.get("btyd"):
            model.btyd = BtydFeatures(BGNBD(**meta["btyd"]))
        return model


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _fit_calibration(method: str, margin: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    if method == "platt":
        lr = LogisticRegression(C=1e6, max_iter=1000).fit(margin[:, None], y)
        return {"method": "platt", "a": float(lr.coef_[0, 0]), "b": float(lr.intercept_[0])}
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
    iso.fit(_sigmoid(margin), y.astype(np.float64))
    return {
        "method": "isotonic",
        "x": iso.X_thresholds_.tolist(),
        "y": iso.y_thresholds_.tolist(),
    }


def _apply_calibration(cal: dict[str, Any], margin: np.ndarray) -> np.ndarray:
    if cal["method"] == "platt":
        return _sigmoid(cal["a"] * margin + cal["b"])
    if cal["method"] == "isotonic":
        return np.interp(_sigmoid(margin), cal["x"], cal["y"])
    return _sigmoid(margin)


def signed_log1p(X: np.ndarray) -> np.ndarray:
    """sign(x) * log1p(|x|): tames heavy tails and keeps negative values ordered."""
    return np.sign(X) * np.log1p(np.abs(X))


class LogisticBaseline:
    """Protocol baseline: signed log1p -> standardize -> LogisticRegression(C=1)."""

    def __init__(self, C: float = 1.0) -> None:
        self.C = C
        self.mean_: np.ndarray | None = None
        self.scale_: np.ndarray | None = None
        self.coef_: np.ndarray | None = None
        self.intercept_: float = 0.0

    def fit(self, X: np.ndarray, y: np.ndarray) -> LogisticBaseline:
        """Fit scaler and logistic regression on the training rows."""
        Z = signed_log1p(_as_matrix(X))
        self.mean_ = Z.mean(axis=0)
        sd = Z.std(axis=0)
        self.scale_ = np.where(sd > 0, sd, 1.0)  # a constant column stays 0, not NaN
        lr = LogisticRegression(C=self.C, max_iter=2000)
        lr.fit((Z - self.mean_) / self.scale_, np.asarray(y).astype(int))
        self.coef_, self.intercept_ = lr.coef_[0], float(lr.intercept_[0])
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Churn probability per row (numpy path)."""
        if self.coef_ is None:
            raise RuntimeError("model is not fitted")
        Z = (signed_log1p(_as_matrix(X)) - self.mean_) / self.scale_
        return _sigmoid(Z @ self.coef_ + self.intercept_)
