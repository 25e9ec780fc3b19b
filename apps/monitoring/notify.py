"""Telling people: e-mail (Django's mail) to the security administrators and an outbound
webhook, signed with HMAC-SHA256 so the receiver can tell it came from us.

Webhook request: `POST MONITORING_WEBHOOK_URL` with a JSON body and the headers
`X-Monitoring-Timestamp: <unix seconds>` and
`X-Monitoring-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>." + body under
MONITORING_WEBHOOK_SECRET>`. Receivers should refuse timestamps more than 5 minutes old.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time

import urllib3
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.urls import reverse
from django.utils.translation import gettext as _

logger = logging.getLogger(__name__)


class WebhookError(Exception):
    pass


def recipients() -> list[str]:
    from apps.accounts.roles import ROLES_BY_CODE

    group = ROLES_BY_CODE["security_admin"].group_name
    configured = list(getattr(settings, "MONITORING_ALERT_EMAILS", []) or [])
    staff = (
        get_user_model()
        .objects.filter(is_active=True, groups__name=group)
        .exclude(email="")
        .values_list("email", flat=True)
    )
    return sorted(set(configured) | set(staff))


def alert_payload(alert) -> dict:
    return {
        "id": alert.pk,
        "rule": alert.rule.code,
        "severity": alert.severity,
        "status": alert.status,
        "title": alert.title,
        "subject": {"type": alert.subject_type, "id": alert.subject_id},
        "source_ip": alert.source_ip,
        "occurrences": alert.occurrences,
        "evidence": alert.evidence[:50],
        "raised_at": alert.created_at.isoformat(),
        "responses": [
            {"kind": r.kind, "status": r.status, "target": f"{r.target_type}:{r.target_id}"}
            for r in alert.responses.all()
        ],
        "url": reverse("admin:monitoring_alert_detail", args=[alert.pk]),
    }


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def post_webhook(event: str, data: dict) -> bool:
    """POST one signed event; False when no webhook is configured. Raises WebhookError when the
    receiver cannot be reached or does not answer 2xx (the task retries)."""
    url = getattr(settings, "MONITORING_WEBHOOK_URL", "")
    secret = getattr(settings, "MONITORING_WEBHOOK_SECRET", "")
    if not url or not secret:
        return False
    body = json.dumps({"event": event, "data": data}, ensure_ascii=False, sort_keys=True).encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "X-Monitoring-Timestamp": timestamp,
        "X-Monitoring-Signature": sign(secret, timestamp, body),
    }
    timeout = float(getattr(settings, "MONITORING_WEBHOOK_TIMEOUT", 5.0))
    try:
        reply = urllib3.request(
            "POST",
            url,
            body=body,
            headers=headers,
            timeout=urllib3.Timeout(connect=timeout, read=timeout),
            retries=False,
            redirect=False,
        )
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise WebhookError(f"webhook unreachable: {type(exc).__name__}") from None
    if not 200 <= reply.status < 300:
        raise WebhookError(f"webhook answered {reply.status}")
    return True


def send_alert(alert) -> dict:
    """E-mail and webhook for one alert. Returns what was sent."""
    to = recipients()
    if to:
        subject = _("[Security alert · %(severity)s] %(title)s") % {
            "severity": alert.get_severity_display(),
            "title": alert.title,
        }
        lines = [
            alert.title,
            _("Rule: %(rule)s") % {"rule": alert.rule},
            _("Severity: %(severity)s") % {"severity": alert.get_severity_display()},
            _("Source address: %(ip)s") % {"ip": alert.source_ip or "-"},
            _("Audit events: %(ids)s") % {"ids": ", ".join(map(str, alert.evidence[:20])) or "-"},
            _("Open the alert: %(url)s")
            % {"url": reverse("admin:monitoring_alert_detail", args=[alert.pk])},
        ]
        send_mail(subject, "\n".join(lines), None, to)
    hooked = post_webhook("alert.raised", alert_payload(alert))
    return {"emails": len(to), "webhook": hooked}


def send_summary(summary: dict) -> int:
    to = recipients()
    if to:
        lines = [
            _("Alerts in the last 24 hours: %(n)s") % {"n": summary["alerts"]},
            _("Open or acknowledged alerts: %(n)s") % {"n": summary["open"]},
            _("Automatic responses taken: %(n)s (in force: %(f)s)")
            % {"n": summary["responses"], "f": summary["responses_in_force"]},
            "",
            *(f"{code}: {n}" for code, n in sorted(summary["by_rule"].items())),
        ]
        send_mail(_("Security monitoring: nightly summary"), "\n".join(lines), None, to)
    try:
        post_webhook("summary.nightly", summary)
    except WebhookError:
        logger.warning("nightly summary webhook failed", exc_info=True)
    return len(to)
