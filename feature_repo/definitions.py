"""Feast definitions, built from `features/catalog.py` (declarative: constructing them does no I/O).

Tenancy: one Feast project per tenant (see `features.store.project_for`). Entity keys are bare
(`customer_id`, `store_id` × `product_id`), so each tenant's source must only return that
tenant's rows; the tenant is therefore part of the source query, and `feature_objects(tenant)`
builds the tenant's objects. Feast stores the query in the registry, so applying for tenant A
never changes tenant B. `default_tenant.py` binds the default tenant's objects at module level
for Feast's own CLI (`feast plan`, `feast ui`); this module defines none, so `feast` finds one
copy of each.
"""

from __future__ import annotations

from feast import Entity, FeatureService, FeatureView, Field, ValueType
from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import (
    PostgreSQLSource,
)
from feast.types import Float64, Int64, String

from features.catalog import (
    FEATURE_SERVICES,
    FEATURE_VIEWS,
    TIMESTAMP_FIELD,
    EntitySpec,
    FeatureViewSpec,
)

_DTYPES = {"float64": Float64, "int64": Int64, "string": String}
_KEY_TYPES = {"int64": ValueType.INT64, "string": ValueType.STRING}

FeastObject = Entity | PostgreSQLSource | FeatureView | FeatureService


def entity(spec: EntitySpec) -> Entity:
    """The Feast entity of `spec`."""
    return Entity(
        name=spec.name,
        join_keys=[spec.join_key],
        value_type=_KEY_TYPES[spec.key_type],
        description=spec.description,
    )


def source(spec: FeatureViewSpec, tenant: str) -> PostgreSQLSource:
    """The tenant's rows of the view's warehouse table."""
    return PostgreSQLSource(
        name=spec.source_name,
        query=spec.source_query(tenant),
        timestamp_field=TIMESTAMP_FIELD,
        created_timestamp_column=spec.created_field or "",
        description=f"{spec.description} (table {spec.table}, tenant {tenant})",
        tags={"tenant": tenant},
    )


def feature_view(spec: FeatureViewSpec, tenant: str) -> FeatureView:
    """The Feast FeatureView of `spec` for `tenant`."""
    key_fields = [Field(name=e.join_key, dtype=_DTYPES[e.key_type]) for e in spec.entities]
    return FeatureView(
        name=spec.name,
        entities=[entity(e) for e in spec.entities],
        ttl=spec.ttl,
        schema=key_fields
        + [
            Field(name=f.name, dtype=_DTYPES[f.dtype], description=f.description)
            for f in spec.features
        ],
        source=source(spec, tenant),
        online=True,
        description=spec.description,
        tags={"tenant": tenant, **spec.tags},
    )


def feature_objects(tenant: str) -> list[FeastObject]:
    """Every Feast object of `tenant`'s project, in the order `FeatureStore.apply` takes."""
    views = {name: feature_view(spec, tenant) for name, spec in FEATURE_VIEWS.items()}
    entities = {e.name: entity(e) for spec in FEATURE_VIEWS.values() for e in spec.entities}
    services = [
        FeatureService(
            name=svc.name, features=[views[v.name] for v in svc.views], description=svc.description
        )
        for svc in FEATURE_SERVICES.values()
    ]
    sources = [fv.batch_source for fv in views.values()]
    return [*entities.values(), *sources, *views.values(), *services]
