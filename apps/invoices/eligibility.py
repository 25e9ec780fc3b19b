"""Campaign rules applied to a verified invoice: which campaign, and does it qualify.

Pure decisions over data already loaded (the campaign with its rules, the registry record, the
merchant); the caller does the locking and the writing. Every number comes from the campaign
row, never from code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.utils import timezone

from apps.merchants.choices import MerchantStatus

from .choices import CampaignStatus, IssuerKind, RegistryStatus
from .models import Campaign


@dataclass(frozen=True)
class CampaignRules:
    """A campaign with its industry and area rules, loaded once."""

    campaign: Campaign
    included_industries: tuple[str, ...]
    excluded_industries: tuple[str, ...]
    areas: tuple[str, ...]

    @classmethod
    def load(cls, campaign: Campaign) -> CampaignRules:
        industries = list(campaign.industries.values_list("code", "excluded"))
        return cls(
            campaign=campaign,
            included_industries=tuple(c for c, excluded in industries if not excluded),
            excluded_industries=tuple(c for c, excluded in industries if excluded),
            areas=tuple(campaign.areas.values_list("code", flat=True)),
        )

    @classmethod
    def cached(cls, campaign: Campaign) -> CampaignRules:
        """As `load`, from the configuration cache (`apps.invoices.caching`): the submission
        path reads these lists on every request; every change of them invalidates it."""
        from .caching import campaign_rule_lists

        included, excluded, areas = campaign_rule_lists(campaign)
        return cls(
            campaign=campaign,
            included_industries=included,
            excluded_industries=excluded,
            areas=areas,
        )

    def industry_eligible(self, industry_code: str) -> bool:
        """The longest matching prefix decides; no rules at all means every industry."""
        if not self.included_industries and not self.excluded_industries:
            return True
        best_in = max(
            (len(c) for c in self.included_industries if industry_code.startswith(c)), default=0
        )
        best_out = max(
            (len(c) for c in self.excluded_industries if industry_code.startswith(c)), default=0
        )
        return best_in > best_out

    def area_eligible(self, area_code: str) -> bool:
        return not self.areas or any(area_code.startswith(a) for a in self.areas)


def campaign_for_issue_date(issue_date: date) -> Campaign | None:
    """The open campaign whose window (in local time) contains the issue date; the earliest
    starting one if windows overlap, so an invoice enters at most one campaign."""
    tz = timezone.get_current_timezone()
    day_start = timezone.make_aware(datetime.combine(issue_date, time.min), tz)
    day_end = day_start + timedelta(days=1)
    return (
        Campaign.objects.filter(
            status=CampaignStatus.ACTIVE, starts_at__lt=day_end, ends_at__gte=day_start
        )
        .order_by("starts_at", "pk")
        .first()
    )


def eligibility_failure(*, rules: CampaignRules, record, merchant) -> tuple[str, dict] | None:
    """The first rule the invoice breaks as (code, detail), or None if it qualifies."""
    campaign = rules.campaign
    if record.buyer_tax_id and campaign.exclude_enterprise_buyers:
        return "invoice.enterprise_buyer", {}
    if record.invoice_type not in (campaign.allowed_invoice_types or []):
        return "invoice.type_not_allowed", {"invoice_type": record.invoice_type}
    if record.status == RegistryStatus.RED_FLUSHED:
        return "invoice.red_flushed", {}
    effective_total = record.total - (record.red_total or Decimal("0"))
    if (
        record.status == RegistryStatus.PARTIALLY_RED_FLUSHED
        and effective_total < campaign.min_total
    ):
        return "invoice.red_flushed", {"remaining_total": str(effective_total)}
    if effective_total < campaign.min_total:
        return "invoice.below_minimum", {"minimum": str(campaign.min_total)}
    if record.issuer_kind == IssuerKind.AGENT and campaign.exclude_agent_issued:
        return "invoice.agent_issued", {}
    if merchant is not None and merchant.status == MerchantStatus.BLACKLISTED:
        return "invoice.seller_blacklisted", {}
    if merchant is not None and merchant.status == MerchantStatus.SUSPENDED:
        return "invoice.seller_suspended", {}
    area = record.area_code or (merchant.area_code if merchant else "") or record.seller_uscc[2:8]
    if not rules.area_eligible(area):
        return "invoice.seller_outside_area", {}
    industry = record.industry_code or (merchant.industry_code if merchant else "")
    if not rules.industry_eligible(industry):
        return "invoice.industry_not_eligible", {}
    return None
