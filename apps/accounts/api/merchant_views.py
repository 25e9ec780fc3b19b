"""The merchant API's smallest endpoint: which merchant and key a signed request comes from.

`GET /api/v1/merchant/whoami/` lets a merchant's developers check their signing code before
they redeem anything (docs/merchant_api.md).
"""

from __future__ import annotations

from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.merchant_auth import HasMerchantScope, MerchantKeyAuthentication
from apps.common.api import ErrorSerializer
from apps.common.throttling import IPRateThrottle, MerchantKeyRateThrottle

#: The signature headers every merchant API operation documents (Authorization is the
#: security scheme).
MERCHANT_SIGNATURE_PARAMETERS = [
    OpenApiParameter(
        "X-Timestamp",
        str,
        OpenApiParameter.HEADER,
        required=True,
        description="Unix time in seconds; at most 300 s from the server's clock.",
    ),
    OpenApiParameter(
        "X-Nonce",
        str,
        OpenApiParameter.HEADER,
        required=True,
        description="16 to 128 hex digits, never reused with the same key.",
    ),
    OpenApiParameter(
        "X-Signature",
        str,
        OpenApiParameter.HEADER,
        required=True,
        description=(
            "Base64 Ed25519 signature of "
            '"{timestamp}\\n{nonce}\\n{METHOD}\\n{path with query}\\n{hex sha256 of body}".'
        ),
    ),
]

MERCHANT_AUTH_ERRORS = {
    401: OpenApiResponse(
        ErrorSerializer,
        description=(
            "merchant_auth.missing_headers / merchant_auth.malformed_headers / "
            "merchant_auth.unknown_key / merchant_auth.key_revoked / merchant_auth.key_expired / "
            "merchant_auth.bad_token / merchant_auth.bad_signature / "
            "merchant_auth.stale_timestamp / merchant_auth.replayed_nonce"
        ),
    ),
    403: OpenApiResponse(
        ErrorSerializer,
        description="merchant_auth.merchant_inactive / merchant_auth.scope_missing",
    ),
    503: OpenApiResponse(ErrorSerializer, description="merchant_auth.unavailable"),
}


class MerchantAPIView(APIView):
    """Base of merchant API views: merchant keys only (no session, no consumer token), and
    the scopes named in `required_scopes`."""

    authentication_classes = [MerchantKeyAuthentication]
    permission_classes = [HasMerchantScope]
    throttle_classes = [IPRateThrottle, MerchantKeyRateThrottle]
    required_scopes: tuple[str, ...] | None = None


class WhoAmIMerchantSerializer(serializers.Serializer):
    name = serializers.CharField()
    uscc = serializers.CharField(help_text="统一社会信用代码")


class WhoAmISerializer(serializers.Serializer):
    merchant = WhoAmIMerchantSerializer()
    key_id = serializers.CharField()
    label = serializers.CharField()
    scopes = serializers.ListField(child=serializers.CharField())
    expires_at = serializers.DateTimeField(allow_null=True)


@method_decorator(never_cache, name="dispatch")
class MerchantWhoAmIView(MerchantAPIView):
    """The merchant and key a correctly signed request is authenticated as. Needs no scope."""

    required_scopes = ()

    @extend_schema(
        parameters=MERCHANT_SIGNATURE_PARAMETERS,
        responses={200: WhoAmISerializer, **MERCHANT_AUTH_ERRORS},
        summary="Which merchant and key am I",
        tags=["merchant"],
    )
    def get(self, request):
        principal = request.user
        key = principal.api_key
        return Response(
            WhoAmISerializer(
                {
                    "merchant": {"name": principal.merchant.name, "uscc": principal.merchant.uscc},
                    "key_id": key.key_id,
                    "label": key.label,
                    "scopes": sorted(principal.scopes),
                    "expires_at": key.expires_at,
                }
            ).data
        )
