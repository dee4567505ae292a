"""Challenger: pytorch-forecasting's TemporalFusionTransformer on the same panel, quick budget.

Same inputs as the LSTM (16 weeks of history, display/mailer/calendar known ahead, static
department/category/store), QuantileLoss over p10/p50/p90, fixed epochs (no early stopping),
Lightning silenced. Returns [S, H, 3] like every other forecaster.
"""

from __future__ import annotations

import logging
import warnings
from contextlib import contextmanager

import numpy as np
import pandas as pd

from training.forecasting.config import MAX_LOOKBACK, TFTConfig
from training.forecasting.panel import Panel

QUANTILES = [0.1, 0.5, 0.9]
KNOWN = ["holiday", "week_of_year", "display", "mailer"]
STATIC = ["department", "product_category", "store_id"]


@contextmanager
def _quiet():
    names = [
        "lightning",
        "lightning.pytorch",
        "pytorch_lightning",
        "lightning.fabric",
        "pytorch_forecasting",
    ]
    old = {n: logging.getLogger(n).level for n in names}
    for n in names:
        logging.getLogger(n).setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            yield
        finally:
            for n, level in old.items():
                logging.getLogger(n).setLevel(level)


def panel_to_long(panel: Panel, last_col: int, zero_after: int | None = None) -> pd.DataFrame:
    """Long frame (series, time_idx, units, known covariates, static) up to column `last_col`.

    Targets after column `zero_after` are zeroed so forecast weeks cannot leak into inputs.
    """
    s, t = panel.n_series, last_col + 1
    units = panel.units[:, :t].copy()
    if zero_after is not None:
        units[:, zero_after + 1 :] = 0.0
    frame = {
        "series": np.repeat(np.arange(s), t).astype(str),
        "time_idx": np.tile(np.arange(t), s),
        "units": units.ravel(),
    }
    for name in [*KNOWN, "discount_depth"]:
        frame[name] = panel.covariate(name)[:, :t].ravel()
    if zero_after is not None:  # realised discounts are not known ahead either
        dd = panel.covariate("discount_depth")[:, :t].copy()
        dd[:, zero_after + 1 :] = 0.0
        frame["discount_depth"] = dd.ravel()
    for name in STATIC:
        frame[name] = np.repeat(panel.static[name], t).astype(str)
    return pd.DataFrame(frame)


def fit_predict_tft(
    panel: Panel, origin_week: int, cfg: TFTConfig, horizon: int = 8, num_threads: int = 1
) -> np.ndarray:
    """Train a TFT on targets <= origin_week, forecast weeks origin+1..origin+H: [S, H, 3]."""
    import lightning.pytorch as pl
    import torch
    from pytorch_forecasting import TemporalFusionTransformer, TimeSeriesDataSet
    from pytorch_forecasting.data import GroupNormalizer
    from pytorch_forecasting.metrics import QuantileLoss

    torch.set_num_threads(num_threads)
    origin = panel.week_index(origin_week)
    with _quiet():
        pl.seed_everything(cfg.seed, workers=True, verbose=False)
        train_df = panel_to_long(panel, origin)
        training = TimeSeriesDataSet(
            train_df,
            time_idx="time_idx",
            target="units",
            group_ids=["series"],
            max_encoder_length=MAX_LOOKBACK,
            min_encoder_length=MAX_LOOKBACK // 2,
            max_prediction_length=horizon,
            static_categoricals=STATIC,
            time_varying_known_reals=["time_idx", *KNOWN],
            time_varying_unknown_reals=["units", "discount_depth"],
            target_normalizer=GroupNormalizer(groups=["series"], transformation="softplus"),
            add_relative_time_idx=True,
            add_target_scales=True,
            allow_missing_timesteps=False,
        )
        loader = training.to_dataloader(train=True, batch_size=cfg.batch_size, num_workers=0)
        model = TemporalFusionTransformer.from_dataset(
            training,
            learning_rate=cfg.lr,
            hidden_size=cfg.hidden_size,
            attention_head_size=cfg.attention_head_size,
            hidden_continuous_size=cfg.hidden_continuous_size,
            dropout=cfg.dropout,
            loss=QuantileLoss(QUANTILES),
            log_interval=-1,
            reduce_on_plateau_patience=1000,
        )
        trainer = pl.Trainer(
            max_epochs=cfg.max_epochs,
            accelerator="cpu",
            enable_progress_bar=False,
            enable_model_summary=False,
            enable_checkpointing=False,
            logger=False,
            gradient_clip_val=0.1,
            limit_train_batches=cfg.limit_train_batches or 1.0,
        )
        trainer.fit(model, train_dataloaders=loader)

        # Decoder rows for the forecast weeks carry known covariates only (targets zeroed).
        last = min(origin + horizon, panel.units.shape[1] - 1)
        pred_df = panel_to_long(panel, last, zero_after=origin)
        pred_ds = TimeSeriesDataSet.from_dataset(
            training, pred_df, predict=True, stop_randomization=True
        )
        pred_loader = pred_ds.to_dataloader(train=False, batch_size=512, num_workers=0)
        out = model.predict(
            pred_loader,
            mode="quantiles",
            return_index=True,
            trainer_kwargs={
                "logger": False,
                "enable_progress_bar": False,
                "enable_model_summary": False,
            },
        )
    q = (
        out.output.detach().cpu().numpy()
        if hasattr(out.output, "detach")
        else np.asarray(out.output)
    )
    rows = out.index["series"].astype(int).to_numpy()
    result = np.zeros((panel.n_series, horizon, 3))
    result[rows] = q[:, :horizon, :]
    return np.sort(np.maximum(result, 0.0), axis=-1)
