"""MLflow wiring: tracking store in PostgreSQL, artifacts under home, champion promotion.

Tracking store: database `settings.mlflow_database` on the warehouse's PostgreSQL server
(created on first use), URI `postgresql+psycopg://…/<mlflow_database>`; an explicit
MLFLOW_TRACKING_URI in the environment wins (e.g. a shared MLflow server). Artifacts of the
experiments we create: `<home_dir>/mlartifacts`.

A registered segmenter version is the run's `model` artifact (mlflow.sklearn flavour, skops
format: a plain sklearn Pipeline whose input is a DataFrame with the SEGMENTER_FEATURES
columns) plus the run's `profiles.json`. The alias `champion` marks the served version.
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import TYPE_CHECKING, Any

from core.errors import ServiceUnavailable
from core.settings import Settings, get_settings

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from training.models.segmenter import CustomerSegmenter

log = logging.getLogger(__name__)

SEGMENTER_MODEL_NAME = "retailpulse-segmenter"
CHAMPION_ALIAS = "champion"
MODEL_ARTIFACT = "model"
PROFILES_ARTIFACT = "profiles.json"
METRIC = "silhouette"
MODEL_URI_TAG = "retailpulse.model_uri"

_ensured_databases: set[str] = set()


def _warehouse_url(settings: Settings) -> str:
    """libpq URL of the warehouse; only PostgreSQL is needed here, so don't start the others."""
    if settings.database_url:
        return settings.database_url
    from core.services import get_endpoints

    return get_endpoints(settings).database_url


def mlflow_tracking_uri(settings: Settings | None = None) -> str:
    """`postgresql+psycopg://…/<mlflow_database>` on the warehouse's server."""
    from sqlalchemy.engine import make_url

    settings = settings or get_settings()
    url = make_url(_warehouse_url(settings))
    url = url.set(drivername="postgresql+psycopg", database=settings.mlflow_database)
    return url.render_as_string(hide_password=False)


def _ensure_database(tracking_uri: str) -> None:
    """CREATE DATABASE for the tracking store if it does not exist yet."""
    if tracking_uri in _ensured_databases:
        return
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    url = make_url(tracking_uri)
    name = url.database
    # Connect to the server's maintenance database: the target may not exist yet.
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(
        hide_password=False
    )
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if not exists:
                try:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                    log.info("created MLflow database %s", name)
                except psycopg.errors.DuplicateDatabase:
                    pass  # another process created it between our check and CREATE
    except psycopg.OperationalError as exc:
        raise ServiceUnavailable(
            f"cannot reach PostgreSQL to prepare the MLflow database {name!r}: {exc}",
            details={"service": "postgres", "database": name},
        ) from exc
    _ensured_databases.add(tracking_uri)


def configure_mlflow(experiment: str | None = None) -> str:
    """Point MLflow at our tracking store (creating its database); optionally activate
    `experiment`, creating it with artifacts under `<home_dir>/mlartifacts`. Returns the URI."""
    import mlflow

    # MLflow's store trips a SQLAlchemy 2.1 deprecation and draws download bars in every
    # replica's log: noise for operators, nothing they can act on.
    warnings.filterwarnings("ignore", message=r".*``noload`` loader strategy")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    settings = get_settings()
    explicit = os.environ.get("MLFLOW_TRACKING_URI")
    uri = explicit or mlflow_tracking_uri(settings)
    if not explicit:
        _ensure_database(uri)
    mlflow.set_tracking_uri(uri)
    if experiment:
        found = mlflow.get_experiment_by_name(experiment)
        if found is None:
            artifacts = None
            if not explicit:
                root = settings.home_dir / "mlartifacts"
                root.mkdir(parents=True, exist_ok=True)
                artifacts = root.as_uri()
            try:
                experiment_id = mlflow.create_experiment(experiment, artifact_location=artifacts)
            except mlflow.exceptions.MlflowException:
                # Created concurrently by another process: use theirs.
                found = mlflow.get_experiment_by_name(experiment)
                if found is None:
                    raise
                experiment_id = found.experiment_id
        else:
            experiment_id = found.experiment_id
        mlflow.set_experiment(experiment_id=experiment_id)
    return uri


def _champion(client: MlflowClient, name: str) -> ModelVersion | None:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, CHAMPION_ALIAS)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def _load_version(name: str, version: str | int) -> CustomerSegmenter:
    import mlflow.sklearn

    from training.models.segmenter import CustomerSegmenter

    pipeline = mlflow.sklearn.load_model(f"models:/{name}/{version}")
    return CustomerSegmenter.from_pipeline(pipeline)


def _holdout_score(
    model: CustomerSegmenter, holdout: pd.DataFrame, sample_size: int | None, seed: int
) -> float:
    from training.models.segmenter import segment_silhouette

    x = holdout[model.feature_names]
    return segment_silhouette(
        x, model.predict(x), sample_size=sample_size, seed=seed, feature_names=model.feature_names
    )


def register_and_promote(
    run_id: str,
    metric: float,
    *,
    name: str = SEGMENTER_MODEL_NAME,
    holdout: pd.DataFrame | None = None,
    sample_size: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Register the run's model; move alias `champion` to it only if it beats the champion.

    With `holdout`, both the new version and the champion are re-scored on those rows with
    the same silhouette (`segment_silhouette`, same sample and seed), so the comparison is
    like for like; `metric` is then only recorded. Without it, `metric` is compared with the
    silhouette logged by the champion's run (which was measured on that run's own holdout).
    A tie keeps the champion. Returns {version, promoted, reason, metric, champion_version,
    champion_metric, basis}.
    """
    import mlflow
    from mlflow import MlflowClient

    configure_mlflow()
    client = MlflowClient()
    # MLflow 3 stores models as LoggedModels (models:/m-…); tune_segmenter tags the run with it.
    model_uri = client.get_run(run_id).data.tags.get(MODEL_URI_TAG)
    mv = mlflow.register_model(model_uri or f"runs:/{run_id}/{MODEL_ARTIFACT}", name)
    version = str(mv.version)
    client.set_model_version_tag(name, version, METRIC, f"{metric:.6f}")
    champion = _champion(client, name)

    result: dict[str, Any] = {
        "version": version,
        "promoted": False,
        "reason": "",
        "metric": float(metric),
        "champion_version": str(champion.version) if champion else None,
        "champion_metric": None,
        "basis": None,
    }
    if champion is None:
        result.update(promoted=True, reason="first version: there was no champion yet")
    else:
        if holdout is not None:
            ours = _holdout_score(_load_version(name, version), holdout, sample_size, seed)
            theirs = _holdout_score(
                _load_version(name, champion.version), holdout, sample_size, seed
            )
            result.update(metric=ours, basis="holdout")
        else:
            ours = float(metric)
            theirs = client.get_run(champion.run_id).data.metrics.get(METRIC, float("-inf"))
            result["basis"] = "logged"
        result["champion_metric"] = float(theirs)
        if ours > theirs:
            result.update(
                promoted=True,
                reason=f"{METRIC} {ours:.4f} beats champion v{champion.version} ({theirs:.4f})",
            )
        else:
            result["reason"] = (
                f"{METRIC} {ours:.4f} does not beat champion v{champion.version} ({theirs:.4f})"
            )
    if result["promoted"]:
        client.set_registered_model_alias(name, CHAMPION_ALIAS, version)
    client.set_model_version_tag(name, version, "promotion", result["reason"])
    log.info("segmenter v%s: %s", version, result["reason"])
    return result


Loaded = tuple["CustomerSegmenter", list[dict[str, Any]], str]


def _load_with_profiles(name: str, mv: ModelVersion) -> Loaded:
    import mlflow.artifacts

    model = _load_version(name, mv.version)
    profiles = mlflow.artifacts.load_dict(f"runs:/{mv.run_id}/{PROFILES_ARTIFACT}")
    return model, profiles["segments"], str(mv.version)


def load_champion(name: str = SEGMENTER_MODEL_NAME) -> Loaded | None:
    """(model, profiles, version) of the `champion` alias, or None when nothing is promoted.

    `model.predict(df)` takes a DataFrame with exactly the model's `feature_names` columns
    and returns segment ids; `profiles` is the list `CustomerSegmenter.profiles` made at
    training time (id, label, size, share, means).
    """
    from mlflow import MlflowClient

    configure_mlflow()
    champion = _champion(MlflowClient(), name)
    if champion is None:
        return None
    return _load_with_profiles(name, champion)


def load_version(version: str | int, name: str = SEGMENTER_MODEL_NAME) -> Loaded | None:
    """(model, profiles, version) of one registered version, or None if it does not exist."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    configure_mlflow()
    try:
        mv = MlflowClient().get_model_version(name, str(version))
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"):
            return None
        raise
    return _load_with_profiles(name, mv)
