"""LSTM demand forecaster: pure torch, global over series, direct 8-week p10/p50/p90 output.

LSTM(h1) -> Dropout -> LSTM(h2) -> Dropout -> [last state, future known inputs, static
embeddings, log level] -> Dense(ReLU) -> H x 3. Units are divided by each sample's local level
(mean of its last 8 weeks + 1, the LightGBM baseline's scaling) so one model fits series of any
size; outputs are multiplied back. p10/p90 are p50 -/+ softplus(.), so quantiles never cross.

Serving calls `predict_from_history` with plain arrays (units lags, static codes, covariates),
the same path `predict` uses on a panel, so the two cannot drift apart.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from training.forecasting.config import MAX_LOOKBACK, LSTMConfig
from training.forecasting.panel import Panel, calendar_features

QUANTILES = (0.1, 0.5, 0.9)
LEVEL_WEEKS = 8
# Up to this many series a prediction runs the members in numpy (forecaster_numpy.py): torch's
# per-call overhead dominates a request's few series; larger batches run in torch.
NUMPY_MAX_ROWS = 32
CONFIG_FILE = "forecaster.json"


def _level(units_hist: np.ndarray) -> np.ndarray:
    return units_hist[:, -LEVEL_WEEKS:].mean(axis=1) + 1.0


@lru_cache(maxsize=512)
def _calendar_block(first: int, n: int) -> np.ndarray:
    """[n, 3] for weeks first..first+n-1: holiday count, sin and cos of the week of year;
    computed once per span, shared read-only (per request it cost a fifth of a forecast)."""
    cal = calendar_features(np.arange(first, first + n))
    angle = 2 * math.pi * cal["week_of_year"] / 52.0
    block = np.column_stack([cal["holiday"], np.sin(angle), np.cos(angle)]).astype(np.float32)
    block.setflags(write=False)
    return block


def n_step_features(cfg: LSTMConfig) -> int:
    return 2 + len(cfg.covariates) + (3 if cfg.calendar else 0)


def n_future_features(cfg: LSTMConfig) -> int:
    return len(cfg.future_covariates) + (3 if cfg.calendar else 0)


def build_inputs(
    cfg: LSTMConfig,
    units_hist: np.ndarray,
    origin_week: int,
    covariate_hist: np.ndarray | None = None,
    future_covariates: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x_hist [n, L, F], x_future [n, H, G], level [n]) from plain arrays.

    units_hist [n, >=L] (most recent week = `origin_week` last); covariate_hist [n, >=L, C] in
    `cfg.covariates` order; future_covariates [n, H, Cf] in `cfg.future_covariates` order.
    """
    lb, h = cfg.lookback, cfg.horizon
    units_hist = np.asarray(units_hist, dtype=np.float32)
    if units_hist.ndim != 2 or units_hist.shape[1] < lb:
        raise ValueError(f"units_hist must be [n, >= {lb}] weeks, got {units_hist.shape}")
    u = units_hist[:, -lb:]
    n = u.shape[0]
    level = _level(u)
    parts = [u / level[:, None], (u == 0).astype(np.float32)]
    if cfg.covariates:
        if covariate_hist is None:
            raise ValueError(
                f"covariate_hist [n, L, {len(cfg.covariates)}] required: {cfg.covariates}"
            )
        cov = np.asarray(covariate_hist, dtype=np.float32)[:, -lb:, :]
        if cov.shape != (n, lb, len(cfg.covariates)):
            raise ValueError(f"covariate_hist must be [n, >={lb}, {len(cfg.covariates)}]")
        cov = cov.copy()
        if "shelf_price" in cfg.covariates:  # relative to the window's mean price
            j = cfg.covariates.index("shelf_price")
            cov[:, :, j] /= cov[:, :, j].mean(axis=1, keepdims=True) + 1e-3
        parts.extend(cov[:, :, j] for j in range(cov.shape[2]))
    if cfg.calendar:
        cal = _calendar_block(int(origin_week) - lb + 1, lb)
        parts.extend(np.broadcast_to(cal[None, :, j], (n, lb)) for j in range(cal.shape[1]))
    x_hist = np.stack(parts, axis=-1).astype(np.float32)

    fut_parts = []
    if cfg.future_covariates:
        if future_covariates is None:
            raise ValueError(f"future_covariates [n, H, {len(cfg.future_covariates)}] required")
        fut = np.asarray(future_covariates, dtype=np.float32)
        if fut.shape != (n, h, len(cfg.future_covariates)):
            raise ValueError(f"future_covariates must be [n, {h}, {len(cfg.future_covariates)}]")
        fut_parts.append(fut)
    if cfg.calendar:
        fut_parts.append(np.broadcast_to(_calendar_block(int(origin_week) + 1, h)[None], (n, h, 3)))
    x_future = (
        np.concatenate(fut_parts, axis=-1).astype(np.float32)
        if fut_parts
        else np.zeros((n, h, 0), np.float32)
    )
    return x_hist, x_future, level


class LSTMNet(nn.Module):
    """Two stacked LSTMs and a dense head with one output per horizon step and quantile."""

    def __init__(self, cfg: LSTMConfig, vocab_sizes: list[int]) -> None:
        super().__init__()
        self.horizon = cfg.horizon
        self.lstm1 = nn.LSTM(n_step_features(cfg), cfg.hidden1, batch_first=True)
        self.drop1 = nn.Dropout(cfg.dropout)
        self.lstm2 = nn.LSTM(cfg.hidden1, cfg.hidden2, batch_first=True)
        self.drop2 = nn.Dropout(cfg.dropout)
        self.embeddings = nn.ModuleList(
            nn.Embedding(v, min(cfg.embedding_dim, max(1, v // 2))) for v in vocab_sizes
        )
        n_head = (
            cfg.hidden2
            + cfg.horizon * n_future_features(cfg)
            + sum(e.embedding_dim for e in self.embeddings)
            + 1
        )
        self.dense = nn.Sequential(nn.Linear(n_head, cfg.dense), nn.ReLU())
        self.out = nn.Linear(cfg.dense, cfg.horizon * len(QUANTILES))

    def forward(
        self,
        x_hist: torch.Tensor,
        x_future: torch.Tensor,
        static: torch.Tensor,
        log_level: torch.Tensor,
    ) -> torch.Tensor:
        """Scaled quantiles [B, H, 3], ordered p10 <= p50 <= p90."""
        z, _ = self.lstm1(x_hist)
        z, _ = self.lstm2(self.drop1(z))
        head = [self.drop2(z[:, -1]), x_future.flatten(1), log_level[:, None]]
        head.extend(emb(static[:, i]) for i, emb in enumerate(self.embeddings))
        o = self.out(self.dense(torch.cat(head, dim=1))).view(-1, self.horizon, len(QUANTILES))
        mid = o[..., 1]
        lo = mid - nn.functional.softplus(o[..., 0])
        hi = mid + nn.functional.softplus(o[..., 2])
        return torch.stack([lo, mid, hi], dim=-1)


def pinball_loss(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, loss: str = "pinball"
) -> torch.Tensor:
    """Mean quantile loss over unmasked cells; `pinball_p50` doubles the median's weight."""
    q = torch.tensor(QUANTILES, dtype=pred.dtype, device=pred.device)
    w = torch.tensor(
        [1.0, 2.0 if loss == "pinball_p50" else 1.0, 1.0], dtype=pred.dtype, device=pred.device
    )
    err = target[..., None] - pred
    per = torch.maximum(q * err, (q - 1) * err) * w
    m = mask[..., None].to(pred.dtype)
    return (per * m).sum() / (m.sum() * w.sum() / len(QUANTILES)).clamp_min(1.0)


def panel_arrays(panel: Panel, cfg: LSTMConfig, col: int) -> dict[str, np.ndarray | None]:
    """Inputs for origin column `col` of every series, as `predict_from_history` takes them."""
    lb, h = cfg.lookback, cfg.horizon
    cov = fut = None
    if cfg.covariates:
        idx = [panel.covariate_names.index(c) for c in cfg.covariates]
        cov = panel.covariates[:, col - lb + 1 : col + 1][:, :, idx]
    if cfg.future_covariates:
        idx = [panel.covariate_names.index(c) for c in cfg.future_covariates]
        fut = np.zeros((panel.n_series, h, len(idx)), np.float32)
        avail = panel.covariates[:, col + 1 : col + 1 + h][:, :, idx]
        fut[:, : avail.shape[1]] = avail  # beyond the panel: no promotion known
    return {
        "units_hist": panel.units[:, col - lb + 1 : col + 1],
        "covariate_hist": cov,
        "future_covariates": fut,
    }


def static_codes(panel: Panel, names: list[str]) -> np.ndarray:
    if not names:
        return np.zeros((panel.n_series, 0), np.int64)
    return np.column_stack([panel.static[n] for n in names]).astype(np.int64)


@dataclass
class LSTMForecaster:
    """A fitted forecaster: config, vocabulary sizes and one network per ensemble seed."""

    cfg: LSTMConfig
    vocab_sizes: list[int]
    nets: list[LSTMNet] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    # name -> values (index = code, [0] = unknown), so serving can encode raw attributes
    static_vocab: dict[str, list[str]] = field(default_factory=dict)

    def encode_static(self, values: dict[str, Any]) -> np.ndarray:
        """[n, len(cfg.static)] codes from raw attribute values {name: [n] str}; unseen -> 0."""
        cols = []
        for name in self.cfg.static:
            index = {v: i for i, v in enumerate(self.static_vocab.get(name, []))}
            cols.append([index.get(str(v), 0) for v in np.atleast_1d(values[name])])
        n = len(cols[0]) if cols else len(next(iter(values.values()), []))
        return np.asarray(cols, dtype=np.int64).T.reshape(n, len(self.cfg.static))

    def new_net(self, seed: int) -> LSTMNet:
        torch.manual_seed(seed)
        return LSTMNet(self.cfg, self.vocab_sizes)

    def _prepare(
        self,
        units_history: np.ndarray,
        static_codes: np.ndarray | dict[str, np.ndarray] | None,
        origin_week: int,
        horizon: int | None,
        covariate_history: np.ndarray | None,
        future_covariates: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
        """(x_hist, x_future, static codes [n, S] clipped to the vocabularies, level, h)."""
        h = horizon or self.cfg.horizon
        if h > self.cfg.horizon:
            raise ValueError(f"horizon {h} > the model's {self.cfg.horizon}")
        x_hist, x_future, level = build_inputs(
            self.cfg, units_history, int(origin_week), covariate_history, future_covariates
        )
        n = x_hist.shape[0]
        if isinstance(static_codes, dict):
            static_codes = (
                np.column_stack([np.asarray(static_codes[k]) for k in self.cfg.static])
                if self.cfg.static
                else None
            )
        codes = (
            np.zeros((n, 0), np.int64)
            if static_codes is None
            else np.asarray(static_codes, np.int64).reshape(n, -1)
        )
        if codes.shape[1] != len(self.cfg.static):
            raise ValueError(
                f"static_codes must be [n, {len(self.cfg.static)}] ({self.cfg.static})"
            )
        codes = np.where((codes >= 0) & (codes < np.asarray(self.vocab_sizes)[None]), codes, 0)
        return x_hist, x_future, codes, level, h

    @torch.inference_mode()
    def predict_from_history(
        self,
        units_history: np.ndarray,
        static_codes: np.ndarray | dict[str, np.ndarray] | None,
        origin_week: int,
        horizon: int | None = None,
        covariate_history: np.ndarray | None = None,
        future_covariates: np.ndarray | None = None,
    ) -> np.ndarray:
        """[n, H, 3] p10/p50/p90 units for the weeks after `origin_week`.

        units_history [n, L'] (L' >= lookback, most recent week last = origin_week);
        static_codes [n, len(cfg.static)] or {name: [n]} (0 = unknown); covariate_history
        [n, L', len(cfg.covariates)]; future_covariates [n, H, len(cfg.future_covariates)].
        """
        x_hist, x_future, codes, level, h = self._prepare(
            units_history, static_codes, origin_week, horizon, covariate_history, future_covariates
        )
        if x_hist.shape[0] <= NUMPY_MAX_ROWS:  # a request's few series: numpy, no torch calls
            from training.models.forecaster_numpy import ensemble_of

            scaled = ensemble_of(self)(x_hist, x_future, codes, np.log(level).astype(np.float32))
            return units_of(scaled.mean(axis=0), level, h)
        args = (
            torch.from_numpy(x_hist),
            torch.from_numpy(np.ascontiguousarray(x_future)),
            torch.from_numpy(codes),
            torch.from_numpy(np.log(level).astype(np.float32)),
        )
        preds = [(net.eval() if net.training else net)(*args).numpy() for net in self.nets]
        return units_of(np.mean(preds, axis=0), level, h)

    def codes_for(self, panel: Panel) -> np.ndarray:
        """[S, len(cfg.static)] codes of `panel`'s series in this model's vocabularies: a panel
        coded with other vocabularies (e.g. the scored subset of the training series) is
        re-encoded through the raw values (unseen -> 0)."""
        codes = static_codes(panel, self.cfg.static)
        names = self.cfg.static
        if not names or not self.static_vocab:
            return codes
        if all(panel.static_vocab.get(n) == self.static_vocab.get(n) for n in names):
            return codes
        raw = {n: np.asarray(panel.static_vocab[n], dtype=object)[panel.static[n]] for n in names}
        return self.encode_static(raw)

    def predict(self, panel: Panel, origin_week: int, horizon: int | None = None) -> np.ndarray:
        """[S, H, 3] forecasts for every series of `panel` from the end of `origin_week`."""
        col = panel.week_index(origin_week)
        arrays = panel_arrays(panel, self.cfg, col)
        return self.predict_from_history(
            arrays["units_hist"],
            self.codes_for(panel),
            origin_week,
            horizon,
            covariate_history=arrays["covariate_hist"],
            future_covariates=arrays["future_covariates"],
        )

    def save(self, directory: str | Path) -> Path:
        """state_dict per ensemble member + forecaster.json (config, vocab sizes, quantiles)."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        for i, net in enumerate(self.nets):
            torch.save(net.state_dict(), d / f"member_{i}.pt")
        meta = {
            "config": self.cfg.model_dump(),
            "vocab_sizes": self.vocab_sizes,
            "static_vocab": self.static_vocab,
            "n_members": len(self.nets),
            "quantiles": list(QUANTILES),
            "max_lookback": MAX_LOOKBACK,
            "level": f"mean of the last {LEVEL_WEEKS} weeks + 1",
            "history": self.history,
        }
        (d / CONFIG_FILE).write_text(json.dumps(meta, indent=2))
        return d

    @classmethod
    def load(cls, directory: str | Path) -> LSTMForecaster:
        """Inverse of `save` (weights only: no pickled classes)."""
        d = Path(directory)
        meta = json.loads((d / CONFIG_FILE).read_text())
        model = cls(LSTMConfig.model_validate(meta["config"]), list(meta["vocab_sizes"]))
        for i in range(meta["n_members"]):
            net = LSTMNet(model.cfg, model.vocab_sizes)
            net.load_state_dict(torch.load(d / f"member_{i}.pt", weights_only=True))
            net.eval()
            model.nets.append(net)
        model.history = meta.get("history", [])
        model.static_vocab = meta.get("static_vocab", {})
        return model


def units_of(scaled: np.ndarray, level: np.ndarray, h: int) -> np.ndarray:
    """Scaled ensemble-mean quantiles [n, H, 3] → units over the first `h` weeks, >= 0 and
    sorted (p10 <= p50 <= p90)."""
    return np.sort(np.maximum((scaled * level[:, None, None])[:, :h], 0.0), axis=-1)


def vocab_sizes_for(panel: Panel, cfg: LSTMConfig) -> list[int]:
    """Embedding table sizes for `cfg.static` (at least 1 row: the unknown code)."""
    return [max(1, panel.vocab_sizes.get(n, 1)) for n in cfg.static]


def static_vocab_for(panel: Panel, cfg: LSTMConfig) -> dict[str, list[str]]:
    """The panel's vocabularies of the embedded attributes (saved with the model)."""
    return {n: list(panel.static_vocab.get(n, ["<unk>"])) for n in cfg.static}
