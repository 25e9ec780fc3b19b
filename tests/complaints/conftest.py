"""Fixtures for the case desk: queues with handlers and a supervisor, categories with SLAs, the
2026 holiday calendar, consumers with an API client, and staff clients past the second factor."""

from __future__ import annotations

import itertools
from datetime import datetime, time
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from apps.accounts.roles import ROLES_BY_CODE, sync_roles
from apps.complaints import services
from apps.complaints.choices import CaseChannel, CaseKind
from apps.complaints.demo import seed_calendar
from apps.complaints.models import CaseCategory, CaseQueue, CaseQueueMembership, CaseSettings
from tests.accounts.helpers import make_staff, sign_in_staff
from tests.factories.core import ConsumerFactory

SHANGHAI = ZoneInfo("Asia/Shanghai")
_names = itertools.count(1)


def at(y, m, d, hh=0, mm=0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=SHANGHAI)


def staff_in_role(role: str, username: str | None = None):
    user = make_staff(username or f"{role}-{next(_names)}", email=f"{role}{next(_names)}@x.cn")
    user.groups.add(Group.objects.get(name=ROLES_BY_CODE[role].group_name))
    return type(user).objects.get(pk=user.pk)  # fresh permission cache


@pytest.fixture
def roles(db):
    sync_roles()


@pytest.fixture
def calendar_2026(db):
    seed_calendar()


@pytest.fixture
def desk_settings(db):
    config = CaseSettings.load()
    config.workday_start, config.workday_end = time(9, 0), time(17, 0)
    config.break_start = config.break_end = None
    config.save()
    return config


@pytest.fixture
def queue(db):
    return CaseQueue.objects.create(code="complaints", name="投诉处理组")


@pytest.fixture
def other_queue(db):
    return CaseQueue.objects.create(code="consult", name="咨询服务组")


@pytest.fixture
def handlers(roles, queue):
    users = [staff_in_role("complaint_handler", f"handler{i}") for i in range(1, 4)]
    for user in users:
        CaseQueueMembership.objects.create(queue=queue, user=user)
    return users


@pytest.fixture
def supervisor(roles, queue):
    user = staff_in_role("complaint_supervisor", "supervisor")
    CaseQueueMembership.objects.create(queue=queue, user=user, is_supervisor=True, available=False)
    return user


@pytest.fixture
def outsider(roles, other_queue):
    """A handler of another queue."""
    user = staff_in_role("complaint_handler", "outsider")
    CaseQueueMembership.objects.create(queue=other_queue, user=user)
    return user


@pytest.fixture
def category(queue, desk_settings):
    return CaseCategory.objects.create(
        code="service",
        name="服务投诉",
        kind=CaseKind.COMPLAINT,
        queue=queue,
        first_response_hours=Decimal("4"),
        resolution_days=Decimal("2"),
    )


@pytest.fixture
def refusal_category(queue, desk_settings):
    return CaseCategory.objects.create(
        code="refusal",
        name="商户拒开发票",
        kind=CaseKind.MERCHANT_REFUSAL,
        queue=queue,
        first_response_hours=Decimal("4"),
        resolution_days=Decimal("5"),
    )


@pytest.fixture
def consultation_category(other_queue, desk_settings):
    return CaseCategory.objects.create(
        code="rules",
        name="活动规则咨询",
        kind=CaseKind.CONSULTATION,
        queue=other_queue,
        first_response_hours=Decimal("2"),
        resolution_days=Decimal("1"),
    )


@pytest.fixture
def consumer(db):
    return ConsumerFactory(real_name="张三", phone="13912345678")


@pytest.fixture
def api(consumer):
    client = APIClient()
    client.force_authenticate(user=consumer.user)
    return client


@pytest.fixture
def open_case(category, consumer):
    """`open_case(**fields)` → a case filed by `consumer` through the app channel."""

    def make(**fields):
        fields.setdefault("kind", CaseKind.COMPLAINT)
        fields.setdefault("category", category)
        fields.setdefault("subject", "店员态度差")
        fields.setdefault("description", "结账时拒绝开票并辱骂顾客")
        fields.setdefault("channel", CaseChannel.API)
        fields.setdefault("consumer", consumer)
        return services.case_open(**fields)

    return make


@pytest.fixture
def staff_client(client):
    """`staff_client(user)` → the test client signed in as `user`, past the second factor."""

    def make(user):
        return sign_in_staff(client, user)

    return make


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
