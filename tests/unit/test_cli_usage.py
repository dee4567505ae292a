"""A mistyped command, model or option is a usage message and exit 2, not a traceback.

Only `models` here: the long-running commands (LOGGED in pipelines/cli.py) redirect the
process's stderr into a log file, which would swallow pytest's own."""

from __future__ import annotations

import sys

import pytest

from pipelines.cli import main
from tests.cli_run import run_cli


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["models", "weather"], "No such command 'weather'"),
        (["models", "promote", "weather", "1"], "unknown model 'weather'"),
        (["models", "list", "--bogus"], "No such option: --bogus"),
    ],
)
def test_usage_errors_exit_2_with_the_reason(monkeypatch, capsys, argv, says) -> None:
    monkeypatch.setattr(sys, "argv", ["retailpulse", *argv])
    with pytest.raises(SystemExit) as stop:
        main()
    assert stop.value.code == 2
    out = capsys.readouterr()
    assert says in out.out
    assert "Traceback" not in out.out + out.err


@pytest.mark.parametrize("option", ["--max-batch", "--writers"])
def test_consume_rejects_a_count_below_one(option: str, tmp_path) -> None:
    """`consume --max-batch 0` / `--writers 0` is a usage error naming the option (in a process
    of its own: `consume` is a logged command, so its home is the test's), before any service is
    started."""
    import os
    import subprocess
    from pathlib import Path

    cli = Path(sys.executable).with_name("retailpulse")
    env = {**os.environ, "RETAILPULSE_HOME": str(tmp_path)}
    done = subprocess.run([str(cli), "consume", option, "0"], capture_output=True,
                          text=True, timeout=120, env=env)  # fmt: skip
    assert done.returncode == 2
    assert f"Invalid value for '{option}'" in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"\xff\xfe\x00not text", "cannot read"),  # was a UnicodeDecodeError traceback, exit 1
        (b"[1, 2]", "holds a list: expected one rule body"),
        (b"", "holds nothing"),
    ],
)
def test_alert_rule_file_that_is_no_rule_body(monkeypatch, capsys, tmp_path, body, says):
    path = tmp_path / "rule.json"
    path.write_bytes(body)
    code, out = run_cli(monkeypatch, capsys, ["alerts", "add-rule", str(path)])
    assert code == 2 and says in out


def test_report_out_that_is_a_directory_is_refused_before_any_work(monkeypatch, capsys, tmp_path):
    """It was an IsADirectoryError traceback (exit 1) after the report had been computed."""
    import core.db

    def no_database(*args, **kwargs):
        raise AssertionError("the warehouse was reached")

    monkeypatch.setattr(core.db, "connect", no_database)
    argv = ["reports", "generate", "sales_summary", "--out", str(tmp_path), "--format", "csv"]
    code, out = run_cli(monkeypatch, capsys, argv)
    assert code == 2 and "is a directory" in out


@pytest.mark.parametrize("seconds", ["nan", "inf", "1e300", "0"])
def test_scheduler_poll_seconds_must_be_a_finite_positive_number(monkeypatch, capsys, seconds):
    """nan passed `<= 0` and made the loop spin without waiting; inf crashed the wait
    (OverflowError) after the first pass."""
    argv = ["reports", "run-scheduler", "--poll-seconds", seconds, "--once"]
    code, out = run_cli(monkeypatch, capsys, argv)
    assert code == 2 and "--poll-seconds" in out


# The long-running commands redirect stderr (see the module docstring): Typer's runner calls
# the app directly, so an option's usage error is its exit code 2 and message.


def _invoke(argv: list[str]):
    from typer.testing import CliRunner

    from pipelines.cli import app

    return CliRunner().invoke(app, argv)


def _text(output: str) -> str:
    """The runner's output without the error panel's borders and line breaks."""
    return " ".join(output.replace("│", " ").split())


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        # `score all` skipped every model on these and exited 0
        (["score", "all", "--limit", "0"], "--limit"),
        (["score", "all", "--horizon", "9"], "--horizon"),
        (["score", "all", "--days", "0"], "--days"),
        (["score", "all", "--batch-size", "0"], "--batch-size"),
        (["score", "segments", "--concurrency", "0"], "--concurrency"),
        # a pydantic "1 validation error for SegmenterTuneConfig" line, exit 1
        (["train", "segmenter", "--max-trials", "0"], "--max-trials"),
        # checked after Ray had started (port), or ignored without a word (an unknown model)
        (["serve", "--port", "0"], "--port"),
        (["serve", "--model-version", "weather=3"], "--model-version"),
        (["serve", "--model-version", "segmenter=abc"], "--model-version"),
    ],
)
def test_out_of_range_options_of_long_commands_are_usage_errors(monkeypatch, argv, option):
    import pipelines.cli_serve

    def no_ray(*args, **kwargs):
        raise AssertionError("Ray was started")

    monkeypatch.setattr(pipelines.cli_serve, "ensure_ray", no_ray)
    done = _invoke(argv)
    assert done.exit_code == 2, done.output
    assert option in _text(done.output)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (None, "does not exist"),
        ("k_values: [3, 4\n", "as YAML: line 2"),
        ("- 1\n- 2\n", "holds a list"),
        (b"\xff\xfe", "as YAML"),
    ],
)
def test_train_config_that_is_no_yaml_mapping_is_a_usage_error(tmp_path, text, says):
    """These were FileNotFoundError, ParserError, AttributeError ('list' object has no
    attribute 'update') or UnicodeDecodeError with exit 1."""
    path = tmp_path / "cfg.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    elif text is not None:
        path.write_text(text)
    for model in ("segmenter", "anomaly", "pricing"):
        done = _invoke(["train", model, "--config", str(path)])
        assert done.exit_code == 2, done.output
        assert says in _text(done.output)


def test_train_config_with_a_bad_key_names_it(tmp_path):
    """The message was pydantic's first line only: `1 validation error for ChurnConfig`."""
    from core.errors import ValidationFailed

    path = tmp_path / "churn.yaml"
    path.write_text("bogus_key: 1\n")
    done = _invoke(["train", "churn", "--config", str(path)])
    assert isinstance(done.exception, ValidationFailed)
    assert "bogus_key: Extra inputs are not permitted" in done.exception.message


def test_mapping_that_is_not_utf8_is_a_usage_error(tmp_path):
    """A UnicodeDecodeError traceback (exit 1) before."""
    mapping = tmp_path / "m.yaml"
    mapping.write_bytes(b"\xff\xfe\x00x")
    data = tmp_path / "a.csv"
    data.write_text("a,b\n1,2\n")
    done = _invoke(["ingest", "file", str(data), "--mapping", str(mapping), "--dry-run"])
    assert done.exit_code == 2, done.output
    assert "cannot read it" in _text(done.output)
