"""Report parameters, templates, cron schedules and the accuracy / segment arithmetic (no
services)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from core.errors import ValidationFailed
from reports.forecast_accuracy import metrics
from reports.params import PeriodParams, resolve_period
from reports.scheduler import check_cron, check_timezone, next_run
from reports.segment_profile import rfm_labels
from reports.templates import TEMPLATES, get_template, validate_params


def fields_of(exc: pytest.ExceptionInfo[ValidationFailed]) -> list[str]:
    return [e["field"] for e in exc.value.details["errors"]]


def test_every_template_describes_its_parameters_by_their_api_names() -> None:
    assert set(TEMPLATES) == {"sales_summary", "store_comparison", "forecast_accuracy",
                              "segment_profile", "alert_digest"}  # fmt: skip
    for t in TEMPLATES.values():
        props = t.describe()["parameters"]["properties"]
        assert {"from", "to", "lastDays"} <= set(props), t.name
    assert "topN" in TEMPLATES["sales_summary"].describe()["parameters"]["properties"]


def test_bad_parameters_are_422_naming_the_field() -> None:
    sales = get_template("sales_summary")
    with pytest.raises(ValidationFailed) as exc:
        validate_params(sales, {"from": "2017-03-01", "to": "2017-01-01"})
    assert fields_of(exc) == ["params.to"] and "on or after" in exc.value.message
    with pytest.raises(ValidationFailed) as exc:
        validate_params(sales, {"from": "not a date", "topN": 0, "colour": "red"})
    assert sorted(fields_of(exc)) == ["params.colour", "params.from", "params.topN"]
    with pytest.raises(ValidationFailed) as exc:
        validate_params(sales, {"from": "2017-01-01", "lastDays": 7})
    assert fields_of(exc) == ["params.lastDays"]
    with pytest.raises(ValidationFailed) as exc:
        validate_params(sales, {"from": "1800-01-01"})
    assert fields_of(exc) == ["params.from"]
    with pytest.raises(ValidationFailed) as exc:
        get_template("weekly_magic")
    assert fields_of(exc) == ["template"] and "sales_summary" in exc.value.message


def test_parameters_keep_their_api_names_and_store_ids_as_text() -> None:
    params = validate_params(get_template("store_comparison"),
                             {"from": "2017-01-01", "stores": [367, "375"], "rankBy": "baskets"})  # fmt: skip
    assert params.stores == ["367", "375"]
    assert params.public() == {"from": "2017-01-01", "stores": ["367", "375"],
                               "rankBy": "baskets"}  # fmt: skip


def test_periods_default_to_the_data_and_roll_with_last_days() -> None:
    span = (date(2017, 1, 1), date(2017, 12, 31))
    whole = resolve_period(PeriodParams(), span)
    assert (whole.start, whole.end, whole.days) == (date(2017, 1, 1), date(2017, 12, 31), 365)
    week = resolve_period(PeriodParams(lastDays=7), span)
    assert (week.start, week.end) == (date(2017, 12, 25), date(2017, 12, 31))
    fixed = resolve_period(PeriodParams(lastDays=3, to=date(2017, 6, 3)), span)
    assert (fixed.start, fixed.end) == (date(2017, 6, 1), date(2017, 6, 3))
    assert fixed.upper == datetime(2017, 6, 4, tzinfo=UTC)
    assert resolve_period(PeriodParams(), None) is None


def test_cron_and_time_zone_validation() -> None:
    assert check_cron(" 0  6 * *   1 ") == "0 6 * * 1"
    for bad in ("61 * * * *", "* * * * * *", "every monday", "", "0 6 30 2 *"):
        with pytest.raises(ValidationFailed) as exc:
            check_cron(bad)
        assert fields_of(exc) == ["cron"], bad
    for bad in ("Mars/Base", "Europe", "", "../../etc/passwd"):
        with pytest.raises(ValidationFailed) as exc:
            check_timezone(bad)
        assert fields_of(exc) == ["timezone"], bad


def test_next_run_follows_the_schedule_wall_clock() -> None:
    after = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)  # a Monday
    assert next_run("0 6 * * 1", "UTC", after) == datetime(2026, 12, 7, 6, 0, tzinfo=UTC)
    # 06:00 in Paris is 05:00 UTC in winter
    assert next_run("0 6 * * *", "Europe/Paris", after) == datetime(2026, 12, 1, 5, 0, tzinfo=UTC)
    assert next_run("@hourly", "UTC", after) == datetime(2026, 11, 30, 16, 0, tzinfo=UTC)


def test_accuracy_metrics_by_hand() -> None:
    rows = [
        {"p10": 0, "p50": 12, "p90": 20, "actual": 10},  # error +2, inside
        {"p10": 0, "p50": 3, "p90": 4, "actual": 6},  # error -3, outside
        {"p10": 0, "p50": 1, "p90": 2, "actual": 0},  # error +1, inside, not in MAPE
    ]
    m = metrics(rows)
    assert m["rows"] == 3 and m["actual"] == 16 and m["predicted"] == 16
    assert m["mae"] == pytest.approx(2.0)
    assert m["wape"] == pytest.approx(6 / 16)
    assert m["mape"] == pytest.approx((2 / 10 + 3 / 6) / 2)
    assert m["bias"] == pytest.approx(0.0)
    assert m["coverage"] == pytest.approx(2 / 3)
    assert metrics([])["mae"] is None


def test_rfm_rule_splits_customers_into_named_thirds() -> None:
    # 9 customers: recency 1..9 days, baskets 9..1 (the most recent are the most frequent)
    activity = {c: {"recency_days": float(c), "baskets": float(10 - c)} for c in range(1, 10)}
    labels = rfm_labels(activity)
    assert [labels[c] for c in (1, 2, 3)] == ["Champions"] * 3
    assert [labels[c] for c in (4, 5, 6)] == ["Steady"] * 3
    assert [labels[c] for c in (7, 8, 9)] == ["Lapsing"] * 3
    assert rfm_labels({}) == {}
