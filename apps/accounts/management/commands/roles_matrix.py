"""Print the role × permission matrix (the block `docs/roles.md` carries) from the code."""

from django.conf import settings
from django.contrib.auth.models import Permission
from django.core.management.base import BaseCommand

from apps.accounts.roles import ROLES

START, END = "<!-- matrix:start -->", "<!-- matrix:end -->"
# Django-internal tables no role administers through the back office.
IGNORED_APPS = {"contenttypes", "sessions", "admin"}


def all_permissions() -> list[str]:
    return sorted(
        f"{app}.{code}"
        for app, code in Permission.objects.values_list("content_type__app_label", "codename")
        if app not in IGNORED_APPS
    )


def render_matrix() -> str:
    header = "| permission | " + " | ".join(r.code for r in ROLES) + " |"
    rule = "|---|" + "---|" * len(ROLES)
    lines = [START, header, rule]
    for perm in all_permissions():
        cells = ["✓" if perm in r.permissions else "" for r in ROLES]
        lines.append(f"| `{perm}` | " + " | ".join(cells) + " |")
    lines.append(END)
    return "\n".join(lines)


class Command(BaseCommand):
    help = "Print the role × permission matrix; --write replaces the block in docs/roles.md."

    def add_arguments(self, parser):
        parser.add_argument("--write", action="store_true")

    def handle(self, *args, write, **options):
        matrix = render_matrix()
        if not write:
            self.stdout.write(matrix)
            return
        doc = settings.BASE_DIR / "docs" / "roles.md"
        text = doc.read_text()
        head, rest = text.split(START, 1)
        tail = rest.split(END, 1)[1]
        doc.write_text(head + matrix + tail)
        self.stdout.write(f"updated {doc}")
