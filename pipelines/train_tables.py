"""What `retailpulse train` prints: per-model result tables and the promotion line."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.table import Table

from pipelines.console import console

if TYPE_CHECKING:
    from training.segmenter import TuneOutcome


def trials_table(outcome: TuneOutcome) -> Table:
    table = Table(title="Segmenter trials (silhouette on held-back customers)")
    for col in ("k", "PCA", "silhouette", "inertia", "fit s", ""):
        table.add_column(col, justify="right" if col else "left")
    ranked = sorted(
        outcome.trials, key=lambda t: -(t.silhouette if t.silhouette is not None else float("-inf"))
    )
    for t in ranked:
        best = t == outcome.best
        table.add_row(
            str(t.k),
            str(t.n_components),
            f"{t.silhouette:.4f}" if t.silhouette is not None else "—",
            f"{t.inertia:,.1f}" if t.inertia is not None else "—",
            f"{t.fit_seconds:.2f}" if t.fit_seconds is not None else "—",
            "[bold green]best[/]" if best else (f"[red]{t.error}[/]" if t.error else ""),
            style="bold" if best else None,
        )
    return table


def segments_table(outcome: TuneOutcome) -> Table:
    table = Table(title=f"Segments (k={outcome.best.k}, {outcome.n_rows:,} customers)")
    for col in ("id", "label", "customers", "share", "recency d", "frequency", "monetary"):
        table.add_column(col, justify="left" if col == "label" else "right")
    for p in outcome.profiles:
        m = p["means"] or {}
        table.add_row(
            str(p["id"]),
            p["label"],
            f"{p['size']:,}",
            f"{p['share']:.1%}",
            f"{m.get('recency_days', 0):.0f}",
            f"{m.get('frequency', 0):.1f}",
            f"{m.get('monetary', 0):,.0f}",
        )
    return table


def print_promotion(summary: dict[str, Any]) -> None:
    if "version" not in summary:
        return
    mark = "[bold green]promoted to champion[/]" if summary["promoted"] else "[yellow]kept[/]"
    console.print(f"{summary['name']} v{summary['version']}: {mark} — {summary['reason']}")


def forecast_table(summary: dict[str, Any]) -> Table:
    w = summary["window"]
    table = Table(
        title=f"Forecasters on {w['n_series']} series (test: weeks {w['origins']['test'] + 1}.."
        f"{w['last_week']}; selection on inner validation)"
    )
    for col in ("model", "val MASE", "test MASE", "test WAPE", "test MAE", "p10-p90 cover", ""):
        table.add_column(col, justify="left" if col == "model" else "right")
    val, test = summary["table"]["inner_validation"], summary["table"]["test"]
    for name in sorted(test, key=lambda n: val[n]["MASE"]):
        chosen = name == summary["selected"]
        table.add_row(
            name,
            f"{val[name]['MASE']:.3f}",
            f"{test[name]['MASE']:.3f}",
            f"{test[name]['WAPE']:.1f}%",
            f"{test[name]['MAE']:.3f}",
            f"{test[name]['coverage_p10_p90']:.1f}%",
            "[bold green]selected[/]" if chosen else "",
            style="bold" if chosen else None,
        )
    return table


def churn_table(summary: dict[str, Any]) -> Table:
    table_data = summary["table"]
    w = table_data["window"]
    table = Table(
        title=f"Churn models, mean ROC AUC over {w['splits']} stratified splits (label weeks "
        f"{w['label_weeks'][0]}..{w['label_weeks'][1]}, features to week {w['feature_end_week']})"
    )
    for col in ("model", "main AUC", "± sd", "main PR AUC", "clean AUC", "Brier"):
        table.add_column(col, justify="left" if col == "model" else "right")
    main, clean = table_data["main"]["models"], table_data["clean"]["models"]
    for name in sorted(main, key=lambda n: -main[n]["roc_auc_mean"]):
        m, c = main[name], clean[name]
        table.add_row(
            name,
            f"{m['roc_auc_mean']:.3f}",
            f"{m['roc_auc_sd']:.3f}",
            f"{m['pr_auc_mean']:.3f}",
            f"{c['roc_auc_mean']:.3f}",
            f"{m['brier_mean']:.4f}" if m["brier_mean"] is not None else "—",
            style="bold" if name == "lightgbm" else None,
        )
    filled = max((table_data.get("filled") or {}).values(), default=0)
    table.caption = (
        f"{table_data.get('skipped_rows', 0)} line item(s) skipped (missing customer, time or "
        f"week); {filled} household(s) with one purchase day got the documented gap fill"
    )
    return table


def anomaly_table(summary: dict[str, Any]) -> Table:
    w = summary["window"]
    table = Table(
        title=f"Anomaly detectors on {w['stores']} stores, days {w['window'][0]}..{w['window'][1]}"
        f" ({w['candidates']:,} candidate store-days, {len(w['seeds'])} injection seeds)"
    )
    for col in ("detector", "ROC AUC", "spikes", "drops", "avg precision", "recall@5%"):
        table.add_column(col, justify="left" if col == "detector" else "right")
    rows = summary["table"]
    for name in sorted(rows, key=lambda n: -rows[n]["auc"]):
        r = rows[name]
        table.add_row(
            name,
            f"{r['auc']:.3f}",
            f"{r['auc_spike']:.3f}",
            f"{r['auc_drop']:.3f}",
            f"{r['ap']:.3f}",
            f"{r['recall_at_5']:.3f}",
            style="bold" if name == "ensemble" else None,
        )
    return table


def recommender_table(summary: dict[str, Any]) -> Table:
    w = summary["window"]
    table = Table(
        title=f"Recommenders on the last basket of {w['test_households']:,} households "
        f"(catalog {w['catalog']:,}; blend chosen on inner validation)"
    )
    for col in ("model", "HR@10", "NDCG@10", "new HR@10", "Recall@20", "val HR@10"):
        table.add_column(col, justify="left" if col == "model" else "right")
    test, val = summary["table"]["test"], summary["table"]["inner_validation"]
    for name in sorted(test, key=lambda n: -test[n]["NDCG@10"]):
        r = test[name]
        table.add_row(
            name,
            f"{r['HR@10']:.3f}",
            f"{r['NDCG@10']:.3f}",
            f"{r['HR@10_new']:.3f}",
            f"{r['Recall@20']:.3f}",
            f"{val[name]['HR@10']:.3f}" + (" *" if name == "hybrid" else ""),
            style="bold" if name == "hybrid" else None,
        )
    table.caption = "* in-sample: the hybrid's blend is fitted on inner validation"
    return table
