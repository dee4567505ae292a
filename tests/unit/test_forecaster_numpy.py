"""The LSTM forecaster's numpy path (a request's few series) answers as its torch path does,
and follows the weights when they change."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.unit.test_forecaster_model import small_cfg
from training.models import forecaster


def _model(n_members: int = 3):
    cfg = small_cfg(
        covariates=["display", "mailer", "discount_depth"],
        future_covariates=["display", "mailer"],
        static=["department", "store_id"],
        dropout=0.2,
    )
    model = forecaster.LSTMForecaster(cfg, [5, 9])
    model.nets = [model.new_net(seed).eval() for seed in range(n_members)]
    for net in model.nets:  # non-zero biases and a spread of weights, as after training
        with torch.no_grad():
            for p in net.parameters():
                p.add_(0.3 * torch.randn_like(p))
    return model


def _inputs(n: int, seed: int = 0) -> tuple:
    rng = np.random.default_rng(seed)
    units = rng.poisson(rng.uniform(0.5, 30, (n, 1)), size=(n, 16)).astype(np.float32)
    codes = np.column_stack([rng.integers(0, 6, n), rng.integers(0, 11, n)])  # some unknown
    past = rng.integers(0, 2, (n, 16, 3)).astype(np.float32)
    past[:, :, 2] = rng.uniform(0, 0.4, (n, 16))
    future = rng.integers(0, 2, (n, 8, 2)).astype(np.float32)
    return units, codes, 47, 8, past, future


def _both(model, inputs, monkeypatch) -> tuple[np.ndarray, np.ndarray]:
    monkeypatch.setattr(forecaster, "NUMPY_MAX_ROWS", 0)
    torch_answer = model.predict_from_history(*inputs)
    monkeypatch.setattr(forecaster, "NUMPY_MAX_ROWS", 10**6)
    return torch_answer, model.predict_from_history(*inputs)


@pytest.mark.parametrize("n", [1, 5, 40])
def test_numpy_path_answers_as_torch(n: int, monkeypatch) -> None:
    model = _model()
    torch_answer, numpy_answer = _both(model, _inputs(n, seed=n), monkeypatch)
    assert numpy_answer.shape == torch_answer.shape == (n, 8, 3)
    np.testing.assert_allclose(numpy_answer, torch_answer, rtol=1e-4, atol=1e-4)
    assert (np.diff(numpy_answer, axis=-1) >= 0).all() and (numpy_answer >= 0).all()


def test_numpy_path_follows_changed_weights(monkeypatch) -> None:
    model = _model(n_members=1)
    inputs = _inputs(4)
    before = _both(model, inputs, monkeypatch)[1]
    with torch.no_grad():  # an optimizer step updates the weights in place
        for p in model.nets[0].parameters():
            p.mul_(1.5)
    torch_answer, numpy_answer = _both(model, inputs, monkeypatch)
    assert not np.allclose(numpy_answer, before)
    np.testing.assert_allclose(numpy_answer, torch_answer, rtol=1e-4, atol=1e-4)
