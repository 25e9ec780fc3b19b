"""The partner pull API: the dashboard's figures, small-cell suppressed, read-only, audited."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.audit.models import AuditCategory
from apps.audit.services import audit_record

from .. import selectors
from ..models import PartnerScope
from .authentication import HasPartnerScope, PartnerKeyAuthentication, PartnerKeyThrottle


class _PartnerView(APIView):
    authentication_classes = [PartnerKeyAuthentication]
    permission_classes = [HasPartnerScope]
    throttle_classes = [PartnerKeyThrottle]
    required_scope = ""
    panels: tuple[str, ...] = ()

    def get(self, request):
        filters = selectors.Filters.parse(request.query_params)
        tables = {
            key: selectors.panel(key, filters, suppressed=True).as_dict() for key in self.panels
        }
        audit_record(
            action="partner_api.read",
            category=AuditCategory.EXPORT,
            target=request.auth,
            after={
                "path": request.path,
                "filters": filters.as_query(),
                "panels": list(self.panels),
            },
        )
        return Response(
            {
                "filters": filters.as_query(),
                "small_cell_threshold": selectors.small_cell_threshold(),
                "panels": tables,
            }
        )


@extend_schema(
    summary="Invoice statistics (partner systems)",
    tags=["partner statistics"],
    responses={200: OpenApiTypes.OBJECT},
)
class InvoiceStatsView(_PartnerView):
    required_scope = PartnerScope.INVOICES
    panels = ("today", "trend", "areas", "industries", "funnel", "rejections")


@extend_schema(
    summary="Award and payout statistics (partner systems)",
    tags=["partner statistics"],
    responses={200: OpenApiTypes.OBJECT},
)
class AwardStatsView(_PartnerView):
    required_scope = PartnerScope.AWARDS
    panels = ("awards", "burn", "budget")
