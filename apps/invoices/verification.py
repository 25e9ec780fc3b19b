"""Authenticity checks of 数电 invoices: number + issue date + total with tax.

The national verification service answers one question — "does an invoice with this number, this
issue date and this total exist, and what is its status?" — with one of four outcomes:

- `found`: it exists as asked; `record` holds the registry's fields and its status (normal,
  red-flushed, partially red-flushed), which the pipeline must act on.
- `not_found`: no invoice with this number (yet: the tax database lags issuance by about an
  hour, so "not found" is not "fake" — hold and ask again later).
- `mismatch`: the number exists but the date and/or total differ; `mismatched_fields` names them.
  No record is returned, so that a number alone never reveals an invoice's contents.
- `unavailable`: no answer (timeout, outage, refused credentials, quota, garbled reply); `detail`
  says which. Never cached, never a verdict.

Backends: `RegistryTaxVerifier` (the bulk-fed `TaxInvoiceRecord` table, the default) and
`HttpTaxVerifier` (the protocol in docs/adapters.md), usually behind `CachedTaxVerifier`.
Use `get_tax_verifier()`; pass `cached=False` for the re-verification before a payout, which must
see a red flush that happened minutes ago.
"""

from __future__ import annotations

import hmac
import logging
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.cache import BaseCache
from django.core.cache import cache as default_cache
from django.core.exceptions import ImproperlyConfigured
from django.db import models

from apps.common.crypto import blind_index, blind_index_candidates
from apps.common.http import (
    ServiceError,
    check_base_url,
    check_credentials,
    check_timeout,
    shared_client,
)
from apps.common.pii import normalize_for_index
from apps.common.queries import model_row

from .choices import InvoiceType, IssuerKind, RegistryStatus

logger = logging.getLogger(__name__)

VERIFY_PATH = "/v1/invoices/verify"
CHINA_TZ = ZoneInfo("Asia/Shanghai")
CENT = Decimal("0.01")
DEFAULT_TIMEOUT_SECONDS = 5.0
DEFAULT_CACHE_SECONDS = 3600
# The fields a `mismatch` may name, in this order.
CHECKED_FIELDS = ("issue_date", "total")

_NUMBER = re.compile(r"[0-9]{20}")
_AMOUNT = re.compile(r"-?[0-9]{1,12}\.[0-9]{2}")


class TaxOutcome(models.TextChoices):
    FOUND = "found"
    NOT_FOUND = "not_found"
    MISMATCH = "mismatch"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class RegistryInvoice:
    """The tax authority's view of one invoice, whichever backend answered.

    Amounts are exact `Decimal`s with two places, `issued_at` is timezone-aware. The buyer's name
    is always available as `buyer_name_index` (the blind index of purpose `name`, "" for no name),
    so the pipeline compares by index; `buyer_name` holds the plaintext only when the backend
    sent it (HTTP) and is None otherwise (registry table, cache). It is kept out of `repr`.
    """

    number: str
    invoice_type: str
    issued_at: datetime
    seller_uscc: str
    seller_name: str
    buyer_name_index: str
    buyer_tax_id: str
    amount: Decimal
    tax: Decimal
    total: Decimal
    issuer_kind: str
    industry_code: str
    status: str
    red_total: Decimal
    area_code: str = ""
    is_red: bool = False
    reverses_number: str = ""
    buyer_name: str | None = field(default=None, repr=False)

    @property
    def issue_date(self) -> date:
        """The issue date as printed on the invoice (China time)."""
        return self.issued_at.astimezone(CHINA_TZ).date()

    @property
    def is_reversed(self) -> bool:
        """Fully or partially red-flushed."""
        return self.status != RegistryStatus.NORMAL

    def buyer_name_matches(self, name: str) -> bool:
        """Whether `name` is the buyer's name, compared by blind index under every key."""
        normalized = normalize_for_index("name", name or "")
        if not normalized or not self.buyer_name_index:
            return False
        return any(
            hmac.compare_digest(candidate, self.buyer_name_index)
            for candidate in blind_index_candidates("name", normalized)
        )


@dataclass(frozen=True)
class TaxCheck:
    """One answer of the verification service.

    Invariants (checked on construction): `record` is set exactly when the outcome is `found`;
    `mismatched_fields` is non-empty exactly when it is `mismatch`; `detail` is non-empty exactly
    when it is `unavailable`.
    """

    outcome: TaxOutcome
    record: RegistryInvoice | None = None
    mismatched_fields: tuple[str, ...] = ()
    detail: str = ""

    def __post_init__(self) -> None:
        outcome = TaxOutcome(self.outcome)
        object.__setattr__(self, "outcome", outcome)
        if (self.record is not None) != (outcome == TaxOutcome.FOUND):
            raise ValueError("a record comes with `found` and only with it")
        if bool(self.mismatched_fields) != (outcome == TaxOutcome.MISMATCH):
            raise ValueError("mismatched fields come with `mismatch` and only with it")
        if bool(self.detail) != (outcome == TaxOutcome.UNAVAILABLE):
            raise ValueError("a detail comes with `unavailable` and only with it")

    @property
    def is_answer(self) -> bool:
        """The service answered (anything but `unavailable`)."""
        return self.outcome != TaxOutcome.UNAVAILABLE

    @classmethod
    def unavailable(cls, detail: str) -> TaxCheck:
        return cls(outcome=TaxOutcome.UNAVAILABLE, detail=detail)


def _check_question(number: str, issue_date: date, total: Decimal) -> None:
    if not isinstance(number, str) or not _NUMBER.fullmatch(number):
        raise ValueError("number must be 20 ASCII digits")
    if not isinstance(issue_date, date) or isinstance(issue_date, datetime):
        raise TypeError("issue_date must be a date (not a datetime)")
    if not isinstance(total, Decimal) or not total.is_finite() or total != total.quantize(CENT):
        raise ValueError("total must be a finite Decimal with at most two decimal places")


class TaxVerifier:
    """Base of the verification backends: validates the question, then asks `_verify`.

    `verify` never raises because of the service (that is `unavailable`); it raises
    `ValueError`/`TypeError` only for a malformed question, which is the caller's bug.
    `local`: the answer is a look-up in this database (no remote call, no quota).
    """

    local = False

    def verify(self, *, number: str, issue_date: date, total: Decimal) -> TaxCheck:
        _check_question(number, issue_date, total)
        return self._verify(number=number, issue_date=issue_date, total=total)

    def _verify(self, *, number: str, issue_date: date, total: Decimal) -> TaxCheck:
        raise NotImplementedError


def _compare(record: RegistryInvoice, issue_date: date, total: Decimal) -> TaxCheck:
    mismatched = tuple(
        name
        for name, same in (
            ("issue_date", record.issue_date == issue_date),
            ("total", record.total == total),
        )
        if not same
    )
    if mismatched:
        return TaxCheck(outcome=TaxOutcome.MISMATCH, mismatched_fields=mismatched)
    return TaxCheck(outcome=TaxOutcome.FOUND, record=record)


class RegistryTaxVerifier(TaxVerifier):
    """Answers from the `TaxInvoiceRecord` table that the tax authority's bulk feed fills.

    The issue date compared is the local date (Asia/Shanghai) of the record's `issued_at`.
    """

    local = True

    def _verify(self, *, number: str, issue_date: date, total: Decimal) -> TaxCheck:
        from .models import TaxInvoiceRecord

        # One primary-key probe on every submission, by plain SQL (half the cost of compiling
        # `filter(...).first()`).
        row = model_row(TaxInvoiceRecord, "number", number)
        if row is None:
            return TaxCheck(outcome=TaxOutcome.NOT_FOUND)
        record = RegistryInvoice(
            number=row.number,
            invoice_type=row.invoice_type,
            issued_at=row.issued_at,
            seller_uscc=row.seller_uscc,
            seller_name=row.seller_name,
            buyer_name_index=row.buyer_name_index,
            buyer_tax_id=row.buyer_tax_id,
            amount=row.amount,
            tax=row.tax,
            total=row.total,
            issuer_kind=row.issuer_kind,
            industry_code=row.industry_code,
            area_code=row.area_code,
            status=row.status,
            red_total=row.red_total,
            is_red=row.is_red,
            reverses_number=row.reverses_number,
        )
        return _compare(record, issue_date, total)


class MalformedReply(ValueError):
    """The reply parsed as JSON but does not follow the protocol."""


def _str(data: dict[str, Any], name: str, *, pattern: re.Pattern[str] | None = None) -> str:
    value = data.get(name)
    if not isinstance(value, str) or len(value) > 200:
        raise MalformedReply(name)
    if pattern is not None and not pattern.fullmatch(value):
        raise MalformedReply(name)
    return value


def _opt_str(data: dict[str, Any], name: str, *, max_length: int = 200) -> str:
    value = data.get(name)
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > max_length:
        raise MalformedReply(name)
    return value


def _amount(data: dict[str, Any], name: str) -> Decimal:
    text = _str(data, name, pattern=_AMOUNT)  # strings only: money is never a JSON number
    try:
        return Decimal(text)
    except InvalidOperation:
        raise MalformedReply(name) from None


def _aware(data: dict[str, Any], name: str) -> datetime:
    text = _str(data, name)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise MalformedReply(name) from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise MalformedReply(name)
    return value


def _name_index(name: str) -> str:
    normalized = normalize_for_index("name", name)
    return blind_index("name", normalized) if normalized else ""


def parse_invoice(data: object, *, number: str) -> RegistryInvoice:
    """The `invoice` object of a `found` reply, checked field by field (`MalformedReply`)."""
    if not isinstance(data, dict):
        raise MalformedReply("invoice")
    if _str(data, "number") != number:
        raise MalformedReply("number")  # an answer about another invoice is no answer
    invoice_type = _str(data, "invoice_type")
    if invoice_type not in InvoiceType.values:
        raise MalformedReply("invoice_type")
    issuer_kind = _str(data, "issuer_kind")
    if issuer_kind not in IssuerKind.values:
        raise MalformedReply("issuer_kind")
    status = _str(data, "status")
    if status not in RegistryStatus.values:
        raise MalformedReply("status")
    buyer_name = _opt_str(data, "buyer_name", max_length=100)
    amount, tax, total = _amount(data, "amount"), _amount(data, "tax"), _amount(data, "total")
    if amount + tax != total:
        raise MalformedReply("total")
    red_total = _amount(data, "red_total") if data.get("red_total") is not None else Decimal("0")
    if red_total < 0:
        raise MalformedReply("red_total")
    is_red = data.get("is_red", False)
    if not isinstance(is_red, bool):
        raise MalformedReply("is_red")
    reverses_number = _opt_str(data, "reverses_number", max_length=20)
    if reverses_number and not _NUMBER.fullmatch(reverses_number):
        raise MalformedReply("reverses_number")
    return RegistryInvoice(
        number=number,
        invoice_type=invoice_type,
        issued_at=_aware(data, "issued_at"),
        seller_uscc=_str(data, "seller_uscc"),
        seller_name=_str(data, "seller_name"),
        buyer_name=buyer_name,
        buyer_name_index=_name_index(buyer_name),
        buyer_tax_id=_opt_str(data, "buyer_tax_id", max_length=20),
        amount=amount,
        tax=tax,
        total=total,
        issuer_kind=issuer_kind,
        industry_code=_opt_str(data, "industry_code", max_length=4),
        area_code=_opt_str(data, "area_code", max_length=6),
        status=status,
        red_total=red_total.quantize(CENT),
        is_red=is_red,
        reverses_number=reverses_number,
    )


def parse_verify_reply(data: dict[str, Any], *, number: str) -> TaxCheck:
    """A 200 reply of `POST /v1/invoices/verify` as a `TaxCheck` (`MalformedReply` if not)."""
    result = data.get("result")
    if result == TaxOutcome.FOUND:
        return TaxCheck(
            outcome=TaxOutcome.FOUND, record=parse_invoice(data.get("invoice"), number=number)
        )
    if result == TaxOutcome.NOT_FOUND:
        return TaxCheck(outcome=TaxOutcome.NOT_FOUND)
    if result == TaxOutcome.MISMATCH:
        fields = data.get("fields")
        if (
            not isinstance(fields, list)
            or not fields
            or not set(fields) <= set(CHECKED_FIELDS)
            or len(set(fields)) != len(fields)
        ):
            raise MalformedReply("fields")
        ordered = tuple(name for name in CHECKED_FIELDS if name in fields)
        return TaxCheck(outcome=TaxOutcome.MISMATCH, mismatched_fields=ordered)
    raise MalformedReply("result")


class HttpTaxVerifier(TaxVerifier):
    """The national verification service over HTTP (docs/adapters.md, "Tax verification").

    Never raises on network trouble: every failure is `unavailable` with `detail` one of
    `timeout`, `connection_error`, `http_<status>` (e.g. `http_503`, `http_401`),
    `quota_exceeded` (429) or `malformed_reply` (not JSON, or not the documented schema).
    """

    service_name = "tax-verifier"

    def __init__(self, base_url: str, client_id: str, secret: str, timeout: float):
        self._client = shared_client(
            service=self.service_name,
            base_url=base_url,
            client_id=client_id,
            secret=secret,
            timeout=check_timeout(timeout, setting="TAX_VERIFIER_TIMEOUT"),
        )

    def _verify(self, *, number: str, issue_date: date, total: Decimal) -> TaxCheck:
        payload = {"number": number, "issue_date": issue_date.isoformat(), "total": f"{total:.2f}"}
        try:
            reply = self._client.post(VERIFY_PATH, payload)
        except ServiceError as exc:
            return TaxCheck.unavailable("quota_exceeded" if exc.status == 429 else exc.reason)
        try:
            return parse_verify_reply(reply.data, number=number)
        except (MalformedReply, TypeError, ValueError, InvalidOperation) as exc:
            logger.warning(
                "%s reply does not follow the protocol (field %s)",
                self.service_name,
                exc.args[0] if isinstance(exc, MalformedReply) and exc.args else "?",
            )
            return TaxCheck.unavailable("malformed_reply")


# --- Caching ---------------------------------------------------------------------------------

_CACHE_KEY_VERSION = "v1"


def _record_to_cache(record: RegistryInvoice) -> dict[str, Any]:
    # Primitives only (safe across deploys), and no plaintext name: the index is enough.
    return {
        "number": record.number,
        "invoice_type": record.invoice_type,
        "issued_at": record.issued_at.isoformat(),
        "seller_uscc": record.seller_uscc,
        "seller_name": record.seller_name,
        "buyer_name_index": record.buyer_name_index,
        "buyer_tax_id": record.buyer_tax_id,
        "amount": str(record.amount),
        "tax": str(record.tax),
        "total": str(record.total),
        "issuer_kind": record.issuer_kind,
        "industry_code": record.industry_code,
        "area_code": record.area_code,
        "status": record.status,
        "red_total": str(record.red_total),
        "is_red": record.is_red,
        "reverses_number": record.reverses_number,
    }


def _record_from_cache(data: dict[str, Any]) -> RegistryInvoice:
    values = dict(data)
    values["issued_at"] = datetime.fromisoformat(values["issued_at"])
    for name in ("amount", "tax", "total", "red_total"):
        values[name] = Decimal(values[name])
    return RegistryInvoice(**values)


class CachedTaxVerifier(TaxVerifier):
    """Remembers answers (`found`, `not_found`, `mismatch`) for `ttl` seconds, so the service is
    asked at most once per question — (number, issue date, total) — within that window, which
    spares the per-invoice daily quota. `unavailable` is never cached. A cached `found` carries
    `buyer_name=None`: the cache holds no plaintext personal data, only the blind index.

    The cache is not a lock: two callers racing on a cold question may both ask. A broken cache
    degrades to asking the service, it never fails the verification.
    """

    def __init__(self, inner: TaxVerifier, cache: BaseCache | None = None, ttl: int | None = None):
        self.inner = inner
        self.cache = cache if cache is not None else default_cache
        self.ttl = int(ttl if ttl is not None else _cache_seconds())

    @staticmethod
    def cache_key(number: str, issue_date: date, total: Decimal) -> str:
        return f"taxcheck:{_CACHE_KEY_VERSION}:{number}:{issue_date.isoformat()}:{total:.2f}"

    def _verify(self, *, number: str, issue_date: date, total: Decimal) -> TaxCheck:
        key = self.cache_key(number, issue_date, total)
        cached = self._load(key)
        if cached is not None:
            return cached
        check = self.inner.verify(number=number, issue_date=issue_date, total=total)
        if check.is_answer and self.ttl > 0:
            self._store(key, check)
        return check

    def _load(self, key: str) -> TaxCheck | None:
        try:
            data = self.cache.get(key)
            if data is None:
                return None
            record = data.get("record")
            return TaxCheck(
                outcome=TaxOutcome(data["outcome"]),
                record=_record_from_cache(record) if record is not None else None,
                mismatched_fields=tuple(data.get("fields", ())),
            )
        except Exception:  # a broken cache or an entry of another version: ask the service
            logger.warning("tax verification cache unreadable; asking the service", exc_info=True)
            return None

    def _store(self, key: str, check: TaxCheck) -> None:
        data = {
            "outcome": str(check.outcome),
            "record": _record_to_cache(check.record) if check.record is not None else None,
            "fields": list(check.mismatched_fields),
        }
        try:
            self.cache.set(key, data, self.ttl)
        except Exception:
            logger.warning("tax verification cache not writable", exc_info=True)


# --- Factory ---------------------------------------------------------------------------------


def _cache_seconds() -> int:
    value = getattr(settings, "TAX_VERIFY_CACHE_SECONDS", DEFAULT_CACHE_SECONDS)
    try:
        seconds = int(value)
    except (TypeError, ValueError) as exc:
        raise ImproperlyConfigured("TAX_VERIFY_CACHE_SECONDS must be a whole number.") from exc
    if seconds < 0:
        raise ImproperlyConfigured("TAX_VERIFY_CACHE_SECONDS must be >= 0 (0 disables).")
    return seconds


def get_tax_verifier(*, cached: bool = True) -> TaxVerifier:
    """The configured verifier.

    Settings: `TAX_VERIFIER_BACKEND` ("registry", the default, or "http"); for "http" also
    `TAX_VERIFIER_URL`, `TAX_VERIFIER_CLIENT_ID`, `TAX_VERIFIER_SECRET`, `TAX_VERIFIER_TIMEOUT`
    (seconds, default 5) and `TAX_VERIFY_CACHE_SECONDS` (default 3600, 0 disables). The HTTP
    backend is wrapped in `CachedTaxVerifier` unless `cached=False` (re-verification before a
    payout); the registry backend is a local table and is never cached.
    """
    backend = getattr(settings, "TAX_VERIFIER_BACKEND", "registry") or "registry"
    if backend == "registry":
        return RegistryTaxVerifier()
    if backend != "http":
        raise ImproperlyConfigured('TAX_VERIFIER_BACKEND must be "registry" or "http".')
    client_id = getattr(settings, "TAX_VERIFIER_CLIENT_ID", "")
    secret = getattr(settings, "TAX_VERIFIER_SECRET", "")
    check_credentials(client_id, secret, prefix="TAX_VERIFIER_")
    verifier: TaxVerifier = HttpTaxVerifier(
        base_url=check_base_url(
            getattr(settings, "TAX_VERIFIER_URL", ""), setting="TAX_VERIFIER_URL"
        ),
        client_id=client_id,
        secret=secret,
        timeout=check_timeout(
            getattr(settings, "TAX_VERIFIER_TIMEOUT", DEFAULT_TIMEOUT_SECONDS),
            setting="TAX_VERIFIER_TIMEOUT",
        ),
    )
    ttl = _cache_seconds()
    if cached and ttl > 0:
        verifier = CachedTaxVerifier(verifier, ttl=ttl)
    return verifier
