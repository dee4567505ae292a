"""Model configs in YAML with named `profiles:` that override any subset of the keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`base` with `over` applied: nested mappings merge key by key, anything else replaces."""
    out = dict(base)
    for key, value in over.items():
        is_map = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = deep_merge(out[key], value) if is_map else value
    return out


def read_profiled(path: Path, profile: str | None, what: str) -> dict[str, Any]:
    """The mapping in `path` without its `profiles:`, with `profile` applied when given."""
    if not path.is_file():
        raise FileNotFoundError(f"{what} config not found: {path}")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    profiles = raw.pop("profiles", {}) or {}
    if profile is not None:
        if profile not in profiles:
            raise ValueError(f"{path}: no profile {profile!r} (have {sorted(profiles)})")
        raw = deep_merge(raw, profiles[profile])
    return raw
