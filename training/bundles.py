"""A model version as a directory of plain files, logged as an MLflow pyfunc model.

The recommender, anomaly detector and churn model each keep a *bundle*: a folder with a
`bundle.json` (what kind, which window, which class loads it) beside the model's own files
(LightGBM text, numpy arrays, JSON). `log_bundle` logs the folder inside a pyfunc model (so the
registry holds it and `mlflow models serve` could load it), `load_bundle_dir` is the inverse
that every spec's loader uses. The class named in `bundle.json` must offer `load(folder)`.
"""

from __future__ import annotations

import importlib
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

BUNDLE_FILE = "bundle.json"
BUNDLE_ARTIFACT = "bundle"


def write_meta(folder: Path, *, kind: str, loader: str, **meta: Any) -> None:
    """`bundle.json`: `loader` is "module:Class" whose `load(folder)` rebuilds the bundle."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / BUNDLE_FILE).write_text(
        json.dumps({"kind": kind, "loader": loader, **meta}, indent=2, default=str)
    )


def read_meta(folder: Path) -> dict[str, Any]:
    return json.loads((Path(folder) / BUNDLE_FILE).read_text())


def load_folder(folder: str | Path) -> Any:
    """Rebuild the bundle saved in `folder` with the class its `bundle.json` names."""
    meta = read_meta(Path(folder))
    module, _, name = meta["loader"].partition(":")
    return getattr(importlib.import_module(module), name).load(Path(folder))


def log_bundle(save: Callable[[Path], None], *, requirements: list[str]) -> str:
    """Inside an active MLflow run: save the bundle with `save(folder)` and log it as the run's
    pyfunc model. Returns the model URI (also tagged on the run for the registry)."""
    import mlflow
    import mlflow.pyfunc

    from training.registry import MODEL_ARTIFACT, MODEL_URI_TAG

    with tempfile.TemporaryDirectory() as d:
        folder = Path(d) / BUNDLE_ARTIFACT  # MLflow keeps it as artifacts/<folder name>
        save(folder)
        if not (folder / BUNDLE_FILE).exists():
            raise ValueError(f"the bundle saver wrote no {BUNDLE_FILE} in {folder}")
        info = mlflow.pyfunc.log_model(
            name=MODEL_ARTIFACT,
            python_model=BundlePyfunc(),
            artifacts={BUNDLE_ARTIFACT: str(folder)},
            pip_requirements=pinned(requirements),
        )
    mlflow.set_tag(MODEL_URI_TAG, info.model_uri)
    return info.model_uri


def load_bundle_dir(model_uri: str) -> Any:
    """The bundle of a registered version (downloaded once into MLflow's cache dir)."""
    import mlflow.artifacts

    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri))
    found = sorted(local.glob(f"artifacts/*/{BUNDLE_FILE}"))
    if not found:
        raise FileNotFoundError(f"{model_uri} holds no model bundle ({BUNDLE_FILE})")
    return load_folder(found[0].parent)


def pinned(packages: list[str]) -> list[str]:
    from importlib.metadata import version

    return [f"{p}=={version(p)}" for p in packages]


def _pyfunc_base() -> type:
    import mlflow.pyfunc

    return mlflow.pyfunc.PythonModel


class BundlePyfunc(_pyfunc_base()):  # type: ignore[misc]
    """pyfunc view of a bundle: `predict(frame)` calls the bundle's `predict_frame(frame)`."""

    def load_context(self, context: Any) -> None:
        self.bundle = load_folder(context.artifacts[BUNDLE_ARTIFACT])

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> Any:
        return self.bundle.predict_frame(model_input)


def load_registered(model_uri: str, run_id: str) -> Any:
    """The `ModelSpec.load` of every bundle model (`run_id` is not needed: all is in the URI)."""
    return load_bundle_dir(model_uri)
