"""Errors of the reporting app, each with a stable code."""

from apps.common.exceptions import DomainError


class ReportingError(DomainError):
    code = "reporting.error"
