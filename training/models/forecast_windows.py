"""The LSTM forecaster's training samples: one per (series, origin week) of a panel, with the
inputs `build_inputs` makes for serving and the targets scaled by the series' level."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from training.forecasting.config import LSTMConfig
from training.forecasting.panel import Panel
from training.models.forecaster import build_inputs, panel_arrays, static_codes


@dataclass
class Windows:
    """Training samples: history, future known inputs, static codes, level, scaled targets."""

    x_hist: np.ndarray
    x_future: np.ndarray
    static: np.ndarray
    level: np.ndarray
    y: np.ndarray  # scaled targets [N, H]
    mask: np.ndarray  # [N, H] 1 where the target week is usable

    def __len__(self) -> int:
        return len(self.y)

    def shard(self, rank: int, world: int) -> Windows:
        """Every `world`-th sample from `rank` (data-parallel workers)."""
        return Windows(**{k: v[rank::world] for k, v in self.__dict__.items()})

    def batches(
        self, batch_size: int, *, shuffle: bool, seed: int = 0
    ) -> Iterator[dict[str, torch.Tensor]]:
        """Tensors in `batch_size` chunks (a seeded shuffle when asked)."""
        order = (
            np.random.default_rng(seed).permutation(len(self)) if shuffle else np.arange(len(self))
        )
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            yield {
                "x_hist": torch.from_numpy(self.x_hist[idx]),
                "x_future": torch.from_numpy(self.x_future[idx]),
                "static": torch.from_numpy(self.static[idx]),
                "log_level": torch.from_numpy(np.log(self.level[idx])),
                "y": torch.from_numpy(self.y[idx]),
                "mask": torch.from_numpy(self.mask[idx]),
            }


def make_windows(
    panel: Panel, cfg: LSTMConfig, origin_cols: range | list[int], last_target_col: int
) -> Windows:
    """One sample per (series, origin column); targets after `last_target_col` are masked."""
    parts: list[Windows] = []
    static = static_codes(panel, cfg.static)
    for col in origin_cols:
        arrays = panel_arrays(panel, cfg, col)
        x_hist, x_future, level = build_inputs(cfg, origin_week=int(panel.weeks[col]), **arrays)
        y = np.zeros((panel.n_series, cfg.horizon), np.float32)
        mask = np.zeros_like(y)
        for k in range(cfg.horizon):
            t = col + 1 + k
            if t <= last_target_col and t < panel.units.shape[1]:
                y[:, k] = panel.units[:, t] / level
                mask[:, k] = 1.0
        parts.append(Windows(x_hist, x_future, static, level.astype(np.float32), y, mask))
    return Windows(
        **{k: np.concatenate([getattr(p, k) for p in parts]) for k in Windows.__dataclass_fields__}
    )


def split_windows(panel: Panel, cfg: LSTMConfig, train_end_week: int) -> tuple[Windows, Windows]:
    """(train, validation): validation = origins in the last `val_weeks` before train_end with
    their targets up to train_end; training targets stop where validation begins."""
    end = panel.week_index(train_end_week)
    val_start = end - cfg.val_weeks  # last column the training part may use as a target
    first = cfg.lookback - 1
    if val_start - 1 < first:
        raise ValueError(f"train_end_week {train_end_week} leaves no training origins")
    train = make_windows(panel, cfg, range(first, val_start), val_start)
    val = make_windows(panel, cfg, range(max(first, val_start), end), end)
    return train, val


def full_windows(panel: Panel, cfg: LSTMConfig, train_end_week: int) -> Windows:
    """Every origin whose first target is <= train_end (partial horizons masked)."""
    end = panel.week_index(train_end_week)
    return make_windows(panel, cfg, range(cfg.lookback - 1, end), end)
