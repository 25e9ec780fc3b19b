"""Abstract base models and the money field used across the project."""

from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.utils.translation import gettext_lazy as _


class MoneyField(models.DecimalField):
    """CNY amounts: Decimal with 14 digits and 2 decimal places, never a float."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("max_digits", 14)
        kwargs.setdefault("decimal_places", 2)
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        if kwargs.get("max_digits") == 14:
            kwargs.pop("max_digits")
        if kwargs.get("decimal_places") == 2:
            kwargs.pop("decimal_places")
        return name, path, args, kwargs


ZERO = Decimal("0.00")


class TimeStampedModel(models.Model):
    """Creation and last-change times, set by the database layer, never by hand."""

    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        abstract = True


class IdempotencyRecord(models.Model):
    """The first reply to a request carrying an `Idempotency-Key`, kept to replay it.

    Invariant: one row per (user, key), created before the work starts, so concurrent retries
    of the same request see it and wait or replay; a reused key with a different request body
    is refused.
    """

    class State(models.TextChoices):
        IN_PROGRESS = "in_progress", _("In progress")
        COMPLETED = "completed", _("Completed")

    # No index of its own: the unique (user, key) index serves every look-up by user (one
    # index less to write on every submission).
    user = models.ForeignKey(
        "accounts.User",
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name=_("user"),
        db_index=False,
    )
    key = models.CharField(_("idempotency key"), max_length=128)
    fingerprint = models.CharField(_("request fingerprint"), max_length=64)
    state = models.CharField(_("state"), max_length=16, choices=State.choices)
    response_status = models.PositiveSmallIntegerField(_("response status"), null=True)
    response_body = models.JSONField(_("response body"), null=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("idempotency record")
        verbose_name_plural = _("idempotency records")
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="idempotency_user_key_unique")
        ]

    def __str__(self) -> str:
        return f"{self.user_id}:{self.key}"
