"""Price elasticity per product category, trained on a tenant's warehouse.

Data: merchandise line items (PROTOCOLS common filter) with quantity > 0, aggregated per
(store, product, week) into units and the shelf price per unit = (sales_value + retail_disc +
coupon_match_disc) / quantity (DESIGN §4), averaged over the week's units. Only weeks with sales
exist in line-item data, so the panel has no zero-unit weeks: the elasticity describes how much
is bought in weeks a product sells, not whether it sells at all.

Per category, `training.models.elasticity.fit_elasticity` with entity (store x product by
default) and week fixed effects, standard errors clustered by product. A category whose prices
moved too little (config `min_price_changes`, `min_products_changing`, `min_obs`) is reported as
"insufficient variation", never given a number.

Judged in the same run on the tenant's last `holdout_weeks` weeks: elasticities fitted on the
weeks before predict each held-out row's log units as the entity's training mean plus
elasticity x (log price - the entity's training mean log price); the baseline is the entity's
training mean alone (no price effect). Both are scored by RMSE on the same rows. The served
elasticities are then refitted on every week.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field

from training.models.elasticity import fit_elasticity, price_changes
from training.models.pricing import ESTIMATED, INSUFFICIENT, PricingBundle

PRICING_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "pricing.yaml"


class PricingConfig(BaseModel):
    """Estimator and judging settings (configs/pricing.yaml)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    price: Literal["shelf", "paid"] = "shelf"
    entity: Literal["store_product", "product"] = "store_product"
    cluster: Literal["product", "entity"] = "product"
    week_effects: bool = True
    level: float = Field(0.95, gt=0.5, lt=1.0)
    min_obs: int = Field(40, ge=3)
    min_price_changes: int = Field(20, ge=1)
    min_products_changing: int = Field(3, ge=2)
    change_tol: float = Field(0.02, ge=0.0)
    holdout_weeks: int = Field(8, ge=1)
    significance: float = Field(0.05, gt=0.0, lt=1.0)
    plot_categories: int = Field(30, ge=1)


def load_pricing_config(path: str | Path | None = None, **overrides: Any) -> PricingConfig:
    path = Path(path) if path is not None else PRICING_CONFIG
    raw = yaml.safe_load(path.read_text()) or {}
    raw.update({k: v for k, v in overrides.items() if v is not None})
    return PricingConfig.model_validate(raw)


def weekly_panel(items: pd.DataFrame, products: pd.DataFrame, cfg: PricingConfig) -> pd.DataFrame:
    """One row per (store, product, week) with sales: units, shelf price, category, entity."""
    from training.datasets import merchandise

    items = merchandise(items, products)
    items = items[(items["quantity"] > 0) & (items["week"] > 0)]
    shelf = items["sales_value"]
    if cfg.price == "shelf":
        shelf = shelf + items["retail_disc"] + items["coupon_match_disc"]
    frame = items.assign(shelf=shelf)
    panel = frame.groupby(["store_id", "product_id", "week"], as_index=False).agg(
        units=("quantity", "sum"), shelf=("shelf", "sum")
    )
    panel["price"] = panel["shelf"] / panel["units"]
    panel = panel[panel["price"] > 0.0]
    cats = products.set_index("product_id")[["product_category", "department"]]
    panel = panel.join(cats, on="product_id")
    panel = panel[panel["product_category"].notna()]
    keys = ["store_id", "product_id"] if cfg.entity == "store_product" else ["product_id"]
    panel["entity"] = panel.groupby(keys, sort=False).ngroup()
    panel["log_units"] = np.log(panel["units"].astype(np.float64))
    panel["log_price"] = np.log(panel["price"].astype(np.float64))
    return panel.reset_index(drop=True)


def _usable(panel: pd.DataFrame) -> pd.DataFrame:
    """Rows of entities seen in at least two weeks (one week says nothing within an entity)."""
    sizes = panel.groupby("entity")["week"].transform("size")
    return panel[sizes >= 2]


def fit_categories(panel: pd.DataFrame, cfg: PricingConfig) -> pd.DataFrame:
    """One row per category: status, elasticity, CI, counts, fit quality."""
    from threadpoolctl import threadpool_limits

    # Small (<= 60 x 60) solves: a multi-threaded BLAS on a busy 2-core machine spent ~40x
    # longer spinning its threads than computing (measured: pinv 61 ms vs 1.5 ms).
    with threadpool_limits(1):
        return _fit_categories(panel, cfg)


def _fit_categories(panel: pd.DataFrame, cfg: PricingConfig) -> pd.DataFrame:
    rows = []
    usable = _usable(panel)
    moved = price_changes(
        usable["log_price"].to_numpy(), usable["entity"].to_numpy(), usable["week"].to_numpy(),
        cfg.change_tol,
    )  # fmt: skip
    usable = usable.assign(moved=moved)
    for category, g in usable.groupby("product_category", sort=True):
        n_changes = int(g["moved"].sum())
        n_changing = int(g.loc[g["moved"] > 0, "product_id"].nunique())
        row: dict[str, Any] = {
            "category": category,
            "department": g["department"].mode().iat[0],
            "n_obs": len(g),
            "n_products": int(g["product_id"].nunique()),
            "n_price_changes": n_changes,
            "n_products_changing": n_changing,
        }
        enough = (
            len(g) >= cfg.min_obs
            and n_changes >= cfg.min_price_changes
            and n_changing >= cfg.min_products_changing
        )
        fit = None
        if enough:
            cluster = g["product_id"] if cfg.cluster == "product" else g["entity"]
            try:
                fit = fit_elasticity(
                    g["log_units"].to_numpy(), g["log_price"].to_numpy(), g["entity"].to_numpy(),
                    g["week"].to_numpy(), cluster.to_numpy(), week_effects=cfg.week_effects,
                    level=cfg.level,
                )  # fmt: skip
            except ValueError:
                fit = None
        if fit is None or not np.isfinite(fit.se) or fit.se == 0:
            row.update(status=INSUFFICIENT)
        else:
            row.update(status=ESTIMATED, **fit.as_dict())
        rows.append(row)
    for category in sorted(set(panel["product_category"]) - set(usable["product_category"])):
        g = panel[panel["product_category"] == category]
        rows.append(
            {"category": category, "department": g["department"].mode().iat[0], "n_obs": 0,
             "n_products": int(g["product_id"].nunique()), "n_price_changes": 0,
             "n_products_changing": 0, "status": INSUFFICIENT}
        )  # fmt: skip
    cols = ["elasticity", "se", "ci_low", "ci_high", "p_value", "n_entities", "n_clusters",
            "r2_within"]  # fmt: skip
    table = pd.DataFrame(rows)
    for c in cols:
        if c not in table:
            table[c] = np.nan
    return table.set_index("category").sort_index()


def judge_holdout(panel: pd.DataFrame, cfg: PricingConfig) -> tuple[dict[str, Any], pd.DataFrame]:
    """Fit on the weeks before the last `holdout_weeks`, predict those weeks' log units; the
    baseline is the entity's training mean. Returns (table, the train-window fits)."""
    last = int(panel["week"].max())
    cutoff = last - cfg.holdout_weeks
    train, test = panel[panel["week"] <= cutoff], panel[panel["week"] > cutoff]
    fits = fit_categories(train, cfg)
    means = train.groupby("entity")[["log_units", "log_price"]].mean()
    test = test.join(means, on="entity", rsuffix="_train").dropna(subset=["log_units_train"])
    beta = fits["elasticity"].where(fits["status"] == ESTIMATED).fillna(0.0)
    b = test["product_category"].map(beta).fillna(0.0).to_numpy()
    base = test["log_units_train"].to_numpy()
    model = base + b * (test["log_price"] - test["log_price_train"]).to_numpy()
    y = test["log_units"].to_numpy()
    covered = b != 0

    def rmse(pred: np.ndarray, mask: np.ndarray) -> float | None:
        return float(np.sqrt(np.mean((y[mask] - pred[mask]) ** 2))) if mask.any() else None

    everything = np.ones(len(y), bool)
    table = {
        "train_weeks": [int(panel["week"].min()), cutoff],
        "test_weeks": [cutoff + 1, last],
        "rows": int(len(y)),
        "rows_with_elasticity": int(covered.sum()),
        "rmse_model": rmse(model, everything),
        "rmse_baseline": rmse(base, everything),
        "rmse_model_estimated": rmse(model, covered),
        "rmse_baseline_estimated": rmse(base, covered),
        "categories_estimated": int((fits["status"] == ESTIMATED).sum()),
    }
    if table["rmse_model"] is not None and table["rmse_baseline"]:
        table["ratio"] = table["rmse_model"] / table["rmse_baseline"]
    return table, fits


def product_prices(panel: pd.DataFrame, weeks: int = 4) -> pd.DataFrame:
    """Per product: category, department, median shelf price over its last `weeks` sale weeks."""
    last = panel.groupby("product_id")["week"].transform("max")
    recent = panel[panel["week"] > last - weeks]
    out = recent.groupby("product_id").agg(
        category=("product_category", "first"),
        department=("department", "first"),
        price=("price", "median"),
        last_week=("week", "max"),
    )
    out["weeks_sold"] = panel.groupby("product_id").size().reindex(out.index)
    return out


@dataclass
class PricingRun:
    bundle: PricingBundle
    holdout: dict[str, Any]
    window: dict[str, Any]
    metric: float
    run_id: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)


def run_pricing(
    *, tenant: str, cfg: PricingConfig, on_step: Callable[[str], None] | None = None
) -> PricingRun:
    """Judge on the holdout weeks, then fit every category on all weeks."""
    from core.errors import ValidationFailed
    from training.datasets import warehouse_line_items

    step = on_step or (lambda text: None)
    started = time.perf_counter()
    step(f"loading the line items of tenant {tenant!r}")
    items, products = warehouse_line_items(tenant)
    panel = weekly_panel(items, products, cfg) if len(items) else pd.DataFrame()
    if panel.empty or panel["week"].nunique() <= cfg.holdout_weeks + 1:
        raise ValidationFailed(
            f"tenant {tenant!r} has too few weeks of merchandise sales to judge a price model "
            f"(needs more than {cfg.holdout_weeks + 1})",
            details={"tenant": tenant},
        )
    seconds = {"data": round(time.perf_counter() - started, 1)}
    step(f"judging on the last {cfg.holdout_weeks} weeks against the no-price-effect baseline")
    clock = time.perf_counter()
    holdout, _ = judge_holdout(panel, cfg)
    if holdout["rmse_model"] is None:
        raise ValidationFailed(
            f"tenant {tenant!r}: no held-out row of an entity seen before week "
            f"{holdout['train_weeks'][1]}", details={"tenant": tenant},
        )  # fmt: skip
    seconds["holdout"] = round(time.perf_counter() - clock, 1)
    step("fitting every category on all weeks")
    clock = time.perf_counter()
    categories = fit_categories(panel, cfg)
    seconds["fit"] = round(time.perf_counter() - clock, 1)
    window = {
        "weeks": [int(panel["week"].min()), int(panel["week"].max())],
        "holdout_weeks": holdout["test_weeks"],
        "rows": int(len(panel)),
        "products": int(panel["product_id"].nunique()),
        "categories": int(len(categories)),
        "categories_estimated": int((categories["status"] == ESTIMATED).sum()),
        "entity": cfg.entity,
        "cluster": cfg.cluster,
    }
    bundle = PricingBundle(categories, product_prices(panel), window, cfg.significance)
    return PricingRun(bundle, holdout, window, float(holdout["rmse_model"]), seconds=seconds)


def elasticity_plot(categories: pd.DataFrame, path: Path, top: int) -> Path:
    """Horizontal error bars: the `top` estimated categories with the most rows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    est = categories[categories["status"] == ESTIMATED].sort_values("n_obs").tail(top)
    fig, ax = plt.subplots(figsize=(7, 0.28 * max(len(est), 4) + 1))
    y = np.arange(len(est))
    ax.errorbar(
        est["elasticity"], y, xerr=[est["elasticity"] - est["ci_low"], est["ci_high"] - est["elasticity"]],
        fmt="o", capsize=2,
    )  # fmt: skip
    ax.axvline(0, color="grey", ls="--")
    ax.axvline(-1, color="grey", ls=":")
    ax.set_yticks(y, [str(c)[:32] for c in est.index], fontsize=7)
    ax.set_xlabel("price elasticity (95% CI, clustered by product)")
    ax.set_title(f"elasticity by category (top {len(est)} by rows)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def log_run(run: PricingRun, cfg: PricingConfig, *, tenant: str) -> str:
    """One MLflow run: config, holdout table, the category table, the CI plot and the bundle."""
    import mlflow

    from training.bundles import log_bundle
    from training.tracking import configure_mlflow

    configure_mlflow("retailpulse-pricing")
    with mlflow.start_run(
        run_name="pricing-elasticity", tags={"model": "pricing", "tenant": tenant}
    ):
        mlflow.log_params({**cfg.model_dump(), "weeks": str(run.window["weeks"])})
        mlflow.log_metrics(
            {f"holdout.{k}": float(v) for k, v in run.holdout.items()
             if isinstance(v, int | float) and v is not None}
        )  # fmt: skip
        mlflow.log_metric("rmse_log_units", run.metric)
        table = run.bundle.categories.reset_index()
        mlflow.log_table(table, "elasticities.json")
        mlflow.log_dict(
            {"holdout": run.holdout, "window": run.window, "seconds": run.seconds,
             "method": __doc__, "config": cfg.model_dump()},
            "model_card.json",
        )  # fmt: skip
        with tempfile.TemporaryDirectory() as d:
            path = elasticity_plot(run.bundle.categories, Path(d) / "elasticities.png",
                                   cfg.plot_categories)  # fmt: skip
            mlflow.log_artifact(str(path))
        log_bundle(run.bundle.save, requirements=["numpy", "pandas", "pyarrow", "mlflow"])
        run.run_id = mlflow.active_run().info.run_id
    return run.run_id
