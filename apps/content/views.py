"""The public pages of the campaign's publicity: articles and the merchant lookup.

Plain server-rendered HTML in the look of the public draw results (`/draws/`): no sign-in, no
JavaScript (a search is an ordinary GET form), semantic headings, alt text on every image,
high-contrast colours and sizes in rem so text grows with the reader's settings (适老化).
Article pages answer conditional requests (ETag, Last-Modified); the merchant lookup is
rate-limited per client address and never cached.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.core.files.storage import default_storage
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from apps.common.areas import ZHENGZHOU_AREAS

from . import selectors
from .choices import ArticleKind
from .exceptions import ContentError
from .http import etag_for, not_modified, set_cache_headers
from .models import Article, ArticleImage
from .sanitize import sanitize_html
from .throttling import MerchantLookupThrottle

PAGE_SIZE = 20
HOME_PER_KIND = 5
IMAGE_CACHE = "public, max-age=3600"


def _kinds():
    return [(value, label) for value, label in ArticleKind.choices]


def _conditional_page(request, template: str, context: dict, last_modified) -> HttpResponse:
    context = {"kinds": _kinds(), **context}
    content = render_to_string(template, context, request=request).encode("utf-8")
    etag = etag_for(content)
    if not_modified(request, etag=etag, last_modified=last_modified):
        response = HttpResponse(status=304)
    else:
        response = HttpResponse(content, content_type="text/html; charset=utf-8")
    set_cache_headers(response, etag=etag, last_modified=last_modified)
    return response


@require_safe
def home(request):
    sections = [
        (value, label, list(selectors.article_public_list(kind=value)[:HOME_PER_KIND]))
        for value, label in ArticleKind.choices
    ]
    return _conditional_page(
        request,
        "public/home.html",
        {"sections": sections},
        selectors.articles_last_modified(),
    )


def _page_number(request) -> int:
    try:
        return max(1, int(request.GET.get("page", "1")))
    except ValueError:
        return 1


@require_safe
def article_list(request, kind: str | None = None):
    if kind is not None and kind not in ArticleKind.values:
        raise Http404
    paginator = Paginator(selectors.article_public_list(kind=kind), PAGE_SIZE)
    page = paginator.get_page(_page_number(request))
    return _conditional_page(
        request,
        "public/article_list.html",
        {
            "kind": kind,
            "kind_label": ArticleKind(kind).label if kind else None,
            "page": page,
        },
        selectors.articles_last_modified(kind=kind),
    )


@require_safe
def article_detail(request, public_id):
    try:
        article = selectors.article_public_get(public_id)
    except Article.DoesNotExist:
        raise Http404 from None
    return _conditional_page(
        request,
        "public/article_detail.html",
        {
            "article": article,
            # Stored sanitised; cleaned again on the way out in case a row was written around
            # the service (idempotent, about a millisecond).
            "body": sanitize_html(article.body),
            "winner_name": selectors.winner_display_name(article),
            "kind_label": article.get_kind_display(),
        },
        article.updated_at,
    )


@require_safe
def image(request, public_id, ext: str):
    user = request.user if request.user.is_authenticated else None
    try:
        found = selectors.image_public_get(public_id, staff_user=user)
    except ArticleImage.DoesNotExist:
        raise Http404 from None
    if ext != found.extension or not default_storage.exists(found.file.name):
        raise Http404
    response = FileResponse(
        default_storage.open(found.file.name, "rb"), content_type=found.content_type
    )
    response["Cache-Control"] = IMAGE_CACHE if user is None else "private, no-store"
    response["Content-Disposition"] = "inline"
    return response


@never_cache
@require_safe
def merchant_lookup(request):
    q = request.GET.get("q", "")
    area = request.GET.get("area", "")
    industry = request.GET.get("industry", "")
    searched = any(name in request.GET for name in ("q", "area", "industry"))
    context = {
        "kinds": _kinds(),
        "q": q,
        "area": area,
        "industry": industry,
        "areas": sorted(ZHENGZHOU_AREAS.items()),
        "industries": selectors.INDUSTRY_GROUPS,
        "searched": searched,
    }
    if searched:
        throttle = MerchantLookupThrottle()
        if not throttle.allow_request(request, None):
            response = render(
                request, "public/merchant_lookup.html", {**context, "throttled": True}, status=429
            )
            wait = throttle.wait()
            if wait:
                response["Retry-After"] = str(int(wait) + 1)
            return response
        try:
            qs = selectors.merchant_lookup(q=q, area=area, industry=industry)
        except ContentError as exc:
            return render(
                request,
                "public/merchant_lookup.html",
                {**context, "error": exc.message},
                status=400,
            )
        paginator = Paginator(qs, PAGE_SIZE)
        page = paginator.get_page(_page_number(request))
        campaign, rows = selectors.qualify_all(page.object_list)
        context.update(
            {
                "page": page,
                "rows": rows,
                "campaign": campaign,
                "query_string": urlencode({"q": q, "area": area, "industry": industry}),
            }
        )
    else:
        context["campaign"] = selectors.current_campaign()
    return render(request, "public/merchant_lookup.html", context)
