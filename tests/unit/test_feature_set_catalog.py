"""The feature set's catalog entries: typed, described, grouped into services; Feast objects."""

from __future__ import annotations

from datetime import UTC, datetime

from features.catalog import (
    CUSTOMER_BEHAVIOUR,
    CUSTOMER_DEMOGRAPHICS,
    FEATURE_SERVICES,
    FEATURE_VIEWS,
    PRODUCT_STATS,
)
from features.customer_behaviour import DEPARTMENT_GROUPS
from features.refresh import _business_day_start

NEW_VIEWS = (CUSTOMER_BEHAVIOUR, CUSTOMER_DEMOGRAPHICS, PRODUCT_STATS)


def test_new_views_are_registered_typed_and_described():
    for view in NEW_VIEWS:
        assert FEATURE_VIEWS[view.name] is view
        assert view.features and all(f.description and f.dtype for f in view.features)
    assert CUSTOMER_BEHAVIOUR.name == "customer_behaviour_fv"
    assert {f.dtype for f in CUSTOMER_DEMOGRAPHICS.features} == {"int64", "float64", "string"}


def test_customer_360_groups_every_customer_view_and_old_services_stay():
    customer_views = {v.name for v in FEATURE_VIEWS.values() if v.join_keys == ("customer_id",)}
    assert {v.name for v in FEATURE_SERVICES["customer_360_v1"].views} == customer_views
    assert {v.name for v in FEATURE_SERVICES["product_360_v1"].views} == {
        "product_attributes_fv",
        "product_stats_fv",
    }
    assert [v.name for v in FEATURE_SERVICES["segmenter_v1"].views] == ["customer_rfm_fv"]


def test_department_groups_are_disjoint_and_have_a_share_each():
    departments = [d for depts in DEPARTMENT_GROUPS.values() for d in depts]
    assert len(departments) == len(set(departments))
    shares = [n for n in CUSTOMER_BEHAVIOUR.feature_names if n.startswith("share_")]
    assert shares == [f"share_{g}" for g in DEPARTMENT_GROUPS]


def test_feast_objects_of_the_new_views_carry_their_types():
    from feast.types import Float64, Int64, String

    from feature_repo.definitions import feature_objects

    views = {o.name: o for o in feature_objects("default") if o.name in {v.name for v in NEW_VIEWS}}
    dtypes = {f.name: f.dtype for f in views["customer_demographics_fv"].features}
    assert (dtypes["age_band"], dtypes["age_years"], dtypes["has_demographics"]) == (
        String,
        Float64,
        Int64,
    )
    assert all(f.description for v in views.values() for f in v.features)


def test_business_day_starts_at_five_utc():
    assert _business_day_start(datetime(2024, 1, 2, 3, tzinfo=UTC)) == datetime(
        2024, 1, 1, 5, tzinfo=UTC
    )
    assert _business_day_start(datetime(2024, 1, 2, 6, tzinfo=UTC)) == datetime(
        2024, 1, 2, 5, tzinfo=UTC
    )
