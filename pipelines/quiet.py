"""Keep what a person sees to the product's own output.

Deprecation chatter and progress bars of the libraries we pin are noise to a retailer's data
team: nothing they can act on. They still reach the log file (`RETAILPULSE_HOME/logs`).
"""

from __future__ import annotations

import os
import warnings

# Read by Ray, MLflow, Lightning and tqdm when their workers start: set before they import.
QUIET_ENV = {
    "RAY_DEDUP_LOGS": "1",
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    "RAY_AIR_NEW_OUTPUT": "0",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "TQDM_DISABLE": "1",
    "PYTHONWARNINGS": "ignore::DeprecationWarning,ignore::FutureWarning,ignore::UserWarning",
}


def quiet_third_party() -> None:
    """Silence third-party warnings in this process and in the workers it starts."""
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    warnings.filterwarnings("ignore", message=".*noload.*loader strategy")
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    for category in (DeprecationWarning, FutureWarning, PendingDeprecationWarning):
        warnings.filterwarnings("ignore", category=category)
    warnings.filterwarnings(
        "ignore",
        category=UserWarning,
        module=r"(feast|mlflow|ray|pydantic|pandas|lightning|pytorch_forecasting)",
    )
