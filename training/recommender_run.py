"""One recommender training run on a tenant's warehouse: recsys_cj on the tenant's baskets.

Judging (same run, same splits): popularity, repeat purchase, item-kNN and ALS beside NCF alone
and the hybrid (NCF blended with the household's repeat signal, content and co-purchase), on
test (each household's last basket held out) and inner validation (the penultimate one). The
blend is fitted on inner validation only, so the hybrid's inner row is in-sample and only its
test row judges it. The served model is NeuMF trained with Ray Train's `TorchTrainer` on every
basket, wrapped in the hybrid with the blend chosen on inner validation, plus per-household
candidate sets and the catalog's product embeddings (the serving artefacts).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

FALLBACK_TOP = 100  # products kept per store for households without history


@dataclass
class RecommenderBundle:
    """The served recommender: hybrid scorer, candidates, product facts, store popularity."""

    scorer: Any  # training.recommending.hybrid.HybridScorer over every basket
    candidate_items: np.ndarray  # [U, N] item indices per household, best first
    candidate_scores: np.ndarray  # [U, N]
    product_info: dict[str, list[str | None]]  # department, product_category, brand, product_type
    store_popular: dict[str, list[int]]  # store -> item indices, most buyers first
    window: dict[str, Any] = field(default_factory=dict)
    # Business rules of the served graph (absent in bundles trained before they existed):
    home_store: list[str | None] | None = None  # per household index: store of most baskets
    store_items: dict[str, np.ndarray] | None = None  # store -> sorted item indices sold there

    KIND = "recommender"

    @property
    def customer_ids(self) -> np.ndarray:
        return self.scorer.data.customer_ids

    @property
    def product_ids(self) -> np.ndarray:
        return self.scorer.data.product_ids

    def popular(self, store_id: str | None) -> list[int]:
        """Item indices most bought at `store_id` (the whole catalog's when unknown)."""
        if store_id is not None and store_id in self.store_popular:
            return self.store_popular[store_id]
        return list(np.argsort(-self.scorer.pop, kind="stable")[:FALLBACK_TOP])

    def product_embeddings(self) -> np.ndarray | None:
        """[I, d] GMF item embeddings of the served NCF (similar-product lookups, analytics)."""
        return None if self.scorer.ncf is None else self.scorer.ncf.item_gmf

    def save(self, folder: Path) -> None:
        import json

        from training.bundles import write_meta

        self.scorer.save(folder / "hybrid")
        np.savez_compressed(
            folder / "candidates.npz", items=self.candidate_items, scores=self.candidate_scores
        )
        (folder / "catalog.json").write_text(
            json.dumps({"product_info": self.product_info, "store_popular": self.store_popular,
                        "home_store": self.home_store})
        )  # fmt: skip
        if self.store_items is not None:
            np.savez_compressed(folder / "assortment.npz", **self.store_items)
        write_meta(
            folder, kind=self.KIND, loader="training.recommender_run:RecommenderBundle",
            window=self.window,
        )  # fmt: skip

    @classmethod
    def load(cls, folder: Path) -> RecommenderBundle:
        import json

        from training.bundles import read_meta
        from training.recommending.hybrid import HybridScorer

        with np.load(folder / "candidates.npz") as z:
            items, scores = z["items"], z["scores"]
        catalog = json.loads((folder / "catalog.json").read_text())
        store_items = None
        if (folder / "assortment.npz").exists():
            with np.load(folder / "assortment.npz") as z:
                store_items = {store: z[store] for store in z.files}
        return cls(
            HybridScorer.load(folder / "hybrid"), items, scores, catalog["product_info"],
            catalog["store_popular"], read_meta(folder).get("window", {}),
            catalog.get("home_store"), store_items,
        )  # fmt: skip

    def in_assortment(self, user: int, items: np.ndarray) -> np.ndarray | None:
        """Mask of `items` sold at the household's usual store (None: rule unavailable)."""
        if self.home_store is None or self.store_items is None or user < 0:
            return None
        sold = self.store_items.get(self.home_store[user] or "")
        if sold is None:
            return None
        return np.isin(items, sold, assume_unique=False)

    @cached_property
    def names(self) -> dict[int, str]:
        """product id -> display name, built once per loaded version."""
        return {int(pid): _display_name(self, i) for i, pid in enumerate(self.product_ids)}

    def predict_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """pyfunc: rows of customer_id → their top-10 product ids and scores."""
        users = self.scorer.data.user_index(frame["customer_id"].to_numpy(np.int64))
        out = []
        for cid, u in zip(frame["customer_id"], users, strict=True):
            items = self.candidate_items[u, :10] if u >= 0 else self.popular(None)[:10]
            out += [{"customer_id": cid, "rank": r + 1, "product_id": int(self.product_ids[i])}
                    for r, i in enumerate(items)]  # fmt: skip
        return pd.DataFrame(out)


@dataclass
class RecommenderRun:
    table: dict[str, Any]
    window: dict[str, Any]
    bundle: RecommenderBundle
    metric: float
    tuned: dict[str, Any] | None = None
    run_id: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)


def _product_info(products: pd.DataFrame, product_ids: np.ndarray) -> dict[str, list]:
    table = products.drop_duplicates("product_id").set_index("product_id").reindex(product_ids)
    cols = ("department", "product_category", "brand", "product_type")
    return {c: [None if pd.isna(v) else str(v) for v in table[c]] for c in cols}


def _display_name(bundle: RecommenderBundle, item: int) -> str:
    info = bundle.product_info
    kind = info["product_type"][item] or info["product_category"][item]
    pid = int(bundle.product_ids[item])
    return f"{kind.title()} (product {pid})" if kind else f"product {pid}"


def _assortment(
    items: pd.DataFrame, product_ids: np.ndarray, customer_ids: np.ndarray
) -> tuple[list[str | None], dict[str, np.ndarray]]:
    """(usual store per household, catalog items each store sold): the served graph's
    "in assortment at the customer's usual store" rule."""
    lines = items[items["product_id"].isin(product_ids)]
    sold = {
        str(store): np.unique(np.searchsorted(product_ids, g.to_numpy(np.int64)))
        for store, g in lines.groupby("store_id")["product_id"]
    }
    visits = items.groupby(["customer_id", "store_id"])["transaction_id"].nunique().reset_index()
    visits = visits.sort_values(["customer_id", "transaction_id", "store_id"],
                                ascending=[True, False, True])  # fmt: skip
    home = visits.drop_duplicates("customer_id").set_index("customer_id")["store_id"]
    home = home.reindex(customer_ids)
    return [None if pd.isna(s) else str(s) for s in home], sold


def _store_popular(items: pd.DataFrame, product_ids: np.ndarray) -> dict[str, list[int]]:
    """Per store, catalog items by distinct buyers (the fallback for households without
    history); ties broken by product id."""
    lines = items[items["product_id"].isin(product_ids)]
    buyers = lines.groupby(["store_id", "product_id"])["customer_id"].nunique().reset_index()
    buyers = buyers.sort_values(["store_id", "customer_id", "product_id"],
                                ascending=[True, False, True])  # fmt: skip
    out = {}
    for store, group in buyers.groupby("store_id", sort=False):
        pids = group["product_id"].to_numpy(np.int64)[:FALLBACK_TOP]
        out[str(store)] = np.searchsorted(product_ids, pids).tolist()
    return out


def judge(
    items: pd.DataFrame,
    products: pd.DataFrame,
    cfg: Any,
    *,
    tune: bool = False,
    on_step: Callable[[str], None] | None = None,
) -> tuple[dict[str, Any], Any, dict[str, Any], Any, dict[str, Any] | None, dict[str, float]]:
    """recsys_cj on line items: every baseline, NCF alone and the hybrid on test and inner
    validation. Returns (table, hybrid fit, splits, cfg after tuning, tuned or None, seconds)."""
    from core.errors import ValidationFailed
    from training.recommending.baselines import BASELINES
    from training.recommending.data import protocol_split
    from training.recommending.evaluate import evaluate_split, split_summary
    from training.recommending.hybrid import Blend, HybridScorer
    from training.trainers.recommender import fit_hybrid, tune_ncf

    step = on_step or (lambda text: None)
    seconds: dict[str, float] = {}
    t = time.perf_counter()
    splits = {
        "test": protocol_split(items, products),
        "inner_validation": protocol_split(items, products, inner=True),
    }
    for name, data in splits.items():
        if len(data.eval_users) < 10:
            raise ValidationFailed(
                f"only {len(data.eval_users)} households can be judged on the {name} split"
                " (need 10 with a held-out basket of catalog products)",
                details={"skipped": data.skipped},
            )
    seconds["data"] = round(time.perf_counter() - t, 1)
    table: dict[str, Any] = {"splits": {n: split_summary(d) for n, d in splits.items()}}
    for name, data in splits.items():
        step(f"baselines on {name}")
        table[name] = evaluate_split(data, BASELINES, name)
    tuned = None
    if tune:
        step("Ray Tune (ASHA) over NCF on inner validation")
        t = time.perf_counter()
        result = tune_ncf(splits["inner_validation"], cfg)
        cfg = cfg.model_copy(update={"ncf": result.best_config})
        tuned = {"best": result.best_config.model_dump(), "val_hr10": result.best_val_hr10}
        seconds["tune"] = round(time.perf_counter() - t, 1)
    step("NCF and the hybrid blend (blend fitted on inner validation)")
    t = time.perf_counter()
    fit = fit_hybrid(splits["inner_validation"], splits["test"], cfg)
    seconds["fit_hybrid"] = round(time.perf_counter() - t, 1)
    ncf_only = HybridScorer(fit.scorer.ncf, splits["test"], Blend.ncf_only(), co=fit.scorer.co)
    inner_ncf = HybridScorer(
        fit.inner_scorer.ncf, splits["inner_validation"], Blend.ncf_only(), co=fit.inner_scorer.co
    )
    for name, scorer in (("test", ncf_only), ("inner_validation", inner_ncf)):
        table[name].update(evaluate_split(splits[name], {"ncf": lambda d, s=scorer: s}, name))
    for name, scorer in (("test", fit.scorer), ("inner_validation", fit.inner_scorer)):
        table[name].update(evaluate_split(splits[name], {"hybrid": lambda d, s=scorer: s}, name))
    return table, fit, splits, cfg, tuned, seconds


def run_recommender(
    *,
    tenant: str,
    cfg: Any,
    tune: bool = False,
    on_step: Callable[[str], None] | None = None,
) -> RecommenderRun:
    """Judge every baseline, NCF and the hybrid on the tenant's baskets; train the served one."""
    import ray

    from core.errors import ValidationFailed
    from training.datasets import warehouse_line_items
    from training.recommending.candidates import candidates
    from training.recommending.data import protocol_split
    from training.recommending.hybrid import HybridScorer, fit_als
    from training.trainers.recommender import build_trainer, load_checkpoint

    step = on_step or (lambda text: None)
    step(f"loading the baskets of tenant {tenant!r}")
    items, products = warehouse_line_items(tenant)
    try:
        table, fit, splits, cfg, tuned, seconds = judge(items, products, cfg, tune=tune,
                                                        on_step=step)  # fmt: skip
    except ValidationFailed as exc:
        raise ValidationFailed(f"tenant {tenant!r}: {exc.message}", details=exc.details) from exc
    step(f"training the served NCF on every basket with Ray Train ({cfg.num_workers} worker(s))")
    t = time.perf_counter()
    full = protocol_split(items, products, holdout=False)
    weights = load_checkpoint(build_trainer(cfg, ray.put(full), name=f"recommender-{tenant}").fit())
    seconds["train_served"] = round(time.perf_counter() - t, 1)
    step("precomputing candidate sets for every household")
    h = cfg.hybrid
    served = HybridScorer(weights, full, fit.scorer.blend, n_neighbours=h.n_neighbours,
                          n_user_neighbours=h.n_user_neighbours, pool=h.pool,
                          als=fit_als(full.train, h.als))  # fmt: skip
    cands = candidates(served, full.customer_ids, n=h.n_candidates)
    window = {
        "test_households": int(len(splits["test"].eval_users)),
        "catalog": int(full.n_items),
        "households": int(full.n_users),
        "split_time": str(splits["test"].split_time),
        "served_trained_to": str(full.split_time),
        "feature_service": "recommender_v1",
    }
    home, sold = _assortment(items, full.product_ids, full.customer_ids)
    bundle = RecommenderBundle(
        served, cands.items, cands.scores, _product_info(products, full.product_ids),
        _store_popular(items, full.product_ids), window, home, sold,
    )  # fmt: skip
    metric = table["test"]["hybrid"]["NDCG@10"]
    return RecommenderRun(table, window, bundle, metric, tuned=tuned, seconds=seconds)


def log_run(run: RecommenderRun, cfg: Any, *, tenant: str) -> str:
    """One MLflow run: NCF config, the table beside the baselines, a chart, and the bundle."""
    import mlflow

    from training.bundles import log_bundle
    from training.tracking import configure_mlflow

    configure_mlflow(cfg.experiment)
    tags = {"model": "recommender", "tenant": tenant}
    with mlflow.start_run(run_name="recommender-hybrid", tags=tags):
        mlflow.log_params({**{f"ncf.{k}": v for k, v in cfg.ncf.model_dump().items()},
                           "num_workers": cfg.num_workers, "hybrid.blend": cfg.hybrid.blend,
                           **run.window})  # fmt: skip
        for split in ("test", "inner_validation"):
            for name, row in run.table[split].items():
                mlflow.log_metrics({f"{split}.{name}.{k}".replace("@", "_at_"): float(v)
                                    for k, v in row.items() if isinstance(v, float | int)})  # fmt: skip
        mlflow.log_metric("ndcg_at_10", run.metric)
        mlflow.log_dict({"table": run.table, "window": run.window, "tuned": run.tuned,
                         "seconds": run.seconds}, "model_card.json")  # fmt: skip
        mlflow.log_figure(_chart(run.table["test"]), "recommenders_test.png")
        log_bundle(run.bundle.save, requirements=["torch", "scipy", "numpy", "lightgbm", "mlflow"])
        run.run_id = mlflow.active_run().info.run_id
    return run.run_id


def _chart(test: dict[str, dict[str, float]]):
    from matplotlib.figure import Figure

    names = list(test)
    metrics = ("HR@10", "NDCG@10", "HR@10_new", "Recall@20")
    fig = Figure(figsize=(10, 4.5), dpi=100)
    ax = fig.subplots()
    x = np.arange(len(names))
    for i, m in enumerate(metrics):
        ax.bar(x + (i - 1.5) * 0.2, [test[n][m] for n in names], 0.2, label=m)
    ax.set_xticks(x, names, fontsize=8)
    ax.legend(fontsize=8)
    ax.set_title("Recommenders on each household's last basket (recsys_cj, test)")
    fig.tight_layout()
    return fig
