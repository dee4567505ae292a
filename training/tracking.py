"""MLflow set-up: tracking store in PostgreSQL, artifacts under home.

Tracking store: database `settings.mlflow_database` on the warehouse's PostgreSQL server
(created on first use), URI `postgresql+psycopg://…/<mlflow_database>`; an explicit
MLFLOW_TRACKING_URI in the environment wins (e.g. a shared MLflow server). Artifacts of the
experiments we create: `<home_dir>/mlartifacts`.
"""

from __future__ import annotations

import logging
import os
import warnings

from core.errors import ServiceUnavailable
from core.settings import Settings, get_settings

log = logging.getLogger(__name__)

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
    ours = mlflow_tracking_uri(settings)
    # mlflow.set_tracking_uri also exports MLFLOW_TRACKING_URI: our own URI there is not a
    # user's choice (treating it as one dropped the artifact root to ./mlruns of the cwd).
    explicit = os.environ.get("MLFLOW_TRACKING_URI")
    explicit = explicit if explicit and explicit != ours else None
    uri = explicit or ours
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
