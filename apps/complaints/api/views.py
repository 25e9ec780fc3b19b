"""Consumer API for consultations and complaints (`/api/v1/me/cases/`) and the public FAQ
(`/api/v1/faq/`).

Every case query is scoped to the signed-in consumer: another consumer's case is a 404, never
a 403. The thread shows replies and the consumer's own messages; internal notes never leave the
staff desk.
"""

from __future__ import annotations

from django.http import FileResponse
from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from apps.accounts.permissions import IsConsumer
from apps.common.api import ErrorSerializer
from apps.common.idempotency import idempotent
from apps.common.throttling import ConsumerRateThrottle, IPRateThrottle
from apps.invoices.api.views import IDEMPOTENCY_HEADER, ConsumerPagination, current_consumer

from .. import selectors, services
from ..exceptions import CaseError
from ..models import Case, CaseCategory, FaqArticle
from .serializers import (
    AttachmentSerializer,
    AttachmentUploadSerializer,
    CaseCreateSerializer,
    CaseDetailSerializer,
    CaseSerializer,
    CategorySerializer,
    FaqListSerializer,
    FaqSerializer,
    MessageCreateSerializer,
    MessageSerializer,
    RatingSerializer,
    ReopenSerializer,
)

ERRORS = {
    400: OpenApiResponse(ErrorSerializer, description="Malformed input (code says which field)"),
    401: OpenApiResponse(ErrorSerializer, description="Not signed in"),
    403: OpenApiResponse(ErrorSerializer, description="Not a consumer / frozen"),
    404: OpenApiResponse(ErrorSerializer, description="Not one of my cases (or linked records)"),
    409: OpenApiResponse(ErrorSerializer, description="case.* state conflict (see code)"),
}


def _detail(case: Case) -> dict:
    context = {
        "messages": list(selectors.case_public_messages(case=case)),
        "attachments": list(selectors.case_public_attachments(case=case)),
        "reopen_until": services.reopen_deadline(case),
    }
    return CaseDetailSerializer(case, context=context).data


def _own(model, consumer, value, field: str):
    """One of the consumer's own records, or a 404 naming the field."""
    if value is None:
        return None
    lookup = {"uid": value} if field == "invoice" else {"public_id": value}
    found = model.objects.filter(consumer=consumer, **lookup).first()
    if found is None:
        raise CaseError("case.link_not_yours", detail={"field": field}, status_code=404)
    return found


@method_decorator(never_cache, name="dispatch")
class CaseViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """My consultations and complaints, newest first."""

    lookup_field = "public_id"
    permission_classes = [IsConsumer]
    pagination_class = ConsumerPagination
    throttle_classes = [IPRateThrottle, ConsumerRateThrottle]
    queryset = Case.objects.none()

    def get_queryset(self):
        queryset = selectors.case_list_for_consumer(consumer=current_consumer(self.request))
        if self.action != "list":
            queryset = queryset.select_related("invoice", "award")
        return queryset

    def get_serializer_class(self):
        return CaseSerializer if self.action == "list" else CaseDetailSerializer

    @extend_schema(responses={200: CaseDetailSerializer, **ERRORS})
    def retrieve(self, request, public_id=None):
        return Response(_detail(self.get_object()))

    @extend_schema(
        request=CaseCreateSerializer,
        parameters=[IDEMPOTENCY_HEADER],
        responses={201: CaseDetailSerializer, **ERRORS},
        summary="File a consultation or complaint",
        description=(
            "`kind` is one of consultation, complaint, merchant_refusal, appeal, "
            "prize_problem. Link one of my invoices (`invoice`, its uid) or prizes (`award`) "
            "where it is about one; links to records of somebody else are refused with 404 "
            "`case.link_not_yours`."
        ),
    )
    @idempotent()
    def create(self, request):
        from apps.invoices.models import Invoice
        from apps.prizes.models import Award

        consumer = current_consumer(request)
        form = CaseCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        category = None
        if data.get("category"):
            category = CaseCategory.objects.filter(code=data["category"], active=True).first()
            if category is None:
                raise CaseError("case.category_invalid", detail={"field": "category"})
        case = services.case_open(
            kind=data["kind"],
            category=category,
            channel="api",
            consumer=consumer,
            subject=data["subject"],
            description=data.get("description", ""),
            invoice=_own(Invoice, consumer, data.get("invoice"), "invoice"),
            award=_own(Award, consumer, data.get("award"), "award"),
            reported_merchant_name=data.get("merchant_name", ""),
        )
        return Response(_detail(case), status=status.HTTP_201_CREATED)

    @extend_schema(
        request=MessageCreateSerializer,
        parameters=[IDEMPOTENCY_HEADER],
        responses={201: MessageSerializer, **ERRORS},
        summary="Write on my case",
    )
    @action(detail=True, methods=["post"])
    @idempotent()
    def messages(self, request, public_id=None):
        case = self.get_object()
        form = MessageCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        message = services.case_consumer_message(
            case=case, consumer=current_consumer(request), body=form.validated_data["body"]
        )
        return Response(MessageSerializer(message).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=RatingSerializer,
        responses={200: CaseDetailSerializer, **ERRORS},
        summary="Rate the handling of my resolved case (once, 1–5)",
    )
    @action(detail=True, methods=["post"])
    def rating(self, request, public_id=None):
        case = self.get_object()
        form = RatingSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        case = services.case_rate(
            case=case,
            consumer=current_consumer(request),
            score=form.validated_data["score"],
            comment=form.validated_data.get("comment", ""),
        )
        return Response(_detail(case))

    @extend_schema(
        request=ReopenSerializer,
        responses={200: CaseDetailSerializer, **ERRORS},
        summary="Reopen my resolved case (within the reopen window)",
    )
    @action(detail=True, methods=["post"])
    def reopen(self, request, public_id=None):
        case = self.get_object()
        form = ReopenSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        case = services.case_reopen(
            case=case,
            consumer=current_consumer(request),
            reason=form.validated_data.get("reason", ""),
        )
        return Response(_detail(case))

    @extend_schema(
        request={"multipart/form-data": AttachmentUploadSerializer},
        parameters=[IDEMPOTENCY_HEADER],
        responses={
            201: AttachmentSerializer,
            413: OpenApiResponse(ErrorSerializer, description="attachment.too_large"),
            415: OpenApiResponse(ErrorSerializer, description="attachment.type_not_allowed"),
            **ERRORS,
        },
        summary="Attach a photo or PDF to my open case",
    )
    @action(detail=True, methods=["post"], parser_classes=[MultiPartParser])
    @idempotent(required=False)
    def attachments(self, request, public_id=None):
        case = self.get_object()
        form = AttachmentUploadSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        attachment = services.attachment_add(
            case=case, upload=form.validated_data["file"], consumer=current_consumer(request)
        )
        return Response(AttachmentSerializer(attachment).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        responses={(200, "application/octet-stream"): bytes, **ERRORS},
        summary="Download an attachment of my case",
    )
    @action(detail=True, methods=["get"], url_path=r"attachments/(?P<attachment_id>[0-9a-f-]{36})")
    def attachment(self, request, public_id=None, attachment_id=None):
        case = self.get_object()
        found = selectors.case_public_attachments(case=case).filter(uid=attachment_id).first()
        if found is None:
            raise CaseError("case.not_found", status_code=404)
        return attachment_response(found)


def attachment_response(attachment) -> FileResponse:
    """The file as a download: its sniffed type, never rendered inline by the browser."""
    response = FileResponse(
        attachment.file.open("rb"),
        as_attachment=True,
        filename=attachment.original_name,
        content_type=attachment.content_type,
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


class CategoryViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """The active case categories, for the app's "file a case" form."""

    permission_classes = [AllowAny]
    serializer_class = CategorySerializer
    pagination_class = None
    throttle_classes = [IPRateThrottle]
    queryset = CaseCategory.objects.none()

    def get_queryset(self):
        return selectors.category_list_active()


class FaqViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Published FAQ articles (public)."""

    lookup_field = "slug"
    permission_classes = [AllowAny]
    pagination_class = ConsumerPagination
    throttle_classes = [IPRateThrottle]
    queryset = FaqArticle.objects.none()

    def get_queryset(self):
        return selectors.faq_published().select_related("category")

    def get_serializer_class(self):
        return FaqListSerializer if self.action == "list" else FaqSerializer
