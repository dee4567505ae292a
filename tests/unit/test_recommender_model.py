"""NeuMF: training steps, the numpy serving path, negatives, config and the Ray trainer."""

from __future__ import annotations

import tempfile

import numpy as np
import pydantic
import pytest
import scipy.sparse as sp
import torch

from training.models.ncf_torch import export, make_model
from training.models.recommender import (
    NCFConfig,
    NCFWeights,
    ncf_scores,
    ncf_scores_all,
    sample_negatives,
    train_pairs,
)
from training.recommending.config import load_recommender_config
from training.recommending.data import RecData
from training.trainers.recommender import fit_ncf

SMALL = NCFConfig(gmf_dim=8, mlp_dim=8, mlp_layers=[16, 8], batch_size=64, epochs=1)


def _recdata(
    counts: np.ndarray, days: np.ndarray, targets: list[np.ndarray], n_neg: int = 5, seed: int = 0
) -> RecData:
    """A hand-built RecData: train counts and last-bought days [U, I]; held-out targets per user."""
    n_users, n_items = counts.shape
    rng = np.random.default_rng(seed)
    eval_users = np.arange(len(targets))
    positives = np.array([t[0] for t in targets])
    negatives = []
    for u, t in enumerate(targets):
        pool = np.flatnonzero((counts[u] == 0) & ~np.isin(np.arange(n_items), t))
        negatives.append(rng.choice(pool, n_neg, replace=False))
    return RecData(
        customer_ids=np.arange(100, 100 + n_users, dtype=np.int64),
        product_ids=np.arange(1000, 1000 + n_items, dtype=np.int64),
        train=sp.csr_matrix(counts.astype(np.float32)),
        last_bought_days=sp.csr_matrix(np.where(counts > 0, days, 0).astype(np.float32)),
        n_baskets=np.maximum(counts.max(axis=1), 1).astype(np.int64) * 2,
        department=np.arange(n_items, dtype=np.int64) % 3 + 1,
        product_category=np.arange(n_items, dtype=np.int64) % 6 + 1,
        brand=np.ones(n_items, dtype=np.int64),
        eval_users=eval_users,
        positives=positives,
        negatives=np.stack(negatives),
        tiebreak=rng.random((len(targets), n_neg + 1)),
        targets=targets,
        is_new=counts[eval_users, positives] == 0,
        split_time=np.datetime64("2024-01-01"),
        skipped={},
    )


def _clustered(n_users: int = 40, n_items: int = 40, seed: int = 0) -> tuple[RecData, list]:
    """Users 0..n/2 buy from items 0..n/2, the others from the rest; 6 of 20 held out each."""
    rng = np.random.default_rng(seed)
    counts = np.zeros((n_users, n_items))
    held = []
    half = n_items // 2
    for u in range(n_users):
        cluster = np.arange(half) + (0 if u < n_users // 2 else half)
        perm = rng.permutation(cluster)
        counts[u, perm[:14]] = rng.integers(1, 4, 14)
        held.append(perm[14:])
    return _recdata(counts, np.full(counts.shape, 3.0), held), held


def test_numpy_scores_match_torch_and_survive_save_load(tmp_path) -> None:
    model = make_model(SMALL, 7, 11)
    users = np.array([0, 3, 6])
    items = np.array([[0, 5, 10, 2], [1, 1, 9, 4], [7, 8, 3, 0]])
    with torch.no_grad():
        expected = model(
            torch.from_numpy(np.repeat(users, 4)), torch.from_numpy(items.ravel())
        ).numpy()
    weights = export(model)
    np.testing.assert_allclose(ncf_scores(weights, users, items).ravel(), expected, atol=1e-5)
    weights.save(tmp_path / "m")
    loaded = NCFWeights.load(tmp_path / "m")
    full = ncf_scores_all(loaded, users, chunk=2)
    np.testing.assert_allclose(full[np.arange(3)[:, None], items].ravel(), expected, atol=1e-5)


def test_negatives_are_never_items_the_user_bought() -> None:
    data, _ = _clustered()
    pairs = train_pairs(data.train)
    neg = sample_negatives(pairs, np.arange(data.n_users), 50, np.random.default_rng(1))
    bought = data.train.toarray() > 0
    assert not bought[np.arange(data.n_users)[:, None], neg].any()


def test_ncf_learns_cluster_preference_on_held_out_items() -> None:
    data, held = _clustered()
    cfg = SMALL.model_copy(update={"epochs": 25, "lr": 0.01, "n_neg": 4})
    history: list[dict] = []
    weights = fit_ncf(data, cfg, validate=True, on_epoch=history.append)
    scores = ncf_scores_all(weights, np.arange(data.n_users))
    wins = []
    for u, items in enumerate(held):
        other = np.arange(20, 40) if u < 20 else np.arange(20)
        wins.append(scores[u, items].mean() > scores[u, other].mean())
    assert np.mean(wins) >= 0.9
    assert "val_hr10" in history[-1] and len(history) == 25


def test_config_rejects_unknown_keys_and_loads_profiles(tmp_path) -> None:
    bad = tmp_path / "rec.yaml"
    bad.write_text("ncf:\n  gmf_dim: 8\n  hidden: 3\n")
    with pytest.raises(pydantic.ValidationError, match="hidden"):
        load_recommender_config(bad)
    quick = load_recommender_config(profile="quick")
    assert quick.ncf.gmf_dim < load_recommender_config().ncf.gmf_dim
    assert quick.num_workers == 1


@pytest.fixture(scope="module")
def local_ray():
    import ray

    tmp = tempfile.mkdtemp(prefix="rp-rec-ray-", dir="/tmp")
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        _temp_dir=tmp,
        logging_level="ERROR",
        log_to_driver=False,
    )
    yield
    ray.shutdown()


@pytest.mark.slow
def test_build_trainer_runs_one_epoch_and_checkpoints(local_ray, tmp_path) -> None:
    from training.trainers.recommender import build_trainer, load_checkpoint

    data, _ = _clustered()
    cfg = load_recommender_config(profile="quick")
    result = build_trainer(cfg, data, epochs=1, validate=True, storage_path=tmp_path).fit()
    assert result.error is None
    assert result.metrics["epoch"] == 1 and 0.0 <= result.metrics["val_hr10"] <= 1.0
    weights = load_checkpoint(result)
    assert weights.item_gmf.shape == (data.n_items, cfg.ncf.gmf_dim)


@pytest.mark.slow
def test_tune_selects_a_config_from_the_space_on_validation(local_ray, tmp_path) -> None:
    from training.trainers.recommender import tune_ncf

    data, _ = _clustered()
    cfg = load_recommender_config(profile="quick")
    result = tune_ncf(data, cfg, num_samples=2, storage_path=tmp_path)
    assert len(result.trials) == 2 and all(t["error"] is None for t in result.trials)
    assert result.best_config.lr in cfg.tune.lr and result.best_config.n_neg in cfg.tune.n_neg
    assert 1 <= result.best_config.epochs <= cfg.tune.max_epochs
    assert result.best_val_hr10 == max(t["best_val_hr10"] for t in result.trials)


def test_serving_and_scoring_load_the_recommender_without_torch() -> None:
    """A Ray Data scoring worker or a Serve replica loads and scores NCFWeights in numpy; importing
    torch there cost its first block ~2 s. Checked in a fresh interpreter."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import training.models.recommender, training.recommending.hybrid\n"
        "import training.recommender_run, training.scoring\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr


def test_the_train_worker_unpickles_its_loop_without_scikit_learn() -> None:
    """A Ray Train worker imports `training.trainers.recommender` to unpickle its loop before the
    first step: through `training.models`' package imports that pulled in the segmenter's
    scikit-learn, 3 s of every run's fixed cost here (bench/train_overhead.py recommender).
    Checked in a fresh interpreter; the package's names still resolve."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import training.trainers.recommender\n"
        "print('sklearn' in sys.modules)\n"
        "from training.models import CustomerSegmenter\n"
        "print(CustomerSegmenter.__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "CustomerSegmenter"], out.stderr
