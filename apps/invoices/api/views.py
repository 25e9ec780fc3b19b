"""Consumer API for invoices: submit, list and read my invoices, list my entries."""

from __future__ import annotations

import django_filters
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.exceptions import PermissionDenied
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response

from apps.common.api import ErrorSerializer
from apps.common.idempotency import idempotent, store_reply_in_transaction
from apps.common.throttling import (
    ConsumerRateThrottle,
    InvoiceSubmitThrottle,
    IPRateThrottle,
    OneRoundTripThrottlesMixin,
)
from apps.invoices import caching
from apps.invoices.choices import InvoiceStatus, SourceChannel
from apps.invoices.exceptions import REJECTIONS
from apps.invoices.models import Invoice
from apps.invoices.selectors import entry_list_for_consumer, invoice_list_for_consumer
from apps.invoices.services import invoice_submit

from .serializers import (
    InvoiceDetailSerializer,
    InvoiceSerializer,
    InvoiceSubmitSerializer,
    SubmissionSerializer,
    invoice_payload,
)


class ConsumerPagination(PageNumberPagination):
    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100


class InvoiceFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=InvoiceStatus.choices)
    issued_from = django_filters.DateFilter(field_name="issue_date", lookup_expr="gte")
    issued_to = django_filters.DateFilter(field_name="issue_date", lookup_expr="lte")

    class Meta:
        model = Invoice
        fields = ["status", "issued_from", "issued_to"]


def current_consumer(request):
    consumer = getattr(request.user, "consumer", None) if request.user.is_authenticated else None
    if consumer is None:
        raise PermissionDenied("Only consumers use this API.")
    return consumer


IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    str,
    OpenApiParameter.HEADER,
    required=True,
    description="8–128 characters; the same key with the same body replays the first reply.",
)
ERRORS = {
    400: OpenApiResponse(ErrorSerializer, description="Malformed input (code says which field)"),
    401: OpenApiResponse(ErrorSerializer, description="Not signed in"),
    403: OpenApiResponse(ErrorSerializer, description="consumer.not_verified / consumer.frozen"),
    409: OpenApiResponse(
        ErrorSerializer, description="invoice.duplicate / idempotency.in_progress"
    ),
    422: OpenApiResponse(ErrorSerializer, description="Ineligible: invoice.* / limit.* / risk.*"),
    429: OpenApiResponse(ErrorSerializer, description="Too many requests"),
}


class InvoiceViewSet(
    OneRoundTripThrottlesMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """My invoices. Every queryset is scoped to the signed-in consumer."""

    lookup_field = "uid"
    pagination_class = ConsumerPagination
    filterset_class = InvoiceFilter
    throttle_classes = [IPRateThrottle, ConsumerRateThrottle, InvoiceSubmitThrottle]
    queryset = Invoice.objects.none()  # for the schema; get_queryset scopes every request

    def get_queryset(self):
        queryset = invoice_list_for_consumer(consumer=current_consumer(self.request))
        if self.action == "retrieve":
            queryset = queryset.prefetch_related("history")
        return queryset

    def get_serializer_class(self):
        return InvoiceDetailSerializer if self.action == "retrieve" else InvoiceSerializer

    def read_with_throttles(self, request):
        # A submission reads the configuration's generation tokens in the rate limits' round
        # trip; with the configuration kept in the process it then needs no other.
        if request.method != "POST":
            return None
        return caching.generation_keys(), caching.generations_read

    @extend_schema(
        request=InvoiceSubmitSerializer,
        parameters=[IDEMPOTENCY_HEADER],
        responses={201: SubmissionSerializer, **ERRORS},
        summary="Submit an invoice",
        description=(
            "Runs the whole pipeline: parse, uniqueness, tax-authority verification, real-name "
            "match, campaign eligibility, caps, risk, entry and the instant draw. `status` is "
            "`accepted` (entered), `held` (waiting for a reviewer) or `pending` (the tax "
            "authority does not know it yet; re-checked automatically).\n\n"
            "Rejection codes (`code` of the error body), with their HTTP status:\n\n"
            + "\n".join(
                f"- `{code}` ({status}): {message}"
                for code, (status, message) in REJECTIONS.items()
            )
            + "\n\nMalformed input gives 400 with the validator's code, e.g. "
            "`invoice_number.invalid_length`, `invoice_qr.malformed`."
        ),
    )
    @idempotent(claim_with_first_read=True)
    def create(self, request):
        consumer = current_consumer(request)
        form = InvoiceSubmitSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = dict(form.validated_data)
        if not data.get("device_id"):
            data["device_id"] = request.headers.get("X-Device-Id", "")[:128]
        reply = {}

        def entered(invoice, prize):
            # Inside the decision's transaction: the idempotency reply commits with it.
            reply["body"] = _submission_body(invoice, prize)
            store_reply_in_transaction(status.HTTP_201_CREATED, reply["body"])

        result = invoice_submit(
            consumer=consumer, data=data, channel=SourceChannel.APP, before_commit=entered
        )
        body = reply.get("body") or _submission_body(result.invoice, result.instant_prize)
        return Response(body, status=status.HTTP_201_CREATED)


def _submission_body(invoice, prize) -> dict:
    return {"invoice": invoice_payload(invoice), "instant_prize": prize}


class EntryViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """My entries: invoices accepted into a campaign (eligible for its draws)."""

    serializer_class = InvoiceSerializer
    pagination_class = ConsumerPagination
    throttle_classes = [IPRateThrottle, ConsumerRateThrottle]
    queryset = Invoice.objects.none()

    def get_queryset(self):
        return entry_list_for_consumer(consumer=current_consumer(self.request))
