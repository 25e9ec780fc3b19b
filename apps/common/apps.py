from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CommonConfig(AppConfig):
    name = "apps.common"
    label = "common"
    verbose_name = _("Common")

    def ready(self):
        # Fail at start-up, not at the first encrypted write, if the keys are malformed.
        from . import crypto

        crypto.keyring()
