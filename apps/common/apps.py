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
        _require_permissions_on_admin_actions()


def _require_permissions_on_admin_actions() -> None:
    """Third-party admins (celery beat, axes, allauth) declare actions without permissions,
    which Django then offers to view-only staff. Every such action needs `change` here.
    Runs after the admin's autodiscovery (django.contrib.admin is earlier in INSTALLED_APPS).
    """
    from django.contrib import admin

    for model_admin in admin.site._registry.values():
        for action in model_admin.actions or ():
            func = getattr(type(model_admin), action, None) if isinstance(action, str) else action
            if func is not None and not getattr(func, "allowed_permissions", None):
                func.allowed_permissions = ("change",)
