"""Staff roles (groups) and their permissions, defined in code and kept in sync on every migrate.

This table is the single source of the role × permission matrix; `docs/roles.md` writes it out
for people and a test holds the two equal. Separation of duties (DOMAIN.md): finance maker and
checker are different people for one payout; the system administrator cannot read or purge the
audit trail; only the auditor and the audit administrator read it; the statistician sees masked
data only (no reveal permission).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.utils.translation import gettext_lazy as _

logger = logging.getLogger(__name__)

VIEW, ADD, CHANGE, DELETE = "view", "add", "change", "delete"


def perms(model: str, *verbs: str) -> set[str]:
    """`perms("invoices.invoice", VIEW, CHANGE)` → {"invoices.view_invoice", ...}."""
    app_label, model_name = model.split(".")
    return {f"{app_label}.{verb}_{model_name}" for verb in verbs}


@dataclass(frozen=True)
class Role:
    code: str
    group_name: str  # the group's name as officials see it (Chinese, stable)
    label: object
    permissions: frozenset[str]


# Read access to the core records that most operational roles need.
REVEAL = {"accounts.reveal_personal_data"}

CORE_READ = (
    perms("invoices.campaign", VIEW)
    | perms("invoices.campaignindustry", VIEW)
    | perms("invoices.campaignarea", VIEW)
    | perms("merchants.merchant", VIEW)
    | perms("invoices.invoice", VIEW)
    | perms("invoices.invoicestatuschange", VIEW)
)

# Draw and feed records everybody who may look at draws can read.
DRAWS_READ = (
    perms("draws.periodicdraw", VIEW)
    | perms("draws.drawtier", VIEW)
    | perms("draws.drawwinner", VIEW)
    | perms("draws.drawstatuschange", VIEW)
    | perms("draws.instantpool", VIEW)
    | perms("draws.instanttier", VIEW)
    | perms("draws.instantaward", VIEW)
)
FEED_READ = perms("invoices.feedimport", VIEW) | perms("invoices.feedimporterror", VIEW)

# Prize and payout records finance and oversight roles read (personal data masked on screen).
PRIZES_READ = (
    perms("prizes.prizepolicy", VIEW)
    | perms("prizes.fund", VIEW)
    | perms("prizes.ledgeraccount", VIEW)
    | perms("prizes.ledgerentry", VIEW)
    | perms("prizes.award", VIEW)
    | perms("prizes.awardstatuschange", VIEW)
    | perms("prizes.coupon", VIEW)
    | perms("prizes.payoutaccount", VIEW)
    | perms("prizes.payoutbatch", VIEW)
    | perms("prizes.payout", VIEW)
    | perms("prizes.payoutstatuschange", VIEW)
    | perms("prizes.providerstatement", VIEW)
    | perms("prizes.reconciliationissue", VIEW)
)

# Consultation and complaint records (on top, cases are scoped by queue membership unless the
# role holds complaints.read_all_cases).
COMPLAINTS_READ = (
    perms("complaints.case", VIEW)
    | perms("complaints.casestatuschange", VIEW)
    | perms("complaints.casemessage", VIEW)
    | perms("complaints.caseattachment", VIEW)
    | perms("complaints.casequeue", VIEW)
    | perms("complaints.casequeuemembership", VIEW)
    | perms("complaints.casecategory", VIEW)
    | perms("complaints.cannedreply", VIEW)
    | perms("complaints.faqarticle", VIEW)
    | perms("complaints.workcalendarday", VIEW)
    | perms("complaints.casesettings", VIEW)
)
# Handlers work the cases of their queues; staff entry and hotline import are "add".
COMPLAINTS_HANDLE = COMPLAINTS_READ | perms("complaints.case", ADD) | {"complaints.handle_case"}
# Supervisors also reassign and escalate, run their team and write canned replies and FAQs.
COMPLAINTS_SUPERVISE = (
    COMPLAINTS_HANDLE
    | {"complaints.supervise_case"}
    | perms("complaints.casequeue", CHANGE)
    | perms("complaints.casequeuemembership", ADD, CHANGE, DELETE)
    | perms("complaints.cannedreply", ADD, CHANGE, DELETE)
    | perms("complaints.faqarticle", ADD, CHANGE, DELETE)
)

# Publicity articles (apps.content): their history, images and the winners' consents.
CONTENT_READ = (
    perms("content.article", VIEW)
    | perms("content.articlestatuschange", VIEW)
    | perms("content.articleimage", VIEW)
    | perms("content.winnerconsent", VIEW)
)
# The task force writes, reviews and publishes its publicity; the service holds the two-person
# rule (an article is approved by somebody who neither wrote nor last edited it).
CONTENT_MANAGE = (
    CONTENT_READ
    | perms("content.article", ADD, CHANGE)
    | perms("content.articleimage", ADD)
    | perms("content.winnerconsent", ADD, CHANGE)
    | {"content.review_article", "content.publish_article"}
)

# Risk-control evidence: scores, alerts, watch list, configuration and its history.
RISK_READ = (
    perms("risk.riskassessment", VIEW)
    | perms("risk.riskalert", VIEW)
    | perms("risk.watchentry", VIEW)
    | perms("risk.riskrule", VIEW)
    | perms("risk.risksettings", VIEW)
    | perms("risk.riskconfigchange", VIEW)
    | perms("risk.batchrun", VIEW)
    | perms("risk.merchantbaseline", VIEW)
    | perms("risk.reverification", VIEW)
)

ROLES: tuple[Role, ...] = (
    Role(
        "campaign_admin",
        "专班管理员",
        _("Campaign administrator"),
        frozenset(
            CORE_READ
            | perms("invoices.campaign", ADD, CHANGE)
            | perms("invoices.campaignindustry", ADD, CHANGE, DELETE)
            | perms("invoices.campaignarea", ADD, CHANGE, DELETE)
            | perms("merchants.merchant", ADD, CHANGE)
            | perms("invoices.taxinvoicerecord", VIEW)
            | perms("accounts.consumer", VIEW)
            | DRAWS_READ
            | FEED_READ
            | perms("invoices.feedimport", ADD)
            | perms("draws.periodicdraw", ADD, CHANGE)
            | perms("draws.drawtier", ADD, CHANGE, DELETE)
            | perms("draws.instantpool", ADD, CHANGE)
            | perms("draws.instanttier", ADD, CHANGE)
            | perms("draws.instantdailyquota", VIEW, ADD, CHANGE)
            | perms("draws.drawticket", VIEW)
            # A draw is started by one administrator and confirmed by another (two-person
            # rule, enforced in the service).
            | {"draws.manage_draw", "draws.execute_draw"}
            # Merchant API keys: the secrets are shown once, to the issuing administrator.
            | perms("accounts.merchantapikey", VIEW)
            | {"accounts.issue_merchantapikey", "accounts.revoke_merchantapikey"}
            # Prize rules and funds are campaign configuration; money moves only in finance.
            | PRIZES_READ
            | perms("prizes.prizepolicy", ADD, CHANGE)
            | perms("prizes.fund", ADD, CHANGE)
            # Case desk configuration: queues, categories and SLAs, calendar, FAQ.
            | COMPLAINTS_READ
            | {"complaints.read_all_cases"}
            | perms("complaints.casequeue", ADD, CHANGE)
            | perms("complaints.casequeuemembership", ADD, CHANGE, DELETE)
            | perms("complaints.casecategory", ADD, CHANGE)
            | perms("complaints.workcalendarday", ADD, CHANGE, DELETE)
            | perms("complaints.casesettings", ADD, CHANGE)
            | perms("complaints.cannedreply", ADD, CHANGE, DELETE)
            | perms("complaints.faqarticle", ADD, CHANGE, DELETE)
            # Publicity: policy explainers, guides, winner stories (with consent), notices.
            | CONTENT_MANAGE
            # Statistics, the government-app exchange (dead-letter replay) and partner keys.
            | {"reporting.view_dashboard", "reporting.view_small_cells"}
            | perms("reporting.outboxevent", VIEW)
            | perms("reporting.deliveryattempt", VIEW)
            | {"reporting.replay_outboxevent"}
            | perms("reporting.partnerapikey", VIEW)
            | {"reporting.issue_partnerapikey", "reporting.revoke_partnerapikey"}
        ),
    ),
    Role(
        "invoice_reviewer",
        "审核员",
        _("Invoice reviewer"),
        frozenset(
            CORE_READ
            | perms("invoices.invoice", CHANGE)
            | {"invoices.review_invoice"}
            | perms("invoices.taxinvoicerecord", VIEW)
            | perms("accounts.consumer", VIEW)
            | REVEAL
            # The evidence behind a hold (releasing and rejecting is the reviewer's call).
            | perms("risk.riskassessment", VIEW)
            | perms("risk.riskalert", VIEW)
            | perms("risk.watchentry", VIEW)
        ),
    ),
    Role(
        "risk_analyst",
        "风控专员",
        _("Risk analyst"),
        frozenset(
            CORE_READ
            | perms("merchants.merchant", CHANGE)
            | perms("invoices.taxinvoicerecord", VIEW)
            | perms("accounts.consumer", VIEW)
            | REVEAL
            | DRAWS_READ
            | FEED_READ
            | {"draws.disqualify_winner"}
            # Tunes the rules and thresholds, works alerts and the watch list, opens cases.
            | RISK_READ
            | perms("risk.riskrule", ADD, CHANGE)
            | perms("risk.risksettings", ADD, CHANGE)
            | perms("risk.watchentry", ADD, CHANGE)
            | {"risk.handle_riskalert"}
            | perms("complaints.case", ADD)
        ),
    ),
    Role(
        "complaint_handler",
        "投诉处理员",
        _("Complaint handler"),
        frozenset(CORE_READ | perms("accounts.consumer", VIEW) | REVEAL | COMPLAINTS_HANDLE),
    ),
    Role(
        "complaint_supervisor",
        "投诉主管",
        _("Complaint supervisor"),
        frozenset(CORE_READ | perms("accounts.consumer", VIEW) | REVEAL | COMPLAINTS_SUPERVISE),
    ),
    Role(
        "finance_maker",
        "财务经办",
        _("Finance maker"),
        # Books deposits, prepares payout batches, reconciles statements — never approves.
        frozenset(
            CORE_READ
            | perms("accounts.consumer", VIEW)
            | PRIZES_READ
            | perms("prizes.ledgerentry", ADD)
            | {"prizes.prepare_payoutbatch", "prizes.reconcile_payouts"}
        ),
    ),
    Role(
        "finance_checker",
        "财务复核",
        _("Finance checker"),
        # Approves or rejects batches prepared by someone else; cancels prizes and records
        # recoveries.
        frozenset(
            CORE_READ
            | perms("accounts.consumer", VIEW)
            | PRIZES_READ
            | {"prizes.approve_payoutbatch", "prizes.manage_award"}
        ),
    ),
    Role(
        "statistician",
        "数据分析",
        _("Statistician"),
        frozenset(
            perms("invoices.campaign", VIEW)
            | perms("merchants.merchant", VIEW)
            | perms("invoices.invoice", VIEW)
            | perms("draws.periodicdraw", VIEW)
            | perms("draws.instantpool", VIEW)
            # The statistics dashboard and its exports (task force: unsuppressed on screen).
            | {"reporting.view_dashboard", "reporting.view_small_cells"}
        ),
    ),
    Role(
        "auditor",
        "审计员",
        _("Auditor"),
        frozenset(
            CORE_READ
            | perms("invoices.taxinvoicerecord", VIEW)
            | perms("accounts.consumer", VIEW)
            | perms("accounts.user", VIEW)
            | perms("audit.auditevent", VIEW)
            | perms("axes.accessattempt", VIEW)
            | perms("axes.accessfailurelog", VIEW)
            | DRAWS_READ
            | FEED_READ
            | perms("draws.drawticket", VIEW)
            | perms("draws.instantdailyquota", VIEW)
            | PRIZES_READ
            | COMPLAINTS_READ
            | {"complaints.read_all_cases"}
            | CONTENT_READ
            | RISK_READ
            | {"reporting.view_dashboard", "reporting.view_small_cells"}
            | perms("reporting.outboxevent", VIEW)
            | perms("reporting.deliveryattempt", VIEW)
            | perms("reporting.partnerapikey", VIEW)
        ),
    ),
    Role(
        "system_admin",
        "系统管理员",
        _("System administrator"),
        frozenset(
            perms("accounts.user", VIEW, ADD, CHANGE)
            | perms("auth.group", VIEW)
            | perms("django_celery_beat.periodictask", VIEW, ADD, CHANGE, DELETE)
            | perms("django_celery_beat.crontabschedule", VIEW, ADD, CHANGE, DELETE)
            | perms("django_celery_beat.intervalschedule", VIEW, ADD, CHANGE, DELETE)
        ),
    ),
    Role(
        "security_admin",
        "安全管理员",
        _("Security administrator"),
        frozenset(
            perms("accounts.user", VIEW, CHANGE)
            | perms("auth.group", VIEW, CHANGE)
            | perms("accounts.usersession", VIEW)
            # Reset a lost authenticator; lift a lockout.
            | perms("mfa.authenticator", VIEW, DELETE)
            | perms("axes.accessattempt", VIEW, DELETE)
            | perms("axes.accessfailurelog", VIEW)
            # Abnormal-behaviour monitoring: rule thresholds, the alert workflow, reversing
            # automatic responses (apps.monitoring).
            | perms("monitoring.monitoringrule", VIEW, CHANGE)
            | perms("monitoring.monitoringrulechange", VIEW)
            | perms("monitoring.alert", VIEW)
            | {"monitoring.manage_alert", "monitoring.reverse_response"}
            | perms("monitoring.alertstatuschange", VIEW)
            | perms("monitoring.automaticresponse", VIEW)
        ),
    ),
    Role(
        "audit_admin",
        "审计管理员",
        _("Audit administrator"),
        frozenset(perms("accounts.user", VIEW) | perms("audit.auditevent", VIEW)),
    ),
)

ROLES_BY_CODE = {role.code: role for role in ROLES}


def sync_roles(*, verbosity: int = 0) -> None:
    """Create or update every role's group so its permissions equal the table above exactly."""
    from django.contrib.auth.models import Group, Permission

    wanted = {p for role in ROLES for p in role.permissions}
    by_key = {
        f"{p.content_type.app_label}.{p.codename}": p
        for p in Permission.objects.select_related("content_type")
    }
    missing = sorted(wanted - by_key.keys())
    if missing and verbosity:
        # Permissions appear after their app's migrations; a later post_migrate run completes it.
        logger.warning("sync_roles: permissions not created yet: %s", ", ".join(missing))
    for role in ROLES:
        group, _created = Group.objects.get_or_create(name=role.group_name)
        group.permissions.set([by_key[p] for p in role.permissions if p in by_key])
