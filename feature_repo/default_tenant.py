"""The default tenant's Feast objects at module level, for Feast's own CLI.

`feast plan`, `feast feature-views list`, `feast ui` … import every module of the repository and
collect the Feast objects they find as module attributes; they cannot call a function of the
tenant. The platform builds each tenant's objects with `definitions.feature_objects(tenant)`;
this module calls the same function once, for the settings' tenant (`RETAILPULSE_TENANT`,
"default" unless set), and binds every object to its name (`customer_rfm_fv`, `segmenter_v1`, …),
so both paths share one definition: features/catalog.py. Building them does no I/O. The platform
never imports this module.

Usage: `eval "$(retailpulse features env)" && cd feature_repo && feast plan`.
"""

from __future__ import annotations

from core.settings import get_settings
from feature_repo.definitions import FeastObject, feature_objects

TENANT: str = get_settings().tenant
OBJECTS: list[FeastObject] = feature_objects(TENANT)


def _bind(objects: list[FeastObject]) -> None:
    """Make each object a module attribute named after it (what `feast` discovers)."""
    namespace = globals()
    for obj in objects:
        if obj.name in namespace:
            raise RuntimeError(f"feature_repo: {obj.name!r} names two objects")
        namespace[obj.name] = obj


_bind(OBJECTS)
