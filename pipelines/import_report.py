"""Results and the quality report of `retailpulse ingest file`: the dataclasses, the files
(rejected.csv, report.json), the rich summary tables, and the demo's sample import."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from core.settings import get_settings
from pipelines.quality import MESSAGES, REPORT_COLUMNS

DUPLICATE_RULES = {
    "duplicate_in_file": "the same line appears earlier in the file",
    "already_loaded": "the warehouse already has this transaction",
}


@dataclass
class FileResult:
    """What one file's import did."""

    file: str
    rows: int = 0
    accepted: int = 0
    rejected: int = 0
    duplicates: int = 0
    written: dict[str, int] = field(default_factory=dict)
    rules: dict[str, int] = field(default_factory=dict)  # rule → rows (rejected or skipped)
    aborted: str | None = None
    seconds: float = 0.0
    stages: dict[str, float] = field(default_factory=dict)  # seconds per stage


@dataclass
class ImportSummary:
    """All files of one `ingest file` run and where the report went."""

    tenant: str
    mapping: str
    dry_run: bool
    files: list[FileResult] = field(default_factory=list)
    report_dir: str | None = None


def write_report(summary: ImportSummary, problems: pd.DataFrame, report_dir: Path) -> None:
    """rejected.csv and report.json (summary + every rejected row) under `report_dir`."""
    report_dir.mkdir(parents=True, exist_ok=True)
    problems.to_csv(report_dir / "rejected.csv", index=False)
    payload = {
        "summary": asdict(summary),
        "rejected": json.loads(problems.to_json(orient="records", date_format="iso")),
    }
    (report_dir / "report.json").write_text(json.dumps(payload, indent=1, default=str))


def print_summary(summary: ImportSummary, console=None) -> None:
    """Rich tables: per file accepted / rejected / duplicate rows, then rows per rule."""
    from rich.table import Table

    if console is None:
        from pipelines.console import console
    mode = " (dry run: nothing written)" if summary.dry_run else ""
    files = Table("file", "rows", "accepted", "rejected", "duplicates", "transactions written",
                  "line items written", title=f"import via mapping {summary.mapping!r}, "
                  f"tenant {summary.tenant}{mode}")  # fmt: skip
    several = len(summary.files) > 1
    rules = Table(*(["file"] if several else []), "rule", "outcome", "rows", "what it means",
                  title="rows per rule")  # fmt: skip
    for f in summary.files:
        name = Path(f.file).name
        files.add_row(
            name, f"{f.rows:,}", f"[green]{f.accepted:,}[/]", f"[red]{f.rejected:,}[/]",
            f"[yellow]{f.duplicates:,}[/]", f"{f.written.get('transactions', 0):,}",
            f"{f.written.get('transaction_items', 0):,}",
        )  # fmt: skip
        for rule, n in sorted(f.rules.items(), key=lambda kv: -kv[1]):
            skipped = rule in DUPLICATE_RULES
            outcome = "[yellow]skipped (duplicate)[/]" if skipped else "[red]rejected[/]"
            text = DUPLICATE_RULES.get(rule) or MESSAGES.get(rule, "")
            cells = [rule, outcome, f"{n:,}", text.split(":")[0].strip()]
            rules.add_row(*([name] if several else []), *cells)
    console.print(files)
    if rules.row_count:
        console.print(rules)
    for f in summary.files:
        if f.aborted:
            console.print(f"[red]{Path(f.file).name}: {f.aborted}[/]")
    console.print(f"report: {summary.report_dir} (rejected.csv, report.json)")


def demo_file_import(
    *, tenant: str | None = None, workdir: str | Path | None = None, console=None
) -> ImportSummary:
    """Generate a small online-retail export with defects, import it, print the quality report.

    For `make demo`: writes `online_retail_sample.csv` under `workdir` (default
    RETAILPULSE_HOME/demo), imports it with configs/mappings/online_retail.yaml, prints the
    summary and the first rejected rows. Re-running it writes nothing new (all duplicates).
    """
    from rich.table import Table

    from pipelines.mapping import load_mapping
    from pipelines.sample_exports import write_sample

    if console is None:
        from pipelines.console import console
    root = Path(__file__).resolve().parents[1]
    workdir = Path(workdir) if workdir else get_settings().home_dir / "demo"
    path = write_sample(workdir / "online_retail_sample.csv")
    mapping = load_mapping(root / "configs" / "mappings" / "online_retail.yaml")
    from pipelines.ingest_file import ingest_files

    summary, problems = ingest_files([path], mapping, tenant=tenant)
    print_summary(summary, console)
    shown = Table(*REPORT_COLUMNS[1:], title="why rows were rejected (first 10 causes)")
    causes = problems[problems["rule"] != "transaction_has_rejected_line"]
    for row in causes.head(10).itertuples(index=False):
        shown.add_row(*[str(v) for v in row[1:]])
    console.print(shown)
    return summary
