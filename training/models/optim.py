"""Optimizers shared by the torch models."""

from __future__ import annotations

from collections.abc import Iterable

import torch


def adam(
    params: Iterable[torch.nn.Parameter], *, lr: float, weight_decay: float, fused: bool
) -> torch.optim.Optimizer:
    """Adam, fused where this torch build supports it on the parameters' device (DESIGN §6:
    about 2x per step on CPU)."""
    params = list(params)
    if fused:
        try:
            return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True)
        except (RuntimeError, TypeError):  # pragma: no cover - builds without fused CPU Adam
            pass
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
