"""Request and response bodies of the account routes (`/api/v1/users/*`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from accounts.permissions import ROLES

EMAIL_PATTERN = r"^[^@\s]{1,64}@[^@\s]{1,255}$"
Email = Field(pattern=EMAIL_PATTERN, max_length=320, description="E-mail address")
Password = Field(min_length=1, max_length=256, description="Password")
Role = Literal["super_admin", "tenant_admin", "store_manager", "analyst", "sales_associate"]
assert set(Role.__args__) == set(ROLES)  # type: ignore[attr-defined]
StoreIds = Field(
    None,
    max_length=1000,
    description="Stores of a store manager or sales associate (required for them; others: omit)",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegisterRequest(_Strict):
    email: str = Email
    password: str = Password
    name: str | None = Field(None, max_length=200)
    role: Role
    storeIds: list[str] | None = StoreIds


class LoginRequest(_Strict):
    email: str = Email
    password: str = Password
    otp: str | None = Field(None, max_length=12, description="Authenticator code (MFA)")
    recoveryCode: str | None = Field(
        None, max_length=32, description="One-time recovery code instead of `otp`"
    )


class RefreshRequest(_Strict):
    refreshToken: str = Field(min_length=1, max_length=512)


class LogoutRequest(_Strict):
    everywhere: bool = Field(False, description="End every session of the account, not just this")


class ProfileUpdate(_Strict):
    name: str | None = Field(None, max_length=200)
    email: str | None = Field(None, pattern=EMAIL_PATTERN, max_length=320)
    password: str | None = Field(None, min_length=1, max_length=256, description="New password")
    currentPassword: str | None = Field(
        None, max_length=256, description="Needed to change your own password"
    )


class RoleChange(_Strict):
    role: Role
    storeIds: list[str] | None = StoreIds


class PasswordResetRequest(_Strict):
    email: str = Email


class PasswordResetConfirm(_Strict):
    token: str = Field(min_length=1, max_length=512, description="The token from the e-mail")
    newPassword: str = Password


class MfaCode(_Strict):
    code: str = Field(min_length=1, max_length=32, description="Authenticator code")


class MfaDisable(_Strict):
    password: str = Password
    code: str = Field(
        min_length=1, max_length=32, description="Authenticator code or a recovery code"
    )


class UserOut(BaseModel):
    userId: str
    tenant: str
    email: str
    name: str | None
    role: str
    storeIds: list[str] | None
    mfaEnabled: bool
    disabled: bool
    createdAt: datetime
    lastLoginAt: datetime | None


class TokenPairOut(BaseModel):
    accessToken: str
    refreshToken: str
    tokenType: Literal["bearer"] = "bearer"
    expiresIn: int = Field(description="Seconds the access token lives")
    sessionId: str
    user: UserOut


class OAuth2Token(BaseModel):
    """The OAuth2 token response (RFC 6749 §5.1): what /docs' Authorize button expects."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    refresh_token: str


class LoggedOut(BaseModel):
    sessionsEnded: int


class PermissionsOut(BaseModel):
    userId: str
    tenant: str
    role: str
    permissions: list[str]
    storeIds: list[str] | None
    allTenants: bool = Field(description="A super admin may act on any tenant (X-Tenant-ID)")


class Accepted(BaseModel):
    accepted: bool = True
    message: str


class MfaEnrolment(BaseModel):
    secret: str = Field(description="Base32 secret (shown once): type it or scan the URI")
    otpauthUri: str


class RecoveryCodes(BaseModel):
    mfaEnabled: bool = True
    recoveryCodes: list[str] = Field(description="One-time codes, shown once: keep them safe")


class AuditRow(BaseModel):
    id: int
    action: str
    target: str | None
    outcome: str | None
    actor_id: str | None
    actor_role: str | None
    ip: str | None
    user_agent: str | None
    request_id: str | None
    details: dict[str, Any]
    created_at: datetime


class AuditPage(BaseModel):
    items: list[AuditRow]
    page: int
    limit: int
    total: int
