"""The served demand forecaster: a bundle any selected model fits in, and its MLflow form.

`ForecastBundle` wraps the selected model (the LSTM, the global LightGBM, or their quantile
blend `lstm+lightgbm`) with what serving needs beside it: the vocabularies of its static
attributes and the retailer's week calendar.
It is saved as plain files (torch state dicts, LightGBM text models, JSON) inside an MLflow
pyfunc model; `load_bundle` is the spec's loader (training/specs.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from training.forecasting.panel import UNKNOWN
from training.models.forecast_blend import QuantileBlend

BUNDLE_FILE = "bundle.json"
BUNDLE_ARTIFACT = "bundle"
BLEND = "lstm+lightgbm"
KINDS = ("lstm", "lightgbm", BLEND)


@dataclass
class BlendedForecaster:
    """The LSTM and the LightGBM served together: `blend.combine(lstm, lightgbm)` quantiles."""

    lstm: Any
    lightgbm: Any
    blend: QuantileBlend

    @property
    def cfg(self) -> Any:
        """The LSTM's config (its inputs are the bundle's covariates)."""
        return self.lstm.cfg


@dataclass
class ForecastBundle:
    """A servable forecaster: `predict(histories, static, origin_week, horizon)`."""

    kind: str
    model: Any
    static_vocab: dict[str, list[str]]
    week_start: dict[int, str] = field(default_factory=dict)  # retailer week -> ISO date
    window: dict[str, Any] = field(default_factory=dict)  # data window the model saw

    @property
    def static_names(self) -> list[str]:
        return list(self.static_vocab)

    def _codes(self, name: str, values: list[str]) -> np.ndarray:
        # value -> code maps built once per bundle (a store vocabulary has hundreds of entries)
        indexes = self.__dict__.setdefault("_indexes", {})
        index = indexes.get(name)
        if index is None:
            index = indexes[name] = {v: i for i, v in enumerate(self.static_vocab[name])}
        return np.array([index.get(v, index.get(UNKNOWN, 0)) for v in values], dtype=np.int64)

    @property
    def covariates(self) -> list[str]:
        """Per-week inputs over the history (display, mailer, discount depth …)."""
        return list(self.model.cfg.covariates) if self.kind != "lightgbm" else []

    @property
    def future_covariates(self) -> list[str]:
        """Inputs known for the forecast weeks (the promotion plan)."""
        return list(self.model.cfg.future_covariates) if self.kind != "lightgbm" else []

    def predict(
        self,
        histories: np.ndarray,
        static: dict[str, list[str]],
        origin_week: int,
        horizon: int,
        covariate_history: np.ndarray | None = None,
        future_covariates: np.ndarray | None = None,
    ) -> np.ndarray:
        """[n, horizon, 3] p10/p50/p90 units after `origin_week` from [n, 16] weekly histories
        (oldest first, the last column is `origin_week`), raw static values per name, and the
        covariates the model reads ([n, 16, len(covariates)], [n, horizon, len(future)])."""
        histories = np.asarray(histories, dtype=np.float32)
        codes = {name: self._codes(name, static[name]) for name in self.static_names}
        if self.kind == "lightgbm":
            return _lightgbm_predict(self.model, histories, codes, horizon)
        if self.kind == BLEND:
            lgbm = _lightgbm_predict(self.model.lightgbm, histories, codes, horizon)
            lstm = self.model.lstm.predict_from_history(
                histories, codes, origin_week, horizon, covariate_history, future_covariates
            )
            return self.model.blend.combine(lstm, lgbm)
        return self.model.predict_from_history(
            histories,
            codes,
            origin_week,
            horizon,
            covariate_history=covariate_history,
            future_covariates=future_covariates,
        )

    def week_starts(self, weeks: list[int]) -> list[str]:
        """ISO start dates of retailer weeks (extrapolated 7 days a week past the calendar)."""
        from datetime import date, timedelta

        known = {int(k): v for k, v in self.week_start.items()}
        if not known:
            return ["" for _ in weeks]
        last = max(known)
        base = date.fromisoformat(known[last])
        return [known.get(w) or (base + timedelta(days=7 * (w - last))).isoformat() for w in weeks]

    # ------------------------------------------------------------------ files

    def save(self, directory: str | Path) -> Path:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        meta: dict[str, Any] = {"kind": self.kind}
        if self.kind == "lstm":
            self.model.save(d / "lstm")
        elif self.kind == "lightgbm":
            _save_lightgbm(self.model, d / "lightgbm")
        elif self.kind == BLEND:
            self.model.lstm.save(d / "lstm")
            _save_lightgbm(self.model.lightgbm, d / "lightgbm")
            meta["blend"] = self.model.blend.to_dict()
        else:
            raise ValueError(f"cannot save a {self.kind!r} forecaster; servable: {KINDS}")
        meta |= {
            "static_vocab": self.static_vocab,
            "week_start": {str(k): v for k, v in self.week_start.items()},
            "window": self.window,
        }
        (d / BUNDLE_FILE).write_text(json.dumps(meta, indent=2))
        return d

    @classmethod
    def load(cls, directory: str | Path) -> ForecastBundle:
        """Any saved kind; bundles written before blends (no "blend" entry) load unchanged."""
        d = Path(directory)
        meta = json.loads((d / BUNDLE_FILE).read_text())
        if meta["kind"] not in KINDS:
            raise ValueError(f"unknown forecaster kind {meta['kind']!r} in {d}; known: {KINDS}")
        if meta["kind"] == "lightgbm":
            model = _load_lightgbm(d / "lightgbm")
        else:
            from training.models.forecaster import LSTMForecaster

            model = LSTMForecaster.load(d / "lstm")
            if meta["kind"] == BLEND:
                blend = QuantileBlend.from_dict(meta["blend"])
                model = BlendedForecaster(model, _load_lightgbm(d / "lightgbm"), blend)
        return cls(
            kind=meta["kind"],
            model=model,
            static_vocab=meta["static_vocab"],
            week_start={int(k): v for k, v in meta["week_start"].items()},
            window=meta.get("window", {}),
        )


def _lightgbm_predict(
    model: Any, histories: np.ndarray, codes: dict[str, np.ndarray], horizon: int
) -> np.ndarray:
    """[n, horizon, 3] of the global LightGBM from [n, L] histories (origin = last column)."""
    return model.predict(histories, histories.shape[1] - 1, codes["department"])[:, :horizon]


def _save_lightgbm(model: Any, d: Path) -> None:
    d.mkdir(parents=True, exist_ok=True)
    index = []
    for (h, alpha), booster in sorted(model.models.items()):
        name = f"h{h}_q{int(round(alpha * 100)):02d}.txt"
        booster.save_model(str(d / name))
        index.append({"h": h, "alpha": alpha, "file": name})
    (d / "models.json").write_text(
        json.dumps({"horizon": model.horizon, "quantiles": model.quantiles, "models": index})
    )


def _load_lightgbm(d: Path) -> Any:
    import lightgbm as lgb

    from training.models.forecast_baselines import LightGBMForecaster

    meta = json.loads((d / "models.json").read_text())
    model = LightGBMForecaster(horizon=meta["horizon"], quantiles=meta["quantiles"])
    for m in meta["models"]:
        model.models[(int(m["h"]), float(m["alpha"]))] = lgb.Booster(model_file=str(d / m["file"]))
    return model


def load_bundle(model_uri: str, run_id: str) -> ForecastBundle:
    """The `ModelSpec.load` of the forecaster: the pyfunc model's bundle artifact."""
    import mlflow.artifacts

    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri))
    found = sorted(local.glob(f"artifacts/*/{BUNDLE_FILE}"))
    if not found:
        raise FileNotFoundError(f"{model_uri} holds no forecaster bundle ({BUNDLE_FILE})")
    return ForecastBundle.load(found[0].parent)


def pyfunc_model():
    """An MLflow PythonModel over the bundle (so `mlflow models serve` works too)."""
    import mlflow.pyfunc

    class ForecasterPyfunc(mlflow.pyfunc.PythonModel):
        """Input: rows of store_id, department, product_category, origin_week, horizon and
        units_0..units_15 (oldest first); output: p10/p50/p90 per row and horizon week."""

        def load_context(self, context):
            self.bundle = ForecastBundle.load(context.artifacts[BUNDLE_ARTIFACT])

        def predict(self, context, model_input, params=None):
            import pandas as pd

            hist = model_input[[f"units_{i}" for i in range(16)]].to_numpy()
            static = {n: model_input[n].astype(str).tolist() for n in self.bundle.static_names}
            origin = int(model_input["origin_week"].iloc[0])
            horizon = int(model_input["horizon"].iloc[0])
            q = self.bundle.predict(hist, static, origin, horizon)
            return pd.DataFrame(
                [
                    {"row": i, "h": h + 1, "p10": q[i, h, 0], "p50": q[i, h, 1], "p90": q[i, h, 2]}
                    for i in range(q.shape[0])
                    for h in range(q.shape[1])
                ]
            )

    return ForecasterPyfunc()
