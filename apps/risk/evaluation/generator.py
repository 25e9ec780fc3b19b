"""Synthetic traffic for evaluating risk control: realistic normal shopping with labelled fraud
scenarios planted in it. Deliberately separate from the rules (`apps.risk.rules`) and the
nightly model (`apps.risk.batch`): nothing here is imported by them, and every scenario draws
its parameters (group sizes, gaps, amounts, delays, volumes) at random from wide ranges so that
a rule cannot key on a generator constant.

Normal traffic has the awkward parts of real traffic: industries with many round prices, shops
that join the campaign late, heavy shoppers who reach the monthly cap, families sharing a
phone, people who scan the QR code at the till, a bump of purchases topped up to just above the
minimum, a background of red-flushed invoices: ordinary returns, some days after entry, more
often at some shops than others and by some people (a few return a lot) than others.

Reversals are stored as `apps.invoices.reversals.invoice_reverse` leaves them: the entry's
status `reversed` with the code `invoice.red_flushed`, `updated_at` the moment of the red flush,
and a status-history row (accepted → reversed) at that moment. A return that would fall after
the data set's end has not happened yet: that entry is still accepted.

Consumers have mobile numbers from the city's number blocks (at a randomised density: how
many participants an ordinary 100-number block holds), family members sometimes on adjacent
numbers of a family plan, identity farms sometimes on SIMs bought together (consecutive
numbers). Phones and payout account numbers (bank cards with real issuer prefixes and Luhn
check digits) are stored the way the real models store them: encrypted and bound to their row,
with their keyed blind indexes (`phone_index`, `phone_block_index`, `account_no_index`).

Rows are written with `COPY` (users, consumers, merchants, payout accounts, invoices); labels
are returned in memory. Consumers are otherwise unverified shells (no name or ID number): the
data set exercises risk control only.
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.db import DatabaseError, connection, transaction

from apps.accounts.models import Consumer, User, phone_block
from apps.common import crypto
from apps.common.pii import normalize_for_index
from apps.invoices.models import Campaign, Invoice, InvoiceStatusChange
from apps.invoices.reversals import RED_FLUSHED
from apps.merchants.models import Merchant
from apps.merchants.validators import USCC_ALPHABET, uscc_check_character
from apps.prizes.models import PayoutAccount

logger = logging.getLogger(__name__)
CHINA = ZoneInfo("Asia/Shanghai")
EVAL_CAMPAIGN = "risk-eval"
USER_PREFIX = "riskeval-"
MERCHANT_PREFIX = "RISK-EVAL "
NUMBER_PREFIX = "26419"
# industry: (share of merchants, base share of round prices)
INDUSTRIES = {
    "5211": (0.30, 0.05),
    "5261": (0.15, 0.08),
    "6210": (0.30, 0.18),
    "6110": (0.05, 0.30),
    "8810": (0.04, 0.45),
    "9011": (0.04, 0.40),
    "8910": (0.04, 0.35),
    "8010": (0.08, 0.20),
}
# Mobile number prefixes of the three carriers (the first three digits).
CARRIER_PREFIXES = [
    "134",
    "135",
    "136",
    "137",
    "138",
    "139",
    "147",
    "150",
    "151",
    "152",
    "157",
    "158",
    "159",
    "172",
    "178",
    "182",
    "183",
    "184",
    "187",
    "188",
    "198",
    "130",
    "131",
    "132",
    "145",
    "155",
    "156",
    "166",
    "175",
    "176",
    "185",
    "186",
    "196",
    "133",
    "149",
    "153",
    "173",
    "177",
    "180",
    "181",
    "189",
    "190",
    "199",
]
# Bank card issuer prefixes (BIN), the card length and the bank's name.
CARD_ISSUERS = (
    ("622202", 19, "中国工商银行"),
    ("621700", 19, "中国建设银行"),
    ("622848", 19, "中国农业银行"),
    ("621661", 19, "中国银行"),
    ("622262", 19, "交通银行"),
    ("622588", 16, "招商银行"),
    ("621799", 19, "中国邮政储蓄银行"),
    ("622909", 18, "兴业银行"),
)
# The default end of a data set: a fixed moment, so that one seed gives the same data on every
# run — 01:00 Zhengzhou time on 16 November 2026, in the middle of the 2026 pilot's second half
# (the demo campaign runs 1 July – 31 December), just before the nightly model's 01:10 run.
DEFAULT_END = datetime(2026, 11, 16, 1, 0, tzinfo=CHINA)
SCENARIOS = (
    "split_purchase",
    "insider",
    "identity_farm",
    "shell_seller",
    "seller_surge",
    "bulk_repeat",
    "claim_reverse",
)


@dataclass
class Instance:
    scenario: str
    consumers: set[int] = field(default_factory=set)
    merchants: set[int] = field(default_factory=set)


@dataclass
class Dataset:
    campaign: Campaign
    start: datetime
    end: datetime
    invoices: int
    instances: list[Instance]
    seconds: float
    fraud_invoices: int

    @property
    def fraud_consumers(self) -> set[int]:
        return set().union(*(i.consumers for i in self.instances))

    @property
    def fraud_merchants(self) -> set[int]:
        return set().union(*(i.merchants for i in self.instances))


def save(dataset: Dataset, path) -> None:
    """Keep the labels of a generated data set, so it can be scored again (`--reuse`)."""
    import json

    data = {
        "campaign": dataset.campaign.pk,
        "start": dataset.start.isoformat(),
        "end": dataset.end.isoformat(),
        "invoices": dataset.invoices,
        "fraud_invoices": dataset.fraud_invoices,
        "seconds": dataset.seconds,
        "instances": [
            [i.scenario, sorted(i.consumers), sorted(i.merchants)] for i in dataset.instances
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def load(path) -> Dataset:
    import json

    data = json.loads(path.read_text())
    return Dataset(
        campaign=Campaign.objects.get(pk=data["campaign"]),
        start=datetime.fromisoformat(data["start"]),
        end=datetime.fromisoformat(data["end"]),
        invoices=data["invoices"],
        instances=[Instance(s, set(c), set(m)) for s, c, m in data["instances"]],
        seconds=data["seconds"],
        fraud_invoices=data["fraud_invoices"],
    )


def _uscc(n: int) -> str:
    digits = []
    for _ in range(9):
        n, rem = divmod(n, 31)
        digits.append(USCC_ALPHABET[rem])
    body = "92410105" + "".join(reversed(digits))
    return body + uscc_check_character(body)


def _copy(model, columns: list[str], rows) -> None:
    cols = [model._meta.get_field(name).column for name in columns]
    with connection.cursor() as cursor:
        raw = cursor.cursor
        sql = f"COPY {model._meta.db_table} ({', '.join(cols)}) FROM STDIN"
        with raw.copy(sql) as copy:
            for row in rows:
                copy.write_row(row)


def _skip_fk_checks(cursor) -> None:
    """Within this transaction, skip the deferred foreign-key checks (the rows are consistent
    by construction); needs a superuser, otherwise the checks simply run."""
    try:
        with transaction.atomic():
            cursor.execute("SET LOCAL session_replication_role = replica")
    except DatabaseError:
        logger.info("not a superuser: foreign keys are checked while loading")


def _wipe() -> None:
    """Remove an earlier evaluation data set (set-based deletes)."""
    from apps.risk.models import BatchRun, MerchantBaseline, RiskAlert, RiskAssessment

    campaign = Campaign.objects.filter(code=EVAL_CAMPAIGN).first()
    with transaction.atomic(), connection.cursor() as cursor:
        _skip_fk_checks(cursor)
        if campaign is not None:
            RiskAlert.objects.filter(campaign=campaign).delete()
            BatchRun.objects.filter(campaign=campaign).delete()
            RiskAssessment.objects.filter(invoice__campaign=campaign).delete()
            cursor.execute(
                f"DELETE FROM {InvoiceStatusChange._meta.db_table} WHERE invoice_id IN "  # noqa: S608
                f"(SELECT id FROM {Invoice._meta.db_table} WHERE campaign_id = %s)",
                [campaign.pk],
            )
            cursor.execute(
                f"DELETE FROM {Invoice._meta.db_table} WHERE campaign_id = %s",  # noqa: S608
                [campaign.pk],
            )
        merchants = f"SELECT id FROM {Merchant._meta.db_table} WHERE name LIKE %s"  # noqa: S608
        cursor.execute(
            f"DELETE FROM {MerchantBaseline._meta.db_table} WHERE merchant_id IN ({merchants})",  # noqa: S608
            [MERCHANT_PREFIX + "%"],
        )
        cursor.execute(
            f"DELETE FROM {Merchant._meta.db_table} WHERE name LIKE %s",  # noqa: S608
            [MERCHANT_PREFIX + "%"],
        )
        users = f"SELECT id FROM {User._meta.db_table} WHERE username LIKE %s"  # noqa: S608
        consumers = f"SELECT id FROM {Consumer._meta.db_table} WHERE user_id IN ({users})"  # noqa: S608
        cursor.execute(
            f"DELETE FROM {PayoutAccount._meta.db_table} WHERE consumer_id IN ({consumers})",  # noqa: S608
            [USER_PREFIX + "%"],
        )
        cursor.execute(
            f"DELETE FROM {Consumer._meta.db_table} WHERE user_id IN ({users})",  # noqa: S608
            [USER_PREFIX + "%"],
        )
        cursor.execute(
            f"DELETE FROM {User._meta.db_table} WHERE username LIKE %s",  # noqa: S608
            [USER_PREFIX + "%"],
        )


class _Gen:
    def __init__(self, n_invoices: int, seed: int, days: int, end: datetime, min_total: Decimal):
        self.rng = random.Random(seed)  # noqa: S311 - reproducible synthetic data
        self.n = n_invoices
        self.days = days
        self.end = end
        self.start = end - timedelta(days=days)
        self.min_total = min_total
        self.rows: list[tuple] = []
        self.day_count: dict[tuple[int, object], int] = defaultdict(int)
        self.month_count: dict[int, int] = defaultdict(int)
        self.instances: list[Instance] = []
        self.fraud_invoices = 0
        self.n_consumers = max(400, n_invoices // 4)
        self.n_merchants = max(200, n_invoices // 50)
        self.devices: dict[int, str] = {}
        self.phones: dict[int, str] = {}
        self.used_phones: set[str] = set()
        # (consumer, card number, bank)
        self.accounts: list[tuple[int, str, str]] = []
        self.next_consumer = 0
        self.next_merchant = 0
        # Colluding sellers that also reverse their other buyers' invoices: the share.
        self.colluding: dict[int, float] = {}

    # --- population --------------------------------------------------------------------
    def population(self):
        rng = self.rng
        codes = list(INDUSTRIES)
        weights = [INDUSTRIES[c][0] for c in codes]
        self.m_industry, self.m_round, self.m_pop, self.m_from, self.m_red = [], [], [], [], []
        for _ in range(self.n_merchants):
            code = rng.choices(codes, weights)[0]
            self.m_industry.append(code)
            self.m_round.append(min(0.9, INDUSTRIES[code][1] * rng.lognormvariate(0, 0.4)))
            self.m_pop.append(rng.lognormvariate(0, 1.0))
            late = rng.random() < 0.08
            offset = rng.uniform(0, self.days - 2) if late else 0
            self.m_from.append(self.start + timedelta(days=offset))
            self.m_red.append(rng.choice([0.0, 0.005, 0.01, 0.02, 0.03]))
        self.next_merchant = self.n_merchants
        self.m_cum = list(_cumulative(self.m_pop))
        self.c_act = [rng.lognormvariate(0, 0.7) for _ in range(self.n_consumers)]
        self.c_fast = [0.3 if rng.random() < 0.12 else 0.02 for _ in range(self.n_consumers)]
        self.c_ret = [self.return_propensity() for _ in range(self.n_consumers)]
        self.c_fav = [[self.pick_merchant() for _ in range(3)] for _ in range(self.n_consumers)]
        self.c_cum = list(_cumulative(self.c_act))
        self.next_consumer = self.n_consumers
        # The city's number blocks: how many participants an ordinary 100-number block holds
        # varies between cities (how many numbers the city has per participant).
        density = rng.uniform(0.3, 3.0)
        self.blocks = [
            rng.choice(CARRIER_PREFIXES) + f"{rng.randrange(10**6):06d}"
            for _ in range(max(50, int(self.n_consumers / density)))
        ]
        for c in range(self.n_consumers):
            self.devices[c] = self.device_id()
            self.phones[c] = self.phone()
        family_plan = rng.uniform(0.1, 0.5)
        for c in range(0, self.n_consumers - 1, 2):
            if rng.random() < 0.06:  # a family sharing one phone (the device)
                self.devices[c + 1] = self.devices[c]
                if rng.random() < family_plan:  # ... with numbers of one family plan
                    self.phones[c + 1] = self.phone(block=self.phones[c][:9])
        for c in range(self.n_consumers):
            if rng.random() < 0.3:
                self.accounts.append((c, *self.card()))

    def return_propensity(self) -> float:
        """How often an ordinary person takes goods back: most rarely, some (clothes bought
        in two sizes, ...) a lot."""
        rng = self.rng
        if rng.random() < 0.08:
            return rng.uniform(0.02, 0.10)
        return rng.uniform(0.0, 0.015)

    def device_id(self) -> str:
        return hashlib.sha256(f"device-{self.rng.random()}".encode()).hexdigest()

    def phone(self, *, block: str | None = None, number: str | None = None) -> str:
        """A new unique mobile number: `number` if free, else in `block`, else anywhere in
        the city's blocks."""
        rng = self.rng
        for _ in range(1000):
            if number is None:
                number = (block or rng.choice(self.blocks)) + f"{rng.randrange(100):02d}"
            if number not in self.used_phones:
                self.used_phones.add(number)
                return number
            number = None
        raise RuntimeError("no free phone number in the block")

    def card(self) -> tuple[str, str]:
        """A bank card number (issuer prefix, random account digits, Luhn check digit)."""
        prefix, length, bank = self.rng.choice(CARD_ISSUERS)
        body = prefix + "".join(str(self.rng.randrange(10)) for _ in range(length - 7))
        return body + _luhn_digit(body), bank

    def pick_merchant(self) -> int:
        return _pick(self.rng, self.m_cum)

    def new_consumer(self, fast: float = 0.02, phone: str | None = None) -> int:
        c = self.next_consumer
        self.next_consumer += 1
        self.c_fast.append(fast)
        self.c_ret.append(self.return_propensity())
        self.devices[c] = self.device_id()
        self.phones[c] = self.phone(number=phone)
        return c

    def new_merchant(self, code: str, first: datetime, round_share: float) -> int:
        m = self.next_merchant
        self.next_merchant += 1
        self.m_industry.append(code)
        self.m_round.append(round_share)
        self.m_pop.append(0)
        self.m_from.append(first)
        self.m_red.append(0.0)
        return m

    # --- amounts and times ----------------------------------------------------------------
    def amount(self, merchant: int, *, near_min: bool = False) -> Decimal:
        rng = self.rng
        if near_min or rng.random() < 0.05:
            value = float(self.min_total) + rng.uniform(0.01, float(self.min_total) * 0.15)
        else:
            value = float(self.min_total) + rng.lognormvariate(math.log(90), 0.8)
        if rng.random() < self.m_round[merchant]:
            value = max(float(self.min_total), round(value / 10) * 10)
        return Decimal(f"{value:.2f}")

    def moment(self, not_before: datetime, not_after: datetime | None = None) -> datetime:
        rng = self.rng
        not_after = not_after or self.end
        span = (not_after - not_before).total_seconds()
        for _ in range(20):
            at = not_before + timedelta(seconds=rng.uniform(0, span))
            hour = at.astimezone(CHINA).hour
            if 9 <= hour <= 21 or rng.random() < 0.1:
                return at
        return at

    def delay(self, fast: float) -> timedelta:
        if self.rng.random() < fast:
            return timedelta(seconds=self.rng.uniform(3, 110))
        return timedelta(minutes=3 + self.rng.lognormvariate(math.log(300), 1.0))

    # --- rows ---------------------------------------------------------------------------
    def fits(self, consumer: int, at: datetime) -> bool:
        day = at.astimezone(CHINA).date()
        return self.day_count[(consumer, day)] < 3 and self.month_count[consumer] < 20

    def add(
        self,
        consumer: int,
        merchant: int,
        at: datetime,
        total: Decimal,
        *,
        delay: timedelta,
        status: str = "accepted",
        device: str | None = None,
        fraud: bool = False,
        returned_after: timedelta | None = None,
    ) -> bool:
        """One entry; it is red-flushed `returned_after` its entry (a planted return), or at
        the seller's and the buyer's ordinary return rates some days after entry — unless
        that moment is after the data set's end."""
        if not self.fits(consumer, at):
            return False
        self.day_count[(consumer, at.astimezone(CHINA).date())] += 1
        self.month_count[consumer] += 1
        rng = self.rng
        back = 1 - (1 - self.m_red[merchant]) * (1 - self.c_ret[consumer])
        if returned_after is None and status == "accepted" and rng.random() < back:
            returned_after = timedelta(days=rng.lognormvariate(math.log(2.5), 0.8))
        reversed_at = None
        if status == "accepted" and returned_after is not None and at + returned_after < self.end:
            status, reversed_at = "reversed", at + returned_after
        device = self.devices[consumer] if device is None else device
        self.rows.append((consumer, merchant, at, at - delay, total, status, device, reversed_at))
        self.fraud_invoices += fraud
        return True

    # --- scenarios ------------------------------------------------------------------------
    def scenarios(self, replay_from: datetime):
        scale = self.n / 1_000_000
        count = {
            "split_purchase": 120,
            "insider": 50,
            "identity_farm": 40,
            "shell_seller": 30,
            "seller_surge": 30,
            "bulk_repeat": 100,
            "claim_reverse": 25,
        }
        for name in SCENARIOS:
            for _ in range(max(3, round(count[name] * scale))):
                instance = Instance(name)
                getattr(self, f"s_{name}")(instance, replay_from)
                self.instances.append(instance)

    def s_split_purchase(self, inst: Instance, replay_from: datetime):
        rng = self.rng
        c = rng.randrange(self.n_consumers)
        inst.consumers.add(c)
        band = rng.uniform(0.03, 0.15)
        for episode in range(rng.randint(1, 3)):
            m = self.pick_merchant()
            at = self.moment(replay_from if episode == 0 else self.start + timedelta(days=1))
            for _k in range(rng.randint(2, 3)):
                total = Decimal(f"{float(self.min_total) * (1 + rng.uniform(0.001, band)):.2f}")
                self.add(c, m, at, total, delay=self.delay(0.05), fraud=True)
                at += timedelta(minutes=rng.uniform(1, 15))

    def s_insider(self, inst: Instance, replay_from: datetime):
        rng = self.rng
        c, m = rng.randrange(self.n_consumers), self.pick_merchant()
        inst.consumers.add(c)
        days = rng.randint(4, 20)
        last = replay_from + timedelta(hours=rng.uniform(1, 20))
        for d in range(days):
            day_start = last - timedelta(days=d)
            for _ in range(rng.randint(1, 3)):
                at = day_start - timedelta(minutes=rng.uniform(0, 600))
                if at < self.start:
                    continue
                delay = timedelta(seconds=rng.uniform(2, 90))
                total = self.amount(m)
                self.add(c, m, at, total, delay=delay, fraud=True)

    def s_identity_farm(self, inst: Instance, replay_from: datetime):
        rng = self.rng
        size = rng.randint(4, 12)
        share_device = rng.random() < 0.7
        share_account = (not share_device) or rng.random() < 0.5
        device, account = self.device_id(), self.card()
        # Sometimes SIMs bought together: consecutive numbers (small gaps) from one start.
        sims = rng.random() < 0.5
        number = int(rng.choice(self.blocks) + f"{rng.randrange(100):02d}")
        first = replay_from - timedelta(days=rng.randint(1, 10))
        for _ in range(size):
            c = self.new_consumer(phone=str(number) if sims else None)
            number += rng.randint(1, 3)
            inst.consumers.add(c)
            if share_account:
                self.accounts.append((c, *account))
            n = rng.randint(1, 3)
            for k in range(n):
                at = self.moment(replay_from if k == n - 1 else first)
                m = self.pick_merchant()
                self.add(
                    c,
                    m,
                    at,
                    self.amount(m),
                    delay=self.delay(0.05),
                    device=device if share_device else None,
                    fraud=True,
                )

    def s_shell_seller(self, inst: Instance, replay_from: datetime):
        rng = self.rng
        first = self.end - timedelta(days=rng.uniform(4, 12))
        days = (self.end - first).total_seconds() / 86400
        per_day = rng.randint(10, 40)
        buyers_n = max(
            rng.randint(5, 15), math.ceil(per_day / 3) + 1, math.ceil(per_day * days / 18)
        )
        m = self.new_merchant(rng.choice(list(INDUSTRIES)), first, rng.uniform(0.3, 0.9))
        inst.merchants.add(m)
        buyers = [self.new_consumer(fast=rng.uniform(0, 0.5)) for _ in range(buyers_n)]
        inst.consumers.update(buyers)
        near_min = rng.uniform(0.1, 0.6)
        for _ in range(int(per_day * days)):
            at = self.moment(first)
            for _try in range(5):
                c = rng.choice(buyers)
                fast = self.c_fast[c]
                total = self.amount(m, near_min=rng.random() < near_min)
                if self.add(c, m, at, total, delay=self.delay(fast), fraud=True):
                    break

    def s_seller_surge(self, inst: Instance, replay_from: datetime):
        rng = self.rng
        m = self.pick_merchant()
        inst.merchants.add(m)
        surge_days = rng.randint(3, 7)
        base = max(2.0, self.m_pop[m] / sum(self.m_pop) * self.n / self.days)
        extra = int(base * rng.uniform(4, 12) * surge_days)
        first = self.end - timedelta(days=surge_days)
        buyers_n = max(8, math.ceil(extra / 15))
        buyers = [self.new_consumer() for _ in range(buyers_n)]
        inst.consumers.update(buyers)
        for _ in range(extra):
            at = self.moment(first)
            for _try in range(5):
                c = rng.choice(buyers)
                if self.add(c, m, at, self.amount(m), delay=self.delay(0.05), fraud=True):
                    break

    def s_bulk_repeat(self, inst: Instance, replay_from: datetime):
        rng = self.rng
        c = rng.randrange(self.n_consumers)
        inst.consumers.add(c)
        first = self.end - timedelta(days=rng.uniform(7, 25))
        for d in range(rng.randint(7, 10)):
            day = first + timedelta(days=d)
            for _ in range(rng.choice([2, 3, 3, 3])):
                m = self.pick_merchant()
                at = day + timedelta(hours=rng.uniform(0, 12))
                if at < self.end:
                    self.add(c, m, at, self.amount(m), delay=self.delay(0.02), fraud=True)

    def s_claim_reverse(self, inst: Instance, replay_from: datetime):
        """Claim, then red-letter reversal: one to a few people buy (often dearer goods),
        enter the invoices and take the goods back, so the invoices are red-flushed some days
        after entry. Sometimes they share a phone or an account; they buy at a colluding
        seller or at ordinary shops; a colluding seller sometimes also reverses many of its
        other buyers' invoices (flipped after normal traffic is drawn, `generate`)."""
        rng = self.rng
        size = 1 if rng.random() < 0.5 else rng.randint(2, 4)
        known = rng.random() < 0.5  # people already shopping in the campaign, or new sign-ups
        people = [
            rng.randrange(self.n_consumers) if known else self.new_consumer() for _ in range(size)
        ]
        device = self.device_id() if size > 1 and rng.random() < 0.25 else None
        if size > 1 and rng.random() < 0.15:
            account = self.card()
            self.accounts.extend((c, *account) for c in people)
        colluding = rng.random() < 0.3
        if colluding:
            shops = [self.pick_merchant()]
            inst.merchants.update(shops)
            if rng.random() < 0.5:
                self.colluding[shops[0]] = rng.uniform(0.15, 0.5)
        else:
            shops = [self.pick_merchant() for _ in range(rng.randint(1, 6))]
        kept = rng.uniform(0.0, 0.5)  # share of the goods not taken back
        # Days from entry to the red flush: within the seven days of no-reason returns.
        soonest = rng.uniform(0.05, 2.0)
        latest = soonest + rng.uniform(0.5, 5.0)
        price = math.log(rng.uniform(120, 1500))  # the usual price of what they buy
        # Running for ten days to the whole month up to now (its latest returns are still
        # to come).
        first = self.end - timedelta(days=rng.uniform(10, self.days))
        for c in people:
            inst.consumers.add(c)
            for _ in range(rng.randint(4, 18)):
                m = rng.choice(shops)
                value = float(self.min_total) + rng.lognormvariate(price, 0.5)
                if rng.random() < self.m_round[m]:
                    value = round(value / 10) * 10
                back = rng.random() >= kept
                self.add(
                    c,
                    m,
                    self.moment(max(first, self.m_from[m])),
                    Decimal(f"{value:.2f}"),
                    delay=self.delay(self.c_fast[c]),
                    device=device,
                    fraud=True,
                    returned_after=timedelta(days=rng.uniform(soonest, latest)) if back else None,
                )

    # --- normal traffic -----------------------------------------------------------------
    def normal(self, count: int):
        rng = self.rng
        for _ in range(count):
            for _try in range(10):
                c = _pick(rng, self.c_cum)
                m = rng.choice(self.c_fav[c]) if rng.random() < 0.4 else self.pick_merchant()
                not_before = self.m_from[m]
                if not_before >= self.end:
                    continue
                at = self.moment(not_before)
                if self.add(c, m, at, self.amount(m), delay=self.delay(self.c_fast[c])):
                    break


def _luhn_digit(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            d -= 9 if d > 9 else 0
        total += d
    return str((10 - total % 10) % 10)


def _cumulative(weights):
    total = 0.0
    for w in weights:
        total += w
        yield total


def _pick(rng: random.Random, cum: list[float]) -> int:
    import bisect

    return min(bisect.bisect_left(cum, rng.random() * cum[-1]), len(cum) - 1)


def generate(
    *,
    invoices: int = 1_000_000,
    seed: int = 1,
    days: int = 30,
    replay_days: float = 1.0,
    end: datetime | None = None,
    log=print,
) -> Dataset:
    """Wipe an earlier evaluation data set and write a new one (PostgreSQL). The data end at
    `end` (default `DEFAULT_END`): the same seed, size and end give the same data set."""
    if connection.vendor != "postgresql":
        raise RuntimeError("the evaluation data set is written with COPY (PostgreSQL)")
    started = time.monotonic()
    end = end or DEFAULT_END
    _wipe()
    campaign, _ = Campaign.objects.update_or_create(
        code=EVAL_CAMPAIGN,
        defaults={
            "name": "Risk evaluation (synthetic)",
            "starts_at": end - timedelta(days=days + 10),
            "ends_at": end + timedelta(days=30),
            "status": "paused",
        },
    )
    gen = _Gen(invoices, seed, days, end, campaign.min_total)
    gen.population()
    replay_from = end - timedelta(days=replay_days)
    gen.scenarios(replay_from)
    gen.normal(max(0, invoices - len(gen.rows)))
    share = gen.colluding
    if share:
        for i, row in enumerate(gen.rows):
            if row[1] in share and row[5] == "accepted" and gen.rng.random() < share[row[1]]:
                at = row[2] + timedelta(days=gen.rng.uniform(0.5, 10))
                if at < end:
                    gen.rows[i] = (*row[:5], "reversed", row[6], at)
                    gen.fraud_invoices += 1
    log(f"generated {len(gen.rows)} invoices in {time.monotonic() - started:.1f} s")
    _write(gen, campaign)
    seconds = time.monotonic() - started
    log(f"written in {seconds:.1f} s")
    ids_c, ids_m = gen.consumer_ids, gen.merchant_ids
    for inst in gen.instances:
        inst.consumers = {ids_c[c] for c in inst.consumers}
        inst.merchants = {ids_m[m] for m in inst.merchants}
    return Dataset(
        campaign, gen.start, end, len(gen.rows), gen.instances, seconds, gen.fraud_invoices
    )


def _write(gen: _Gen, campaign: Campaign) -> None:
    with transaction.atomic():
        with connection.cursor() as cursor:
            _skip_fk_checks(cursor)
        _copy(
            User,
            [
                "password",
                "is_superuser",
                "username",
                "first_name",
                "last_name",
                "email",
                "is_staff",
                "is_active",
                "date_joined",
            ],
            (
                ("!", False, f"{USER_PREFIX}{c}", "", "", "", False, True, gen.start)
                for c in range(gen.next_consumer)
            ),
        )
        users = dict(
            User.objects.filter(username__startswith=USER_PREFIX).values_list("username", "pk")
        )
        table, column = Consumer._meta.db_table, Consumer._meta.get_field("phone").column

        def consumers():
            for c in range(gen.next_consumer):
                public_id, phone = uuid.uuid4(), gen.phones[c]
                yield (
                    users[f"{USER_PREFIX}{c}"],
                    public_id,
                    "",
                    "",
                    crypto.encrypt(phone, crypto.associated_data(table, column, public_id)),
                    crypto.blind_index("phone", normalize_for_index("phone", phone)),
                    crypto.blind_index("phone_block", phone_block(phone)),
                    "unverified",
                    "active",
                    gen.start,
                    gen.start,
                )

        _copy(
            Consumer,
            [
                "user",
                "public_id",
                "real_name",
                "id_number",
                "phone",
                "phone_index",
                "phone_block_index",
                "verification_status",
                "status",
                "created_at",
                "updated_at",
            ],
            consumers(),
        )
        by_user = dict(
            Consumer.objects.filter(user__username__startswith=USER_PREFIX).values_list(
                "user_id", "pk"
            )
        )
        gen.consumer_ids = [by_user[users[f"{USER_PREFIX}{c}"]] for c in range(gen.next_consumer)]
        _copy(
            Merchant,
            [
                "uscc",
                "name",
                "area_code",
                "industry_code",
                "address",
                "status",
                "status_reason",
                "created_at",
                "updated_at",
            ],
            (
                (
                    _uscc(900_000_000 + m),
                    f"{MERCHANT_PREFIX}{m}",
                    "410105",
                    gen.m_industry[m],
                    "",
                    "active",
                    "",
                    gen.start,
                    gen.start,
                )
                for m in range(gen.next_merchant)
            ),
        )
        by_name = dict(
            Merchant.objects.filter(name__startswith=MERCHANT_PREFIX).values_list("name", "pk")
        )
        gen.merchant_ids = [by_name[f"{MERCHANT_PREFIX}{m}"] for m in range(gen.next_merchant)]
        usccs = [_uscc(900_000_000 + m) for m in range(gen.next_merchant)]
        table = PayoutAccount._meta.db_table
        column = PayoutAccount._meta.get_field("account_no").column

        def accounts():
            for c, number, bank in gen.accounts:
                public_id = uuid.uuid4()
                yield (
                    public_id,
                    gen.consumer_ids[c],
                    "bank_card",
                    crypto.encrypt(number, crypto.associated_data(table, column, public_id)),
                    crypto.blind_index("account", normalize_for_index("account", number)),
                    number[-4:],
                    bank,
                    "verified",
                    "match",
                    gen.start,
                    gen.start,
                    gen.start,
                )

        _copy(
            PayoutAccount,
            [
                "public_id",
                "consumer",
                "kind",
                "account_no",
                "account_no_index",
                "account_last4",
                "bank_name",
                "status",
                "check_code",
                "verified_at",
                "created_at",
                "updated_at",
            ],
            accounts(),
        )
        gen.rows.sort(key=lambda row: row[2])

        def invoices():
            for seq, (c, m, at, issued, total, status, device, reversed_at) in enumerate(gen.rows):
                tax = (total * Decimal("0.13") / Decimal("1.13")).quantize(Decimal("0.01"))
                yield (
                    uuid.uuid4(),
                    f"{NUMBER_PREFIX}{seq:015d}",
                    "32",
                    issued.astimezone(CHINA).date(),
                    issued,
                    usccs[m],
                    f"{MERCHANT_PREFIX}{m}",
                    "",
                    "",
                    total - tax,
                    tax,
                    total,
                    "app",
                    gen.consumer_ids[c],
                    gen.merchant_ids[m],
                    campaign.pk,
                    status,
                    RED_FLUSHED if reversed_at else "",
                    at,
                    at,
                    at,
                    0,
                    device,
                    at,
                    reversed_at or at,
                )

        _copy(
            Invoice,
            [
                "uid",
                "number",
                "invoice_type",
                "issue_date",
                "issued_at",
                "seller_uscc",
                "seller_name",
                "buyer_name",
                "buyer_tax_id",
                "amount",
                "tax",
                "total",
                "source_channel",
                "consumer",
                "merchant",
                "campaign",
                "status",
                "rejection_code",
                "submitted_at",
                "decided_at",
                "entered_at",
                "verification_attempts",
                "device_hash",
                "created_at",
                "updated_at",
            ],
            invoices(),
        )
        # The history row `invoice_reverse` writes for each red flush, at its moment.
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                INSERT INTO {InvoiceStatusChange._meta.db_table}
                    (invoice_id, from_status, to_status, code, note, actor_id, at)
                SELECT id, 'accepted', 'reversed', rejection_code, 'fully red-flushed', NULL,
                       updated_at
                FROM {Invoice._meta.db_table}
                WHERE campaign_id = %s AND status = 'reversed'
                """,  # noqa: S608
                [campaign.pk],
            )
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Invoice._meta.db_table}")
