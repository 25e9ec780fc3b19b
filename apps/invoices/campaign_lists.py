"""Writes to a campaign's industry and area lists (`CampaignIndustry`, `CampaignArea`).

Used by the admin import of these lists (apps/invoices/resources.py); the rules decide which
invoices may enter, so every change is validated and audited here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from django.db import IntegrityError, models, transaction
from django.utils.translation import gettext_lazy as _

from apps.audit.models import AuditCategory
from apps.audit.services import audit_record
from apps.common.areas import PROVINCE_CODES
from apps.common.exceptions import DomainError
from apps.common.normalize import normalize_code

from .choices import CampaignStatus
from .models import Campaign, CampaignArea, CampaignIndustry

INDUSTRY, AREA = "industry", "area"
RULE_MODELS: dict[str, type[models.Model]] = {INDUSTRY: CampaignIndustry, AREA: CampaignArea}
LABEL_MAX_LENGTH = CampaignIndustry._meta.get_field("label").max_length

_INDUSTRY_RE = re.compile(r"[0-9]{2,4}")
_AREA_RE = re.compile(r"[0-9]{2,6}")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_TRUE = frozenset({"1", "true", "yes", "y", "是", "排除", "x", "√"})
_FALSE = frozenset({"0", "false", "no", "n", "否", "包含", ""})


class CampaignListError(DomainError):
    """A list rule refused for bad input; `detail["field"]` names the offending field."""

    code = "campaign_rule.invalid"


def _invalid(field_name: str, code: str, message) -> CampaignListError:
    return CampaignListError(code, message, detail={"field": field_name})


def parse_flag(value: object, *, field_name: str = "excluded") -> bool:
    """`1`/`0`, `true`/`false`, `yes`/`no`, `是`/`否`, `排除`/`包含` (any case) → bool."""
    if isinstance(value, bool):
        return value
    text = normalize_code("" if value is None else str(value)).casefold()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise _invalid(field_name, "campaign_rule.invalid_flag", _("Write 1 (yes) or 0 (no)."))


@dataclass(frozen=True)
class RuleData:
    kind: str
    campaign: Campaign
    code: str
    excluded: bool | None  # None: not given (industry) or not applicable (area)
    label: str


def campaign_rule_clean(
    *, kind: str, campaign: object, code: object, excluded: object = None, label: object = ""
) -> RuleData:
    """Validate one list rule: the campaign (by its code) must exist and not have ended; an
    industry prefix is 2–4 digits (GB/T 4754-2017), an area prefix 2–6 digits starting with a
    province code (GB/T 2260); `excluded` only for industries. Raises `CampaignListError`."""
    if kind not in RULE_MODELS:
        raise ValueError(f"unknown campaign list {kind!r}")
    if not isinstance(campaign, Campaign):
        campaign_code = normalize_code("" if campaign is None else str(campaign))
        campaign = Campaign.objects.filter(code=campaign_code).first()
        if campaign is None:
            raise _invalid(
                "campaign", "campaign_rule.unknown_campaign", _("No campaign has this code.")
            )
    if campaign.status == CampaignStatus.ENDED:
        raise _invalid(
            "campaign",
            "campaign_rule.campaign_ended",
            _("The campaign has ended; its rules can no longer change."),
        )
    code = normalize_code("" if code is None else str(code))
    if kind == INDUSTRY and not _INDUSTRY_RE.fullmatch(code):
        raise _invalid(
            "code", "industry.invalid", _("An industry code is 2 to 4 digits (GB/T 4754-2017).")
        )
    if kind == AREA and (not _AREA_RE.fullmatch(code) or code[:2] not in PROVINCE_CODES):
        raise _invalid(
            "code",
            "area.invalid",
            _("An area code prefix is 2 to 6 digits starting with a province code."),
        )
    label = ("" if label is None else str(label)).strip()
    if len(label) > LABEL_MAX_LENGTH or _CONTROL_RE.search(label):
        raise _invalid(
            "label",
            "campaign_rule.invalid_label",
            _("The label must be at most %(max)d characters without control characters.")
            % {"max": LABEL_MAX_LENGTH},
        )
    flag = None
    if kind == INDUSTRY and excluded is not None and str(excluded).strip() != "":
        flag = parse_flag(excluded)
    return RuleData(kind, campaign, code, flag, label)


@dataclass(frozen=True)
class RuleUpsertResult:
    rule: models.Model
    created: bool
    changes: dict[str, tuple] = field(default_factory=dict)

    @property
    def outcome(self) -> str:
        if self.created:
            return "created"
        return "updated" if self.changes else "unchanged"


def _values(data: RuleData, current) -> dict:
    values = {"label": data.label}
    if data.kind == INDUSTRY:
        keep = current.excluded if current is not None else False
        values["excluded"] = keep if data.excluded is None else data.excluded
    return values


def _changes(current, values: dict) -> dict[str, tuple]:
    if current is None:
        return {name: (None, value) for name, value in values.items()}
    return {
        name: (getattr(current, name), value)
        for name, value in values.items()
        if getattr(current, name) != value
    }


def campaign_rule_upsert_preview(
    *, kind: str, campaign: object, code: object, excluded: object = None, label: object = ""
) -> RuleUpsertResult:
    """What `campaign_rule_upsert` would do, with the same validation; writes nothing."""
    data = campaign_rule_clean(
        kind=kind, campaign=campaign, code=code, excluded=excluded, label=label
    )
    model = RULE_MODELS[kind]
    current = model.objects.filter(campaign=data.campaign, code=data.code).first()
    values = _values(data, current)
    changes = _changes(current, values)
    rule = current or model(campaign=data.campaign, code=data.code)
    for name, value in values.items():
        setattr(rule, name, value)
    return RuleUpsertResult(rule, created=current is None, changes=changes)


def campaign_rule_upsert(
    *,
    kind: str,
    campaign: object,
    code: object,
    excluded: object = None,
    label: object = "",
    actor,
    source: str,
) -> RuleUpsertResult:
    """Add an industry or area prefix rule to a campaign, or change its label (and, for an
    industry, whether it is an exclusion).

    Invariants: every rule passes `campaign_rule_clean`; an ended campaign's rules never
    change; one rule per (campaign, code) — the unique constraint settles concurrent creations
    (the loser updates the winner's row); every create or change writes an audit entry on the
    campaign (`campaign.<kind>_rule_created` / `_updated`, before and after, `source` as the
    reason) in the same transaction; an unchanged rule writes nothing. `excluded` not given
    keeps an industry rule's current value (new rules include). Raises `CampaignListError`.
    """
    data = campaign_rule_clean(
        kind=kind, campaign=campaign, code=code, excluded=excluded, label=label
    )
    model = RULE_MODELS[kind]
    with transaction.atomic():
        current = (
            model.objects.select_for_update().filter(campaign=data.campaign, code=data.code).first()
        )
        created = False
        if current is None:
            values = _values(data, None)
            rule = model(campaign=data.campaign, code=data.code, **values)
            try:
                with transaction.atomic():
                    rule.save(force_insert=True)
                created = True
                changes = _changes(None, values)
            except IntegrityError:
                current = model.objects.select_for_update().get(
                    campaign=data.campaign, code=data.code
                )
        if not created:
            values = _values(data, current)
            changes = _changes(current, values)
            rule = current
            if changes:
                for name, (_before, after) in changes.items():
                    setattr(rule, name, after)
                rule.save(update_fields=list(changes))
        if changes:
            audit_record(
                action=f"campaign.{kind}_rule_{'created' if created else 'updated'}",
                category=AuditCategory.CONFIG,
                target=data.campaign,
                actor=actor,
                reason=source,
                before=None
                if created
                else {"code": data.code, **{k: v[0] for k, v in changes.items()}},
                after={"code": data.code, **{k: v[1] for k, v in changes.items()}},
            )
    return RuleUpsertResult(rule, created=created, changes=changes)
