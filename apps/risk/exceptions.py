"""Errors of the risk app, each with a stable machine code."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from apps.common.exceptions import DomainError

MESSAGES = {
    "risk.reason_required": _("Give a reason (at least two characters)."),
    "risk.rule_unknown": _("No such risk rule."),
    "risk.invalid_value": _("The value is not valid."),
    "risk.not_held": _("Only held invoices can be released or rejected."),
}


class RiskError(DomainError):
    code = "risk.error"
    messages = MESSAGES
