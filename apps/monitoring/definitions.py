"""What each rule watches and its defaults; the security administrator edits the live values
(`MonitoringRule`) in the admin, with change history.

`mode` says where a rule runs: "stream" rules read the audit trail after commit (a Celery task,
`services.events_process`); "counter" rules count in the cache on the request path
(`apps.monitoring.middleware` and `signals`) because they must be able to block at once or
because the requests they count are not audited (404s, merchant API calls).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.utils.translation import gettext_lazy as _

from .choices import ResponseKind, RuleCode, Severity


@dataclass(frozen=True)
class RuleDefinition:
    code: str
    subject: str  # "user", "merchant_key", "ip", "pair", "draw"
    mode: str  # "stream" or "counter"
    severity: str
    threshold: int
    window_minutes: int
    params: dict = field(default_factory=dict)
    response: str = ResponseKind.NONE
    help: object = ""


DEFINITIONS: dict[str, RuleDefinition] = {
    d.code: d
    for d in (
        RuleDefinition(
            RuleCode.REVEAL_BURST,
            "user",
            "stream",
            Severity.HIGH,
            threshold=20,
            window_minutes=10,
            response=ResponseKind.LOCK_ACCOUNT,
            help=_("Reveals and exports of personal data by one person within the window."),
        ),
        RuleDefinition(
            RuleCode.REVEAL_AFTER_HOURS,
            "user",
            "stream",
            Severity.MEDIUM,
            threshold=1,
            window_minutes=60,
            params={"work_start_hour": 8, "work_end_hour": 19, "work_weekdays": [0, 1, 2, 3, 4]},
            help=_("Any reveal or export outside working hours (local time; weekdays 0 = Monday)."),
        ),
        RuleDefinition(
            RuleCode.NEW_NETWORK_SIGNIN,
            "user",
            "stream",
            Severity.MEDIUM,
            threshold=1,
            window_minutes=0,
            params={"ipv4_prefix": 24, "ipv6_prefix": 48},
            help=_("A staff sign-in from a network (prefix) the account never signed in from."),
        ),
        RuleDefinition(
            RuleCode.PERMISSION_DENIED,
            "user",
            "counter",
            Severity.MEDIUM,
            threshold=10,
            window_minutes=10,
            help=_("Refused requests (403) and refused actions of one signed-in person."),
        ),
        RuleDefinition(
            RuleCode.PRIVILEGE_CHANGE,
            "user",
            "stream",
            Severity.MEDIUM,
            threshold=1,
            window_minutes=0,
            help=_("Every change of a user's groups or permissions, or of a group's permissions."),
        ),
        RuleDefinition(
            RuleCode.CONFIG_NEAR_CUTOFF,
            "draw",
            "stream",
            Severity.HIGH,
            threshold=1,
            window_minutes=24 * 60,
            help=_(
                "A change to pools, draws, prize rules or risk rules while a draw's cut-off is "
                "less than the window away."
            ),
        ),
        RuleDefinition(
            RuleCode.MAKER_CHECKER_PAIR,
            "pair",
            "stream",
            Severity.MEDIUM,
            threshold=60,
            window_minutes=30 * 24 * 60,
            params={"min_batches": 10},
            help=_(
                "Threshold: the share (percent) of approved payout batches in the window made "
                "and approved by the same two people, once at least min_batches were approved."
            ),
        ),
        RuleDefinition(
            RuleCode.DORMANT_ACCOUNT,
            "user",
            "stream",
            Severity.MEDIUM,
            threshold=1,
            window_minutes=0,
            params={"dormant_days": 60},
            help=_("A staff sign-in after dormant_days without one."),
        ),
        RuleDefinition(
            RuleCode.FAILED_LOGIN_BURST,
            "ip",
            "counter",
            Severity.HIGH,
            threshold=10,
            window_minutes=10,
            params={"block_minutes": 30},
            response=ResponseKind.BLOCK_SOURCE,
            help=_("Failed sign-ins for this many different accounts from one address."),
        ),
        RuleDefinition(
            RuleCode.SMS_CODE_BURST,
            "ip",
            "counter",
            Severity.HIGH,
            # allauth already refuses more than 30 code requests per address in 10 minutes
            # (ACCOUNT_RATE_LIMITS); at that point this alerts and blocks the address longer.
            threshold=30,
            window_minutes=10,
            params={"block_minutes": 30},
            response=ResponseKind.BLOCK_SOURCE,
            help=_("Sign-in code requests for this many different phones from one address."),
        ),
        RuleDefinition(
            RuleCode.ENUMERATION,
            "ip",
            "counter",
            Severity.MEDIUM,
            threshold=50,
            window_minutes=5,
            params={"sequential_threshold": 20, "block_minutes": 30},
            help=_(
                "Not-found answers to one address, or refused/not-found requests walking "
                "numeric IDs one by one (sequential_threshold)."
            ),
        ),
        RuleDefinition(
            RuleCode.KEY_NEW_NETWORK,
            "merchant_key",
            "counter",
            Severity.MEDIUM,
            threshold=1,
            window_minutes=0,
            params={"ipv4_prefix": 24, "ipv6_prefix": 48},
            help=_("A merchant API key used from a network it was never used from before."),
        ),
        RuleDefinition(
            RuleCode.KEY_RATE,
            "merchant_key",
            "counter",
            Severity.HIGH,
            threshold=120,
            window_minutes=1,
            params={"multiplier": 5, "min_samples": 10, "min_requests": 30},
            help=_(
                "Requests of one key in a minute above the threshold, or above multiplier × its "
                "usual rate (never below min_requests) once min_samples busy minutes are known."
            ),
        ),
    )
}
