"""What every training job shares: its config loaded with errors that name each bad key, and
its MLflow run registered and promoted only if it beats the champion on the same window."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.errors import ValidationFailed


def load_config(loader: Callable[..., Any], path: Path | None, **options: Any) -> Any:
    """`loader(path, **options)`; a config it refuses is a ValidationFailed naming the file and
    each bad key (not pydantic's bare "1 validation error for …" line)."""
    import yaml
    from pydantic import ValidationError

    where = path or "the default config"
    try:
        return loader(path, **options)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '(top)'}: {e['msg']}" for e in exc.errors()
        )
        raise ValidationFailed(f"config {where}: {problems}") from exc
    except (OSError, ValueError, yaml.YAMLError) as exc:  # unreadable, not YAML, no such profile
        raise ValidationFailed(f"config {where}: {exc}") from exc


def register(
    spec: Any,
    run_id: str,
    metric: float,
    tenant: str,
    window: str,
    summary: dict[str, Any],
    step: Any,
) -> None:
    """Register MLflow run `run_id` as a version of the tenant's `spec` model and promote it if
    `metric` beats the champion's logged metric on the identical `window`; adds the outcome to
    `summary`."""
    from training import registry

    step("registering in MLflow")
    result = registry.register_and_promote(
        spec, run_id, metric, tenant=tenant, tags={registry.WINDOW_TAG: window}
    )
    summary.update({k: result[k] for k in ("name", "version", "promoted", "reason")})
