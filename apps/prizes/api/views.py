"""Consumer API (my prizes, coupons, payout accounts, claims, withdrawals), the merchant API
(check and redeem coupons, redemption report) and the payment provider's callback."""

from __future__ import annotations

import json
import logging

from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.decorators import method_decorator
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from apps.accounts.api.merchant_views import (
    MERCHANT_AUTH_ERRORS,
    MERCHANT_SIGNATURE_PARAMETERS,
    MerchantAPIView,
)
from apps.accounts.permissions import IsConsumer
from apps.common.api import ErrorSerializer
from apps.common.idempotency import idempotent
from apps.common.throttling import ConsumerRateThrottle, IPRateThrottle
from apps.invoices.api.views import IDEMPOTENCY_HEADER, ConsumerPagination, current_consumer

from .. import gateway as gw
from .. import selectors, services
from ..exceptions import PrizeError
from ..models import Award, Coupon, Payout, PayoutAccount
from .serializers import (
    AwardDetailSerializer,
    AwardSerializer,
    CheckSerializer,
    ClaimSerializer,
    CouponSerializer,
    MerchantCouponSerializer,
    PayoutAccountCreateSerializer,
    PayoutAccountSerializer,
    PayoutSerializer,
    RedeemSerializer,
    RedemptionReportSerializer,
    RedemptionSerializer,
)

logger = logging.getLogger(__name__)

ERRORS = {
    401: OpenApiResponse(ErrorSerializer, description="Not signed in"),
    403: OpenApiResponse(ErrorSerializer, description="Not a consumer / not verified"),
    409: OpenApiResponse(ErrorSerializer, description="award.* / account.* (see code)"),
}


@method_decorator(never_cache, name="dispatch")
class AwardViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """My prizes (instant and periodic), newest first; a prize's history says why it changed."""

    lookup_field = "public_id"
    pagination_class = ConsumerPagination
    permission_classes = [IsConsumer]
    throttle_classes = [IPRateThrottle, ConsumerRateThrottle]
    queryset = Award.objects.none()

    def get_queryset(self):
        queryset = selectors.award_list_for_consumer(consumer=current_consumer(self.request))
        if self.action == "retrieve":
            queryset = queryset.prefetch_related("history")
        return queryset

    def get_serializer_class(self):
        return AwardDetailSerializer if self.action == "retrieve" else AwardSerializer

    @extend_schema(
        request=ClaimSerializer,
        parameters=[IDEMPOTENCY_HEADER],
        responses={201: PayoutSerializer, **ERRORS},
        summary="Claim a cash prize to one of my verified accounts",
    )
    @action(detail=True, methods=["post"])
    @idempotent()
    def claim(self, request, public_id=None):
        consumer = current_consumer(request)
        award = self.get_object()
        form = ClaimSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        account = PayoutAccount.objects.filter(
            consumer=consumer, public_id=form.validated_data["account"]
        ).first()
        if account is None:
            raise PrizeError("account.not_usable", status_code=409)
        payout = services.award_claim(consumer=consumer, award=award, account=account)
        return Response(PayoutSerializer(payout).data, status=status.HTTP_201_CREATED)


@method_decorator(never_cache, name="dispatch")
class CouponViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """My coupons and vouchers with their codes (shown to their owner only)."""

    serializer_class = CouponSerializer
    pagination_class = ConsumerPagination
    permission_classes = [IsConsumer]
    throttle_classes = [IPRateThrottle, ConsumerRateThrottle]
    queryset = Coupon.objects.none()

    def get_queryset(self):
        return selectors.coupon_list_for_consumer(consumer=current_consumer(self.request))


@method_decorator(never_cache, name="dispatch")
class PayoutAccountViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """My payout accounts (numbers masked). Registering one checks, through the identity
    service, that it is held in my verified name."""

    serializer_class = PayoutAccountSerializer
    pagination_class = ConsumerPagination
    permission_classes = [IsConsumer]
    throttle_classes = [IPRateThrottle, ConsumerRateThrottle]
    queryset = PayoutAccount.objects.none()

    def get_queryset(self):
        return selectors.payout_account_list_for_consumer(consumer=current_consumer(self.request))

    @extend_schema(
        request=PayoutAccountCreateSerializer,
        parameters=[IDEMPOTENCY_HEADER],
        responses={201: PayoutAccountSerializer, **ERRORS},
        summary="Register a payout account in my own name",
    )
    @idempotent()
    def create(self, request):
        consumer = current_consumer(request)
        form = PayoutAccountCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        account = services.payout_account_register(consumer=consumer, **form.validated_data)
        return Response(PayoutAccountSerializer(account).data, status=status.HTTP_201_CREATED)


@method_decorator(never_cache, name="dispatch")
class PayoutViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """My withdrawals: each claim's payout and its status."""

    serializer_class = PayoutSerializer
    pagination_class = ConsumerPagination
    permission_classes = [IsConsumer]
    throttle_classes = [IPRateThrottle, ConsumerRateThrottle]
    queryset = Payout.objects.none()

    def get_queryset(self):
        return selectors.payout_list_for_consumer(consumer=current_consumer(self.request))


# --- Merchant API -------------------------------------------------------------------------------


@method_decorator(never_cache, name="dispatch")
class CouponCheckView(MerchantAPIView):
    """Look a coupon up before the sale: usable here or the reason why not (no change)."""

    required_scopes = ("coupons:read",)

    @extend_schema(
        request=CheckSerializer,
        parameters=MERCHANT_SIGNATURE_PARAMETERS,
        responses={200: MerchantCouponSerializer, **MERCHANT_AUTH_ERRORS},
        summary="Check a coupon",
        tags=["merchant"],
    )
    def post(self, request):
        form = CheckSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        coupon = services.coupon_check(
            code=form.validated_data["code"], merchant=request.user.merchant
        )
        return Response(MerchantCouponSerializer(coupon).data)


@method_decorator(never_cache, name="dispatch")
class CouponRedeemView(MerchantAPIView):
    """Redeem a coupon once. The same `reference` again returns the first result."""

    required_scopes = ("coupons:redeem",)

    @extend_schema(
        request=RedeemSerializer,
        parameters=MERCHANT_SIGNATURE_PARAMETERS,
        responses={200: RedemptionSerializer, **MERCHANT_AUTH_ERRORS},
        summary="Redeem a coupon",
        tags=["merchant"],
    )
    def post(self, request):
        form = RedeemSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        result = services.coupon_redeem(
            code=form.validated_data["code"],
            merchant=request.user.merchant,
            purchase_amount=form.validated_data["purchase_amount"],
            reference=form.validated_data["reference"],
            key_id=request.user.api_key.key_id,
        )
        return Response(
            RedemptionSerializer({"replayed": result.replayed, "coupon": result.coupon}).data
        )


def _query_time(request, name: str):
    """An ISO 8601 time from the query string (none: no bound); a naive one is China time.
    Anything unreadable is a 400, never a silently ignored bound (or a 500)."""
    text = request.query_params.get(name, "")
    if not text:
        return None
    try:
        moment = parse_datetime(text)
    except ValueError:  # well formed but impossible, e.g. month 13
        moment = None
    if moment is None:
        raise ValidationError({name: [_("Give an ISO 8601 time, e.g. 2026-03-01T00:00:00+08:00.")]})
    return timezone.make_aware(moment) if timezone.is_naive(moment) else moment


@method_decorator(never_cache, name="dispatch")
class RedemptionReportView(MerchantAPIView):
    """My redemptions in a period, with count and total value (at most 500 rows)."""

    required_scopes = ("reports:read",)

    @extend_schema(
        parameters=[
            *MERCHANT_SIGNATURE_PARAMETERS,
            OpenApiParameter("since", str, description="ISO 8601 time, inclusive"),
            OpenApiParameter("until", str, description="ISO 8601 time, exclusive"),
        ],
        responses={
            200: RedemptionReportSerializer,
            400: OpenApiResponse(ErrorSerializer, description="request.invalid: since/until"),
            **MERCHANT_AUTH_ERRORS,
        },
        summary="Redemption report",
        tags=["merchant"],
    )
    def get(self, request):
        since = _query_time(request, "since")
        until = _query_time(request, "until")
        queryset = selectors.redemption_list_for_merchant(
            merchant=request.user.merchant, since=since, until=until
        )
        totals = selectors.redemption_totals(queryset)
        return Response(
            RedemptionReportSerializer({**totals, "redemptions": list(queryset[:500])}).data
        )


# --- Payment provider callback -----------------------------------------------------------------


@csrf_exempt
@require_POST
def payment_callback(request):
    """The provider's notification of a transfer's outcome. Authenticated by its signature
    (gateway adapter), not by a session; always answered quickly."""
    try:
        payout = services.payout_callback(
            method=request.method,
            path=request.get_full_path(),
            headers=request.headers,
            body=request.body,
        )
    except gw.CallbackRejected as exc:
        logger.warning("payment callback rejected: %s", exc.code)
        return JsonResponse({"error": exc.code}, status=401)
    if payout is None:
        return JsonResponse({"error": "unknown_request_no"}, status=404)
    return HttpResponse(json.dumps({"ok": True}), content_type="application/json")
