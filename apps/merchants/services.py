"""Writes to merchants. Every registration change and every status change goes through here."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.audit.models import AuditCategory
from apps.audit.services import audit_record
from apps.common.areas import PROVINCE_CODES
from apps.common.exceptions import DomainError
from apps.common.normalize import normalize_code
from apps.common.states import check_transition

from .choices import MERCHANT_TRANSITIONS, MerchantStatus
from .models import Merchant
from .validators import validate_uscc

STATUS_REASON_MAX_LENGTH = Merchant._meta.get_field("status_reason").max_length
NAME_MAX_LENGTH = Merchant._meta.get_field("name").max_length
ADDRESS_MAX_LENGTH = Merchant._meta.get_field("address").max_length
#: The registration fields `merchant_upsert` writes, in the order files and audit entries list them.
REGISTRATION_FIELDS = ("name", "area_code", "industry_code", "address")

_AREA_RE = re.compile(r"[0-9]{6}")
_INDUSTRY_RE = re.compile(r"[0-9]{2,4}")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def merchant_set_status(*, merchant: Merchant, status: str, reason: str, actor) -> Merchant:
    """Move `merchant` to `status` if `MERCHANT_TRANSITIONS` allows it, recording why and when.

    Invariant: a merchant's status only ever follows the transition table, and every change
    carries a non-empty reason, its time and an audit record written in the same transaction.
    The row is locked for the check and the write, so two officials acting at once cannot both
    pass the check against a stale status. Returns the updated merchant (a fresh instance; the
    one passed in is left as it was).

    Raises `InvalidTransition` (`merchant.invalid_transition`) for a change the table forbids
    (including "to the same status"), `DomainError` for a missing or too long reason.
    """
    reason = (reason or "").strip()
    if not reason:
        raise DomainError("merchant.reason_required", _("A reason is required."))
    if len(reason) > STATUS_REASON_MAX_LENGTH:
        raise DomainError(
            "merchant.reason_too_long",
            _("The reason is too long."),
            detail={"max_length": STATUS_REASON_MAX_LENGTH},
        )
    with transaction.atomic():
        locked = Merchant.objects.select_for_update().get(pk=merchant.pk)
        previous = locked.status
        check_transition(MERCHANT_TRANSITIONS, previous, status, entity="merchant")
        locked.status = status
        locked.status_reason = reason
        locked.status_changed_at = timezone.now()
        locked.save(update_fields=["status", "status_reason", "status_changed_at", "updated_at"])
        audit_record(
            action="merchant.status_changed",
            category=AuditCategory.STATE,
            target=locked,
            actor=actor,
            reason=reason,
            before={"status": previous},
            after={"status": status},
        )
    return locked


# --- registration data: create or update by credit code -----------------------------------


class MerchantError(DomainError):
    """A merchant write refused for bad input; `detail["field"]` names the offending field."""

    code = "merchant.invalid"


def _invalid(field_name: str, code: str, message) -> MerchantError:
    return MerchantError(code, message, detail={"field": field_name})


def _text(value: object) -> str:
    return "" if value is None else str(value)


@dataclass(frozen=True)
class MerchantData:
    """Registration data of one merchant, validated and in canonical form."""

    uscc: str
    name: str
    area_code: str
    industry_code: str
    address: str


def merchant_clean(
    *, uscc: object, name: object, area_code: object, industry_code: object, address: object = ""
) -> MerchantData:
    """Validate and normalise a merchant's registration data (no database access).

    The credit code must pass GB 32100-2015 (check character included) and is stored upper
    case, half-width; an empty area code defaults to the code's registering area (characters
    3–8), as in the admin form; the area code is 6 digits with a real province prefix, the
    industry code 2–4 digits (GB/T 4754-2017); codes typed full-width are folded. Raises
    `MerchantError` with the validator's stable code and `detail["field"]`.
    """
    try:
        uscc = validate_uscc(_text(uscc))
    except ValidationError as exc:
        raise _invalid("uscc", exc.code or "uscc.invalid", exc.messages[0]) from exc

    name = _text(name).strip()
    if not name:
        raise _invalid("name", "merchant.name_required", _("Enter the merchant's name."))
    if len(name) > NAME_MAX_LENGTH or _CONTROL_RE.search(name):
        raise _invalid(
            "name",
            "merchant.invalid_name",
            _("The name must be at most %(max)d characters without control characters.")
            % {"max": NAME_MAX_LENGTH},
        )

    area_code = normalize_code(_text(area_code)) or uscc[2:8]
    if not _AREA_RE.fullmatch(area_code) or area_code[:2] not in PROVINCE_CODES:
        raise _invalid("area_code", "area.invalid", _("An area code is 6 digits (GB/T 2260)."))

    industry_code = normalize_code(_text(industry_code))
    if not _INDUSTRY_RE.fullmatch(industry_code):
        raise _invalid(
            "industry_code",
            "industry.invalid",
            _("An industry code is 2 to 4 digits (GB/T 4754-2017)."),
        )

    address = _text(address).strip()
    if len(address) > ADDRESS_MAX_LENGTH or _CONTROL_RE.search(address):
        raise _invalid(
            "address",
            "merchant.invalid_address",
            _("The address must be at most %(max)d characters without control characters.")
            % {"max": ADDRESS_MAX_LENGTH},
        )
    return MerchantData(uscc, name, area_code, industry_code, address)


def _clean_status(status: object) -> str | None:
    """`None` or empty: leave the status as it is. Otherwise one of `MerchantStatus.values`."""
    if status is None:
        return None
    value = normalize_code(_text(status)).lower()
    if not value:
        return None
    if value not in MerchantStatus.values:
        raise _invalid(
            "status",
            "merchant.invalid_status",
            _("Unknown status. Use one of: %(values)s.")
            % {"values": ", ".join(MerchantStatus.values)},
        )
    return value


@dataclass(frozen=True)
class MerchantUpsertResult:
    """What `merchant_upsert` did (or, from `merchant_upsert_preview`, would do).

    `changes` maps each changed field to `(before, after)`; the status appears there too when it
    changes. `merchant` is the saved row — or, for a preview, an unsaved copy showing the
    outcome.
    """

    merchant: Merchant
    created: bool
    changes: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def outcome(self) -> str:
        if self.created:
            return "created"
        return "updated" if self.changes else "unchanged"


def _plan(
    current: Merchant | None, data: MerchantData, status: str | None, status_reason: str
) -> tuple[dict[str, tuple[str, str]], str | None]:
    """The registration changes and the status move (`None`: none), checked but not applied."""
    before = {f: getattr(current, f) for f in REGISTRATION_FIELDS} if current else {}
    changes = {
        f: (before.get(f, ""), getattr(data, f))
        for f in REGISTRATION_FIELDS
        if before.get(f, "") != getattr(data, f) or current is None
    }
    current_status = current.status if current else MerchantStatus.ACTIVE
    move = status if status is not None and status != current_status else None
    if move is not None:
        check_transition(MERCHANT_TRANSITIONS, current_status, move, entity="merchant")
        reason = (status_reason or "").strip()
        if not reason:
            raise _invalid(
                "status_reason",
                "merchant.reason_required",
                _("A reason is required to change the status."),
            )
        if len(reason) > STATUS_REASON_MAX_LENGTH:
            raise _invalid(
                "status_reason",
                "merchant.reason_too_long",
                _("The reason is too long."),
            )
        changes["status"] = (current_status, move)
    return changes, move


def merchant_upsert_preview(
    *,
    uscc: object,
    name: object,
    area_code: object = "",
    industry_code: object,
    address: object = "",
    status: object = None,
    status_reason: str = "",
) -> MerchantUpsertResult:
    """What `merchant_upsert` would do with these values, with the same validation; writes
    nothing and takes no lock (the import's dry run). The real call checks again under lock."""
    data = merchant_clean(
        uscc=uscc, name=name, area_code=area_code, industry_code=industry_code, address=address
    )
    status = _clean_status(status)
    current = Merchant.objects.filter(uscc=data.uscc).first()
    changes, move = _plan(current, data, status, status_reason)
    preview = Merchant(**vars(data)) if current is None else current
    for f in REGISTRATION_FIELDS:
        setattr(preview, f, getattr(data, f))
    if move is not None:
        preview.status, preview.status_reason = move, status_reason.strip()
    return MerchantUpsertResult(preview, created=current is None, changes=changes)


def merchant_upsert(
    *,
    uscc: object,
    name: object,
    area_code: object = "",
    industry_code: object,
    address: object = "",
    status: object = None,
    status_reason: str = "",
    actor,
    source: str,
) -> MerchantUpsertResult:
    """Create the merchant with this credit code, or update its registration data; optionally
    move its status (blacklist, suspend, reactivate) through `merchant_set_status`.

    Invariants: every value passes `merchant_clean` (credit-code check character included), so
    no path — form, import, API — stores an invalid merchant; a merchant's status only changes
    through `merchant_set_status` (transition table, reason, its own audit entry), and a new
    merchant starts `active` and moves from there; every create or change writes one audit entry
    (`merchant.created` / `merchant.updated`, the changed fields before and after, `source` as
    the reason) in the same transaction; an unchanged row writes nothing. The row is locked for
    the comparison and the write, and two concurrent creations of one code end as one create and
    one update (the unique index decides).

    `status` empty or `None` leaves the status alone; `source` says where the write came from
    (e.g. `import merchants.xlsx line 7`). Raises `MerchantError` for bad input (with
    `detail["field"]`), `InvalidTransition` (`merchant.invalid_transition`) for a status move
    the table forbids.
    """
    data = merchant_clean(
        uscc=uscc, name=name, area_code=area_code, industry_code=industry_code, address=address
    )
    status = _clean_status(status)
    with transaction.atomic():
        current = Merchant.objects.select_for_update().filter(uscc=data.uscc).first()
        created = False
        if current is None:
            merchant = Merchant(**vars(data))
            # Validate before the savepoint: a plan error must not look like a lost race.
            changes, move = _plan(None, data, status, status_reason)
            try:
                with transaction.atomic():
                    merchant.save(force_insert=True)
                created = True
            except IntegrityError:
                # Created meanwhile by someone else: carry on as an update of their row.
                current = Merchant.objects.select_for_update().get(uscc=data.uscc)
        if not created:
            changes, move = _plan(current, data, status, status_reason)
            merchant = current
            registration = [f for f in REGISTRATION_FIELDS if f in changes]
            if registration:
                for f in registration:
                    setattr(merchant, f, getattr(data, f))
                merchant.save(update_fields=[*registration, "updated_at"])
        registration_changes = {f: v for f, v in changes.items() if f != "status"}
        if created or registration_changes:
            audit_record(
                action="merchant.created" if created else "merchant.updated",
                category=AuditCategory.STATE,
                target=merchant,
                actor=actor,
                reason=source,
                before=None if created else {f: v[0] for f, v in registration_changes.items()},
                after={f: v[1] for f, v in registration_changes.items()},
            )
        if move is not None:
            merchant = merchant_set_status(
                merchant=merchant, status=move, reason=status_reason, actor=actor
            )
    return MerchantUpsertResult(merchant, created=created, changes=changes)
