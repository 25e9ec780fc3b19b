"""Sellers whose invoices may enter the campaign."""

from __future__ import annotations

from django.core.validators import RegexValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from apps.common.models import TimeStampedModel

from .choices import MerchantStatus
from .validators import validate_uscc

industry_code_validator = RegexValidator(
    r"^[0-9]{2,4}$", _("An industry code is 2 to 4 digits (GB/T 4754-2017)."), "industry.invalid"
)
area_code_validator = RegexValidator(
    r"^[0-9]{6}$", _("An area code is 6 digits (GB/T 2260)."), "area.invalid"
)


class Merchant(TimeStampedModel):
    """A seller, identified by its 统一社会信用代码 (unique, check character valid).

    `area_code` is where the seller is registered (by default characters 3–8 of the credit code)
    and `industry_code` its GB/T 4754-2017 class; campaign eligibility reads both. A blacklisted
    or suspended merchant's invoices never enter.
    """

    uscc = models.CharField(
        _("unified social credit code"), max_length=18, unique=True, validators=[validate_uscc]
    )
    name = models.CharField(_("name"), max_length=200, db_index=True)
    area_code = models.CharField(
        _("area code"), max_length=6, validators=[area_code_validator], db_index=True
    )
    industry_code = models.CharField(
        _("industry code"), max_length=4, validators=[industry_code_validator], db_index=True
    )
    address = models.CharField(_("address"), max_length=300, blank=True, default="")
    status = models.CharField(
        _("status"),
        max_length=16,
        choices=MerchantStatus.choices,
        default=MerchantStatus.ACTIVE,
        db_index=True,
    )
    status_reason = models.CharField(_("status reason"), max_length=300, blank=True, default="")
    status_changed_at = models.DateTimeField(_("status changed at"), null=True, blank=True)

    class Meta:
        verbose_name = _("merchant")
        verbose_name_plural = _("merchants")
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=MerchantStatus.values), name="merchant_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.uscc})"

    @property
    def is_active(self) -> bool:
        return self.status == MerchantStatus.ACTIVE
