"""The LSTM forecaster's ensemble as plain numpy: the serving and batch-scoring path.

`LSTMNet` is two stacked `nn.LSTM`s and a dense head; at inference a request holds a handful of
series, where torch's per-module and per-call overhead (three members × two LSTM calls, the
embeddings and the head, each through `nn.Module.__call__`) costs more than the arithmetic.
`NumpyEnsemble` stacks the members' weights once and runs all members together: one batched
matmul per LSTM step for every member, the input projections of a whole layer in one matmul,
and the gates squashed by a single `tanh` (sigmoid(x) = (1 + tanh(x / 2)) / 2, with the
halving folded into the weights of the i, f and o gates). Same equations as torch's LSTM
(gate order i, f, g, o; b_ih + b_hh), float32 like the network; the answers agree with
`LSTMForecaster.predict_from_history` to float rounding (tests/unit/test_forecaster_numpy.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _layer(lstm: Any, prefix: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(W_ih^T [in, 4H], W_hh^T [H, 4H], bias [4H]) of one torch LSTM layer, with the rows of
    the sigmoid gates (i, f, o) halved so one tanh gives every gate."""
    w_ih = getattr(lstm, f"weight_ih_{prefix}").detach().numpy().astype(np.float32)
    w_hh = getattr(lstm, f"weight_hh_{prefix}").detach().numpy().astype(np.float32)
    bias = (
        getattr(lstm, f"bias_ih_{prefix}").detach().numpy()
        + getattr(lstm, f"bias_hh_{prefix}").detach().numpy()
    ).astype(np.float32)
    hidden = w_hh.shape[1]
    scale = np.full(4 * hidden, 0.5, np.float32)
    scale[2 * hidden : 3 * hidden] = 1.0  # the cell candidate g stays a plain tanh
    return (w_ih * scale[:, None]).T.copy(), (w_hh * scale[:, None]).T.copy(), bias * scale


def _run_lstm(
    x: np.ndarray, w_ih: np.ndarray, w_hh: np.ndarray, bias: np.ndarray, *, last_only: bool
) -> np.ndarray:
    """All members' LSTM over `x` [M, n, T, in] (or [n, T, in], shared by the members):
    hidden states [M, n, T, H], or only the last step's [M, n, H]."""
    m, hidden = w_hh.shape[0], w_hh.shape[1]
    if x.ndim == 3:  # the same input for every member: one matmul against all of them
        n, steps, width = x.shape
        flat = x.reshape(n * steps, width) @ w_ih.transpose(1, 0, 2).reshape(width, -1)
        gx = flat.reshape(n, steps, m, 4 * hidden).transpose(2, 0, 1, 3)
    else:
        n, steps = x.shape[1], x.shape[2]
        gx = np.matmul(x.reshape(m, n * steps, -1), w_ih).reshape(m, n, steps, 4 * hidden)
    gx = gx + bias[:, None, None, :]
    h = np.zeros((m, n, hidden), np.float32)
    c = np.zeros((m, n, hidden), np.float32)
    out = None if last_only else np.empty((m, n, steps, hidden), np.float32)
    for t in range(steps):
        z = np.tanh(gx[:, :, t] + np.matmul(h, w_hh))
        i, f, g, o = z[..., :hidden], z[..., hidden : 2 * hidden], z[..., 2 * hidden : 3 * hidden], z[..., 3 * hidden :]  # fmt: skip
        # sigmoid(x) = (1 + tanh(x/2)) / 2 for i, f, o (their pre-activations were halved)
        c = 0.5 * ((1.0 + f) * c + (1.0 + i) * g)
        h = 0.5 * (1.0 + o) * np.tanh(c)
        if out is not None:
            out[:, :, t] = h
    return h if out is None else out


class NumpyEnsemble:
    """Every member of an `LSTMForecaster` stacked into numpy arrays (built once per model)."""

    def __init__(self, nets: list[Any]) -> None:
        if not nets:
            raise ValueError("the forecaster has no trained members")
        stack = [(_layer(net.lstm1, "l0"), _layer(net.lstm2, "l0")) for net in nets]
        self.l1 = tuple(np.stack([s[0][k] for s in stack]) for k in range(3))
        self.l2 = tuple(np.stack([s[1][k] for s in stack]) for k in range(3))
        self.tables = [
            np.stack([net.embeddings[j].weight.detach().numpy() for net in nets]).astype(np.float32)
            for j in range(len(nets[0].embeddings))
        ]
        dense, out = [net.dense[0] for net in nets], [net.out for net in nets]
        self.w_dense = np.stack([d.weight.detach().numpy().T for d in dense]).astype(np.float32)
        self.b_dense = np.stack([d.bias.detach().numpy() for d in dense]).astype(np.float32)
        self.w_out = np.stack([o.weight.detach().numpy().T for o in out]).astype(np.float32)
        self.b_out = np.stack([o.bias.detach().numpy() for o in out]).astype(np.float32)
        self.horizon = int(nets[0].horizon)

    def __call__(
        self, x_hist: np.ndarray, x_future: np.ndarray, codes: np.ndarray, log_level: np.ndarray
    ) -> np.ndarray:
        """Scaled quantiles [M, n, H, 3] (p10 <= p50 <= p90) of every member."""
        z1 = _run_lstm(x_hist, *self.l1, last_only=False)
        last = _run_lstm(z1, *self.l2, last_only=True)  # [M, n, H2]
        m, n = last.shape[0], last.shape[1]
        shared = np.concatenate(
            [x_future.reshape(n, -1), log_level.reshape(n, 1)], axis=1, dtype=np.float32
        )
        head = [last, np.broadcast_to(shared, (m, *shared.shape))]
        head.extend(table[:, codes[:, j]] for j, table in enumerate(self.tables))
        hidden = np.maximum(
            np.matmul(np.concatenate(head, axis=2), self.w_dense) + self.b_dense[:, None], 0.0
        )
        o = (np.matmul(hidden, self.w_out) + self.b_out[:, None]).reshape(m, n, self.horizon, 3)
        mid = o[..., 1]
        spread_lo, spread_hi = np.logaddexp(0.0, o[..., 0]), np.logaddexp(0.0, o[..., 2])
        return np.stack([mid - spread_lo, mid, mid + spread_hi], axis=-1)


def ensemble_of(model: Any) -> NumpyEnsemble:
    """The numpy form of `model`'s members, built on first use and kept on the model; built
    anew when a member is replaced or its weights change in place (an optimizer step or
    `load_state_dict` bumps a parameter's version counter)."""
    key = [(id(net), net.out.bias._version) for net in model.nets]
    kept = model.__dict__.get("_numpy_ensemble")
    if kept is None or kept[0] != key:
        kept = model.__dict__["_numpy_ensemble"] = (key, NumpyEnsemble(model.nets))
    return kept[1]
