from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PrizesConfig(AppConfig):
    name = "apps.prizes"
    label = "prizes"
    verbose_name = _("Prizes and payouts")

    def ready(self) -> None:
        # Invalidation of the cached prize configuration (apps.prizes.caching).
        from .caching import connect_signals

        connect_signals()
