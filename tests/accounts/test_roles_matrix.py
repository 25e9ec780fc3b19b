"""The role × permission matrix: code, database and docs/roles.md agree exactly."""

from pathlib import Path

import pytest
from django.contrib.auth.models import Group

from apps.accounts.management.commands.roles_matrix import END, START, all_permissions
from apps.accounts.roles import ROLES

pytestmark = pytest.mark.django_db
DOC = Path(__file__).resolve().parents[2] / "docs" / "roles.md"


def documented_matrix() -> dict[str, set[str]]:
    text = DOC.read_text()
    block = text.split(START)[1].split(END)[0].strip().splitlines()
    header = [c.strip() for c in block[0].strip("|").split("|")]
    roles = header[1:]
    matrix: dict[str, set[str]] = {role: set() for role in roles}
    rows = []
    for line in block[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        perm = cells[0].strip("`")
        rows.append(perm)
        for role, cell in zip(roles, cells[1:], strict=True):
            if cell == "✓":
                matrix[role].add(perm)
    matrix["__rows__"] = set(rows)
    return matrix


def test_docs_matrix_equals_code():
    doc = documented_matrix()
    doc.pop("__rows__")
    assert set(doc) == {r.code for r in ROLES}
    for role in ROLES:
        assert doc[role.code] == set(role.permissions), role.code


def test_every_permission_is_a_row_of_the_matrix():
    """A new model or custom permission fails here until someone decides who gets it."""
    rows = documented_matrix()["__rows__"]
    assert set(all_permissions()) == rows


def test_groups_in_the_database_equal_the_matrix():
    for role in ROLES:
        group = Group.objects.get(name=role.group_name)
        in_db = {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all()}
        assert in_db == set(role.permissions), role.code


def test_separation_of_duties():
    by_code = {r.code: r.permissions for r in ROLES}
    audit_readers = {code for code, perms in by_code.items() if "audit.view_auditevent" in perms}
    assert audit_readers == {"auditor", "audit_admin"}
    assert not any(p.startswith("audit.") for p in by_code["system_admin"])
    assert not any(
        p.split(".")[1].startswith(("add_", "change_", "delete_")) for p in by_code["auditor"]
    )
    assert not any("reveal" in p for p in by_code["statistician"])
