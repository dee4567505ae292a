"""Where the full story goes: a log file per command run under `RETAILPULSE_HOME/logs`.

The terminal shows the product's own output; library logs, warnings and tracebacks go to the
file, and a failure prints one line naming it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

from core.settings import get_settings


def log_to_file(name: str) -> Path:
    """Send Python logging (INFO and up) and warnings of this process to a new log file
    (the one `capture_stderr` opened, if any)."""
    if _captured is not None:
        return _captured
    folder = get_settings().home_dir / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}.log"
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        if isinstance(old, logging.StreamHandler) and not isinstance(old, logging.FileHandler):
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    return path


_captured: Path | None = None


def capture_stderr(name: str) -> Path:
    """`log_to_file(name)` plus this process's stderr (file descriptor 2, so Ray's and other
    native libraries' output too) into the same file. Returns its path."""
    global _captured
    import os
    import sys

    if _captured is not None:
        return _captured
    path = log_to_file(name)
    stream = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - lives with the process
    sys.stderr.flush()
    os.dup2(stream.fileno(), 2)
    sys.stderr = stream
    for noisy in ("mlflow", "ray", "feast", "lightning", "pytorch_lightning", "alembic"):
        logger = logging.getLogger(noisy)
        logger.handlers = [h for h in logger.handlers if isinstance(h, logging.FileHandler)]
        logger.propagate = True
    _captured = path
    return path
