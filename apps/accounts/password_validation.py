"""Password rules beyond Django's own (等保2.0 level 3: complexity, no reuse, expiry).

Configured in `AUTH_PASSWORD_VALIDATORS`, so they apply wherever Django or allauth validates a
new password: the change and reset forms, the admin's user forms and `changepassword`.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.hashers import check_password, is_password_usable
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _


class CharacterClassesValidator:
    """At least `min_classes` of four classes: lower case, upper case, digits, other symbols.

    Letters without case (Chinese characters, for instance) count as symbols.
    """

    def __init__(self, min_classes: int = 3):
        if not 1 <= min_classes <= 4:
            raise ValueError("min_classes must be between 1 and 4")
        self.min_classes = min_classes

    @staticmethod
    def classes(password: str) -> set[str]:
        found = set()
        for ch in password:
            if ch.isdigit():
                found.add("digit")
            elif ch.islower():
                found.add("lower")
            elif ch.isupper():
                found.add("upper")
            else:
                found.add("symbol")
        return found

    def validate(self, password: str, user=None) -> None:
        if len(self.classes(password)) < self.min_classes:
            raise ValidationError(
                _(
                    "This password must contain characters of at least %(min_classes)d of "
                    "these kinds: lower-case letters, upper-case letters, digits, symbols."
                ),
                code="password_too_simple",
                params={"min_classes": self.min_classes},
            )

    def get_help_text(self) -> str:
        return _(
            "Your password must contain characters of at least %(min_classes)d of these kinds: "
            "lower-case letters, upper-case letters, digits, symbols."
        ) % {"min_classes": self.min_classes}


class PasswordHistoryValidator:
    """A new password may not equal any of the user's last `count` passwords.

    Its `password_changed` hook, which Django calls from `AbstractBaseUser.save()` exactly when a
    new password (`set_password`) has been saved, is also where the history is written and
    `User.password_changed_at` is stamped: so the stamp and the history follow real changes
    only, and never a hasher upgrade on login (which saves the password without this hook).
    """

    def __init__(self, count: int = 5):
        if count < 1:
            raise ValueError("count must be at least 1")
        self.count = count

    def _recent_hashes(self, user) -> list[str]:
        from .models import PasswordHistory

        hashes = list(
            PasswordHistory.objects.filter(user_id=user.pk).values_list("password", flat=True)[
                : self.count
            ]
        )
        # The current password counts too (it may predate the history table).
        current = getattr(user, "password", "") or ""
        if current and is_password_usable(current) and current not in hashes:
            hashes = [current, *hashes][: self.count]
        return hashes

    def validate(self, password: str, user=None) -> None:
        if user is None or user.pk is None:
            return
        if any(check_password(password, encoded) for encoded in self._recent_hashes(user)):
            raise ValidationError(
                _("You cannot reuse any of your last %(count)d passwords."),
                code="password_reused",
                params={"count": self.count},
            )

    def get_help_text(self) -> str:
        return _("Your password cannot be one of your last %(count)d passwords.") % {
            "count": self.count
        }

    def password_changed(self, password: str, user=None) -> None:
        from .models import PasswordHistory

        if user is None or user.pk is None or not user.has_usable_password():
            return
        now = timezone.now()
        with transaction.atomic():
            type(user)._default_manager.filter(pk=user.pk).update(password_changed_at=now)
            user.password_changed_at = now
            PasswordHistory.objects.create(user_id=user.pk, password=user.password, created_at=now)
            stale = PasswordHistory.objects.filter(user_id=user.pk).values_list("pk", flat=True)[
                self.count :
            ]
            PasswordHistory.objects.filter(pk__in=list(stale)).delete()


def password_expired(user, *, now=None) -> bool:
    """Whether this staff user must change their password before doing anything else.

    A staff account that can sign in with a password (a usable, non-empty hash) and whose
    password is older than `PASSWORD_EXPIRY_DAYS`, or was never changed through
    `set_password` (e.g. created with a raw hash), is expired.
    """
    if not (user.is_staff or user.is_superuser):
        return False
    if not user.password or not user.has_usable_password():
        return False
    changed = user.password_changed_at
    if changed is None:
        return True
    days = getattr(settings, "PASSWORD_EXPIRY_DAYS", 90)
    return (now or timezone.now()) - changed > timedelta(days=days)
