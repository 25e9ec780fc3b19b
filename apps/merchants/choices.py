from django.db import models
from django.utils.translation import gettext_lazy as _


class MerchantStatus(models.TextChoices):
    ACTIVE = "active", _("Active")
    SUSPENDED = "suspended", _("Suspended")
    BLACKLISTED = "blacklisted", _("Blacklisted")


MERCHANT_TRANSITIONS = {
    MerchantStatus.ACTIVE: frozenset({MerchantStatus.SUSPENDED, MerchantStatus.BLACKLISTED}),
    MerchantStatus.SUSPENDED: frozenset({MerchantStatus.ACTIVE, MerchantStatus.BLACKLISTED}),
    MerchantStatus.BLACKLISTED: frozenset({MerchantStatus.ACTIVE}),
}
