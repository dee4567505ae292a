"""The LSTM forecaster under a real TorchTrainer (1 worker) on a tiny panel, 2 epochs.

Uses the session's `ray_session` from tests/conftest.py (one Ray per test session).
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.unit.test_forecaster_model import COV, FIRST, LAST, STATIC, small_cfg, toy_frame
from training.forecasting.config import ForecasterConfig
from training.forecasting.panel import panel_from_weekly

pytestmark = pytest.mark.integration


def test_torch_trainer_reports_per_epoch_and_checkpoints_a_loadable_model(ray_session, tmp_path):
    from training.trainers.forecaster import build_trainer, load_checkpoint

    panel = panel_from_weekly(toy_frame(12), weeks=(FIRST, LAST), covariates=COV, static=STATIC)
    lstm = small_cfg(max_epochs=2, hidden1=16, hidden2=8, refit=True, n_seeds=1)
    cfg = ForecasterConfig(num_workers=1, lstm=lstm)

    from ray.train import UserCallback

    class Collect(UserCallback):  # runs in the controller: write where the test can read
        def after_report(self, run_context, metrics, checkpoint):
            with open(tmp_path / "reports.txt", "a") as fh:
                m = metrics[0]
                fh.write(
                    f"{m.get('epoch', m.get('phase'))} {m['val_loss']} {checkpoint is not None}\n"
                )

    trainer = build_trainer(cfg, panel, 53, storage_path=tmp_path / "ray", callbacks=[Collect()])
    result = trainer.fit()
    seen = [line.split() for line in (tmp_path / "reports.txt").read_text().splitlines()]
    # one report per epoch, then the final one: the only one carrying a checkpoint
    assert [s[0] for s in seen] == ["1", "2", "final"]
    assert [s[2] for s in seen] == ["False", "False", "True"]
    assert result.metrics["phase"] == "final"
    assert result.metrics["val_loss"] == pytest.approx(min(float(s[1]) for s in seen[:2]))

    model = load_checkpoint(result)
    q = model.predict(panel, 53)
    assert q.shape == (panel.n_series, 8, 3)
    assert (q >= 0).all() and (np.diff(q, axis=-1) >= 0).all()
