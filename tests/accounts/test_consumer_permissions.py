"""`IsConsumer` and `IsVerifiedConsumer`: who may use the consumer API, and the stable codes of
the refusals in our error shape (rendered by `apps.common.api.exception_handler`)."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory, force_authenticate
from rest_framework.views import APIView

from apps.accounts.choices import ConsumerStatus, VerificationStatus
from apps.accounts.models import Consumer, User
from apps.accounts.permissions import IsVerifiedConsumer
from tests.accounts.helpers import make_staff, sign_in_staff
from tests.accounts.test_consumer_login import ME, me, sign_in, sms  # noqa: F401  (fixture)
from tests.factories.core import ConsumerFactory

pytestmark = pytest.mark.django_db


class VerifiedOnly(APIView):
    permission_classes = [IsVerifiedConsumer]

    def get(self, request):
        return Response({"ok": True})


class RaisesWithCode(APIView):
    permission_classes = []

    def get(self, request):
        raise exceptions.PermissionDenied("no", code="invoice.not_yours")


def call(view, user=None):
    request = APIRequestFactory().get("/x/")
    if user is not None:
        force_authenticate(request, user=user)
    return view.as_view()(request)


def assert_refused(response, status: int, code: str):
    assert response.status_code == status, response.content
    body = response.json() if hasattr(response, "json") else response.data
    assert body["code"] == code, body
    assert body["message"] and body["detail"] == {}


# --- Through the real endpoint and the real token -----------------------------------------------


def test_active_consumer_passes(client, sms):  # noqa: F811
    token = sign_in(client, sms)
    assert me(client, token).status_code == 200


def test_frozen_consumer_is_403_consumer_frozen(client, sms):  # noqa: F811
    token = sign_in(client, sms)
    Consumer.objects.update(status=ConsumerStatus.FROZEN)
    assert_refused(me(client, token), 403, "consumer.frozen")


def test_not_signed_in_is_401():
    assert_refused(Client().get(ME), 401, "auth.not_authenticated")


def test_staff_session_is_not_a_consumer(client):
    sign_in_staff(client, make_staff("officer"))
    assert_refused(client.get(ME), 403, "consumer.required")


def test_user_without_consumer_profile_is_refused(client):
    user = User.objects.create_user("plain")
    client.force_login(user)
    assert_refused(client.get(ME), 403, "consumer.required")


# --- IsVerifiedConsumer ------------------------------------------------------------------------


def test_verified_consumer_passes():
    consumer = ConsumerFactory()
    assert call(VerifiedOnly, consumer.user).status_code == 200


@pytest.mark.parametrize(
    "status", [VerificationStatus.UNVERIFIED, VerificationStatus.PENDING, VerificationStatus.FAILED]
)
def test_unverified_consumer_is_403_not_verified(status):
    consumer = ConsumerFactory(verification_status=status, verified_at=None, id_number="")
    response = call(VerifiedOnly, consumer.user)
    response.render()
    assert_refused(response, 403, "consumer.not_verified")


def test_frozen_comes_before_not_verified():
    consumer = ConsumerFactory(
        status=ConsumerStatus.FROZEN,
        verification_status=VerificationStatus.UNVERIFIED,
        verified_at=None,
        id_number="",
    )
    response = call(VerifiedOnly, consumer.user)
    response.render()
    assert_refused(response, 403, "consumer.frozen")


def test_verified_only_anonymous_is_401():
    response = call(VerifiedOnly)
    response.render()
    assert response.status_code == 401


# --- The exception handler keeps explicit codes ------------------------------------------------


def test_permission_denied_with_a_code_keeps_it():
    response = call(RaisesWithCode)
    response.render()
    assert_refused(response, 403, "invoice.not_yours")


def test_permission_denied_without_a_code_is_the_generic_one():
    class Plain(APIView):
        permission_classes = []

        def get(self, request):
            raise exceptions.PermissionDenied()

    response = call(Plain)
    response.render()
    assert_refused(response, 403, "auth.permission_denied")
