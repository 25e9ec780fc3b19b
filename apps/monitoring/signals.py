"""Failed sign-ins feed the credential-stuffing counter at once (it may block the source)."""

from __future__ import annotations

import logging

from django.contrib.auth.signals import user_login_failed
from django.dispatch import receiver

from apps.audit import context as audit_context

from . import counters

logger = logging.getLogger(__name__)


@receiver(user_login_failed, dispatch_uid="monitoring.login_failed")
def on_login_failed(sender, credentials, request=None, **kwargs):
    login = str(
        credentials.get("username") or credentials.get("login") or credentials.get("email") or ""
    )
    try:
        counters.failed_login(ip=audit_context.current().ip, login=login)
    except Exception:
        logger.exception("monitoring failed-login counter failed")
