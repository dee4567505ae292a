"""The Feast FeatureStore, configured from feature_repo/feature_store.yaml plus live endpoints.

Embedded services listen on ports chosen at start-up, so the YAML only fixes the kind of each
store; hosts, ports, credentials and the project come from `core.services` and `core.settings`
(the YAML's `${VARIABLE}` placeholders are for Feast's own CLI: `feast_cli_env`).
Tenancy: one Feast project per tenant (`project_for`); the settings' tenant uses the configured
`feast_project` unchanged.
"""

from __future__ import annotations

import contextlib
import io
import logging
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import psycopg
import yaml
from feast import FeatureStore, FeatureView, RepoConfig

from core.db import libpq_url, sqlalchemy_url
from core.settings import get_settings
from features.catalog import CUSTOMER_RFM, FEATURE_VIEWS, FeatureViewSpec, feast_project

log = logging.getLogger(__name__)
FEATURE_REPO = Path(__file__).resolve().parent.parent / "feature_repo"
REGISTRY_SCHEMA = "feast_registry"


def project_for(tenant: str | None = None) -> str:
    """Feast project of `tenant`: the configured project for the settings' tenant, else suffixed."""
    settings = get_settings()
    return feast_project(
        tenant or settings.tenant, base=settings.feast_project, default_tenant=settings.tenant
    )


def service_urls() -> tuple[str, str]:
    """(database_url, redis_url), starting embedded services only when nothing else answers."""
    from core.services import get_endpoints

    # start=False first: features need Postgres and Redis only, not the broker.
    endpoints = get_endpoints(start=False)
    if not endpoints.database_url or not endpoints.redis_url:
        endpoints = get_endpoints()
    return endpoints.database_url, endpoints.redis_url


def redis_connection_string(redis_url: str) -> str:
    """redis://[:password@]host:port/N → Feast's "host:port,db=N[,password=…][,ssl=true]"."""
    parts = urlsplit(redis_url)
    db = (parts.path or "/0").lstrip("/") or "0"
    out = [f"{parts.hostname or '127.0.0.1'}:{parts.port or 6379}", f"db={db}"]
    if parts.password:
        out.append(f"password={unquote(parts.password)}")
    if parts.scheme == "rediss":
        out.append("ssl=true")
    return ",".join(out)


def repo_config(
    *, tenant: str | None = None, database_url: str | None = None, redis_url: str | None = None
) -> RepoConfig:
    """feature_store.yaml with endpoints and project filled in."""
    if database_url is None or redis_url is None:
        db_default, redis_default = service_urls()
        database_url = database_url or db_default
        redis_url = redis_url or redis_default
    raw = yaml.safe_load((FEATURE_REPO / "feature_store.yaml").read_text())
    pg = urlsplit(libpq_url(database_url))
    query = {k: v[-1] for k, v in parse_qs(pg.query).items()}
    raw["project"] = project_for(tenant)
    raw["registry"]["path"] = sqlalchemy_url(database_url)
    raw["registry"]["sqlalchemy_config_kwargs"] = {
        "echo": False,
        "pool_pre_ping": True,
        "connect_args": {"options": f"-c search_path={REGISTRY_SCHEMA}"},
    }
    raw["offline_store"].update(
        host=pg.hostname or "127.0.0.1",
        port=pg.port or 5432,
        database=(pg.path or "/").lstrip("/") or "postgres",
        user=unquote(pg.username or "postgres"),
        password=unquote(pg.password or ""),
        # the yaml's own sslmode is a ${VARIABLE} for Feast's CLI: the URL decides here
        sslmode=query.get("sslmode", "prefer"),
    )
    raw["online_store"]["connection_string"] = redis_connection_string(redis_url)
    return RepoConfig(repo_path=FEATURE_REPO, **raw)


def feast_cli_env(
    *, database_url: str | None = None, redis_url: str | None = None
) -> dict[str, str]:
    """The variables feature_repo/feature_store.yaml reads, set to what the platform uses for
    the settings' tenant, so Feast's own CLI (`feast plan`, `feast ui`) sees the same registry,
    offline and online stores (`retailpulse features env` prints them as `export` lines)."""
    settings = get_settings()
    config = repo_config(tenant=settings.tenant, database_url=database_url, redis_url=redis_url)
    offline = config.offline_store
    return {
        # the platform's own settings, unchanged: feature_repo/default_tenant.py reads the tenant
        "RETAILPULSE_TENANT": settings.tenant,
        "RETAILPULSE_FEAST_PROJECT": config.project,
        "RETAILPULSE_FEAST_REGISTRY": config.registry.path,
        "RETAILPULSE_FEAST_PG_HOST": offline.host,
        "RETAILPULSE_FEAST_PG_PORT": str(offline.port),
        "RETAILPULSE_FEAST_PG_DATABASE": offline.database,
        "RETAILPULSE_FEAST_PG_USER": offline.user,
        "RETAILPULSE_FEAST_PG_PASSWORD": offline.password or "",
        "RETAILPULSE_FEAST_PG_SSLMODE": offline.sslmode or "prefer",
        "RETAILPULSE_FEAST_REDIS": config.online_store.connection_string,
    }


@lru_cache(maxsize=16)
def _store(project: str, database_url: str, redis_url: str, tenant: str | None) -> FeatureStore:
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        # Look first: CREATE SCHEMA IF NOT EXISTS still needs CREATE on the database.
        found = conn.execute(
            "SELECT 1 FROM pg_namespace WHERE nspname = %s", (REGISTRY_SCHEMA,)
        ).fetchone()
        if not found:
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {REGISTRY_SCHEMA}")
    config = repo_config(tenant=tenant, database_url=database_url, redis_url=redis_url)
    return FeatureStore(repo_path=str(FEATURE_REPO), config=config)


def get_feature_store(
    tenant: str | None = None, *, database_url: str | None = None, redis_url: str | None = None
) -> FeatureStore:
    """The tenant's FeatureStore (cached per project and endpoints; URLs default to services)."""
    if database_url is None or redis_url is None:
        db_default, redis_default = service_urls()
        database_url = database_url or db_default
        redis_url = redis_url or redis_default
    return _store(project_for(tenant), database_url, redis_url, tenant)


def reset_feature_stores() -> None:
    """Forget cached FeatureStores (tests that switch databases)."""
    _store.cache_clear()


def apply_definitions(tenant: str | None = None) -> list[str]:
    """Programmatic `feast apply` of feature_repo/definitions.py; returns the object names."""
    from feature_repo.definitions import feature_objects

    tenant = tenant or get_settings().tenant
    store = get_feature_store(tenant)
    objects = feature_objects(tenant)
    store.apply(objects)
    return [obj.name for obj in objects]


def needs_apply(tenant: str | None = None) -> bool:
    """Whether the registry lacks one of the tenant's feature views or holds another definition."""
    from feast.errors import FeatureViewNotFoundException

    from feature_repo.definitions import feature_view

    tenant = tenant or get_settings().tenant
    store = get_feature_store(tenant)
    for spec in FEATURE_VIEWS.values():
        try:
            registered = store.get_feature_view(spec.name, allow_registry_cache=False)
        except FeatureViewNotFoundException:
            return True
        wanted = feature_view(spec, tenant)
        if (
            [(f.name, f.dtype) for f in registered.features]
            != [(f.name, f.dtype) for f in wanted.features]
            or registered.batch_source != wanted.batch_source
            or registered.ttl != wanted.ttl
        ):
            return True
    return False


def table_time_range(
    table: str, tenant: str, database_url: str | None = None
) -> tuple[datetime | None, datetime | None]:
    """(oldest, newest) `event_timestamp` of a feature table for `tenant`; (None, None) if empty
    or if the table does not exist yet."""
    database_url = database_url or service_urls()[0]
    with psycopg.connect(libpq_url(database_url)) as conn:
        exists = conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0]
        if exists is None:
            return None, None
        row = conn.execute(
            f"SELECT min(event_timestamp), max(event_timestamp) FROM {table} WHERE tenant_id = %s",
            (tenant,),
        ).fetchone()
    return (row[0], row[1]) if row else (None, None)


def rfm_time_range(tenant: str) -> tuple[datetime | None, datetime | None]:
    """(oldest, newest) `event_timestamp` in customer_rfm for `tenant`; (None, None) when empty."""
    return table_time_range(CUSTOMER_RFM.table, tenant)


def materialize_view(
    spec: FeatureViewSpec,
    end: datetime | None = None,
    *,
    tenant: str | None = None,
    unchanged: bool = False,
) -> datetime | None:
    """Load one view's table into Redis up to `end` (default: its newest row); returns the end,
    or None when the tenant has no rows for it.

    Feast's materialize_incremental starts at now - ttl on its first run, which would skip
    historical data (Complete Journey is from 2017), so the first run materializes from the
    earliest row explicitly (with Feast); later runs load only the rows newer than the view's
    last run, with features/online_write.py (Feast's own incremental path, minus its
    overhead). `unchanged`: the caller did not write the table since the last run, so a view
    already loaded up to its newest row is skipped (Feast would still scan the table's window:
    seconds on the big views).
    """
    tenant = tenant or get_settings().tenant
    oldest, newest = table_time_range(spec.table, tenant)
    if newest is None:
        return None
    end = end or newest
    store = get_feature_store(tenant)
    fv = store.get_feature_view(spec.name, allow_registry_cache=False)
    if unchanged and fv.most_recent_end_time is not None and end <= fv.most_recent_end_time:
        return end
    if fv.most_recent_end_time is not None:
        _materialize_since(store, fv, spec, tenant, end)
        return end
    # Feast prints a progress banner per view to stdout; ours is the caller's to show.
    with contextlib.redirect_stdout(io.StringIO()) as banner:
        # Rows older than the TTL are expired for every reader: don't load them.
        start = max(oldest or end, end - spec.ttl) - timedelta(seconds=1)
        store.materialize(start_date=start, end_date=end, feature_views=[spec.name])
    log.info("feast: %s", banner.getvalue().strip())
    return end


def _materialize_since(
    store: FeatureStore, fv: FeatureView, spec: FeatureViewSpec, tenant: str, end: datetime
) -> int:
    """Feast's materialize_incremental of one view, done by features/online_write.py (same rows,
    same Redis bytes, interval recorded in the registry) without the SDK's per-row overhead."""
    import redis

    from features.online_write import write_view_since

    start = fv.most_recent_end_time
    database_url, redis_url = service_urls()
    client = redis.Redis.from_url(redis_url)
    try:
        with psycopg.connect(libpq_url(database_url)) as conn:
            written = write_view_since(
                conn, client, project=store.project, spec=spec, tenant=tenant,
                start=start, end=end,
            )  # fmt: skip
    finally:
        client.close()
    store.registry.apply_materialization(fv, store.project, start, end)
    log.info("online: %s %d entities in [%s, %s]", spec.name, written, start, end)
    return written
