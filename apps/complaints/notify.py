"""E-mails to staff about their cases: SLA warnings to the handler, escalations to the queue's
supervisors. Sent after the transaction commits; a mail failure never undoes a case change.

Messages carry the case reference and the desk link only — no consumer's personal data.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext

logger = logging.getLogger(__name__)


def _desk_path(reference: str) -> str:
    return reverse("complaints:case_detail", args=[reference])


def _send(recipients: list[str], subject: str, body: str) -> None:
    recipients = sorted({r for r in recipients if r})
    if not recipients:
        return

    def go():
        try:
            send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients)
        except Exception:
            logger.exception("case notification could not be sent")

    transaction.on_commit(go)


def notify_sla_warning(case, *, clock: str, recipients: list[str]) -> None:
    with translation.override(settings.LANGUAGE_CODE):
        what = gettext("first response") if clock == "first_response" else gettext("resolution")
        subject = gettext("Case %(ref)s: %(what)s due soon") % {"ref": case.reference, "what": what}
        body = gettext("The %(what)s of case %(ref)s is due at %(due)s.\n%(link)s") % {
            "what": what,
            "ref": case.reference,
            "due": _local(
                case.first_response_due if clock == "first_response" else case.resolution_due
            ),
            "link": _desk_path(case.reference),
        }
    _send(recipients, subject, body)


def notify_escalation(case, *, reason: str, recipients: list[str]) -> None:
    with translation.override(settings.LANGUAGE_CODE):
        subject = gettext("Case %(ref)s escalated") % {"ref": case.reference}
        body = gettext("Case %(ref)s was escalated: %(reason)s\n%(link)s") % {
            "ref": case.reference,
            "reason": reason,
            "link": _desk_path(case.reference),
        }
    _send(recipients, subject, body)


def _local(moment) -> str:
    from django.utils import timezone

    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M")
