"""Outgoing account mail (password reset) over SMTP, with the `RETAILPULSE_SMTP_*` settings."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

from core.errors import ServiceUnavailable
from core.settings import Settings, get_settings


def mail_configured(settings: Settings | None = None) -> bool:
    return bool((settings or get_settings()).smtp_host)


def send_mail(to: str, subject: str, body: str, *, settings: Settings | None = None) -> None:
    """Send one plain-text message; ServiceUnavailable (503) if SMTP is unset or fails."""
    s = settings or get_settings()
    if not s.smtp_host:
        raise ServiceUnavailable(
            "no mail server is configured: set RETAILPULSE_SMTP_HOST (and _PORT, _FROM)",
            details={"service": "smtp"},
        )
    msg = EmailMessage()
    msg["From"] = s.smtp_from
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content(body)
    try:
        with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_s) as smtp:
            if s.smtp_tls:
                smtp.starttls()
            if s.smtp_user and s.smtp_password:
                smtp.login(s.smtp_user, s.smtp_password.get_secret_value())
            smtp.send_message(msg)
    except (OSError, smtplib.SMTPException) as exc:
        raise ServiceUnavailable(
            f"the mail server {s.smtp_host}:{s.smtp_port} did not take the message "
            f"({type(exc).__name__}); retry shortly",
            details={"service": "smtp"},
            retry_after=30,
        ) from None
