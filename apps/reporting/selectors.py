"""Reads of the dashboard, the exports and the partner API — all from rollups, never from the
ten-million-row invoice table (bench/dashboard_10m.py times each panel against the raw
GROUP BY it replaces).

Every panel is a `Table` (columns + rows) that the dashboard draws, the exports write and the
API returns. `suppress()` hides small cells for anything published outside the task force.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import F, Q, Sum
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .models import AwardRollup, DailyRollup, DayParticipants, MerchantTotal, RejectionRollup

ZERO = Decimal("0.00")
DEFAULT_DAYS = 30
MAX_DAYS = 400


@dataclass(frozen=True)
class Filters:
    """The dashboard's filters: campaign (0 = all), period, area and industry code prefixes."""

    date_from: date
    date_to: date
    campaign_id: int | None = None
    area: str = ""
    industry: str = ""

    @classmethod
    def parse(cls, data) -> Filters:
        today = timezone.localdate()
        date_to = _date(data.get("date_to"), today)
        date_from = _date(data.get("date_from"), date_to - timedelta(days=DEFAULT_DAYS - 1))
        if date_from > date_to:
            date_from, date_to = date_to, date_from
        date_from = max(date_from, date_to - timedelta(days=MAX_DAYS))
        campaign = str(data.get("campaign") or "").strip()
        area = "".join(ch for ch in str(data.get("area") or "") if ch.isdigit())[:6]
        # Rollups are by major class (2 digits): a longer code filters by its class.
        industry = "".join(ch for ch in str(data.get("industry") or "") if ch.isdigit())[:2]
        return cls(
            date_from=date_from,
            date_to=date_to,
            campaign_id=int(campaign) if campaign.isdigit() else None,
            area=area,
            industry=industry,
        )

    @property
    def by_cell(self) -> bool:
        return bool(self.area or self.industry)

    def q(self, *, cells: bool = True) -> Q:
        q = Q(day__gte=self.date_from, day__lte=self.date_to)
        if self.campaign_id is not None:
            q &= Q(campaign_id=self.campaign_id)
        if cells and self.area:
            q &= Q(area_code__startswith=self.area)
        if cells and self.industry:
            q &= Q(industry_code__startswith=self.industry)
        return q

    def as_query(self) -> dict[str, str]:
        out = {"date_from": self.date_from.isoformat(), "date_to": self.date_to.isoformat()}
        if self.campaign_id is not None:
            out["campaign"] = str(self.campaign_id)
        if self.area:
            out["area"] = self.area
        if self.industry:
            out["industry"] = self.industry
        return out


def _date(value, default: date) -> date:
    try:
        return date.fromisoformat(str(value)) if value else default
    except ValueError:
        return default


@dataclass
class Table:
    """One panel's data. `counts` are the count columns (subject to small-cell suppression);
    `base` the column whose count a row describes (a small one hides the whole row's figures)."""

    key: str
    title: object
    columns: list[tuple[str, object]]
    rows: list[list] = field(default_factory=list)
    counts: tuple[str, ...] = ()
    base: str = ""
    note: object = ""

    def as_dict(self) -> dict:
        return {
            "key": self.key,
            "title": str(self.title),
            "note": str(self.note),
            "columns": [{"key": k, "label": str(label)} for k, label in self.columns],
            "rows": [[_plain(v) for v in row] for row in self.rows],
        }


def _plain(value):
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def small_cell_threshold() -> int:
    return int(getattr(settings, "REPORTING_SMALL_CELL_THRESHOLD", 10))


SUPPRESSED = None  # a suppressed value: shown as "<k" on screen and in files


def suppress(table: Table, threshold: int | None = None) -> Table:
    """Hide counts 1…k−1 and, in a row whose base count is small, every figure of the row.

    Zero is not suppressed (an empty cell reveals nobody). Labels (dates, codes, names) stay.
    """
    k = threshold if threshold is not None else small_cell_threshold()
    keys = [c for c, _label in table.columns]
    count_idx = {keys.index(c) for c in table.counts if c in keys}
    numeric_idx = {
        i
        for i, _c in enumerate(keys)
        if any(
            isinstance(row[i], (int, Decimal)) and not isinstance(row[i], bool)
            for row in table.rows
        )
    }
    base_idx = keys.index(table.base) if table.base in keys else None
    rows = []
    for row in table.rows:
        new = list(row)
        row_small = (
            base_idx is not None and isinstance(row[base_idx], int) and 0 < row[base_idx] < k
        )
        for i in numeric_idx:
            small = i in count_idx and isinstance(row[i], int) and 0 < row[i] < k
            if small or row_small:
                new[i] = SUPPRESSED
        rows.append(new)
    return replace(
        table,
        rows=rows,
        note=_("Counts below %(k)s are hidden (small-cell suppression).") % {"k": k},
    )


# --- Panels ---------------------------------------------------------------------------------------


def _sum(*names):
    return {n: Sum(n) for n in names}


def _int(v) -> int:
    return int(v or 0)


def _money(v) -> Decimal:
    return Decimal(v or 0).quantize(Decimal("0.01"))


def panel_today(f: Filters) -> Table:
    """Today's figures (Asia/Shanghai), whatever the period filter says."""
    today = timezone.localdate()
    tf = replace(f, date_from=today, date_to=today)
    inv = DailyRollup.objects.filter(tf.q()).aggregate(
        **_sum("submitted", "accepted", "rejected", "held", "entered_total", "participants")
    )
    if tf.by_cell:
        participants = _int(inv["participants"])
    else:
        participants = _int(
            DayParticipants.objects.filter(tf.q(cells=False)).aggregate(p=Sum("participants"))["p"]
        )
    awards = AwardRollup.objects.filter(tf.q()).aggregate(**_sum("awarded", "paid", "paid_net"))
    return Table(
        key="today",
        title=_("Today"),
        columns=[
            ("submitted", _("Submitted")),
            ("entered", _("Entered")),
            ("rejected", _("Rejected")),
            ("held", _("Held for review")),
            ("participants", _("Participants")),
            ("entered_total", _("Entered total (yuan)")),
            ("awards", _("Prizes won")),
            ("paid", _("Prizes paid")),
            ("paid_net", _("Cash paid (yuan)")),
        ],
        rows=[
            [
                _int(inv["submitted"]),
                _int(inv["accepted"]),
                _int(inv["rejected"]),
                _int(inv["held"]),
                participants,
                _money(inv["entered_total"]),
                _int(awards["awarded"]),
                _int(awards["paid"]),
                _money(awards["paid_net"]),
            ]
        ],
        counts=("submitted", "entered", "rejected", "held", "participants", "awards", "paid"),
        base="submitted",
    )


def panel_trend(f: Filters) -> Table:
    rows = (
        DailyRollup.objects.filter(f.q())
        .values("day")
        .annotate(**_sum("submitted", "accepted", "rejected", "entered_total", "participants"))
        .order_by("day")
    )
    day_participants: dict = {}
    if not f.by_cell:
        day_participants = {
            r["day"]: _int(r["p"])
            for r in DayParticipants.objects.filter(f.q(cells=False))
            .values("day")
            .annotate(p=Sum("participants"))
        }
    return Table(
        key="trend",
        title=_("Daily trend"),
        columns=[
            ("day", _("Day")),
            ("submitted", _("Submitted")),
            ("entered", _("Entered")),
            ("rejected", _("Rejected")),
            ("participants", _("Participants")),
            ("entered_total", _("Entered total (yuan)")),
        ],
        rows=[
            [
                r["day"],
                _int(r["submitted"]),
                _int(r["accepted"]),
                _int(r["rejected"]),
                day_participants.get(r["day"], _int(r["participants"]))
                if not f.by_cell
                else _int(r["participants"]),
                _money(r["entered_total"]),
            ]
            for r in rows
        ],
        counts=("submitted", "entered", "rejected", "participants"),
        base="submitted",
        note=_("Participants per area or industry are distinct within each cell.")
        if f.by_cell
        else "",
    )


def _breakdown(f: Filters, key: str, title, label, expr) -> Table:
    rows = (
        DailyRollup.objects.filter(f.q())
        .annotate(group=expr)
        .values("group")
        .annotate(**_sum("submitted", "accepted", "rejected", "entered_total"))
        .order_by("-submitted")
    )
    return Table(
        key=key,
        title=title,
        columns=[
            ("code", label),
            ("submitted", _("Submitted")),
            ("entered", _("Entered")),
            ("rejected", _("Rejected")),
            ("entered_total", _("Entered total (yuan)")),
        ],
        rows=[
            [
                r["group"] or "—",
                _int(r["submitted"]),
                _int(r["accepted"]),
                _int(r["rejected"]),
                _money(r["entered_total"]),
            ]
            for r in rows
        ],
        counts=("submitted", "entered", "rejected"),
        base="submitted",
    )


def panel_areas(f: Filters) -> Table:
    return _breakdown(f, "areas", _("By area"), _("Area code"), F("area_code"))


def panel_industries(f: Filters) -> Table:
    return _breakdown(
        f,
        "industries",
        _("By industry"),
        _("Industry (GB/T 4754 class)"),
        F("industry_code"),
    )


def panel_funnel(f: Filters) -> Table:
    inv = DailyRollup.objects.filter(f.q()).aggregate(
        **_sum("submitted", "verified", "accepted", "reversed")
    )
    awards = AwardRollup.objects.filter(f.q()).aggregate(**_sum("awarded", "paid"))
    stages = [
        (_("Submitted"), _int(inv["submitted"])),
        (_("Verified"), _int(inv["verified"])),
        (_("Entered"), _int(inv["accepted"]) + _int(inv["reversed"])),
        (_("Won"), _int(awards["awarded"])),
        (_("Paid"), _int(awards["paid"])),
    ]
    return Table(
        key="funnel",
        title=_("Funnel: submitted → verified → entered → won → paid"),
        columns=[("stage", _("Stage")), ("count", _("Count"))],
        rows=[[str(label), value] for label, value in stages],
        counts=("count",),
    )


def _rejection_label(code: str) -> str:
    from apps.invoices.exceptions import REJECTIONS

    entry = REJECTIONS.get(code)
    return str(entry[1]) if entry else code


def panel_rejections(f: Filters) -> Table:
    rows = (
        RejectionRollup.objects.filter(f.q())
        .values("reason")
        .annotate(n=Sum("count"))
        .order_by("-n")
    )
    return Table(
        key="rejections",
        title=_("Rejections by reason"),
        columns=[("reason", _("Reason code")), ("label", _("Reason")), ("count", _("Count"))],
        rows=[[r["reason"], _rejection_label(r["reason"]), _int(r["n"])] for r in rows if r["n"]],
        counts=("count",),
        base="count",
    )


def panel_awards(f: Filters) -> Table:
    rows = (
        AwardRollup.objects.filter(f.q())
        .values("source", "kind", "tier")
        .annotate(**_sum("awarded", "awarded_amount", "paid", "paid_net", "tax_withheld", "voided"))
        .order_by("source", "kind", "tier")
    )
    from apps.prizes.choices import AwardKind, AwardSource

    sources, kinds = dict(AwardSource.choices), dict(AwardKind.choices)
    return Table(
        key="awards",
        title=_("Prizes by draw, kind and tier"),
        columns=[
            ("source", _("Draw")),
            ("kind", _("Kind")),
            ("tier", _("Prize")),
            ("awarded", _("Won")),
            ("awarded_amount", _("Amount won (yuan)")),
            ("paid", _("Paid / redeemed")),
            ("paid_net", _("Net paid (yuan)")),
            ("tax_withheld", _("Tax withheld (yuan)")),
            ("voided", _("Cancelled, expired or recovered")),
        ],
        rows=[
            [
                str(sources.get(r["source"], r["source"])),
                str(kinds.get(r["kind"], r["kind"])),
                r["tier"],
                _int(r["awarded"]),
                _money(r["awarded_amount"]),
                _int(r["paid"]),
                _money(r["paid_net"]),
                _money(r["tax_withheld"]),
                _int(r["voided"]),
            ]
            for r in rows
        ],
        counts=("awarded", "paid", "voided"),
        base="awarded",
    )


def panel_budget(f: Filters) -> Table:
    """Each fund's budget and where it went (the ledger's balances: small, read directly)."""
    from apps.prizes.choices import AccountKind
    from apps.prizes.models import LedgerAccount

    accounts = LedgerAccount.objects.select_related("fund", "fund__campaign")
    if f.campaign_id is not None:
        accounts = accounts.filter(fund__campaign_id=f.campaign_id)
    funds: dict[int, dict] = {}
    for account in accounts:
        line = funds.setdefault(account.fund_id, {"fund": account.fund.name})
        line[account.kind] = account.balance
    rows = []
    for line in funds.values():
        budget = -line.get(AccountKind.FUNDING, ZERO)
        paid = line.get(AccountKind.DISBURSED, ZERO) + line.get(AccountKind.TAX_WITHHELD, ZERO)
        rows.append(
            [
                line["fund"],
                _money(budget),
                _money(line.get(AccountKind.RESERVED, ZERO)),
                _money(line.get(AccountKind.DISBURSED, ZERO)),
                _money(line.get(AccountKind.TAX_WITHHELD, ZERO)),
                _money(line.get(AccountKind.AVAILABLE, ZERO)),
                f"{(paid / budget * 100):.1f}%" if budget else "—",
            ]
        )
    return Table(
        key="budget",
        title=_("Budget burn-down per fund"),
        columns=[
            ("fund", _("Fund")),
            ("budget", _("Budget (yuan)")),
            ("reserved", _("Reserved for prizes")),
            ("disbursed", _("Paid out")),
            ("tax_withheld", _("Tax withheld")),
            ("available", _("Available")),
            ("spent", _("Spent")),
        ],
        rows=rows,
    )


def panel_burn(f: Filters) -> Table:
    """Prize money committed per day, and cumulatively, in the period (awards by day won)."""
    rows = (
        AwardRollup.objects.filter(f.q())
        .values("day")
        .annotate(**_sum("awarded_amount", "paid_net", "tax_withheld"))
        .order_by("day")
    )
    out, total = [], ZERO
    for r in rows:
        total += _money(r["awarded_amount"])
        out.append(
            [
                r["day"],
                _money(r["awarded_amount"]),
                total,
                _money(r["paid_net"]),
                _money(r["tax_withheld"]),
            ]
        )
    return Table(
        key="burn",
        title=_("Prize money committed per day"),
        columns=[
            ("day", _("Day")),
            ("awarded_amount", _("Won (yuan)")),
            ("cumulative", _("Cumulative (yuan)")),
            ("paid_net", _("Net paid (yuan)")),
            ("tax_withheld", _("Tax withheld (yuan)")),
        ],
        rows=out,
    )


def panel_risk(f: Filters) -> Table:
    inv = DailyRollup.objects.filter(f.q()).aggregate(**_sum("held", "pending"))
    blocked = RejectionRollup.objects.filter(f.q(), reason__startswith="risk.").aggregate(
        n=Sum("count")
    )["n"]
    rows = [
        [str(_("Held for review (risk)")), _int(inv["held"])],
        [str(_("Blocked by risk rules")), _int(blocked)],
        [str(_("Waiting for the tax authority")), _int(inv["pending"])],
    ]
    try:
        from apps.complaints.choices import CaseStatus
        from apps.complaints.models import Case

        open_statuses = [s for s in CaseStatus.values if s not in ("resolved", "closed")]
        period = Q(opened_at__date__gte=f.date_from, opened_at__date__lte=f.date_to)
        rows.append(
            [str(_("Complaints opened in the period")), Case.objects.filter(period).count()]
        )
        rows.append(
            [str(_("Complaints open now")), Case.objects.filter(status__in=open_statuses).count()]
        )
    except ImportError:  # pragma: no cover
        pass
    return Table(
        key="risk",
        title=_("Risk and complaint indicators"),
        columns=[("indicator", _("Indicator")), ("count", _("Count"))],
        rows=rows,
        counts=("count",),
    )


def panel_merchants(f: Filters, limit: int = 20) -> Table:
    """Top merchants over the whole campaign (`MerchantTotal`): the period filter does not
    apply (a merchant's days are in `MerchantRollup`, for one merchant at a time)."""
    from apps.merchants.models import Merchant

    totals = MerchantTotal.objects.all()
    if f.campaign_id is not None:
        top = list(
            totals.filter(campaign_id=f.campaign_id)
            .order_by("-accepted", "merchant_id")
            .values("merchant_id", "submitted", "accepted", "entered_total")[:limit]
        )
    else:
        top = list(
            totals.values("merchant_id")
            .annotate(**_sum("submitted", "accepted", "entered_total"))
            .order_by("-accepted", "merchant_id")[:limit]
        )
    names = dict(
        Merchant.objects.filter(pk__in=[r["merchant_id"] for r in top]).values_list("pk", "name")
    )
    return Table(
        key="merchants",
        title=_("Top merchants by entered invoices (whole campaign)"),
        columns=[
            ("merchant", _("Merchant")),
            ("submitted", _("Submitted")),
            ("entered", _("Entered")),
            ("entered_total", _("Entered total (yuan)")),
        ],
        rows=[
            [
                names.get(r["merchant_id"], str(r["merchant_id"])),
                _int(r["submitted"]),
                _int(r["accepted"]),
                _money(r["entered_total"]),
            ]
            for r in top
        ],
        counts=("submitted", "entered"),
        base="submitted",
    )


PANELS: dict[str, Callable[[Filters], Table]] = {
    "today": panel_today,
    "trend": panel_trend,
    "funnel": panel_funnel,
    "areas": panel_areas,
    "industries": panel_industries,
    "rejections": panel_rejections,
    "awards": panel_awards,
    "budget": panel_budget,
    "burn": panel_burn,
    "risk": panel_risk,
    "merchants": panel_merchants,
}


def panel(key: str, f: Filters, *, suppressed: bool) -> Table:
    table = PANELS[key](f)
    return suppress(table) if suppressed else table


def campaigns_for_filter() -> list[tuple[int, str]]:
    from apps.invoices.models import Campaign

    return list(Campaign.objects.order_by("-starts_at").values_list("pk", "name"))
