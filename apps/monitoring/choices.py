"""Rules, severities, the alert workflow and automatic responses."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class RuleCode(models.TextChoices):
    REVEAL_BURST = "reveal_burst", _("Many personal-data reveals or exports in a short time")
    REVEAL_AFTER_HOURS = "reveal_after_hours", _("Personal-data reveal or export outside hours")
    NEW_NETWORK_SIGNIN = "new_network_signin", _("Staff sign-in from a network never seen")
    PERMISSION_DENIED = "permission_denied", _("Repeated permission denied")
    PRIVILEGE_CHANGE = "privilege_change", _("Privilege or group change")
    CONFIG_NEAR_CUTOFF = "config_near_cutoff", _("Configuration change close to a draw cut-off")
    MAKER_CHECKER_PAIR = "maker_checker_pair", _("One maker/checker pair approves most batches")
    DORMANT_ACCOUNT = "dormant_account", _("Dormant staff account active again")
    FAILED_LOGIN_BURST = "failed_login_burst", _("Failed sign-ins across many accounts")
    SMS_CODE_BURST = "sms_code_burst", _("SMS-code requests for many phones from one source")
    ENUMERATION = "enumeration", _("Enumeration (many not-found, sequential IDs)")
    KEY_NEW_NETWORK = "key_new_network", _("Merchant API key used from a new network")
    KEY_RATE = "key_rate", _("Merchant API key far above its usual rate")


class Severity(models.TextChoices):
    LOW = "low", _("Low")
    MEDIUM = "medium", _("Medium")
    HIGH = "high", _("High")
    CRITICAL = "critical", _("Critical")


class AlertStatus(models.TextChoices):
    OPEN = "open", _("Open")
    ACKNOWLEDGED = "acknowledged", _("Acknowledged")
    RESOLVED = "resolved", _("Resolved")


ALERT_TRANSITIONS = {
    AlertStatus.OPEN: frozenset({AlertStatus.ACKNOWLEDGED, AlertStatus.RESOLVED}),
    AlertStatus.ACKNOWLEDGED: frozenset({AlertStatus.RESOLVED}),
    AlertStatus.RESOLVED: frozenset(),
}
LIVE_ALERT_STATUSES = (AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED)


class ResponseKind(models.TextChoices):
    NONE = "none", _("None (alert only)")
    LOCK_ACCOUNT = "lock_account", _("Lock the staff account (ends its sessions)")
    REQUIRE_REAUTH = "require_reauth", _("Require re-authentication (ends its sessions)")
    SUSPEND_KEY = "suspend_key", _("Revoke the merchant API key (suspension, reversible)")
    BLOCK_SOURCE = "block_source", _("Block the source address for a while")


# Which automatic responses make sense for a rule's subject.
RESPONSES_FOR_SUBJECT = {
    "user": (ResponseKind.NONE, ResponseKind.LOCK_ACCOUNT, ResponseKind.REQUIRE_REAUTH),
    "merchant_key": (ResponseKind.NONE, ResponseKind.SUSPEND_KEY),
    "ip": (ResponseKind.NONE, ResponseKind.BLOCK_SOURCE),
    "pair": (ResponseKind.NONE,),
    "draw": (ResponseKind.NONE,),
}


class ResponseStatus(models.TextChoices):
    ACTIVE = "active", _("In force")
    COMPLETED = "completed", _("Done (nothing to undo)")
    REVERSED = "reversed", _("Reversed")
    EXPIRED = "expired", _("Expired")
