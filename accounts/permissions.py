"""Roles, permissions, and the one table that says which permission every route needs.

Roles (seed §6.2) and what they may do:

| role | permissions | tenants | stores |
|---|---|---|---|
| `super_admin` | everything, including `manage:tenants` | any (the `X-Tenant-ID` header picks one) | all |
| `tenant_admin` | everything of its tenant, including `manage:users` | its own | all |
| `store_manager` | reads, `write:inventory`, `write:reports`, `write:alerts`, `write:integrations` (POS and inventory syncs of its stores) | its own | its stores |
| `analyst` | every read (sales, analytics, predictions, pricing, ...), `write:reports` | its own | all |
| `sales_associate` | sales, customers, recommendations, reports and alerts (read) | its own | its stores |

Routes map to permissions in `ROUTE_PERMISSIONS` (method + path template) and, for the
analytics, alerts and reports families, by prefix in `PREFIX_RULES` (GET → the read
permission, any other method → the write permission), so a new route there is covered without
an entry of its own. `permission_for` answers for one route; `serving/auth.py` enforces it for
every request in one app-wide dependency. `PUBLIC` routes need no token; `AUTHENTICATED`
routes need any valid token and check the rest themselves (e.g. "yourself, or `manage:users`").
"""

from __future__ import annotations

from types import MappingProxyType

SUPER_ADMIN = "super_admin"
TENANT_ADMIN = "tenant_admin"
STORE_MANAGER = "store_manager"
ANALYST = "analyst"
SALES_ASSOCIATE = "sales_associate"
ROLES = (SUPER_ADMIN, TENANT_ADMIN, STORE_MANAGER, ANALYST, SALES_ASSOCIATE)
STORE_SCOPED_ROLES = frozenset({STORE_MANAGER, SALES_ASSOCIATE})

READ_SALES = "read:sales"
READ_ANALYTICS = "read:analytics"
READ_CUSTOMERS = "read:customers"
READ_PREDICTIONS = "read:predictions"
READ_PRICING = "read:pricing"
READ_RECOMMENDATIONS = "read:recommendations"
READ_INVENTORY = "read:inventory"
WRITE_INVENTORY = "write:inventory"
READ_REPORTS = "read:reports"
WRITE_REPORTS = "write:reports"
READ_ALERTS = "read:alerts"
WRITE_ALERTS = "write:alerts"
READ_AUDIT = "read:audit"
# integration API: sync status; POS / inventory syncs; CRM syncs and webhooks (tenant-wide)
READ_INTEGRATIONS = "read:integrations"
WRITE_INTEGRATIONS = "write:integrations"
MANAGE_INTEGRATIONS = "manage:integrations"
MANAGE_USERS = "manage:users"
MANAGE_TENANTS = "manage:tenants"

PERMISSIONS = (
    READ_SALES,
    READ_ANALYTICS,
    READ_CUSTOMERS,
    READ_PREDICTIONS,
    READ_PRICING,
    READ_RECOMMENDATIONS,
    READ_INVENTORY,
    WRITE_INVENTORY,
    READ_REPORTS,
    WRITE_REPORTS,
    READ_ALERTS,
    WRITE_ALERTS,
    READ_AUDIT,
    MANAGE_USERS,
    MANAGE_TENANTS,
    READ_INTEGRATIONS,
    WRITE_INTEGRATIONS,
    MANAGE_INTEGRATIONS,
)

# Pseudo-permissions of the route table (never granted to a role).
PUBLIC = "public"  # no token needed (login, refresh, password reset, health, docs)
AUTHENTICATED = "authenticated"  # any valid token; the route checks the rest

_READS = frozenset(
    {
        READ_SALES,
        READ_ANALYTICS,
        READ_CUSTOMERS,
        READ_PREDICTIONS,
        READ_PRICING,
        READ_RECOMMENDATIONS,
        READ_INVENTORY,
        READ_REPORTS,
        READ_ALERTS,
        READ_INTEGRATIONS,
    }
)

ROLE_PERMISSIONS: MappingProxyType[str, frozenset[str]] = MappingProxyType(
    {
        SUPER_ADMIN: frozenset(PERMISSIONS),
        TENANT_ADMIN: frozenset(PERMISSIONS) - {MANAGE_TENANTS},
        STORE_MANAGER: _READS | {WRITE_INVENTORY, WRITE_REPORTS, WRITE_ALERTS, WRITE_INTEGRATIONS},
        ANALYST: _READS | {WRITE_REPORTS},
        SALES_ASSOCIATE: frozenset(
            {READ_SALES, READ_CUSTOMERS, READ_RECOMMENDATIONS, READ_REPORTS, READ_ALERTS}
        ),
    }
)

# Which roles a caller of each role may create or assign (registration, role changes).
GRANTABLE: MappingProxyType[str, frozenset[str]] = MappingProxyType(
    {
        SUPER_ADMIN: frozenset(ROLES),
        TENANT_ADMIN: frozenset(ROLES) - {SUPER_ADMIN},
    }
)

USERS = "/api/v1/users"

# Every route of the API, by (method, path template). HEAD answers like GET.
ROUTE_PERMISSIONS: MappingProxyType[tuple[str, str], str] = MappingProxyType(
    {
        # health and documentation
        ("GET", "/healthz"): PUBLIC,
        ("GET", "/openapi.json"): PUBLIC,
        ("GET", "/docs"): PUBLIC,
        ("GET", "/docs/oauth2-redirect"): PUBLIC,
        ("GET", "/redoc"): PUBLIC,
        # accounts: signing in needs no token; registering needs manage:users (the first
        # admin of a tenant comes from `retailpulse users create-admin`)
        ("POST", f"{USERS}/login"): PUBLIC,
        ("POST", f"{USERS}/token"): PUBLIC,
        ("POST", f"{USERS}/token/refresh"): PUBLIC,
        ("POST", f"{USERS}/password-reset/request"): PUBLIC,
        ("POST", f"{USERS}/password-reset/confirm"): PUBLIC,
        ("POST", f"{USERS}/register"): MANAGE_USERS,
        ("POST", f"{USERS}/logout"): AUTHENTICATED,
        ("GET", f"{USERS}/me"): AUTHENTICATED,
        ("PUT", f"{USERS}/{{userId}}/profile"): AUTHENTICATED,  # yourself, or manage:users
        ("GET", f"{USERS}/{{userId}}/permissions"): AUTHENTICATED,  # yourself, or manage:users
        ("POST", f"{USERS}/{{userId}}/roles"): MANAGE_USERS,
        ("POST", f"{USERS}/mfa/enrol"): AUTHENTICATED,
        ("POST", f"{USERS}/mfa/verify"): AUTHENTICATED,
        ("POST", f"{USERS}/mfa/disable"): AUTHENTICATED,
        ("GET", f"{USERS}/audit"): READ_AUDIT,
        # customers and segments
        ("GET", "/api/v1/analytics/customers/segments"): READ_CUSTOMERS,
        ("GET", "/api/v1/customers/{customerId}/segment"): READ_CUSTOMERS,
        # predictions
        ("POST", "/api/v1/predictions/demand/forecast"): READ_PREDICTIONS,
        ("POST", "/api/v1/predictions/anomalies/detect"): READ_PREDICTIONS,
        ("POST", "/api/v1/predictions/churn/analyze"): READ_PREDICTIONS,
        ("POST", "/api/v1/predictions/inventory/optimize"): READ_INVENTORY,
        ("POST", "/api/v1/predictions/pricing/elasticity"): READ_PRICING,
        ("POST", "/api/v1/predictions/promotions/impact"): READ_PRICING,
        # recommendations
        ("GET", "/api/v1/recommendations/products/{customerId}"): READ_RECOMMENDATIONS,
        ("GET", "/api/v1/recommendations/actions/{associateId}"): READ_RECOMMENDATIONS,
        ("GET", "/api/v1/recommendations/promotions"): READ_RECOMMENDATIONS,
        ("POST", "/api/v1/recommendations/reorder"): READ_INVENTORY,
        ("POST", "/api/v1/recommendations/pricing"): READ_PRICING,
        # live updates: the socket authenticates with ?token= itself (issue 9 part 5)
        ("WEBSOCKET", "/ws"): AUTHENTICATED,
        # integration API (issue 8 part 4): store-level syncs vs tenant-wide CRM and webhooks
        ("POST", "/api/v1/integrations/pos/sync"): WRITE_INTEGRATIONS,
        ("POST", "/api/v1/integrations/inventory/sync"): WRITE_INTEGRATIONS,
        ("POST", "/api/v1/integrations/crm/sync"): MANAGE_INTEGRATIONS,
        ("GET", "/api/v1/integrations/status"): READ_INTEGRATIONS,
        ("POST", "/api/v1/integrations/webhooks"): MANAGE_INTEGRATIONS,
        ("GET", "/api/v1/integrations/webhooks"): MANAGE_INTEGRATIONS,
        ("GET", "/api/v1/integrations/webhooks/{webhookId}/deliveries"): MANAGE_INTEGRATIONS,
        ("DELETE", "/api/v1/integrations/webhooks/{webhookId}"): MANAGE_INTEGRATIONS,
    }
)

# Route families other slices grow: (path prefix, permission for GET, for any other method).
# The longest matching prefix wins. Analytics POSTs are queries (basket analysis), not writes.
PREFIX_RULES: tuple[tuple[str, str, str], ...] = (
    ("/api/v1/analytics/sales/", READ_SALES, READ_SALES),
    ("/api/v1/analytics/customers/", READ_CUSTOMERS, READ_CUSTOMERS),
    ("/api/v1/analytics/", READ_ANALYTICS, READ_ANALYTICS),
    ("/api/v1/alerts/", READ_ALERTS, WRITE_ALERTS),
    ("/api/v1/reports/", READ_REPORTS, WRITE_REPORTS),
    ("/api/v1/inventory/", READ_INVENTORY, WRITE_INVENTORY),
)
_PREFIXES = tuple(sorted(PREFIX_RULES, key=lambda rule: -len(rule[0])))


def permission_for(method: str, path: str) -> str | None:
    """The permission route `method path` (a path template) needs; None: not in the table."""
    method = "GET" if method == "HEAD" else method.upper()
    found = ROUTE_PERMISSIONS.get((method, path))
    if found is not None:
        return found
    for prefix, read, write in _PREFIXES:
        if path.startswith(prefix) or path == prefix.rstrip("/"):
            return read if method == "GET" else write
    return None


def permissions_of(role: str) -> frozenset[str]:
    """The permissions `role` carries (an unknown role carries none)."""
    return ROLE_PERMISSIONS.get(role, frozenset())


def roles_allowed(permission: str) -> frozenset[str]:
    """Roles whose callers pass a route needing `permission`."""
    if permission in (PUBLIC, AUTHENTICATED):
        return frozenset(ROLES)
    return frozenset(r for r in ROLES if permission in ROLE_PERMISSIONS[r])


def can_grant(granter_role: str, role: str) -> bool:
    """May a caller of `granter_role` create a user of `role` or give someone that role?"""
    return role in GRANTABLE.get(granter_role, frozenset())
