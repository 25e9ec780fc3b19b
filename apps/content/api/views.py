"""Public API of the publicity app (no sign-in): published articles (`/api/v1/articles/`) and
the merchant lookup (`/api/v1/merchants/lookup/`).

Articles carry ETag, Last-Modified and `Cache-Control: public, max-age=0, must-revalidate`,
and answer conditional requests with 304. The lookup is rate-limited per client address and
never cached: a suspended or blacklisted merchant disappears with the next request.
"""

from __future__ import annotations

from django.http import Http404
from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import mixins, serializers, viewsets
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.common.api import ErrorSerializer
from apps.common.throttling import IPRateThrottle
from apps.invoices.api.views import ConsumerPagination

from .. import selectors
from ..choices import ArticleKind
from ..http import etag_for, not_modified, set_cache_headers
from ..models import Article
from ..throttling import MerchantLookupThrottle
from .serializers import (
    ArticleListSerializer,
    ArticleSerializer,
    MerchantLookupQuerySerializer,
    MerchantResultSerializer,
)

KIND_PARAM = OpenApiParameter("kind", str, enum=ArticleKind.values, required=False)


def _conditional(request, data, last_modified) -> Response:
    etag = etag_for(JSONRenderer().render(data))
    if not_modified(request, etag=etag, last_modified=last_modified):
        response = Response(status=304)
    else:
        response = Response(data)
    set_cache_headers(response, etag=etag, last_modified=last_modified)
    return response


@extend_schema(parameters=[KIND_PARAM])
class ArticleViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Published articles: policy explainers, how-to guides, winner stories and notices."""

    lookup_field = "public_id"
    lookup_url_kwarg = "public_id"
    permission_classes = [AllowAny]
    authentication_classes: list = []
    pagination_class = ConsumerPagination
    throttle_classes = [IPRateThrottle]
    queryset = Article.objects.none()

    def _kind(self) -> str | None:
        kind = self.kwargs.get("kind") or self.request.query_params.get("kind") or None
        if kind is not None and kind not in ArticleKind.values:
            raise Http404
        return kind

    def get_queryset(self):
        return selectors.article_public_list(kind=self._kind())

    def get_serializer_class(self):
        return ArticleListSerializer if self.action == "list" else ArticleSerializer

    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.get_queryset())
        data = self.paginator.get_paginated_response(
            ArticleListSerializer(page, many=True).data
        ).data
        return _conditional(request, data, selectors.articles_last_modified(kind=self._kind()))

    def retrieve(self, request, *args, **kwargs):
        try:
            article = selectors.article_public_get(kwargs["public_id"])
        except (Article.DoesNotExist, ValueError):
            raise Http404 from None
        data = ArticleSerializer(article).data
        return _conditional(request, data, article.updated_at)


@method_decorator(never_cache, name="dispatch")
class MerchantLookupView(APIView):
    """Participating merchants by name, area and industry, with whether their invoices can
    enter the current campaign. Suspended and blacklisted merchants are never listed."""

    permission_classes = [AllowAny]
    authentication_classes: list = []
    throttle_classes = [MerchantLookupThrottle]

    @extend_schema(
        parameters=[MerchantLookupQuerySerializer],
        responses={
            200: inline_serializer(
                "MerchantLookupPage",
                {
                    "campaign": serializers.DictField(allow_null=True),
                    "count": serializers.IntegerField(),
                    "next": serializers.URLField(allow_null=True),
                    "previous": serializers.URLField(allow_null=True),
                    "results": MerchantResultSerializer(many=True),
                },
            ),
            400: OpenApiResponse(ErrorSerializer),
            429: OpenApiResponse(ErrorSerializer),
        },
    )
    def get(self, request):
        query = MerchantLookupQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        qs = selectors.merchant_lookup(**query.validated_data)
        paginator = ConsumerPagination()
        page = paginator.paginate_queryset(qs, request, view=self)
        campaign, rows = selectors.qualify_all(page)
        response = paginator.get_paginated_response(MerchantResultSerializer(rows, many=True).data)
        response.data = {
            "campaign": {"code": campaign.code, "name": campaign.name} if campaign else None,
            **response.data,
        }
        return response
