"""The MLflow model registry, generic over `ModelSpec`s: register, promote, load.

Registered names are per tenant (`<tenant>.<model>`, `ModelSpec.registered_name`), so one
tenant's training never replaces another's champion. The alias `champion` marks the served
version; a challenger takes it only if it is strictly better on the primary metric, measured on
the same tenant's evaluation window for both (the caller passes that window as `evaluate`).
A run that fails before `promote` leaves the champion untouched.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from training.specs import ModelSpec
from training.tracking import configure_mlflow

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

log = logging.getLogger(__name__)

CHAMPION_ALIAS = "champion"
MODEL_ARTIFACT = "model"
MODEL_URI_TAG = "retailpulse.model_uri"
WINDOW_TAG = "evaluation_window"
_MISSING = ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE")


@dataclass(frozen=True)
class Loaded:
    """A registered version turned into its serving object by the spec's loader."""

    model: Any
    name: str
    version: str
    run_id: str


def _client() -> MlflowClient:
    from mlflow import MlflowClient

    configure_mlflow()
    return MlflowClient()


def champion_version(client: MlflowClient, name: str) -> ModelVersion | None:
    """The version behind alias `champion`, or None (no such model or alias)."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, CHAMPION_ALIAS)
    except MlflowException as exc:
        if exc.error_code in _MISSING:
            return None
        raise


def _model_uri(client: MlflowClient, run_id: str) -> str:
    # MLflow 3 stores models as LoggedModels (models:/m-…); trainers tag the run with it.
    return client.get_run(run_id).data.tags.get(MODEL_URI_TAG) or f"runs:/{run_id}/{MODEL_ARTIFACT}"


def _load(spec: ModelSpec, mv: ModelVersion) -> Loaded:
    model = spec.loader()(f"models:/{mv.name}/{mv.version}", mv.run_id)
    return Loaded(model=model, name=mv.name, version=str(mv.version), run_id=mv.run_id)


def register_and_promote(
    spec: ModelSpec,
    run_id: str,
    metric: float,
    *,
    tenant: str,
    evaluate: Callable[[Any], float] | None = None,
    tags: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Register the run's model as a new version of `<tenant>.<model>`; move `champion` to it
    only if it beats the current champion.

    With `evaluate` (a function of a loaded model returning the primary metric on the tenant's
    evaluation window), the new version and the champion are both scored by it, like for like.
    Without it, `metric` is compared with the champion's logged metric, and only when both were
    measured on the same window (tag `evaluation_window`); otherwise the champion stays.
    Returns {version, promoted, reason, metric, champion_version, champion_metric, basis}.
    """
    import mlflow

    client = _client()
    name = spec.registered_name(tenant)
    mv = mlflow.register_model(_model_uri(client, run_id), name)
    version = str(mv.version)
    window = (tags or {}).get(WINDOW_TAG, spec.evaluation_window)
    for key, value in {spec.metric: f"{metric:.6f}", WINDOW_TAG: window, **(tags or {})}.items():
        client.set_model_version_tag(name, version, key, str(value))
    champion = champion_version(client, name)
    result: dict[str, Any] = {
        "name": name,
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
        if evaluate is not None:
            ours = float(evaluate(_load(spec, mv).model))
            theirs = float(evaluate(_load(spec, champion).model))
            result.update(metric=ours, basis="same window, re-scored")
        else:
            ours = float(metric)
            logged = champion.tags.get(spec.metric)
            same_window = champion.tags.get(WINDOW_TAG) == window
            theirs = float(logged) if logged is not None and same_window else None
            result["basis"] = "logged on the same window"
        if theirs is None:
            result["reason"] = (
                f"champion v{champion.version} was measured on another window; kept "
                f"(promote explicitly with `retailpulse models promote`)"
            )
        else:
            result["champion_metric"] = theirs
            verdict = "beats" if spec.better(ours, theirs) else "does not beat"
            result["reason"] = (
                f"{spec.metric} {ours:.4f} {verdict} champion v{champion.version} ({theirs:.4f})"
            )
            result["promoted"] = spec.better(ours, theirs)
    if result["promoted"]:
        client.set_registered_model_alias(name, CHAMPION_ALIAS, version)
    client.set_model_version_tag(name, version, "promotion", result["reason"])
    log.info("%s v%s: %s", name, version, result["reason"])
    return result


def _resolve(spec: ModelSpec, tenant: str, want: str) -> ModelVersion | None:
    """The registry entry `want` ("champion" or a version number) names; None if none."""
    from mlflow.exceptions import MlflowException

    client = _client()
    name = spec.registered_name(tenant)
    if want == CHAMPION_ALIAS:
        return champion_version(client, name)
    try:
        return client.get_model_version(name, str(want))
    except MlflowException as exc:
        if exc.error_code in _MISSING:
            return None
        raise


def has_champion(spec: ModelSpec, tenant: str) -> bool:
    """Whether the tenant has a champion of `spec` (one registry call; nothing is loaded)."""
    return _resolve(spec, tenant, CHAMPION_ALIAS) is not None


def load_champion(spec: ModelSpec, tenant: str) -> Loaded | None:
    """The tenant's champion of `spec`, loaded; None when nothing is promoted yet."""
    return load(spec, tenant, CHAMPION_ALIAS)


def load_version(spec: ModelSpec, tenant: str, version: str | int) -> Loaded | None:
    """One registered version of the tenant's model, loaded; None if it does not exist."""
    return load(spec, tenant, str(version))


def load(
    spec: ModelSpec, tenant: str, want: str = CHAMPION_ALIAS, *, reuse: Loaded | None = None
) -> Loaded | None:
    """Load the version `want` names ("champion" or a number); None when there is none.

    `reuse`: an already loaded version, returned as is when `want` still names it (a reload
    after a promotion of another model, or of the same version, costs one registry query).
    """
    mv = _resolve(spec, tenant, str(want))
    if mv is None:
        return None
    if reuse is not None and str(reuse.version) == str(mv.version):
        return reuse
    return _load(spec, mv)


def versions(spec: ModelSpec, tenant: str) -> list[dict[str, Any]]:
    """Every registered version of the tenant's model, newest first, with its metric, window,
    promotion note and whether it is the champion ([] when none is registered)."""
    client = _client()
    name = spec.registered_name(tenant)
    champion = champion_version(client, name)
    found = client.search_model_versions(f"name = '{name}'")
    rows = [
        {
            "version": str(mv.version),
            "champion": champion is not None and str(mv.version) == str(champion.version),
            "metric": mv.tags.get(spec.metric),
            "window": mv.tags.get(WINDOW_TAG),
            "note": mv.tags.get("promotion"),
            "run_id": mv.run_id,
            "created": mv.creation_timestamp,
        }
        for mv in found
    ]
    return sorted(rows, key=lambda r: -int(r["version"]))


def promote(spec: ModelSpec, tenant: str, version: str | int) -> dict[str, Any]:
    """Point the tenant's `champion` alias at `version` (an operator's explicit decision)."""
    from core.errors import NotFoundError

    client = _client()
    name = spec.registered_name(tenant)
    known = {r["version"] for r in versions(spec, tenant)}
    if str(version) not in known:
        raise NotFoundError(
            f"{name} has no version {version} (registered: {sorted(known, key=int) or 'none'})",
            details={"model": name, "version": str(version)},
        )
    before = champion_version(client, name)
    client.set_registered_model_alias(name, CHAMPION_ALIAS, str(version))
    client.set_model_version_tag(name, str(version), "promotion", "promoted by an operator")
    return {
        "name": name,
        "version": str(version),
        "previous": str(before.version) if before else None,
    }
