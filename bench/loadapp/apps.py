from django.apps import AppConfig


class LoadAppConfig(AppConfig):
    name = "loadapp"
    label = "benchload"
    default_auto_field = "django.db.models.BigAutoField"
