"""Request and response bodies of the account routes (`/api/v1/users/*`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from accounts.permissions import ROLES
from core.values import EMAIL_PATTERN, Text

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
    email: Text = Email
    password: Text = Password
    name: Text | None = Field(None, max_length=200)
    role: Role
    storeIds: list[Text] | None = StoreIds


class LoginRequest(_Strict):
    email: Text = Email
    password: Text = Password
    otp: Text | None = Field(None, max_length=12, description="Authenticator code (MFA)")
    recoveryCode: Text | None = Field(
        None, max_length=32, description="One-time recovery code instead of `otp`"
    )


class RefreshRequest(_Strict):
    refreshToken: Text = Field(min_length=1, max_length=512)


class LogoutRequest(_Strict):
    everywhere: bool = Field(False, description="End every session of the account, not just this")


class ProfileUpdate(_Strict):
    name: Text | None = Field(None, max_length=200)
    email: Text | None = Field(None, pattern=EMAIL_PATTERN, max_length=320)
    password: Text | None = Field(None, min_length=1, max_length=256, description="New password")
    currentPassword: Text | None = Field(
        None, max_length=256, description="Needed to change your own password"
    )


class RoleChange(_Strict):
    role: Role
    storeIds: list[Text] | None = StoreIds


class PasswordResetRequest(_Strict):
    email: Text = Email


class PasswordResetConfirm(_Strict):
    token: Text = Field(min_length=1, max_length=512, description="The token from the e-mail")
    newPassword: Text = Password


class MfaCode(_Strict):
    code: Text = Field(min_length=1, max_length=32, description="Authenticator code")


class MfaDisable(_Strict):
    password: Text = Password
    code: Text = Field(
        min_length=1, max_length=32, description="Authenticator code or a recovery code"
    )


class UserOut(BaseModel):
    userId: Text
    tenant: Text
    email: Text
    name: Text | None
    role: Text
    storeIds: list[Text] | None
    mfaEnabled: bool
    disabled: bool
    createdAt: datetime
    lastLoginAt: datetime | None


class TokenPairOut(BaseModel):
    accessToken: Text
    refreshToken: Text
    tokenType: Literal["bearer"] = "bearer"
    expiresIn: int = Field(description="Seconds the access token lives")
    sessionId: Text
    user: UserOut


class OAuth2Token(BaseModel):
    """The OAuth2 token response (RFC 6749 §5.1): what /docs' Authorize button expects."""

    access_token: Text
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    refresh_token: Text


class LoggedOut(BaseModel):
    sessionsEnded: int


class PermissionsOut(BaseModel):
    userId: Text
    tenant: Text
    role: Text
    permissions: list[Text]
    storeIds: list[Text] | None
    allTenants: bool = Field(description="A super admin may act on any tenant (X-Tenant-ID)")


class Accepted(BaseModel):
    accepted: bool = True
    message: Text


class MfaEnrolment(BaseModel):
    secret: Text = Field(description="Base32 secret (shown once): type it or scan the URI")
    otpauthUri: Text


class RecoveryCodes(BaseModel):
    mfaEnabled: bool = True
    recoveryCodes: list[Text] = Field(description="One-time codes, shown once: keep them safe")


class AuditRow(BaseModel):
    id: int
    action: Text
    target: Text | None
    outcome: Text | None
    actor_id: Text | None
    actor_role: Text | None
    ip: Text | None
    user_agent: Text | None
    request_id: Text | None
    details: dict[str, Any]
    created_at: datetime


class AuditPage(BaseModel):
    items: list[AuditRow]
    page: int
    limit: int
    total: int
