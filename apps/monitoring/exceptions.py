"""Errors of the monitoring app, each with a stable machine code."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from apps.common.exceptions import DomainError

MESSAGES = {
    "monitoring.not_permitted": _("You are not allowed to do this."),
    "monitoring.note_required": _("Write a note."),
    "monitoring.response_not_active": _("This response is no longer in force."),
    "monitoring.invalid_rule_value": _("A rule setting is not valid."),
}


class MonitoringError(DomainError):
    code = "monitoring.error"

    def __init__(self, code: str, message=None, **kwargs):
        super().__init__(code, message if message is not None else MESSAGES.get(code), **kwargs)
