"""MLflow record of a promotions run: summary metrics, the per-campaign table, the uplift plot
and the bundle (training/promotions.py computes them)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from training.models.promotions import ESTIMATED

if TYPE_CHECKING:
    from training.promotions import PromotionsConfig, PromotionsRun


def log_run(run: PromotionsRun, cfg: PromotionsConfig, *, tenant: str) -> str:
    """One MLflow run: config, summary, a per-campaign table, the uplift plot and the bundle."""
    import tempfile

    import mlflow

    from training import promotions
    from training.bundles import log_bundle
    from training.tracking import configure_mlflow

    configure_mlflow("retailpulse-promotions")
    with mlflow.start_run(
        run_name="promotions-did", tags={"model": "promotions", "tenant": tenant}
    ):
        mlflow.log_params(cfg.model_dump())
        mlflow.log_metrics(
            {k: float(v) for k, v in run.table.items() if isinstance(v, int | float)}
        )
        mlflow.log_metric("max_abs_smd", run.metric)
        rows = [_flat(r) for r in run.bundle.campaigns.values()]
        mlflow.log_table(pd.DataFrame(rows), "campaign_uplift.json")
        mlflow.log_dict({"summary": run.table, "window": run.window, "method": promotions.__doc__,
                         "config": cfg.model_dump(), "seconds": run.seconds}, "model_card.json")  # fmt: skip
        with tempfile.TemporaryDirectory() as tmp:
            mlflow.log_artifact(str(uplift_plot(rows, Path(tmp) / "campaign_uplift.png")))
        log_bundle(run.bundle.save, requirements=["numpy", "pandas", "pyarrow", "mlflow"])
        run.run_id = mlflow.active_run().info.run_id
    return run.run_id


def _flat(r: dict[str, Any]) -> dict[str, Any]:
    s = r.get("spend") or {}
    return {"campaign_id": r["campaignId"], "type": r.get("campaignType"), "status": r["status"],
            "uplift_week": s.get("perHouseholdWeek"), "ci_low": s.get("ciLow"), "ci_high": s.get("ciHigh"),
            "naive_week": s.get("naivePerHouseholdWeek"),
            "matched": (r.get("matched") or {}).get("treated"),
            "smd_after": (r.get("balance") or {}).get("maxAbsSmdAfter"),
            "placebo": (r.get("placebo") or {}).get("perHouseholdWeek")}  # fmt: skip


def uplift_plot(rows: list[dict[str, Any]], path: Path) -> Path:
    """Spend uplift per household-week with its CI, per estimated campaign (and naive DiD)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    est = [r for r in rows if r["status"] == ESTIMATED]
    fig, ax = plt.subplots(figsize=(7, 0.3 * max(len(est), 4) + 1))
    y = np.arange(len(est))
    u = np.array([r["uplift_week"] for r in est])
    err = [u - [r["ci_low"] for r in est], [r["ci_high"] for r in est] - u]
    ax.errorbar(u, y, xerr=err, fmt="o", capsize=2, label="matched DiD (95% CI)")
    ax.plot([r["naive_week"] for r in est], y, "x", color="grey", label="naive DiD")
    ax.axvline(0, color="grey", ls="--")
    ax.set_yticks(y, [f"campaign {r['campaign_id']} ({r['type']})" for r in est], fontsize=7)
    ax.set_xlabel("spend uplift per household-week")
    ax.legend(fontsize=7)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path
