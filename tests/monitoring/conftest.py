"""Fixtures for the monitoring tests: rules set through the database, audit-stream runs after
commit (the request's own transaction is the test's, so `on_commit` callbacks are captured
and executed), staff in their roles and a security administrator's session."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.core.cache import cache

from apps.monitoring import state
from apps.monitoring.models import Alert, MonitoringRule
from tests.accounts.helpers import sign_in_staff
from tests.factories.core import UserFactory

SECURITY_ADMIN = "安全管理员"


@pytest.fixture
def set_rule(db):
    """Change a rule's live settings directly (its admin page is tested on its own)."""

    def apply(code: str, **values):
        rule = MonitoringRule.objects.get(code=code)
        params = values.pop("params", None)
        if params is not None:
            rule.params = {**rule.params, **params}
        for name, value in values.items():
            setattr(rule, name, value)
        rule.save()
        cache.delete(state.STATE_KEY)
        return rule

    return apply


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """Run a call and then what it left for after commit (the audit-stream consumer, alert
    notifications), as a real request's commit would."""

    def run(fn, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return fn(*args, **kwargs)

    return run


def staff_in(group_name: str, **fields):
    user = UserFactory(is_staff=True, **fields)
    user.groups.add(Group.objects.get(name=group_name))
    return type(user).objects.get(pk=user.pk)


@pytest.fixture
def security_admin(db):
    return staff_in(SECURITY_ADMIN, username="secadmin", email="sec@example.org")


@pytest.fixture
def security_client(client_factory, security_admin):
    return sign_in_staff(client_factory(), security_admin)


@pytest.fixture
def client_factory():
    from django.test import Client

    return Client


def alerts(code: str):
    return Alert.objects.filter(rule__code=code)
