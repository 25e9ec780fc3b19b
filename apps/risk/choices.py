"""Risk decisions, rule codes, watch-list kinds and the alert workflow."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class RiskAction(models.TextChoices):
    ALLOW = "allow", _("Allow")
    HOLD = "hold", _("Hold for review")
    BLOCK = "block", _("Block")


class RuleCode(models.TextChoices):
    BLACKLIST = "blacklist", _("Blacklisted merchant, consumer, account or device")
    SELLER_STAFF = "seller_staff", _("Submitted by the seller's own staff")
    CONSUMER_VELOCITY = "consumer_velocity", _("Many submissions by one consumer")
    DEVICE_VELOCITY = "device_velocity", _("Many submissions from one device")
    SHARED_DEVICE = "shared_device", _("Device shared by several consumers")
    SHARED_ACCOUNT = "shared_account", _("Payout account shared by several consumers")
    SPLIT_PURCHASE = "split_purchase", _("Split purchase just above the minimum")
    INSIDER_TIMING = "insider_timing", _("Entered within seconds of issue")
    ROUND_BURST = "round_burst", _("Burst of round amounts")
    SELLER_SURGE = "seller_surge", _("Seller far above its usual volume")


class ListKind(models.TextChoices):
    MERCHANT = "merchant", _("Merchant (credit code)")
    CONSUMER = "consumer", _("Consumer (public ID)")
    ACCOUNT = "account", _("Payout account (blind index)")
    DEVICE = "device", _("Device (hashed ID)")
    SELLER_STAFF = "seller_staff", _("Staff of a seller (consumer public ID)")


class SubjectKind(models.TextChoices):
    MERCHANT = "merchant", _("Merchant")
    CONSUMER = "consumer", _("Consumer")
    CLUSTER = "cluster", _("Linked consumers")


class AlertStatus(models.TextChoices):
    OPEN = "open", _("Open")
    CONFIRMED = "confirmed", _("Confirmed fraud")
    DISMISSED = "dismissed", _("Dismissed")


ALERT_TRANSITIONS = {
    AlertStatus.OPEN: frozenset({AlertStatus.CONFIRMED, AlertStatus.DISMISSED}),
    AlertStatus.CONFIRMED: frozenset(),
    AlertStatus.DISMISSED: frozenset(),
}
