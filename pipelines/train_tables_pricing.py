"""What `retailpulse train pricing` and `train promotions` print."""

from __future__ import annotations

from typing import Any

from rich.table import Table


def _num(x: Any, fmt: str = "{:+.3f}") -> str:
    return "—" if x is None else fmt.format(x)


def pricing_table(summary: dict[str, Any], top: int = 15) -> Table:
    """The biggest categories' elasticities and the holdout comparison in the caption."""
    cats = summary["categories"]
    h = summary["holdout"]
    table = Table(title=f"Price elasticity, {top} categories with the most store x product weeks")
    for col in ("category", "elasticity", "95% CI", "p", "rows", "price moves"):
        table.add_column(col, justify="left" if col == "category" else "right")
    for name, r in cats.sort_values("n_obs", ascending=False).head(top).iterrows():
        est = r["status"] == "estimated"
        table.add_row(
            str(name),
            _num(r["elasticity"]) if est else r["status"],
            f"[{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]" if est else "",
            _num(r["p_value"], "{:.3f}") if est else "",
            f"{int(r['n_obs']):,}",
            f"{int(r['n_price_changes']):,}",
        )
    n_est = int((cats["status"] == "estimated").sum())
    table.caption = (
        f"{n_est} of {len(cats)} categories estimated. Held-out weeks "
        f"{h['test_weeks'][0]}..{h['test_weeks'][1]} ({h['rows']:,} rows): RMSE of log units "
        f"{h['rmse_model']:.4f} with elasticities vs {h['rmse_baseline']:.4f} for the entity "
        f"mean alone (ratio {h.get('ratio', float('nan')):.4f})"
    )
    return table


def promotions_table(summary: dict[str, Any]) -> Table:
    """Per campaign: status, matched counts, uplift with CI, naive DiD, balance, placebo."""
    t = summary["table"]
    table = Table(title="Campaign uplift: spend per household-week, matched DiD (95% CI)")
    for col in (
        "campaign",
        "type",
        "matched",
        "uplift",
        "95% CI",
        "naive",
        "|SMD| after",
        "placebo",
    ):
        table.add_column(col, justify="left" if col in ("campaign", "type") else "right")
    for cid, r in sorted(summary["campaigns"].items()):
        s = r.get("spend")
        if not s:
            table.add_row(str(cid), str(r.get("campaignType")), "", r["status"], "", "", "", "")
            continue
        p = r.get("placebo") or {}
        table.add_row(
            str(cid),
            str(r.get("campaignType")),
            f"{r['matched']['treated']}/{r['matched']['treatedEligible']}",
            _num(s["perHouseholdWeek"], "{:+.2f}"),
            f"[{s['ciLow']:+.2f}, {s['ciHigh']:+.2f}]",
            _num(s["naivePerHouseholdWeek"], "{:+.2f}"),
            f"{r['balance']['maxAbsSmdAfter']:.3f}",
            _num(p.get("perHouseholdWeek"), "{:+.2f}"),
        )
    table.caption = (
        f"{t['estimated']} of {t['campaigns']} campaigns estimated, {t['significant_positive']} "
        f"with a CI above 0; mean largest |SMD| {t['mean_max_abs_smd_before']:.3f} before "
        f"matching, {t['mean_max_abs_smd_after']:.3f} after; placebo CIs covering 0: "
        f"{t['placebo_ci_covers_zero']} of {t['placebos']}"
    )
    return table
