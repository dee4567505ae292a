"""A mistyped command, model or option is a usage message and exit 2, not a traceback.

Only `models` here: the long-running commands (LOGGED in pipelines/cli.py) redirect the
process's stderr into a log file, which would swallow pytest's own."""

from __future__ import annotations

import sys

import pytest

from pipelines.cli import main


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
def test_consume_rejects_a_count_below_one(option: str) -> None:
    """`consume --max-batch 0` / `--writers 0` is a usage error naming the option (in a process
    of its own: `consume` is a logged command), before any service is started."""
    import subprocess
    from pathlib import Path

    cli = Path(sys.executable).with_name("retailpulse")
    done = subprocess.run([str(cli), "consume", option, "0"], capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 2
    assert f"Invalid value for '{option}'" in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
