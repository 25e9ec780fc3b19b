"""The signed-in consumer's own account (`GET /api/v1/me/`)."""

from __future__ import annotations

from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.permissions import IsConsumer
from apps.accounts.services import consumer_verify_identity
from apps.common.api import ErrorSerializer
from apps.common.throttling import IdentityVerifyThrottle, IPRateThrottle

from .serializers import MeSerializer


@method_decorator(never_cache, name="dispatch")
class MeView(APIView):
    """Who am I: public ID, masked name and phone, verification and account status.

    Sign in first through `/_allauth/app/v1/auth/code/request` and `…/code/confirm`, then send
    the session token as the `X-Session-Token` header.
    """

    permission_classes = [IsConsumer]

    @extend_schema(
        responses={
            200: MeSerializer,
            401: OpenApiResponse(ErrorSerializer, description="Not signed in / token not valid"),
            403: OpenApiResponse(
                ErrorSerializer, description="consumer.required / consumer.frozen"
            ),
        },
        summary="The signed-in consumer",
    )
    def get(self, request):
        return Response(MeSerializer(request.user.consumer).data)


class VerificationRequestSerializer(serializers.Serializer):
    real_name = serializers.CharField(max_length=30)
    id_number = serializers.CharField(max_length=40)


@method_decorator(never_cache, name="dispatch")
class VerificationView(APIView):
    """Real-name verification: name + resident ID number, checked by the identity service.

    One real identity belongs to one account (`identity.already_registered`). Only verified
    consumers may submit invoices.
    """

    permission_classes = [IsConsumer]
    throttle_classes = [IPRateThrottle, IdentityVerifyThrottle]

    @extend_schema(
        request=VerificationRequestSerializer,
        responses={
            200: MeSerializer,
            400: OpenApiResponse(
                ErrorSerializer, description="resident_id.* / identity.invalid_name"
            ),
            409: OpenApiResponse(
                ErrorSerializer,
                description="identity.already_registered / identity.already_verified",
            ),
            422: OpenApiResponse(ErrorSerializer, description="identity.mismatch"),
            429: OpenApiResponse(ErrorSerializer, description="Too many attempts"),
            503: OpenApiResponse(ErrorSerializer, description="identity.unavailable"),
        },
        summary="Verify my real name",
    )
    def post(self, request):
        form = VerificationRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        consumer = consumer_verify_identity(
            consumer=request.user.consumer,
            real_name=form.validated_data["real_name"],
            id_number=form.validated_data["id_number"],
        )
        return Response(MeSerializer(consumer).data)
