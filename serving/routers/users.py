"""Accounts (seed §2.6): the signed-in account, registration, profiles, roles, permissions
and the audit log. Sign-in, tokens, password reset and MFA are in `credentials.py`.

Who may do what is in accounts/permissions.py (`ROUTE_PERMISSIONS`) and accounts/users.py
(registration: the first admin of a tenant comes from `retailpulse users create-admin`;
afterwards `manage:users`). The work runs in accounts/ on a worker thread (argon2 hashing and
psycopg are blocking); these handlers validate, call, and envelope.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from accounts import repo, users
from core.errors import ServiceUnavailable
from core.values import Text
from serving import envelope
from serving.account_calls import DOWN, UserId, run_account, user_out, without_redis
from serving.auth import CurrentUser, request_meta
from serving.deps import TenantDep
from serving.schemas_users import (
    AuditPage,
    PermissionsOut,
    ProfileUpdate,
    RegisterRequest,
    RoleChange,
    UserOut,
)

router = APIRouter(prefix="/api/v1/users", tags=["users"])


@router.get("/me", responses=envelope.errors(_503=DOWN))
async def me(request: Request, principal: CurrentUser) -> envelope.Envelope[UserOut]:
    """The signed-in account."""
    user = await run_account(
        without_redis(repo.get_user), tenant=principal.tenant, user_id=principal.user_id
    )
    if user is None:
        raise ServiceUnavailable("the account of this token is gone", details={})
    return envelope.ok(request, user_out(user))


# ----------------------------------------------------------------------------- accounts


@router.post(
    "/register",
    responses=envelope.errors(
        _409="The tenant already has an account with this e-mail address", _503=DOWN
    ),
)
async def register(
    request: Request, body: RegisterRequest, principal: CurrentUser, tenant: TenantDep
) -> envelope.Envelope[UserOut]:
    """Create an account in the caller's tenant (a super admin: the X-Tenant-ID one). Needs
    `manage:users`; a tenant admin cannot create super admins. Store managers and sales
    associates need `storeIds`."""
    user = await run_account(
        without_redis(users.register),
        actor=principal,
        tenant=tenant,
        email=body.email,
        password=body.password,
        role=body.role,
        name=body.name,
        store_ids=body.storeIds,
        meta=request_meta(request),
    )
    request.state.audited = True
    return envelope.ok(request, user_out(user))


@router.put(
    "/{userId}/profile",
    responses=envelope.errors(
        _404="No such user in the tenant", _409="E-mail address taken", _503=DOWN
    ),
)
async def update_profile(
    request: Request,
    user_id: UserId,
    body: ProfileUpdate,
    principal: CurrentUser,
    tenant: TenantDep,
) -> envelope.Envelope[UserOut]:
    """Change name, e-mail or password: your own (a password change needs `currentPassword`
    and ends your other sessions), or anyone's of the tenant with `manage:users`."""
    user = await run_account(
        users.update_profile,
        actor=principal,
        tenant=tenant,
        user_id=user_id,
        name=body.name,
        email=body.email,
        password=body.password,
        current_password=body.currentPassword,
        meta=request_meta(request),
    )
    request.state.audited = True
    return envelope.ok(request, user_out(user))


@router.get(
    "/{userId}/permissions",
    responses=envelope.errors(_404="No such user in the tenant", _503=DOWN),
)
async def user_permissions(
    request: Request, user_id: UserId, principal: CurrentUser, tenant: TenantDep
) -> envelope.Envelope[PermissionsOut]:
    """A user's role, permissions and stores (your own, or anyone's with `manage:users`)."""
    out = await run_account(
        without_redis(users.view_permissions), actor=principal, tenant=tenant, user_id=user_id
    )
    return envelope.ok(request, PermissionsOut.model_validate(out))


@router.post(
    "/{userId}/roles",
    responses=envelope.errors(_404="No such user in the tenant", _503=DOWN),
)
async def change_role(
    request: Request,
    user_id: UserId,
    body: RoleChange,
    principal: CurrentUser,
    tenant: TenantDep,
) -> envelope.Envelope[UserOut]:
    """Give a user another role (and stores). Needs `manage:users` and the right to grant both
    the old and the new role; nobody changes their own. The user's sessions end."""
    user = await run_account(
        users.change_role,
        actor=principal,
        tenant=tenant,
        user_id=user_id,
        role=body.role,
        store_ids=body.storeIds,
        meta=request_meta(request),
    )
    request.state.audited = True
    return envelope.ok(request, user_out(user))


@router.get("/audit", responses=envelope.errors(_503=DOWN))
async def audit_log(
    request: Request,
    principal: CurrentUser,
    tenant: TenantDep,
    page: Annotated[int, Query(ge=1, le=100000)] = 1,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    action: Annotated[Text | None, Query(max_length=64, description="e.g. login")] = None,
    actorId: Annotated[str | None, Query(max_length=64)] = None,
) -> envelope.Envelope[AuditPage]:
    """The tenant's audit log, newest first (needs `read:audit`: admins)."""
    rows, total = await run_account(
        without_redis(repo.list_audit),
        tenant=tenant,
        limit=limit,
        offset=(page - 1) * limit,
        action=action,
        actor_id=actorId,
    )
    return envelope.ok(
        request,
        AuditPage.model_validate({"items": rows, "page": page, "limit": limit, "total": total}),
    )


# ----------------------------------------------------------------------------- password reset
