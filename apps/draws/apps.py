from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DrawsConfig(AppConfig):
    name = "apps.draws"
    label = "draws"
    verbose_name = _("Draws")

    def ready(self) -> None:
        # Invalidation of the cached instant pools and tiers (apps.draws.services).
        from .services import connect_instant_config_signals

        connect_instant_config_signals()
