from django.apps import AppConfig, apps
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


def _sync_roles_after_migrate(sender, verbosity=0, **kwargs):
    # post_migrate is sent once per app; permissions of every app exist only after the last one.
    last = [c for c in apps.get_app_configs() if c.models_module is not None][-1]
    if sender is not last:
        return
    from .roles import sync_roles

    sync_roles(verbosity=verbosity)


class AccountsConfig(AppConfig):
    name = "apps.accounts"
    label = "accounts"
    verbose_name = _("Accounts and identity")

    def ready(self):
        post_migrate.connect(_sync_roles_after_migrate, dispatch_uid="accounts.sync_roles")
        from . import signals  # noqa: F401  (sign-in bookkeeping, lockout and MFA audit)
