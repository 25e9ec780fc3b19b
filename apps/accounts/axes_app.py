"""django-axes (login lockout) as the back office shows it.

django-axes ships no Simplified Chinese catalogue and gives its app no verbose name, so the
admin's lockout pages showed English ("Axes", "Access attempts", …). `AxesConfig` names the
app; `AXES_STRINGS` lists the package's own msgids so that `makemessages` carries them into
our catalogue, where they are translated (Django's catalogue already translates "Username",
"IP Address", "Yes" and "No", which are therefore not repeated here).
"""

from axes.apps import AppConfig as _AxesAppConfig
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop


class AxesConfig(_AxesAppConfig):
    verbose_name = _("Login lockouts")


AXES_STRINGS = (
    gettext_noop("Access Attempt"),
    gettext_noop("Access lock out"),
    gettext_noop(
        "Account locked: too many login attempts. Contact an admin to unlock your account."
    ),
    gettext_noop("Account locked: too many login attempts. Please try again later."),
    gettext_noop("Attempt Remaining"),
    gettext_noop("Attempt Time"),
    gettext_noop("Clean up expired attempts"),
    gettext_noop("Expires At"),
    gettext_noop("Failed Logins"),
    gettext_noop("Form Data"),
    gettext_noop("GET Data"),
    gettext_noop("HTTP Accept"),
    gettext_noop("Locked Out"),
    gettext_noop("Logout Time"),
    gettext_noop("Meta Data"),
    gettext_noop("Not set"),
    gettext_noop("POST Data"),
    gettext_noop("Path"),
    gettext_noop("Session key hash (sha256)"),
    gettext_noop("The time when access attempt expires and is no longer valid."),
    gettext_noop("User Agent"),
    gettext_noop("access attempt"),
    gettext_noop("access attempt expiration"),
    gettext_noop("access attempt expirations"),
    gettext_noop("access attempts"),
    gettext_noop("access failure"),
    gettext_noop("access failures"),
    gettext_noop("access log"),
    gettext_noop("access logs"),
)
