from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class InvoicesConfig(AppConfig):
    name = "apps.invoices"
    label = "invoices"
    verbose_name = _("Invoices and campaigns")

    def ready(self) -> None:
        # Invalidation of the cached campaign and merchant configuration (apps.invoices.caching).
        from .caching import connect_signals

        connect_signals()
