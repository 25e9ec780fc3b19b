"""API plumbing shared by every app: the one exception handler and the API root."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.decorators import api_view, permission_classes
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from .exceptions import DomainError

ErrorSerializer = inline_serializer(
    name="Error",
    fields={
        "code": serializers.CharField(help_text="Stable machine code, e.g. invoice.duplicate"),
        "message": serializers.CharField(help_text="Translated message for people"),
        "detail": serializers.JSONField(help_text="Machine-readable context"),
    },
)

_DRF_CODES = {
    exceptions.NotAuthenticated: "auth.not_authenticated",
    exceptions.AuthenticationFailed: "auth.failed",
    exceptions.PermissionDenied: "auth.permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.Throttled: "throttled",
    exceptions.ParseError: "request.malformed",
    exceptions.UnsupportedMediaType: "request.unsupported_media_type",
    exceptions.ValidationError: "request.invalid",
    exceptions.NotAcceptable: "request.not_acceptable",
}


def _drf_code(exc: exceptions.APIException) -> str:
    """Our code for a DRF exception: the one it was raised with (`PermissionDenied(code=
    "consumer.frozen")`, or a subclass's `default_code`) when that is not DRF's generic code for
    its kind, else the mapped generic code (`auth.permission_denied` …)."""
    for cls, mapped in _DRF_CODES.items():
        if isinstance(exc, cls):
            given = None if isinstance(exc, exceptions.ValidationError) else exc.get_codes()
            if isinstance(given, str) and given != cls.default_code:
                return given
            return mapped
    return "error"


def exception_handler(exc, context):
    """Render every error as `{"code", "message", "detail"}` with a translated message."""
    if isinstance(exc, DomainError):
        return Response(
            {"code": exc.code, "message": str(exc.message), "detail": exc.detail},
            status=exc.status_code,
        )
    if isinstance(exc, ValidationError):
        code = exc.code if getattr(exc, "code", None) else "request.invalid"
        return Response(
            {"code": code, "message": " ".join(str(m) for m in exc.messages), "detail": {}},
            status=status.HTTP_400_BAD_REQUEST,
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    code = _drf_code(exc)
    if isinstance(exc, exceptions.ValidationError):
        message = _("The request has invalid fields.")
        detail = response.data if isinstance(response.data, dict) else {"errors": response.data}
    else:
        message = str(exc.detail) if hasattr(exc, "detail") else str(exc)
        detail = {}
    response.data = {"code": code, "message": message, "detail": detail}
    return response


@extend_schema(responses={200: inline_serializer("ApiRoot", {"version": serializers.CharField()})})
@api_view(["GET"])
@permission_classes([AllowAny])
def api_root(request):
    """Version of the API; every other endpoint requires authentication."""
    return Response({"version": "v1"})
