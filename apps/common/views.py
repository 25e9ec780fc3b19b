"""Operational endpoints."""

from django.http import JsonResponse
from django.views.decorators.http import require_GET


@require_GET
def healthz(request):
    """The process is up (no dependency checks; see /readyz for those)."""
    return JsonResponse({"status": "ok"})
