"""`lstm.train_series`: the global LSTM trains on more series than the n_series it forecasts and
is scored on, in the protocol run and the platform run alike (no services: stubs for the rest)."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from tests.unit.test_forecaster_model import COV, STATIC, TRAIN_END, small_cfg, toy_frame
from training.forecasting.config import ForecasterConfig, LSTMConfig, load_forecaster_config
from training.forecasting.panel import panel_from_weekly, top_series
from training.trainers.forecast_steps import fit


def test_train_series_is_validated_against_the_scored_series():
    assert LSTMConfig().train_series == ForecasterConfig().n_series == 500  # without the YAML
    cfg = load_forecaster_config()
    assert cfg.lstm.train_series >= cfg.n_series
    wide = load_forecaster_config(lstm={"train_series": 5000})
    assert wide.lstm.train_series == 5000 and wide.n_series == 500
    with pytest.raises(ValueError, match="train_series"):
        load_forecaster_config(lstm={"train_series": 499})  # fewer than it forecasts
    with pytest.raises(ValueError, match="train_series"):
        load_forecaster_config(lstm={"train_series": 0})
    with pytest.raises(ValueError, match="train_series"):
        ForecasterConfig(n_series=600)  # the default 500 would not cover the scored series


def test_top_series_breaks_ties_alike_for_int_and_text_store_ids():
    """The protocol frame has int store ids, panels and the warehouse text ones: a top N taken
    from either must be the same series (text order, as the warehouse's SQL sorts them)."""
    frame = pd.DataFrame(
        {"store_id": [9, 10, 10], "product_id": [1, 1, 2], "week": [3, 3, 3], "units": [5.0, 5, 1]}
    )
    as_int = top_series(frame, 1, (2, 44))
    as_text = top_series(frame.astype({"store_id": str}), 1, (2, 44))
    assert as_int["store_id"].astype(str).tolist() == as_text["store_id"].tolist() == ["10"]


def _subset_frame(frame: pd.DataFrame, n: int) -> pd.DataFrame:
    keep = top_series(frame, n, (2, TRAIN_END))
    return frame.merge(keep, on=["store_id", "product_id"])


def test_a_model_trained_on_more_series_forecasts_a_differently_coded_subset():
    """The scored panel holds fewer series, so its static vocabularies (and codes) differ from
    the training panel's: predictions must go through the model's own vocabulary."""
    frame = toy_frame(n_series=24)
    wide = panel_from_weekly(frame, weeks=(2, 61), covariates=COV, static=STATIC)
    small = panel_from_weekly(_subset_frame(frame, 5), weeks=(2, 61), covariates=COV, static=STATIC)
    assert small.static_vocab != wide.static_vocab  # the test needs differing codes
    model = fit(wide, TRAIN_END, small_cfg(max_epochs=2, patience=2))
    rows = [
        int(np.flatnonzero((wide.store_ids == s) & (wide.product_ids == p))[0])
        for s, p in zip(small.store_ids, small.product_ids, strict=True)
    ]
    np.testing.assert_allclose(
        model.predict(small, TRAIN_END), model.predict(wide, TRAIN_END)[rows], rtol=1e-5
    )


class _Truth:
    """Stands in for a trained LSTM: records its training panel, forecasts the actual units."""

    static_vocab: dict[str, list[str]] = {}

    def __init__(self, seen: list[int], n_series: int) -> None:
        seen.append(n_series)

    def predict(self, panel, origin, horizon=8):
        o = panel.week_index(origin)
        y = panel.units[:, o + 1 : o + 1 + horizon]
        return np.repeat(y[..., None], 3, axis=-1).astype(np.float64)

    def codes_for(self, panel):
        return np.column_stack([panel.static[n] for n in STATIC])


def test_protocol_run_trains_the_lstm_on_train_series_and_scores_n_series(monkeypatch):
    import training.trainers.forecast_steps as steps
    from training.forecasting.evaluate import evaluate_protocol

    seen: list[int] = []
    monkeypatch.setattr(steps, "fit", lambda panel, end, cfg: _Truth(seen, panel.n_series))
    frame = toy_frame(n_series=24)
    for train_series, expected in ((10, 10), (100, 24), (6, 6)):
        seen.clear()
        cfg = ForecasterConfig(n_series=6, lstm=small_cfg(train_series=train_series))
        table = evaluate_protocol(frame, ("naive", "lstm"), cfg, blends=())
        assert seen == [expected, expected]  # both splits; only as many as the frame holds
        assert table["n_series"] == 6 and table["test"]["lstm"]["MASE"] == 0.0


def test_platform_run_trains_the_lstm_on_train_series(monkeypatch):
    import training.forecast_run as run_mod
    import training.forecasting.evaluate as evaluate

    frame = toy_frame(n_series=24)
    reads: list[int] = []

    def forecast_frame(*, tenant, first_week, last_week, n_series, rank_until_week, with_rank):
        reads.append(n_series)
        keep = top_series(frame, n_series, (2, TRAIN_END))
        keep = keep.assign(series_rank=np.arange(1, len(keep) + 1))
        return frame.merge(keep, on=["store_id", "product_id"]).assign(brand="B")

    seen: list[int] = []
    # a stand-in module: the real one imports Feast (tens of seconds) for a SQL read
    monkeypatch.setitem(
        sys.modules, "features.offline", SimpleNamespace(forecast_frame=forecast_frame)
    )
    monkeypatch.setattr(run_mod, "complete_weeks", lambda tenant: (2, 61))
    monkeypatch.setattr(run_mod, "_week_starts", lambda tenant: {})
    monkeypatch.setattr(run_mod, "_train_lstm", lambda c, p, end: _Truth(seen, p.n_series))
    # LightGBM's 3 x 8 boosters are beside the point here (and slow on a loaded machine)
    monkeypatch.setitem(evaluate.FORECASTERS, "lightgbm", evaluate.FORECASTERS["mean4"])
    cfg = ForecasterConfig(n_series=6, lstm=small_cfg(train_series=12))
    run = run_mod.run_forecaster(tenant="t1", cfg=cfg, challenger=False, tune=False)
    assert reads == [12]  # one read: the scored 6 are its rows ranked <= 6
    assert seen == [12, 12, 12]  # inner validation, test, refit of the selected LSTM
    assert run.selected == "lstm" and run.window["n_series"] == 6
    assert run.window["train_series"] == 12
