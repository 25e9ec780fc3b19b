"""Risk control services: the submission pipeline's risk hook (step 8), the configuration of
rules and thresholds (with history), the watch list, alerts, and review outcomes.

Invariants:
- a held invoice stays out of every draw until a reviewer releases it; a blocked one is
  rejected (`risk.blocked`) and never enters (the draws read `accepted` invoices only);
- every configuration change leaves a `RiskConfigChange` row and an audit record, and the
  cached configuration is dropped so the next submission sees it;
- staff decisions (release, reject, blacklist, alert outcome, case opened) are audited in the
  same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from apps.audit.models import AuditCategory
from apps.audit.services import audit_record
from apps.common.crypto import blind_index
from apps.common.states import check_transition

from .choices import ALERT_TRANSITIONS, AlertStatus, ListKind, RiskAction, RuleCode
from .exceptions import RiskError
from .models import RiskAlert, RiskAssessment, RiskConfigChange, RiskRule, RiskSettings, WatchEntry
from .rules import RULE_DEFAULTS, Submission, clean_params, evaluate, invalidate_config

# `RiskAction` is re-exported for the pipeline (apps.invoices.services).
__all__ = ["RiskAction", "RiskDecision", "RuleCode", "risk_assess_submission"]

MAX_DEVICE_ID = 128


@dataclass(frozen=True)
class RiskDecision:
    action: str
    score: int = 0
    reasons: tuple[str, ...] = ()
    code: str = ""
    hits: tuple[dict, ...] = ()


ALLOW = RiskDecision(RiskAction.ALLOW)
_CODES = {RiskAction.ALLOW: "", RiskAction.HOLD: "risk.held", RiskAction.BLOCK: "risk.blocked"}


def device_fingerprint(device_id) -> str:
    """The stored form of a client's device ID: a keyed hash (blind index), "" for none."""
    text = str(device_id or "").strip()[:MAX_DEVICE_ID]
    return blind_index("device", text) if text else ""


def risk_assess_submission(
    *,
    consumer,
    record,
    campaign,
    merchant=None,
    merchant_known: bool = False,
    device_hash: str = "",
    at=None,
    exclude_invoice_id: int | None = None,
) -> RiskDecision:
    """Score one verified, eligible submission with the real-time rules (`apps.risk.rules`).

    `record` is the tax authority's view of the invoice; `merchant` the seller's row if known.
    `merchant_known`: the caller has looked the seller up already (the pipeline, from its
    configuration cache), so `merchant=None` means "no such merchant", not "not looked up".
    Read-only: the caller stores the outcome (`risk_assessment_save`)."""
    if merchant is None and not merchant_known and record.seller_uscc:
        from apps.merchants.models import Merchant

        merchant = Merchant.objects.filter(uscc=record.seller_uscc).only("pk").first()
    sub = Submission(
        consumer_id=consumer.pk,
        consumer_public_id=str(consumer.public_id),
        seller_uscc=record.seller_uscc or "",
        merchant_id=merchant.pk if merchant is not None else None,
        total=record.total,
        issued_at=record.issued_at,
        at=at or timezone.now(),
        min_total=campaign.min_total,
        device_hash=device_hash or "",
        exclude_invoice_id=exclude_invoice_id,
    )
    result = evaluate(sub)
    if not result.hits:
        return ALLOW
    return RiskDecision(
        action=result.action,
        score=result.score,
        reasons=tuple(hit.reason() for hit in result.hits),
        code=_CODES[result.action],
        hits=tuple(hit.as_dict() for hit in result.hits),
    )


def risk_assessment_save(*, invoice, decision: RiskDecision) -> RiskAssessment | None:
    """Keep the evidence of a submission that scored (call inside the pipeline's transaction)."""
    if not decision.score:
        return None
    assessment, _created = RiskAssessment.objects.update_or_create(
        invoice=invoice,
        defaults={
            "score": decision.score,
            "action": decision.action,
            "hits": [{**hit, "rule": str(hit["rule"])} for hit in decision.hits],
            "at": timezone.now(),
        },
    )
    return assessment


# --- configuration ---------------------------------------------------------------------------


def _reason_required(reason: str) -> str:
    reason = (reason or "").strip()
    if len(reason) < 2:
        raise RiskError("risk.reason_required")
    return reason[:300]


def _config_changed(target: str, before: dict, after: dict, reason: str, actor) -> None:
    RiskConfigChange.objects.create(
        target=target,
        before=before,
        after=after,
        reason=reason,
        actor=actor if getattr(actor, "is_authenticated", False) else None,
        at=timezone.now(),
    )
    audit_record(
        action="risk.config_changed",
        category=AuditCategory.CONFIG,
        target_type="risk.config",
        target_id=target,
        target_repr=target,
        actor=actor,
        reason=reason,
        before=before,
        after=after,
    )
    invalidate_config()
    transaction.on_commit(invalidate_config)


def risk_rule_update(
    *, code: str, actor, reason: str, enabled=None, weight=None, params=None
) -> RiskRule:
    """Change one rule's switch, points or thresholds. Thresholds are checked against the
    rule's declared parameters (unknown keys, wrong types and negatives refused)."""
    if code not in RULE_DEFAULTS:
        raise RiskError("risk.rule_unknown", detail={"rule": code})
    reason = _reason_required(reason)
    with transaction.atomic():
        default_weight, default_params = RULE_DEFAULTS[code]
        rule, _created = RiskRule.objects.select_for_update().get_or_create(
            code=code, defaults={"weight": default_weight, "params": dict(default_params)}
        )
        before = {"enabled": rule.enabled, "weight": rule.weight, "params": rule.params}
        if enabled is not None:
            rule.enabled = bool(enabled)
        if weight is not None:
            if int(weight) < 0:
                raise RiskError("risk.invalid_value", detail={"field": "weight"})
            rule.weight = int(weight)
        if params is not None:
            try:
                rule.params = clean_params(code, {**rule.params, **params})
            except ValueError as exc:
                raise RiskError("risk.invalid_value", detail={"field": str(exc)}) from None
        rule.save()
        after = {"enabled": rule.enabled, "weight": rule.weight, "params": rule.params}
        _config_changed(f"rule:{code}", before, after, reason, actor)
    return rule


SETTINGS_FIELDS = (
    "hold_score",
    "block_score",
    "alert_z",
    "feature_z",
    "alert_min_features",
    "reversal_fdr",
    "reversal_link_min",
    "reversal_large_share",
)
# The reversal test's false-discovery rate: 0 would silence it, large ones flood the desk.
REVERSAL_FDR_RANGE = (Decimal("0.001"), Decimal("0.2"))
# The dearest share of entries counted as large (0: the large-value test is off).
REVERSAL_LARGE_SHARE_RANGE = (Decimal("0"), Decimal("0.5"))


def risk_settings_get() -> RiskSettings:
    row = RiskSettings.objects.order_by("pk").first()
    return row or RiskSettings.objects.create()


def risk_settings_update(*, actor, reason: str, **values) -> RiskSettings:
    """Change the decision scores or the nightly alert thresholds (block must exceed hold)."""
    reason = _reason_required(reason)
    unknown = set(values) - set(SETTINGS_FIELDS)
    if unknown:
        raise RiskError("risk.invalid_value", detail={"field": sorted(unknown)[0]})
    with transaction.atomic():
        row = RiskSettings.objects.select_for_update().get(pk=risk_settings_get().pk)
        before = {f: str(getattr(row, f)) for f in SETTINGS_FIELDS}
        for name, value in values.items():
            if value is None:
                continue
            try:
                number = type(getattr(row, name))(value)
            except Exception:  # any unparsable input is the same refusal
                raise RiskError("risk.invalid_value", detail={"field": name}) from None
            if number < 0:
                raise RiskError("risk.invalid_value", detail={"field": name})
            setattr(row, name, number)
        if row.block_score <= row.hold_score:
            raise RiskError("risk.invalid_value", detail={"field": "block_score"})
        low, high = REVERSAL_FDR_RANGE
        if not low <= row.reversal_fdr <= high:
            raise RiskError("risk.invalid_value", detail={"field": "reversal_fdr"})
        low, high = REVERSAL_LARGE_SHARE_RANGE
        if not low <= row.reversal_large_share <= high:
            raise RiskError("risk.invalid_value", detail={"field": "reversal_large_share"})
        row.save()
        after = {f: str(getattr(row, f)) for f in SETTINGS_FIELDS}
        _config_changed("settings", before, after, reason, actor)
    return row


# --- watch list ------------------------------------------------------------------------------


def watch_add(
    *, kind: str, value: str, actor, reason: str, label: str = "", merchant_uscc: str = ""
) -> WatchEntry:
    """Blacklist a merchant, consumer, payout account or device (or record a seller's staff
    member). Idempotent: an active entry for the same value is returned unchanged. A merchant
    is also blacklisted in the merchants app, so its invoices fail eligibility everywhere."""
    if kind not in ListKind.values or not value:
        raise RiskError("risk.invalid_value", detail={"field": "kind"})
    reason = _reason_required(reason)
    with transaction.atomic():
        existing = (
            WatchEntry.objects.select_for_update()
            .filter(kind=kind, value=value, merchant_uscc=merchant_uscc, active=True)
            .first()
        )
        if existing is not None:
            return existing
        entry = WatchEntry.objects.create(
            kind=kind,
            value=value,
            merchant_uscc=merchant_uscc,
            label=label[:100],
            reason=reason,
            created_by=actor if getattr(actor, "is_authenticated", False) else None,
        )
        if kind == ListKind.MERCHANT:
            from apps.merchants.choices import MerchantStatus
            from apps.merchants.models import Merchant
            from apps.merchants.services import merchant_set_status

            merchant = Merchant.objects.filter(uscc=value).first()
            if merchant is not None and merchant.status != MerchantStatus.BLACKLISTED:
                merchant_set_status(
                    merchant=merchant, status=MerchantStatus.BLACKLISTED, reason=reason, actor=actor
                )
        audit_record(
            action="risk.watch_added",
            category=AuditCategory.STATE,
            target=entry,
            actor=actor,
            reason=reason,
            after={"kind": kind, "label": label, "merchant_uscc": merchant_uscc},
        )
    return entry


def watch_lift(*, entry: WatchEntry, actor, reason: str) -> WatchEntry:
    reason = _reason_required(reason)
    with transaction.atomic():
        entry = WatchEntry.objects.select_for_update().get(pk=entry.pk)
        if not entry.active:
            return entry
        entry.active, entry.lifted_at = False, timezone.now()
        entry.save(update_fields=["active", "lifted_at"])
        audit_record(
            action="risk.watch_lifted",
            category=AuditCategory.STATE,
            target=entry,
            actor=actor,
            reason=reason,
            before={"active": True},
            after={"active": False},
        )
    return entry


def watch_values_for_consumer(consumer) -> list[tuple[str, str, str]]:
    """(kind, value, label) of everything of a consumer that can be blacklisted."""
    from apps.invoices.models import Invoice
    from apps.prizes.models import PayoutAccount

    values = [(ListKind.CONSUMER, str(consumer.public_id), str(consumer))]
    for account in PayoutAccount.objects.filter(consumer=consumer).only(
        "account_no_index", "account_last4", "kind"
    ):
        if account.account_no_index:
            values.append(
                (ListKind.ACCOUNT, account.account_no_index, f"****{account.account_last4}")
            )
    devices = (
        Invoice.objects.filter(consumer=consumer)
        .exclude(device_hash="")
        .values_list("device_hash", flat=True)
        .distinct()[:5]
    )
    values += [(ListKind.DEVICE, device, device[:10]) for device in devices]
    return values


# --- review of held invoices and alerts -------------------------------------------------------


def risk_invoice_review(*, invoice, accept: bool, actor, reason: str):
    """Release or reject a held invoice: the invoices app's service (audited; it notifies the
    consumer), after checking the reviewer gave a reason."""
    from apps.invoices.services import invoice_review

    return invoice_review(
        invoice=invoice, accept=accept, actor=actor, reason=_reason_required(reason)
    )


def risk_alert_close(*, alert: RiskAlert, confirmed: bool, actor, note: str) -> RiskAlert:
    """Close an open alert as confirmed fraud or dismissed (a false alarm), with a note."""
    note = _reason_required(note)
    with transaction.atomic():
        alert = RiskAlert.objects.select_for_update().get(pk=alert.pk)
        target = AlertStatus.CONFIRMED if confirmed else AlertStatus.DISMISSED
        check_transition(ALERT_TRANSITIONS, alert.status, target, entity="risk_alert")
        before = alert.status
        alert.status, alert.note = target, note[:500]
        alert.handled_by, alert.handled_at = actor, timezone.now()
        alert.save(update_fields=["status", "note", "handled_by", "handled_at"])
        audit_record(
            action=f"risk.alert_{target}",
            category=AuditCategory.STATE,
            target=alert,
            actor=actor,
            reason=note,
            before={"status": before},
            after={"status": target},
        )
    return alert


def risk_case_open(
    *, actor, subject: str, description: str, invoice=None, merchant=None, consumer=None
):
    """Open a complaint case for an investigation (staff entry), linked to what it is about."""
    from apps.complaints.choices import CaseChannel, CaseKind
    from apps.complaints.services import case_open

    with transaction.atomic():
        case = case_open(
            kind=CaseKind.COMPLAINT,
            subject=_reason_required(subject)[:200],
            description=description,
            channel=CaseChannel.STAFF,
            actor=actor,
            consumer=consumer,
            invoice=invoice,
            merchant=merchant,
        )
        audit_record(
            action="risk.case_opened",
            category=AuditCategory.STATE,
            target=case,
            actor=actor,
            reason=subject[:300],
            after={
                "invoice": getattr(invoice, "pk", None),
                "merchant": getattr(merchant, "pk", None),
            },
        )
    return case
