"""Run the `retailpulse` CLI in the test's own process (shared by unit and integration tests)."""

from __future__ import annotations

import sys

import pytest

from pipelines.cli import main


def run_cli(monkeypatch, capsys, argv: list[str]) -> tuple[int, str]:
    """Run `retailpulse ARGV` in this process: (exit code, what it printed on one line). A
    traceback in the output fails the test: bad input must get a message, not a crash."""
    monkeypatch.setattr(sys, "argv", ["retailpulse", *argv])
    with pytest.raises(SystemExit) as stop:
        main()
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    return stop.value.code, " ".join((out.out + out.err).split())
