from django.db import models
from django.utils.translation import gettext_lazy as _


class VerificationStatus(models.TextChoices):
    UNVERIFIED = "unverified", _("Not verified")
    PENDING = "pending", _("Verification pending")
    VERIFIED = "verified", _("Verified")
    FAILED = "failed", _("Verification failed")


class ConsumerStatus(models.TextChoices):
    ACTIVE = "active", _("Active")
    FROZEN = "frozen", _("Frozen")


CONSUMER_TRANSITIONS = {
    ConsumerStatus.ACTIVE: frozenset({ConsumerStatus.FROZEN}),
    ConsumerStatus.FROZEN: frozenset({ConsumerStatus.ACTIVE}),
}
