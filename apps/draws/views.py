"""The public results page of periodic draws: no login, server-rendered, no scripts.

It shows what the spec makes public and nothing more: from commitment on, the seed commitment
and the randomness source; from freezing on, the ticket count, digest and tickets file; from
publication on, the winners (names masked), the server seed and the bundle. Downloads are the
files the stand-alone verifier checks.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.http import FileResponse, Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_safe

from . import engine
from .choices import DrawStatus
from .models import PeriodicDraw
from .selectors import (
    draw_bundle,
    iter_ticket_chunks,
    public_draw_get,
    public_draw_list,
    public_winners,
    tickets_public,
)

VERIFIER = Path(settings.BASE_DIR) / "tools" / "verify_draw.py"
PAGE_CACHE = {"public": True, "max_age": 60}
FILE_CACHE = {"public": True, "max_age": 3600}


def _draw_or_404(code: str) -> PeriodicDraw:
    try:
        return public_draw_get(code)
    except PeriodicDraw.DoesNotExist:
        raise Http404 from None


@require_safe
@cache_control(**PAGE_CACHE)
def draw_list(request):
    draws = list(public_draw_list()[:200])
    return render(
        request,
        "draws/draw_list.html",
        {
            "published": [d for d in draws if d.is_published],
            "upcoming": [
                d for d in draws if not d.is_published and d.status != DrawStatus.CANCELLED
            ],
            "cancelled": [d for d in draws if d.status == DrawStatus.CANCELLED],
            "spec_version": engine.SPEC_VERSION,
        },
    )


@require_safe
@cache_control(**PAGE_CACHE)
def draw_detail(request, code: str):
    draw = _draw_or_404(code)
    winners = public_winners(draw)
    return render(
        request,
        "draws/draw_detail.html",
        {
            "draw": draw,
            "tiers": list(draw.tiers.order_by("rank")),
            "winners": [w for w in winners if w.substitute_for is None],
            "substitutes": [w for w in winners if w.substitute_for is not None],
            "tickets_public": tickets_public(draw),
            "spec_version": engine.SPEC_VERSION,
        },
    )


@require_safe
@cache_control(**PAGE_CACHE)
def draw_bundle_json(request, code: str):
    draw = _draw_or_404(code)
    if not draw.is_published:
        raise Http404
    response = HttpResponse(
        engine.bundle_json(draw_bundle(draw)).encode("utf-8"),
        content_type="application/json; charset=utf-8",
    )
    response["Content-Disposition"] = 'attachment; filename="bundle.json"'
    return response


@require_safe
@cache_control(**FILE_CACHE)
def draw_tickets_csv(request, code: str):
    """The frozen tickets file, streamed in ticket order (constant memory at any size)."""
    draw = _draw_or_404(code)
    if not tickets_public(draw):
        raise Http404
    etag = f'"{draw.tickets_digest}"'
    if request.headers.get("If-None-Match") == etag:
        return HttpResponse(status=304, headers={"ETag": etag})
    response = StreamingHttpResponse(
        iter_ticket_chunks(draw), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = 'attachment; filename="tickets.csv"'
    response["ETag"] = etag
    return response


@require_safe
@cache_control(**FILE_CACHE)
def verifier_script(request):
    """The stand-alone verifier (Python standard library only), as published."""
    return FileResponse(
        VERIFIER.open("rb"),
        as_attachment=True,
        filename="verify_draw.py",
        content_type="text/x-python; charset=utf-8",
    )


@require_safe
@cache_control(**PAGE_CACHE)
def how_to_verify(request):
    return render(request, "draws/how_to_verify.html", {"spec_version": engine.SPEC_VERSION})
