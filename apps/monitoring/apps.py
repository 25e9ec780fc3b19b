from django.apps import AppConfig, apps
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


def _after_migrate(sender, **kwargs):
    # Once per migrate, after every app (and the role sync, connected earlier): the rules
    # exist with their defaults, and the stream consumer starts at the trail's end rather than
    # replaying history (including the audit records of the role sync itself).
    last = [c for c in apps.get_app_configs() if c.models_module is not None][-1]
    if sender is not last:
        return
    from .services import cursor_move_to_head
    from .state import ensure_rules

    ensure_rules()
    cursor_move_to_head()


class MonitoringConfig(AppConfig):
    name = "apps.monitoring"
    label = "monitoring"
    verbose_name = _("Abnormal-behaviour monitoring")

    def ready(self):
        post_migrate.connect(_after_migrate, dispatch_uid="monitoring.after_migrate")
        from . import signals  # noqa: F401  (failed sign-ins: the blocking counter)
