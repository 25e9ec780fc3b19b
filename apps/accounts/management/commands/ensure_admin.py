"""`manage.py ensure_admin`: make sure a superuser exists, without ever touching an existing one.

With no superuser, one is created with a random password that is printed once, here and
nowhere else (it is not logged or stored in clear). With a superuser already there, nothing is
changed and no password is printed or reset.
"""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction


class Command(BaseCommand):
    help = "Create a superuser with a random password if none exists (prints it once)."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin", help="default: admin")
        parser.add_argument("--email", default="", help="optional e-mail address")

    def handle(self, *args, **options):
        User = get_user_model()
        username = options["username"].strip()
        if not username:
            raise CommandError("--username cannot be empty.")
        with transaction.atomic():
            existing = list(
                User.objects.select_for_update()
                .filter(is_superuser=True)
                .order_by("pk")
                .values_list(User.USERNAME_FIELD, flat=True)
            )
            if existing:
                self.stdout.write(
                    f"A superuser already exists ({', '.join(existing)}); nothing changed. "
                    "Use `manage.py changepassword <username>` to set a new password."
                )
                return
            if User.objects.filter(**{User.USERNAME_FIELD: username}).exists():
                raise CommandError(
                    f"User {username!r} exists but is not a superuser; nothing changed. "
                    "Choose another --username."
                )
            password = secrets.token_urlsafe(12)
            User.objects.create_superuser(
                **{User.USERNAME_FIELD: username}, email=options["email"], password=password
            )
        self.stdout.write(self.style.SUCCESS(f"Created superuser {username!r}."))
        self.stdout.write(f"Username: {username}")
        self.stdout.write(f"Password: {password}")
        self.stdout.write(
            "This password is shown only once: store it now, and change it after the first "
            "login (`manage.py changepassword`)."
        )
