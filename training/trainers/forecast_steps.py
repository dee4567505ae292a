"""The LSTM forecaster's training steps: pure functions the plain loop (`fit`), Ray Train
workers and Ray Tune trials all run (training/trainers/forecaster.py), so they cannot drift.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from training.forecasting.config import LSTMConfig
from training.forecasting.panel import Panel
from training.models.forecast_windows import full_windows, split_windows
from training.models.forecaster import (
    LSTMForecaster,
    LSTMNet,
    pinball_loss,
    static_vocab_for,
    vocab_sizes_for,
)
from training.models.optim import adam


def make_optimizer(model: nn.Module, cfg: LSTMConfig) -> torch.optim.Optimizer:
    """Adam over the model's parameters (fused where supported, `cfg.fused_adam`)."""
    return adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=cfg.fused_adam)


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Iterator[dict[str, torch.Tensor]],
    loss: str = "pinball",
) -> tuple[float, int]:
    """One pass over `batches`; (mean loss, samples seen)."""
    model.train()
    total, n = 0.0, 0
    for b in batches:
        optimizer.zero_grad(set_to_none=True)
        pred = model(b["x_hist"], b["x_future"], b["static"], b["log_level"])
        value = pinball_loss(pred, b["y"], b["mask"], loss)
        value.backward()
        optimizer.step()
        total += float(value.detach()) * len(b["y"])
        n += len(b["y"])
    return total / max(n, 1), n


@torch.no_grad()
def evaluate(
    model: nn.Module, batches: Iterator[dict[str, torch.Tensor]], loss: str = "pinball"
) -> float:
    """Scaled pinball loss over the unmasked cells of `batches` (the early-stopping metric)."""
    model.eval()
    total, weight = 0.0, 0.0
    for b in batches:
        pred = model(b["x_hist"], b["x_future"], b["static"], b["log_level"])
        cells = float(b["mask"].sum())
        total += float(pinball_loss(pred, b["y"], b["mask"], loss)) * cells
        weight += cells
    return total / max(weight, 1.0)


def train_member(
    forecaster: LSTMForecaster,
    panel: Panel,
    train_end_week: int,
    seed: int,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    *,
    max_epochs: int | None = None,
    patience: int | None = None,
    refit: bool | None = None,
    rank: int = 0,
    world: int = 1,
    prepare: Callable[[nn.Module], nn.Module] | None = None,
) -> LSTMNet:
    """One ensemble member: early stopping on the validation window, then (refit) the same
    seed retrained on every week up to train_end for the early-stopped number of epochs.

    `rank`/`world` shard the training samples and `prepare` wraps the net (Ray Train DDP);
    `on_epoch` gets every epoch's record. Returns the unwrapped net.
    """
    cfg = forecaster.cfg
    max_epochs = max_epochs or cfg.max_epochs
    patience = patience or cfg.patience
    refit = cfg.refit if refit is None else refit
    train, val = split_windows(panel, cfg, train_end_week)
    train = train.shard(rank, world)
    net = forecaster.new_net(seed)
    model = prepare(net) if prepare else net
    opt = make_optimizer(model, cfg)
    best, best_epoch, best_state, stale = math.inf, 0, None, 0
    for epoch in range(1, max_epochs + 1):
        start = time.perf_counter()
        batches = train.batches(cfg.batch_size, shuffle=True, seed=seed * 1000 + epoch)
        train_loss, n = train_epoch(model, opt, batches, cfg.loss)
        seconds = time.perf_counter() - start
        # Plain pinball whatever the training loss, so configs with different losses compare.
        val_loss = evaluate(model, val.batches(4096, shuffle=False), "pinball")
        record = {
            "seed": seed,
            "epoch": epoch,
            "train_loss": train_loss,
            "val_loss": val_loss,
            "samples": n * world,
            "epoch_s": seconds,
            "samples_per_s": n * world / max(seconds, 1e-9),
        }
        forecaster.history.append(record)
        if on_epoch:
            on_epoch(record)
        if val_loss < best - 1e-5:
            best, best_epoch, stale = val_loss, epoch, 0
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        else:
            stale += 1
            if stale >= patience:
                break
    if not refit:
        net.load_state_dict(best_state)
        return net
    # The validation weeks are the most recent and most informative: the final model sees them.
    full = full_windows(panel, cfg, train_end_week).shard(rank, world)
    net = forecaster.new_net(seed)
    model = prepare(net) if prepare else net
    opt = make_optimizer(model, cfg)
    for epoch in range(1, best_epoch + 1):
        batches = full.batches(cfg.batch_size, shuffle=True, seed=seed * 1000 + epoch)
        train_epoch(model, opt, batches, cfg.loss)
    return net


def fit(
    panel: Panel,
    train_end_week: int,
    cfg: LSTMConfig,
    *,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> LSTMForecaster:
    """Train `cfg.n_seeds` members with Adam and early stopping; targets only <= train_end_week."""
    torch.set_num_threads(cfg.num_threads)
    forecaster = LSTMForecaster(
        cfg, vocab_sizes_for(panel, cfg), static_vocab=static_vocab_for(panel, cfg)
    )
    for i in range(cfg.n_seeds):
        forecaster.nets.append(
            train_member(forecaster, panel, train_end_week, cfg.seed + i, on_epoch)
        )
    for net in forecaster.nets:
        net.eval()
    return forecaster
