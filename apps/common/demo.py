"""Deterministic, idempotent demo data for the Zhengzhou 2026 campaign (`manage.py seed_demo`).

Everything is derived from the seed: each merchant, consumer and invoice draws from its own
`random.Random("<seed>:<kind>:<index>")`, so the same arguments always plan the same rows and a
larger run keeps the smaller run's rows as its prefix. Rows are found again by natural keys —
campaign code, merchant credit code, consumer phone (blind index), staff username, invoice number
(plus the ordinal of a repeated submission of the same number) and registry number — and only
missing rows are inserted, so running the command again creates nothing.

The demo's clock stops when its campaign row is created (`reference_time`): nothing is issued,
submitted or decided after that moment, and a later run plans exactly the same rows. The natural
keys never depend on the clock at all.

The data tells a consistent story: an invoice in the tax registry for every submission the
registry knows, statuses that follow the campaign's own rules (minimum total, eligible sectors
and areas, merchant status, agent-issued invoices, red-letter reversals, per-consumer caps read
from the campaign row), and one history row per status transition.
"""

from __future__ import annotations

import math
import random
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from itertools import accumulate, islice
from typing import Final, NamedTuple
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group
from django.db import connections, models, router, transaction
from django.utils import timezone

from apps.accounts.choices import ConsumerStatus, VerificationStatus
from apps.accounts.models import Consumer, User
from apps.accounts.roles import ROLES, sync_roles
from apps.accounts.validators import resident_id_check_character
from apps.common import crypto
from apps.common.areas import ZHENGZHOU_AREAS
from apps.common.models import MoneyField
from apps.common.pii import normalize_for_index
from apps.invoices.choices import (
    CampaignStatus,
    InvoiceStatus,
    InvoiceType,
    IssuerKind,
    RegistryStatus,
    SourceChannel,
)
from apps.invoices.models import (
    Campaign,
    CampaignArea,
    CampaignIndustry,
    Invoice,
    InvoiceStatusChange,
    TaxInvoiceRecord,
)
from apps.merchants.choices import MerchantStatus
from apps.merchants.models import Merchant
from apps.merchants.validators import USCC_ALPHABET, uscc_check_character

__all__ = [
    "CAMPAIGN_CODE",
    "CAMPAIGN_INDUSTRY_RULES",
    "DemoError",
    "DemoOptions",
    "DemoResult",
    "seed_demo",
]

TZ: Final = ZoneInfo("Asia/Shanghai")
CAMPAIGN_CODE: Final = "zz-2026"
CAMPAIGN_NAME: Final = "郑州市2026年有奖发票活动"
CAMPAIGN_STARTS: Final = datetime(2026, 7, 1, 0, 0, 0, tzinfo=TZ)
CAMPAIGN_ENDS: Final = datetime(2026, 12, 31, 23, 59, 59, tzinfo=TZ)

#: (industry-code prefix, excluded, label): the default rules of DOMAIN.md (GB/T 4754-2017).
CAMPAIGN_INDUSTRY_RULES: Final[tuple[tuple[str, bool, str], ...]] = (
    ("52", False, "零售业"),
    ("61", False, "住宿业"),
    ("62", False, "餐饮业"),
    ("80", False, "居民服务业"),
    ("8020", True, "托儿所服务"),
    ("8080", True, "殡葬服务"),
    ("88", False, "文化艺术业"),
    ("89", False, "体育"),
    ("90", False, "娱乐业"),
    ("904", True, "彩票活动"),
    ("905", True, "文化体育娱乐活动与经纪代理服务"),
    ("7291", False, "旅行社及相关服务"),
    ("786", False, "游览景区管理"),
    ("8760", False, "电影放映"),
)

CENT: Final = Decimal("0.01")
_TYPICAL_MINIMUM: Final = Decimal("100.00")  # consumers' habit, not a rule: rules come from the row
BATCH: Final = 2000  # rows per INSERT statement (Django lowers it if the backend needs)
CHUNK: Final = 10000  # planned rows turned into model instances at a time (bounds memory)
_NUMBER_MULTIPLIER: Final = 7_654_321_987_653  # coprime with 10**15: a bijection on sequences
_SEQUENCE_SPACE: Final = 10**15


class DemoError(Exception):
    """The demo cannot be generated with these options or at this time."""


@dataclass(frozen=True)
class DemoOptions:
    merchants: int = 300
    consumers: int = 200
    invoices: int = 2000
    seed: int = 2026
    now: datetime | None = None  # default: see `reference_time`; tests may pin it


@dataclass
class DemoResult:
    options: DemoOptions
    campaign_created: bool = False
    created: Counter = field(default_factory=Counter)
    invoice_statuses: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)

    @property
    def nothing_created(self) -> bool:
        return not self.campaign_created and not any(self.created.values())

    def render(self) -> str:
        o = self.options
        if self.nothing_created:
            return (
                f"The demo data is already there (campaign {CAMPAIGN_CODE}, seed {o.seed}, "
                f"{o.merchants} merchants, {o.consumers} consumers, {o.invoices} invoices): "
                f"nothing created ({self.seconds:.1f} s)."
            )
        c = self.created
        statuses = ", ".join(f"{k} {v}" for k, v in sorted(self.invoice_statuses.items()))
        lines = [
            f"Demo data for campaign {CAMPAIGN_CODE} (seed {o.seed}) created in "
            f"{self.seconds:.1f} s:",
            f"  campaign:          {'created' if self.campaign_created else 'already there'}"
            + (
                f" ({c['industry_rules']} industry rules, {c['areas']} areas)"
                if self.campaign_created
                else ""
            ),
            f"  staff users:       {c['staff']} (one per role, unusable passwords)",
            f"  merchants:         {c['merchants']}",
            f"  consumers:         {c['consumers']}",
            f"  invoices:          {c['invoices']}" + (f" ({statuses})" if statuses else ""),
            f"  history rows:      {c['history']}",
            f"  registry records:  {c['registry']} (red invoices {c['registry_red']}, "
            f"never submitted {c['registry_extra']})",
        ]
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Reference data: industries, areas, names
# --------------------------------------------------------------------------------------------


class Industry(NamedTuple):
    code: str
    label: str
    weight: float  # share of merchants
    small_share: float  # share of individual businesses (个体工商户, small-scale taxpayers)
    median: float  # median total with tax, CNY
    sigma: float  # log-normal spread
    integer_share: float  # share of whole-yuan totals
    rate: str  # VAT rate of a general taxpayer
    company: tuple[str, ...]  # company-name suffixes
    shop: tuple[str, ...]  # individual-business name suffixes


# code | label | share of merchants | share of individual businesses (个体工商户) | median total
# | log-normal sigma | share of whole-yuan totals | VAT rate of a general taxpayer
# | company-name suffixes | individual-business name suffixes
_INDUSTRY_TABLE: Final = """
# Retail 52
5211|百货零售|3|0|260|0.7|0.2|0.13|百货有限公司,商业管理有限公司|
5212|超级市场零售|6|0.4|190|0.6|0.05|0.13|超市有限公司,商贸有限公司|便民超市,生活超市
5213|便利店零售|3|0.5|140|0.5|0.1|0.13|便利店有限公司|便利店
5223|果品、蔬菜零售|2|0.8|150|0.5|0.3|0.09|农产品有限公司|果蔬店,鲜果行
5232|服装零售|4|0.5|380|0.6|0.6|0.13|服饰有限公司|服装店
5245|珠宝首饰零售|0.5|0.1|2600|0.7|0.7|0.13|珠宝有限公司,黄金珠宝有限公司|金店
5251|西药零售|3|0.2|180|0.6|0.1|0.13|大药房有限公司,医药连锁有限公司|大药房
5272|日用家电零售|1.5|0.2|1500|0.7|0.8|0.13|电器有限公司|家电商行
5243|图书、报刊零售|1|0.2|170|0.5|0.2|0.09|书店有限公司,文化书城有限公司|书店
5242|体育用品及器材零售|1|0.3|420|0.7|0.5|0.13|体育用品有限公司|体育用品店
# Catering 62
6210|正餐服务|14|0.45|260|0.6|0.7|0.06|餐饮有限公司,餐饮管理有限公司|烩面馆,饭店,酒楼,家常菜馆
6220|快餐服务|7|0.45|150|0.45|0.6|0.06|快餐有限公司,餐饮服务有限公司|快餐店,黄焖鸡米饭店
6291|小吃服务|5|0.7|130|0.45|0.8|0.06|小吃餐饮有限公司|胡辣汤店,羊肉汤馆,小吃店
6232|咖啡馆服务|2|0.3|150|0.45|0.4|0.06|咖啡有限公司|咖啡馆
# Accommodation 61
6110|旅游饭店|2|0|560|0.5|0.6|0.06|大酒店有限公司,酒店管理有限公司|
6121|经济型连锁酒店|4|0.1|260|0.4|0.6|0.06|酒店管理有限公司,快捷酒店有限公司|宾馆
6130|民宿服务|1|0.6|420|0.5|0.8|0.06|民宿管理有限公司|民宿
# Culture and arts 88
8810|文艺创作与表演|1|0|280|0.6|0.9|0.06|文化艺术有限公司,演艺有限公司|
8820|艺术表演场馆|1|0|380|0.6|0.9|0.06|剧院管理有限公司|
# Entertainment 90 (904, 905 excluded)
9011|歌舞厅娱乐活动|2|0.1|480|0.6|0.8|0.06|娱乐有限公司,KTV有限公司|
9012|电子游艺厅娱乐活动|1|0.1|150|0.5|0.9|0.06|电玩城有限公司|
9013|网吧活动|1|0.5|140|0.45|0.9|0.06|网咖有限公司|网咖
9020|游乐园|0.5|0|360|0.5|0.9|0.06|游乐园有限公司,文旅发展有限公司|
9030|休闲观光活动|0.5|0.1|220|0.5|0.9|0.06|生态观光园有限公司|
# Tourism 7291, 786, 8760
7291|旅行社服务|1|0|1500|0.7|0.9|0.06|国际旅行社有限公司,旅行社有限公司|
7861|名胜风景区管理|0.7|0|220|0.5|0.9|0.06|景区管理有限公司,旅游开发有限公司|
8760|电影放映|1.5|0|150|0.45|0.7|0.06|影城有限公司,影院管理有限公司|
# Sports 89
8921|体育场馆管理|1|0|160|0.5|0.9|0.06|体育场馆运营管理有限公司|
8930|健身休闲活动|2|0.2|480|0.7|0.9|0.06|健身有限公司,体育文化有限公司|健身工作室
# Resident services 80 (8020, 8080 excluded)
8010|家庭服务|2|0.3|300|0.6|0.9|0.06|家政服务有限公司|家政服务部
8030|洗染服务|1|0.7|150|0.5|0.8|0.06|洗衣服务有限公司|干洗店
8040|理发及美容服务|4|0.6|160|0.7|0.8|0.06|美容美发有限公司|美发店,美容院
8051|洗浴服务|1|0.3|200|0.5|0.9|0.06|洗浴有限公司,温泉会馆有限公司|浴池
8060|摄影扩印服务|1|0.5|480|0.7|0.9|0.06|摄影有限公司|照相馆
8070|婚姻服务|0.5|0.2|3200|0.7|0.9|0.06|婚庆服务有限公司|婚庆服务部
# Ineligible sellers (excluded prefixes or sectors outside the campaign).
9042|福利彩票服务|0.5|1|50|0.8|1|0.06||福利彩票投注站
8020|托儿所服务|0.5|0|2800|0.4|0.9|0.06|托育服务有限公司|
9051|文化活动服务|0.5|0|500|0.6|0.9|0.06|文化传媒有限公司|
7020|物业管理|1|0|320|0.5|0.9|0.06|物业服务有限公司|
"""


def _parse_industries(table: str) -> tuple[Industry, ...]:
    rows = []
    for line in table.strip().splitlines():
        if line.startswith("#"):
            continue
        code, label, weight, small, median, sigma, integer, rate, company, shop = line.split("|")
        rows.append(
            Industry(
                code,
                label,
                float(weight),
                float(small),
                float(median),
                float(sigma),
                float(integer),
                rate,
                tuple(filter(None, company.split(","))),
                tuple(filter(None, shop.split(","))),
            )
        )
    return tuple(rows)


INDUSTRIES: Final[tuple[Industry, ...]] = _parse_industries(_INDUSTRY_TABLE)
_INDUSTRY_CUM: Final = tuple(accumulate(i.weight for i in INDUSTRIES))

_AREA_WEIGHTS: Final[dict[str, float]] = {
    "410102": 12, "410103": 12, "410104": 10, "410105": 20, "410106": 2, "410108": 6,
    "410122": 8, "410181": 5, "410182": 5, "410183": 4, "410184": 8, "410185": 4,
}  # fmt: skip
_AREA_CODES: Final = tuple(ZHENGZHOU_AREAS)
_AREA_CUM: Final = tuple(accumulate(_AREA_WEIGHTS.get(code, 1) for code in _AREA_CODES))
_ROADS: Final[dict[str, tuple[str, ...]]] = {
    "410102": ("中原路", "建设路", "桐柏路", "伏牛路", "秦岭路", "棉纺路"),
    "410103": ("大学路", "航海路", "长江路", "淮河路", "兴华街", "京广路"),
    "410104": ("紫荆山路", "商城路", "城东路", "郑汴路", "南关街", "航海东路"),
    "410105": ("花园路", "经三路", "农业路", "纬五路", "金水路", "东风路", "文化路", "丰产路"),
    "410106": ("中心路", "新安路", "济源路", "登封路"),
    "410108": ("天河路", "开元路", "英才街", "迎宾路"),
    "410122": ("官渡大街", "青年路", "建设路", "解放路"),
    "410181": ("杜甫路", "嵩山路", "新兴路", "桐本路"),
    "410182": ("索河路", "郑上路", "广武路", "京城路"),
    "410183": ("青屏大街", "西大街", "开阳路", "长乐路"),
    "410184": ("轩辕路", "人民路", "新华路", "中华路"),
    "410185": ("少林大道", "中岳大街", "嵩阳路", "书院河路"),
}
_BRAND_WORDS: Final = (
    "鑫源 华联 金鼎 福满 聚丰 豫香 嵩岳 中原 商都 绿城 黄河 天一 锦华 瑞丰 恒泰 德润 和盛 兴隆 "
    "宏达 永安 康泰 佳美 百汇 万家 好邻 惠民 乐购 优选 鸿福 祥和 同福 顺和 嘉禾 安康 鼎盛 昌隆 "
    "博雅 明德 盛世 新田 紫荆 如意 玉兰 牡丹 梧桐 银杏 金桂 大河 郑好 溱洧 轩辕 嵩阳 杜甫 商城 "
    "木兰 青檀 北斗 星河 云台 凤凰 瑞祥 万福 吉庆 金城 河图 仁和 汉唐 宋韵 唐宫 豫味 老城根 "
    "中州 天地 众和 金穗 丰谷 春晖 荷塘 清风 知味 食尚 悦来 福源 聚贤 正兴 宏远 合众"
)
_BRANDS: Final = tuple(_BRAND_WORDS.split())
_SUSPENDED_REASONS: Final = (
    "列入经营异常名录，暂停参与活动待核实",
    "涉嫌拆分开票，暂停参与活动待核查",
    "消费者投诉较多，暂停参与活动",
)
_BLACKLISTED_REASONS: Final = (
    "虚开发票，列入活动黑名单",
    "税务稽查发现虚构交易，列入活动黑名单",
)

_SURNAMES: Final = (
    ("王", 14), ("李", 12), ("张", 12), ("刘", 8), ("陈", 5), ("杨", 5), ("赵", 4), ("郭", 4),
    ("孙", 3), ("马", 3), ("朱", 3), ("高", 3), ("胡", 2), ("周", 2), ("吴", 2), ("宋", 2),
    ("徐", 2), ("郑", 2), ("梁", 2), ("韩", 2), ("冯", 2), ("杜", 2), ("程", 2), ("曹", 2),
    ("许", 2), ("贾", 2), ("魏", 2), ("崔", 2), ("田", 2), ("邓", 1), ("袁", 1), ("董", 1),
    ("范", 1), ("吕", 1), ("任", 1), ("谢", 1), ("蔡", 1), ("申", 1), ("牛", 1), ("史", 1),
    ("常", 1), ("司马", 0.2), ("欧阳", 0.2), ("上官", 0.1),
)  # fmt: skip
_SURNAME_CUM: Final = tuple(accumulate(w for _, w in _SURNAMES))
_MALE_CHARS: Final = (
    "伟强磊军洋勇杰涛斌超明刚平辉鹏华飞鑫波宇浩凯健俊帆帅旭宁龙林阳建亮成博晨昊然哲瑞睿航森志国庆"
)
_FEMALE_CHARS: Final = (
    "芳娜敏静丽艳娟霞燕玲婷雪慧颖琳倩晶欣佳萍红梅丹璐瑶怡悦雯蕾琪萌月玉兰秀凤莉洁"
)
_DOTTED_NAMES: Final = ("阿依古丽·买买提", "热依拉·艾力", "迪丽努尔·吐尔逊", "巴特尔·孟和")
_OTHER_HENAN_AREAS: Final = (
    "410202", "410305", "410402", "410502", "410602", "410702", "410802", "410902",
    "411002", "411102", "411202", "411302", "411402", "411502", "411602", "411702",
)  # fmt: skip
_PHONE_PREFIXES: Final = tuple(
    [f"13{d}" for d in range(10)]
    + ["150", "151", "152", "153", "155", "156", "157", "158", "159"]
    + [f"18{d}" for d in range(10)]
)
_HOUR_WEIGHTS: Final = (
    1, 0.5, 0.3, 0.2, 0.2, 0.3, 0.8, 2, 3, 3, 3.5, 5, 6, 4, 3, 3, 3.5, 5, 7, 7, 6, 4.5, 3, 2,
)  # fmt: skip
_HOUR_CUM: Final = tuple(accumulate(_HOUR_WEIGHTS))
_WEEKDAY_WEIGHTS: Final = (1, 1, 1, 1, 1.1, 1.35, 1.3)  # Monday … Sunday
_HOLIDAYS: Final[dict[date, float]] = {
    date(2026, 9, 25): 1.4,  # 中秋节
    **{date(2026, 10, d): 1.7 for d in range(1, 8)},  # 国庆节
    date(2026, 11, 11): 1.3,
}
_CHANNELS: Final = (
    (SourceChannel.APP, 45), (SourceChannel.MINI_PROGRAM, 25), (SourceChannel.CITY_APP, 25),
    (SourceChannel.WEB, 5),
)  # fmt: skip
_CHANNEL_CUM: Final = tuple(accumulate(w for _, w in _CHANNELS))


def _rng(seed: int, kind: str, index: int) -> random.Random:
    # String seeds are hashed with SHA-512 by `random`: stable across runs and processes.
    # Demo data, not secrets: a reproducible generator is the point.
    return random.Random(f"lotteryinvoice-demo:{seed}:{kind}:{index}")  # noqa: S311 - seeded, reproducible demo data


def _pick(rng: random.Random, cum: Sequence[float]) -> int:
    """Index drawn with the weights whose running sums are `cum`."""
    return bisect_left(cum, rng.random() * cum[-1])


def _money(value: float | Decimal) -> Decimal:
    return Decimal(str(value)).quantize(CENT, rounding=ROUND_HALF_UP)


def _split_tax(total: Decimal, rate: Decimal) -> tuple[Decimal, Decimal]:
    """(amount, tax) with amount + tax == total exactly, tax within a few cents of the rate.

    SQLite evaluates the `total = amount + tax` CHECK constraints in binary floating point
    (DECIMAL columns have NUMERIC affinity), where about a quarter of exact splits fail; so
    the tax is nudged by a few cents until the sum is also exact in floats (PostgreSQL is
    exact anyway).
    """
    exact = (total * rate / (1 + rate)).quantize(CENT, rounding=ROUND_HALF_UP)
    for step in range(50):
        for tax in (exact + CENT * step, exact - CENT * step):
            if tax >= 0 and float(total - tax) + float(tax) == float(total):
                return total - tax, tax
    return total - exact, exact  # not reached: a fitting tax is at most a few cents away


def _given_name(rng: random.Random, *, female: bool | None = None) -> str:
    if female is None:
        female = rng.random() < 0.5
    chars = _FEMALE_CHARS if female else _MALE_CHARS
    return rng.choice(chars) + (rng.choice(chars) if rng.random() < 0.7 else "")


def _person_name(rng: random.Random, *, female: bool | None = None) -> str:
    if rng.random() < 0.003:
        return rng.choice(_DOTTED_NAMES)
    return _SURNAMES[_pick(rng, _SURNAME_CUM)][0] + _given_name(rng, female=female)


def _relative_name(rng: random.Random, name: str) -> str:
    """A family member's name: the same surname, another given name."""
    surname = next((s for s, _ in _SURNAMES if len(s) == 2 and name.startswith(s)), name[:1])
    if "·" in name:
        surname = _SURNAMES[_pick(rng, _SURNAME_CUM)][0]
    return surname + _given_name(rng)


def _name_index(name: str, cache: dict[str, str]) -> str:
    digest = cache.get(name)
    if digest is None:
        digest = crypto.blind_index("name", normalize_for_index("name", name))
        cache[name] = digest
    return digest


def _chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch


def _lookup_chunk(model) -> int:
    """Values per `__in` lookup: within SQLite's 999 parameters, larger elsewhere."""
    limit = connections[router.db_for_read(model)].features.max_query_params
    return min(limit - 10, 5000) if limit else 5000


def _existing(model, field_name: str, values: Iterable[str], *, also: str | None = None):
    """Values of `field_name` (and of `also`, as pairs) already in the table, among `values`."""
    found: dict[str, object] = {}
    fields = [field_name] + ([also] if also else [])
    for batch in _chunks(list(values), _lookup_chunk(model)):
        lookup = {f"{field_name}__in": batch}
        for row in model.objects.filter(**lookup).values_list(*fields):
            found[row[0]] = row[1] if also else True
    return found


# --------------------------------------------------------------------------------------------
# Time
# --------------------------------------------------------------------------------------------


class Clock:
    """Issue times inside [start, end]: busier weekends and holidays, meal-time peaks."""

    def __init__(self, start: datetime, end: datetime) -> None:
        self.start, self.end = start, end
        self.days: list[date] = []
        weights = []
        day = start.date()
        while day <= end.date():
            age = (day - start.date()).days
            ramp = 0.5 + 0.5 * min(1.0, age / 21)  # word spreads over the first three weeks
            weights.append(ramp * _WEEKDAY_WEIGHTS[day.weekday()] * _HOLIDAYS.get(day, 1.0))
            self.days.append(day)
            day += timedelta(days=1)
        self.cum = tuple(accumulate(weights))

    def sample(self, rng: random.Random) -> datetime:
        for _ in range(8):
            day = self.days[_pick(rng, self.cum)]
            hour = _pick(rng, _HOUR_CUM)
            moment = datetime(
                day.year, day.month, day.day, hour, rng.randrange(60), rng.randrange(60), tzinfo=TZ
            )
            if self.start <= moment <= self.end:
                return moment
        return self.end - timedelta(seconds=rng.randrange(60, 3600))


# --------------------------------------------------------------------------------------------
# Plans (pure data, no database)
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class MerchantPlan:
    uscc: str
    name: str
    area_code: str
    industry: Industry
    address: str
    status: str
    status_reason: str
    status_changed_days_ago: int
    small: bool
    popularity: float

    @property
    def rate(self) -> Decimal:
        return Decimal("0.01") if self.small else Decimal(self.industry.rate)


def plan_merchants(seed: int, count: int) -> list[MerchantPlan]:
    plans: list[MerchantPlan] = []
    usccs: set[str] = set()
    names: set[str] = set()
    for i in range(count):
        rng = _rng(seed, "merchant", i)
        area = _AREA_CODES[i] if i < len(_AREA_CODES) else _AREA_CODES[_pick(rng, _AREA_CUM)]
        industry = INDUSTRIES[i] if i < len(INDUSTRIES) else INDUSTRIES[_pick(rng, _INDUSTRY_CUM)]
        small = rng.random() < industry.small_share or not industry.company
        if not industry.shop:
            small = False
        # 统一社会信用代码: 9 (registered by market regulation), 1 company / 2 individual
        # business, the area, a 9-character entity code, the check character.
        while True:
            if small or rng.random() < 0.75:
                entity = "MA" + rng.choice("3456789") + "".join(rng.choices(USCC_ALPHABET, k=6))
            else:
                entity = "".join(rng.choices("0123456789", k=8)) + rng.choice("0123456789X")
            body = ("92" if small else "91") + area + entity
            uscc = body + uscc_check_character(body)
            if uscc not in usccs:
                usccs.add(uscc)
                break
        area_name = ZHENGZHOU_AREAS[area]
        district = area.startswith("41010")
        road = rng.choice(_ROADS[area])
        name = ""
        for attempt in range(12):
            brand = rng.choice(_BRANDS)
            if small:
                place = f"郑州市{area_name}" if district else area_name
                if industry.code == "9042":
                    name = f"{place}{industry.shop[0]}{rng.randrange(10000, 99999)}号"
                else:
                    name = place + brand + rng.choice(industry.shop)
            else:
                prefix = rng.choice(
                    (f"郑州{brand}", f"郑州市{area_name}{brand}", f"河南{brand}")
                    if district
                    else (f"{area_name}{brand}", f"郑州{brand}", f"河南{brand}")
                )
                name = prefix + rng.choice(industry.company)
            if attempt == 11:
                name = f"{name}（{road}店）"
            if name not in names:
                break
        names.add(name)
        roll = rng.random()
        if roll < 0.02:
            status, reason = MerchantStatus.SUSPENDED, rng.choice(_SUSPENDED_REASONS)
        elif roll < 0.03:
            status, reason = MerchantStatus.BLACKLISTED, rng.choice(_BLACKLISTED_REASONS)
        else:
            status, reason = MerchantStatus.ACTIVE, ""
        plans.append(
            MerchantPlan(
                uscc=uscc,
                name=name,
                area_code=area,
                industry=industry,
                address=f"郑州市{area_name}{road}{rng.randint(1, 399)}号",
                status=status,
                status_reason=reason,
                status_changed_days_ago=rng.randint(3, 60),
                small=small,
                # People eat out far more often than they buy jewellery.
                popularity=math.exp(rng.gauss(0, 0.8)) * min(2.0, (250 / industry.median) ** 0.7),
            )
        )
    return plans


@dataclass(slots=True)
class ConsumerPlan:
    phone: str
    real_name: str
    id_number: str
    verification_status: str
    status: str
    registered_at: datetime
    verified_at: datetime | None
    activity: float
    public_id: UUID = field(default_factory=uuid4)


def _register_time(rng: random.Random, now: datetime) -> datetime:
    latest = now - timedelta(days=2)
    early = CAMPAIGN_STARTS - timedelta(days=10)
    if rng.random() < 0.6:  # the launch wave
        start, end = early, min(CAMPAIGN_STARTS + timedelta(days=20), latest)
    else:
        start, end = early, latest
    span = max(0.0, (end - start).total_seconds())
    return start + timedelta(seconds=rng.random() * span)


FROZEN_CONSUMERS: Final = frozenset({13, 101})


def plan_consumers(seed: int, count: int, now: datetime) -> list[ConsumerPlan]:
    plans: list[ConsumerPlan] = []
    phones: set[str] = set()
    ids: set[str] = set()
    for i in range(count):
        rng = _rng(seed, "consumer", i)
        # Identity first: the natural keys never depend on the clock.
        while True:
            phone = rng.choice(_PHONE_PREFIXES) + f"{rng.randrange(10**8):08d}"
            if phone not in phones:
                phones.add(phone)
                break
        female = rng.random() < 0.52
        area = rng.choice(_AREA_CODES) if rng.random() < 0.7 else rng.choice(_OTHER_HENAN_AREAS)
        while True:
            born = date(1950, 1, 1) + timedelta(
                days=rng.randrange((date(2005, 12, 31) - date(1950, 1, 1)).days)
            )
            sequence = rng.randrange(50) * 20 + rng.randrange(5) * 2 + (0 if female else 1)
            body = f"{area}{born:%Y%m%d}{sequence:03d}"
            id_number = body + resident_id_check_character(body)
            if id_number not in ids:
                ids.add(id_number)
                break
        name = _person_name(rng, female=female)
        roll = rng.random()
        if i in FROZEN_CONSUMERS or roll < 0.93:
            verification = VerificationStatus.VERIFIED
        elif roll < 0.95:
            verification = VerificationStatus.PENDING
        elif roll < 0.96:
            verification = VerificationStatus.FAILED
        else:
            verification = VerificationStatus.UNVERIFIED
        activity = math.exp(rng.gauss(0, 0.6))
        registered = _register_time(rng, now)
        verified_at = None
        if verification == VerificationStatus.VERIFIED:
            verified_at = registered + timedelta(seconds=rng.randrange(60, 1800))
        if verification == VerificationStatus.UNVERIFIED:
            name, id_number = "", ""  # registered with a phone only
        plans.append(
            ConsumerPlan(
                phone=phone,
                real_name=name,
                id_number=id_number,
                verification_status=verification,
                status=ConsumerStatus.FROZEN if i in FROZEN_CONSUMERS else ConsumerStatus.ACTIVE,
                registered_at=registered,
                verified_at=verified_at,
                activity=activity,
            )
        )
    return plans


@lru_cache(maxsize=8)
def _number_offset(seed: int) -> int:
    return _rng(seed, "numbers", 0).randrange(_SEQUENCE_SPACE)


def invoice_number(seed: int, domain_index: int, channel: str) -> str:
    """`26` `41` <channel> <15-digit sequence>: unique for distinct `domain_index` values."""
    offset = _number_offset(seed)
    sequence = (domain_index * _NUMBER_MULTIPLIER + offset) % _SEQUENCE_SPACE
    return f"2641{channel}{sequence:015d}"


def _channel_digit(rng: random.Random) -> str:
    roll = rng.random()
    return "1" if roll < 0.85 else ("2" if roll < 0.95 else "3")


@dataclass(slots=True)
class RegistryPlan:
    number: str
    issued_at: datetime
    merchant: MerchantPlan
    buyer_name: str
    amount: Decimal
    tax: Decimal
    total: Decimal
    issuer_kind: str = IssuerKind.SELF
    status: str = RegistryStatus.NORMAL
    red_total: Decimal = Decimal("0.00")
    red_number: str = ""
    red_at: datetime | None = None
    red_amount: Decimal = Decimal("0.00")
    red_tax: Decimal = Decimal("0.00")
    submitted: bool = True


@dataclass(slots=True)
class InvoicePlan:
    number: str
    ordinal: int  # 0 for the first submission of a number, then 1, 2… for repeats
    consumer: int  # index into the consumer plans
    buyer_name: str
    issued_at: datetime
    total: Decimal
    submitted_at: datetime
    channel: str
    registry: RegistryPlan | None
    risk_hold: bool
    review_roll: float
    review_delay: timedelta
    decide_delay: timedelta
    backlog: bool
    # Outcome (filled by `decide`):
    status: str = InvoiceStatus.PENDING
    rejection_code: str = ""
    decided_at: datetime | None = None
    entered_at: datetime | None = None
    next_check_at: datetime | None = None
    attempts: int = 0
    history: list[tuple[str, str, str, str, datetime, bool]] = field(default_factory=list)


def _sample_total(rng: random.Random, industry: Industry) -> Decimal:
    value = industry.median * math.exp(rng.gauss(0, industry.sigma))
    value = min(max(value, 3.0), 30000.0)
    if rng.random() < industry.integer_share:
        value = float(max(1, round(value)))
        if value > 50 and rng.random() < 0.25:  # 88, 128, 198… price points
            value = float(max(8, round(value / 10) * 10 - 2))
    return _money(value)


def _submission_delay(rng: random.Random) -> timedelta:
    roll = rng.random()
    if roll < 0.005:  # cashier-speed entries (an insider pattern)
        return timedelta(seconds=rng.randrange(5, 40))
    if roll < 0.40:
        return timedelta(seconds=rng.randrange(60, 1800))
    if roll < 0.75:
        return timedelta(seconds=rng.randrange(1800, 12 * 3600))
    if roll < 0.95:
        return timedelta(seconds=rng.randrange(12 * 3600, 7 * 86400))
    return timedelta(seconds=rng.randrange(7 * 86400, 30 * 86400))


@dataclass
class Rules:
    """The campaign's rules as read from its rows (staff may have changed them)."""

    campaign: Campaign
    industries: list[tuple[str, bool]]
    areas: list[str]

    def industry_ok(self, code: str) -> bool:
        best: tuple[str, bool] | None = None
        for prefix, excluded in self.industries:
            if code.startswith(prefix) and (best is None or len(prefix) > len(best[0])):
                best = (prefix, excluded)
        return best is not None and not best[1]

    def area_ok(self, code: str) -> bool:
        return not self.areas or any(code.startswith(prefix) for prefix in self.areas)


def plan_invoices(
    seed: int,
    count: int,
    merchants: list[MerchantPlan],
    consumers: list[ConsumerPlan],
    now: datetime,
) -> tuple[list[InvoicePlan], list[RegistryPlan]]:
    """Submissions (`count` of them, a few repeating an earlier number) and registry records."""
    if count == 0:
        return [], []
    eligible_consumers = [
        i for i, c in enumerate(consumers) if c.verification_status == VerificationStatus.VERIFIED
    ]
    if not eligible_consumers:
        raise DemoError("Invoices need at least one verified consumer: raise --consumers.")
    if not merchants:
        raise DemoError("Invoices need at least one merchant: raise --merchants.")
    consumer_cum = tuple(accumulate(consumers[i].activity for i in eligible_consumers))
    merchant_cum = tuple(
        accumulate(
            m.popularity * (1.0 if m.status == MerchantStatus.ACTIVE else 0.4) for m in merchants
        )
    )
    end = now - timedelta(minutes=10)
    clock = Clock(CAMPAIGN_STARTS, min(end, CAMPAIGN_ENDS))
    repeats = count // 200
    primaries = count - repeats
    invoices: list[InvoicePlan] = []
    registry: list[RegistryPlan] = []

    for i in range(primaries):
        rng = _rng(seed, "invoice", i)
        number = invoice_number(seed, 3 * i, _channel_digit(rng))
        merchant = merchants[_pick(rng, merchant_cum)]
        consumer_index = eligible_consumers[_pick(rng, consumer_cum)]
        consumer = consumers[consumer_index]
        kind = rng.random()
        not_found, name_mismatch = kind < 0.01, 0.01 <= kind < 0.025
        buyer = consumer.real_name
        if name_mismatch:  # a family member's invoice
            while buyer == consumer.real_name:
                buyer = _relative_name(rng, consumer.real_name)
        total = _sample_total(rng, merchant.industry)
        if total < _TYPICAL_MINIMUM and rng.random() < 0.6:  # most people know the rule
            total = _sample_total(rng, merchant.industry)
        issued = clock.sample(rng)
        submitted = issued + _submission_delay(rng)
        earliest = max(issued, consumer.verified_at or issued)
        if submitted < earliest:  # an older invoice, entered after signing up
            submitted = earliest + timedelta(seconds=rng.randrange(300, 3 * 86400))
        if submitted > end:
            submitted = earliest + (end - earliest) * rng.uniform(0.1, 1.0)
        record = None
        if not not_found:
            amount, tax = _split_tax(total, merchant.rate)
            record = RegistryPlan(
                number=number,
                issued_at=issued,
                merchant=merchant,
                buyer_name=buyer,
                amount=amount,
                tax=tax,
                total=total,
                issuer_kind=IssuerKind.AGENT if rng.random() < 0.02 else IssuerKind.SELF,
            )
            red_roll = rng.random()
            red_at = issued + timedelta(hours=math.exp(rng.gauss(math.log(72), 1.0)))
            if red_roll < 0.04 and red_at < end:
                if red_roll < 0.03:
                    record.status, red_total = RegistryStatus.RED_FLUSHED, total
                else:
                    record.status = RegistryStatus.PARTIALLY_RED_FLUSHED
                    red_total = max(CENT, _money(total * Decimal(str(rng.uniform(0.1, 0.6)))))
                red_amount, red_tax = _split_tax(red_total, merchant.rate)
                if record.status == RegistryStatus.RED_FLUSHED:
                    red_amount, red_tax = amount, tax
                record.red_total, record.red_amount, record.red_tax = red_total, red_amount, red_tax
                record.red_at = red_at
                record.red_number = invoice_number(seed, 3 * i + 1, _channel_digit(rng))
            registry.append(record)
        invoices.append(
            InvoicePlan(
                number=number,
                ordinal=0,
                consumer=consumer_index,
                buyer_name="" if not_found else buyer,
                issued_at=issued,
                total=total,
                submitted_at=submitted,
                channel=_CHANNELS[_pick(rng, _CHANNEL_CUM)][0],
                registry=record,
                risk_hold=rng.random() < 0.015,
                review_roll=rng.random(),
                review_delay=timedelta(seconds=rng.randrange(4 * 3600, 14 * 86400)),
                decide_delay=timedelta(seconds=rng.randrange(3, 90)),
                backlog=rng.random() < 0.35,
            )
        )

    ordinals: Counter = Counter()
    for k in range(repeats):  # somebody else submits an invoice that was already submitted
        rng = _rng(seed, "repeat", k)
        first = invoices[rng.randrange(primaries)]
        ordinals[first.number] += 1
        consumer_index = eligible_consumers[_pick(rng, consumer_cum)]
        if consumer_index == first.consumer and len(eligible_consumers) > 1:
            position = eligible_consumers.index(consumer_index)
            consumer_index = eligible_consumers[(position + 1) % len(eligible_consumers)]
        earliest = max(first.submitted_at, consumers[consumer_index].verified_at or end)
        submitted = earliest + timedelta(seconds=rng.randrange(3600, 10 * 86400))
        if submitted > end:
            submitted = earliest + (end - earliest) * rng.uniform(0.2, 1.0)
        invoices.append(
            InvoicePlan(
                number=first.number,
                ordinal=ordinals[first.number],
                consumer=consumer_index,
                buyer_name=first.buyer_name,
                issued_at=first.issued_at,
                total=first.total,
                submitted_at=submitted,
                channel=_CHANNELS[_pick(rng, _CHANNEL_CUM)][0],
                registry=first.registry,
                risk_hold=False,
                review_roll=1.0,
                review_delay=timedelta(hours=4),
                decide_delay=timedelta(seconds=rng.randrange(3, 90)),
                backlog=False,
            )
        )

    named = [c.real_name for c in consumers if c.real_name]
    active_cum = tuple(
        accumulate(m.popularity if m.status == MerchantStatus.ACTIVE else 0.0 for m in merchants)
    )
    for k in range(count // 10):  # issued, but nobody (yet) submitted them
        rng = _rng(seed, "unsubmitted", k)
        number = invoice_number(seed, 3 * k + 2, _channel_digit(rng))
        merchant = merchants[_pick(rng, active_cum if active_cum[-1] > 0 else merchant_cum)]
        total = _sample_total(rng, merchant.industry)
        amount, tax = _split_tax(total, merchant.rate)
        buyer = rng.choice(named) if named and rng.random() < 0.2 else _person_name(rng)
        registry.append(
            RegistryPlan(
                number=number,
                issued_at=clock.sample(rng),
                merchant=merchant,
                buyer_name=buyer,
                amount=amount,
                tax=tax,
                total=total,
                issuer_kind=IssuerKind.AGENT if rng.random() < 0.01 else IssuerKind.SELF,
                submitted=False,
            )
        )
    return invoices, registry


# --------------------------------------------------------------------------------------------
# Decisions: the campaign's rules applied in submission order
# --------------------------------------------------------------------------------------------

NOTE_SUBMITTED = "消费者提交"
NOTE_NOT_FOUND_YET = "税务系统暂未查到该发票，稍后重新核验"
NOTE_ACCEPTED = "税务核验通过，已进入抽奖池"
NOTE_REVERSED = "复核发现发票已红冲，取消入池资格"
NOTES = {
    "invoice.not_found": "多次核验均未在税务系统查到该发票",
    "invoice.duplicate": "该发票已由其他用户提交",
    "invoice.name_mismatch": "购买方名称与实名信息不一致",
    "invoice.below_minimum": "价税合计低于活动最低金额",
    "invoice.agent_issued": "税务机关代开发票不参与活动",
    "invoice.industry_not_eligible": "销售方行业或地区不在活动范围内",
    "invoice.seller_suspended": "销售方已暂停参与活动",
    "invoice.seller_blacklisted": "销售方已列入活动黑名单",
    "invoice.red_flushed": "发票已红冲",
    "invoice.partially_red_flushed": "发票已部分红冲，转人工审核",
    "limit.daily_reached": "已达每日参与上限",
    "limit.weekly_reached": "已达每周参与上限",
    "limit.monthly_reached": "已达每月参与上限",
    "limit.campaign_reached": "已达本期活动参与上限",
    "risk.manual_review": "风险规则命中，转人工审核",
    "review.rejected": "人工审核不通过",
}


def decide(
    invoices: list[InvoicePlan], consumers: list[ConsumerPlan], rules: Rules, now: datetime
) -> None:
    """Fill each plan's status, times and history, in submission order."""
    campaign = rules.campaign
    live_numbers: set[str] = set()
    counters: tuple[Counter, Counter, Counter, Counter] = (
        Counter(),
        Counter(),
        Counter(),
        Counter(),
    )
    end = now - timedelta(minutes=1)

    for plan in sorted(invoices, key=lambda p: (p.submitted_at, p.number, p.ordinal)):
        history = plan.history
        submitted = plan.submitted_at
        history.append(("", InvoiceStatus.PENDING, "", NOTE_SUBMITTED, submitted, False))
        record = plan.registry

        def reject(code: str, at: datetime, attempts: int = 1, *, plan=plan) -> None:
            plan.status, plan.rejection_code = InvoiceStatus.REJECTED, code
            plan.decided_at, plan.attempts = at, attempts
            plan.history.append(
                (InvoiceStatus.PENDING, InvoiceStatus.REJECTED, code, NOTES[code], at, False)
            )

        def go_live(*, plan=plan) -> None:
            live_numbers.add(plan.number)
            for counter, key in zip(counters, _period_keys(plan), strict=True):
                counter[key] += 1

        # 1. One invoice enters once; 2. the consumer's caps (both known at submission).
        at_submission = submitted + plan.decide_delay
        if plan.number in live_numbers:
            reject("invoice.duplicate", at_submission, 0)
            continue
        cap_code = _cap_reached(plan, campaign, counters)
        if cap_code:
            reject(cap_code, at_submission, 0)
            continue
        # 3. The registry: an unknown number is re-checked for two days before rejection.
        if record is None:
            rejected_at = submitted + timedelta(hours=48) + plan.decide_delay
            if rejected_at > end:
                plan.attempts = 1 + min(3, int((end - submitted).total_seconds() // 14400))
                plan.next_check_at = end + timedelta(minutes=30)
                go_live()
            else:
                reject("invoice.not_found", rejected_at, attempts=5)
            continue
        # The registry lags issuance by about an hour: a quick submission waits for it.
        check_at, attempts = at_submission, 1
        lag_until = plan.issued_at + timedelta(hours=1)
        if check_at < lag_until:
            check_at = max(lag_until, submitted + timedelta(minutes=30)) + plan.decide_delay * 20
            attempts = 2
        if check_at > end or (plan.backlog and submitted > now - timedelta(hours=36)):
            plan.attempts = attempts - 1
            plan.next_check_at = (
                check_at
                if check_at > end
                else end + timedelta(minutes=5 + plan.decide_delay.seconds)
            )
            go_live()
            continue
        if attempts == 2:
            history[-1] = (*history[-1][:3], NOTE_NOT_FOUND_YET, submitted, False)

        # 4. In the consumer's own name.
        if record.buyer_name != consumers[plan.consumer].real_name:
            reject("invoice.name_mismatch", check_at, attempts)
            continue
        # 5. The campaign's rules.
        merchant = record.merchant
        if record.total < campaign.min_total:
            reject("invoice.below_minimum", check_at, attempts)
            continue
        if campaign.exclude_agent_issued and record.issuer_kind == IssuerKind.AGENT:
            reject("invoice.agent_issued", check_at, attempts)
            continue
        if merchant.status == MerchantStatus.BLACKLISTED:
            reject("invoice.seller_blacklisted", check_at, attempts)
            continue
        if merchant.status == MerchantStatus.SUSPENDED:
            reject("invoice.seller_suspended", check_at, attempts)
            continue
        if not (rules.industry_ok(merchant.industry.code) and rules.area_ok(merchant.area_code)):
            reject("invoice.industry_not_eligible", check_at, attempts)
            continue
        red_before = record.red_at is not None and record.red_at <= check_at
        if red_before and record.status == RegistryStatus.RED_FLUSHED:
            reject("invoice.red_flushed", check_at, attempts)
            continue

        # 6. Live from here on: held for a person, or accepted.
        go_live()
        plan.attempts = attempts
        hold_code = ""
        if red_before:  # partially red-flushed before the check
            hold_code = "invoice.partially_red_flushed"
        elif plan.risk_hold:
            hold_code = "risk.manual_review"
        if not hold_code:
            plan.status, plan.decided_at, plan.entered_at = (
                InvoiceStatus.ACCEPTED,
                check_at,
                check_at,
            )
            history.append(
                (InvoiceStatus.PENDING, InvoiceStatus.ACCEPTED, "", NOTE_ACCEPTED, check_at, False)
            )
            continue
        plan.status = InvoiceStatus.HELD
        history.append(
            (
                InvoiceStatus.PENDING,
                InvoiceStatus.HELD,
                hold_code,
                NOTES[hold_code],
                check_at,
                False,
            )
        )
        reviewed_at = check_at + plan.review_delay
        if reviewed_at > end:
            continue
        remaining = record.total - (record.red_total if red_before else Decimal(0))
        plan.decided_at = reviewed_at
        if plan.review_roll < 0.7 and remaining >= campaign.min_total:
            plan.status, plan.entered_at = InvoiceStatus.ACCEPTED, reviewed_at
            history.append(
                (InvoiceStatus.HELD, InvoiceStatus.ACCEPTED, "", NOTE_ACCEPTED, reviewed_at, True)
            )
        else:
            code = "review.rejected"
            plan.status, plan.rejection_code = InvoiceStatus.REJECTED, code
            history.append(
                (InvoiceStatus.HELD, InvoiceStatus.REJECTED, code, NOTES[code], reviewed_at, True)
            )
            live_numbers.discard(plan.number)

    # 7. Re-verification sweeps find invoices red-flushed after their entry.
    for plan in invoices:
        record = plan.registry
        if (
            plan.status != InvoiceStatus.ACCEPTED
            or record is None
            or record.status != RegistryStatus.RED_FLUSHED
            or record.red_at is None
        ):
            continue
        swept_at = max(record.red_at, plan.entered_at) + plan.decide_delay * 1000
        if swept_at <= end:
            plan.status = InvoiceStatus.REVERSED
            plan.history.append(
                (
                    InvoiceStatus.ACCEPTED,
                    InvoiceStatus.REVERSED,
                    "invoice.red_flushed",
                    NOTE_REVERSED,
                    swept_at,
                    False,
                )
            )


def _period_keys(plan: InvoicePlan) -> tuple[tuple, tuple, tuple, int]:
    local = plan.submitted_at.astimezone(TZ)
    iso = local.isocalendar()
    return (
        (plan.consumer, local.date()),
        (plan.consumer, iso.year, iso.week),
        (plan.consumer, local.year, local.month),
        plan.consumer,
    )


def _cap_reached(
    plan: InvoicePlan, campaign: Campaign, counters: tuple[Counter, Counter, Counter, Counter]
) -> str:
    caps = (
        (campaign.cap_per_day, "limit.daily_reached"),
        (campaign.cap_per_week, "limit.weekly_reached"),
        (campaign.cap_per_month, "limit.monthly_reached"),
        (campaign.cap_per_campaign, "limit.campaign_reached"),
    )
    for (cap, code), counter, key in zip(caps, counters, _period_keys(plan), strict=True):
        if cap is not None and counter[key] >= cap:
            return code
    return ""


# --------------------------------------------------------------------------------------------
# Database
# --------------------------------------------------------------------------------------------


def _ensure_campaign(result: DemoResult) -> Rules:
    campaign, created = Campaign.objects.get_or_create(
        code=CAMPAIGN_CODE,
        defaults={
            "name": CAMPAIGN_NAME,
            "city_name": "郑州市",
            "starts_at": CAMPAIGN_STARTS,
            "ends_at": CAMPAIGN_ENDS,
            "status": CampaignStatus.ACTIVE,
        },
    )
    if created:  # rules are seeded with the campaign only: later edits by staff stay
        result.campaign_created = True
        CampaignIndustry.objects.bulk_create(
            CampaignIndustry(campaign=campaign, code=code, excluded=excluded, label=label)
            for code, excluded, label in CAMPAIGN_INDUSTRY_RULES
        )
        CampaignArea.objects.bulk_create(
            CampaignArea(campaign=campaign, code=code, label=label)
            for code, label in ZHENGZHOU_AREAS.items()
        )
        result.created["industry_rules"] = len(CAMPAIGN_INDUSTRY_RULES)
        result.created["areas"] = len(ZHENGZHOU_AREAS)
    return Rules(
        campaign=campaign,
        industries=list(campaign.industries.values_list("code", "excluded")),
        areas=list(campaign.areas.values_list("code", flat=True)),
    )


def _ensure_staff(result: DemoResult) -> dict[str, int]:
    """One demo user per role, in the role's group; returns role code → user id."""
    sync_roles()
    groups = {g.name: g for g in Group.objects.filter(name__in=[r.group_name for r in ROLES])}
    ids = {}
    for role in ROLES:
        user, created = User.objects.get_or_create(
            username=f"demo_{role.code}",
            defaults={"is_staff": True, "password": make_password(None)},
        )
        if created:
            result.created["staff"] += 1
            user.groups.add(groups[role.group_name])
        ids[role.code] = user.pk
    return ids


def _ensure_merchants(
    plans: list[MerchantPlan], now: datetime, result: DemoResult
) -> dict[str, int]:
    existing = _existing(Merchant, "uscc", (p.uscc for p in plans))
    new = [
        Merchant(
            uscc=p.uscc,
            name=p.name,
            area_code=p.area_code,
            industry_code=p.industry.code,
            address=p.address,
            status=p.status,
            status_reason=p.status_reason,
            status_changed_at=(
                None
                if p.status == MerchantStatus.ACTIVE
                else now - timedelta(days=p.status_changed_days_ago)
            ),
        )
        for p in plans
        if p.uscc not in existing
    ]
    Merchant.objects.bulk_create(new, batch_size=BATCH)
    result.created["merchants"] = len(new)
    return _existing(Merchant, "uscc", (p.uscc for p in plans), also="id")


def _ensure_consumers(plans: list[ConsumerPlan], result: DemoResult) -> list[int | None]:
    """Create missing consumers (natural key: phone); returns each plan's consumer id."""
    phone_field = Consumer._meta.get_field("phone_index")
    id_field = Consumer._meta.get_field("id_number_index")
    phone_keys = [phone_field.digest(p.phone) for p in plans]
    id_keys = [id_field.digest(p.id_number) if p.id_number else None for p in plans]
    by_phone = _existing(Consumer, "phone_index", phone_keys)
    by_id = _existing(Consumer, "id_number_index", filter(None, id_keys))
    missing = [
        p
        for p, phone_key, id_key in zip(plans, phone_keys, id_keys, strict=True)
        if phone_key not in by_phone and (id_key is None or id_key not in by_id)
    ]
    users = [
        User(
            username=f"c_{p.public_id.hex[:12]}",
            password=make_password(None),
            date_joined=p.registered_at,
        )
        for p in missing
    ]
    User.objects.bulk_create(users, batch_size=BATCH)
    if any(u.pk is None for u in users):  # backends that cannot return ids from bulk inserts
        ids = _existing(User, "username", (u.username for u in users), also="id")
        for u in users:
            u.pk = ids[u.username]
    consumers = [
        Consumer(
            user=u,
            public_id=p.public_id,
            real_name=p.real_name,
            id_number=p.id_number,
            phone=p.phone,
            verification_status=p.verification_status,
            verified_at=p.verified_at,
            status=p.status,
        )
        for p, u in zip(missing, users, strict=True)
    ]
    Consumer.objects.bulk_create(consumers, batch_size=BATCH)
    result.created["consumers"] = len(consumers)
    ids = _existing(Consumer, "phone_index", phone_keys, also="id")
    return [ids.get(key) for key in phone_keys]


def _registry_rows(
    records: Sequence[RegistryPlan], now: datetime, cache: dict[str, str]
) -> Iterator[TaxInvoiceRecord]:
    for r in records:
        m = r.merchant
        name_index = _name_index(r.buyer_name, cache)
        synced = min(now, max(r.issued_at, r.red_at or r.issued_at) + timedelta(minutes=70))
        yield TaxInvoiceRecord(
            number=r.number,
            invoice_type=InvoiceType.ORDINARY,
            issued_at=r.issued_at,
            seller_uscc=m.uscc,
            seller_name=m.name,
            buyer_name_index=name_index,
            amount=r.amount,
            tax=r.tax,
            total=r.total,
            issuer_kind=r.issuer_kind,
            industry_code=m.industry.code,
            area_code=m.area_code,
            status=r.status,
            red_total=r.red_total,
            last_synced_at=synced,
        )
        if r.red_number:
            yield TaxInvoiceRecord(
                number=r.red_number,
                invoice_type=InvoiceType.ORDINARY,
                issued_at=r.red_at,
                seller_uscc=m.uscc,
                seller_name=m.name,
                buyer_name_index=name_index,
                amount=-r.red_amount,
                tax=-r.red_tax,
                total=-r.red_total,
                issuer_kind=r.issuer_kind,
                industry_code=m.industry.code,
                area_code=m.area_code,
                status=RegistryStatus.NORMAL,
                is_red=True,
                reverses_number=r.number,
                last_synced_at=synced,
            )


def _value_converter(model_field, connection):
    """What `get_db_prep_save` does for the plain field types used here, without its overhead."""
    kind = type(model_field)
    ops = connection.ops
    if kind is models.DateTimeField:
        return ops.adapt_datetimefield_value
    if kind in (models.DecimalField, MoneyField):
        digits, places = model_field.max_digits, model_field.decimal_places
        return lambda value: ops.adapt_decimalfield_value(value, digits, places)
    if kind in (models.CharField, models.TextField, models.SlugField):
        return lambda value: value if value is None or type(value) is str else str(value)
    if kind in (models.BooleanField, models.ForeignKey):
        return lambda value: value
    # Anything else (UUIDs, JSON, custom fields): the field's own conversion.
    return lambda value: model_field.get_db_prep_save(value, connection)


def insert_plain_rows(model, objs: Sequence, *, batch: int = 5000) -> None:
    """Insert model instances fast: `executemany` on SQLite, `COPY` on PostgreSQL.

    Only for tables without encrypted fields whose ids are not needed afterwards (registry
    records, history rows): every field's `pre_save(add=True)` still runs, so defaults and
    auto-now fields behave as with `bulk_create`; model validation is skipped as there.
    """
    if not objs:
        return
    fields = [f for f in model._meta.concrete_fields if not (f.primary_key and f.auto_created)]
    if any(f.generated or f.has_db_default() for f in fields):  # let Django handle those
        model.objects.bulk_create(objs, batch_size=BATCH)
        return
    connection = connections[router.db_for_write(model)]
    if connection.vendor not in ("sqlite", "postgresql"):
        model.objects.bulk_create(objs, batch_size=BATCH)
        return
    converters = [(f, _value_converter(f, connection)) for f in fields]
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    columns = ", ".join(quote(f.column) for f in fields)
    with connection.cursor() as cursor:
        for chunk in _chunks(objs, batch):
            rows = [[convert(f.pre_save(obj, True)) for f, convert in converters] for obj in chunk]
            if connection.vendor == "postgresql":  # COPY: one stream, no per-row statements
                with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            else:  # SQLite: executemany loops in C inside the driver
                placeholders = ", ".join(["%s"] * len(fields))
                # Identifiers come from the model's own metadata, quoted; values are parameters.
                sql = f"INSERT INTO {table} ({columns}) VALUES ({placeholders})"  # noqa: S608 - quoted model identifiers
                cursor.executemany(sql, rows)


def _ensure_registry(records: list[RegistryPlan], now: datetime, result: DemoResult) -> None:
    wanted = [r.number for r in records] + [r.red_number for r in records if r.red_number]
    existing = _existing(TaxInvoiceRecord, "number", wanted)
    cache: dict[str, str] = {}
    created = Counter()
    # A red invoice is only added with its blue one: existing records are never amended.
    todo = [r for r in records if r.number not in existing]
    for batch in _chunks(todo, CHUNK):
        rows = [row for row in _registry_rows(batch, now, cache) if row.number not in existing]
        insert_plain_rows(TaxInvoiceRecord, rows)
        created["registry"] += len(rows)
        created["registry_red"] += sum(1 for row in rows if row.is_red)
    created["registry_extra"] = sum(
        1 for r in records if not r.submitted and r.number not in existing
    )
    result.created.update(created)


def _ensure_invoices(
    plans: list[InvoicePlan],
    consumer_ids: list[int | None],
    merchant_ids: dict,
    campaign: Campaign,
    reviewer_id: int | None,
    result: DemoResult,
) -> None:
    counts = Counter(_existing_number_counts(p.number for p in plans if p.ordinal == 0))
    todo = [p for p in plans if p.ordinal >= counts.get(p.number, 0)]
    todo = [p for p in todo if consumer_ids[p.consumer] is not None]
    for batch in _chunks(todo, CHUNK):
        invoices = []
        for p in batch:
            record = p.registry
            merchant = record.merchant if record else None
            invoices.append(
                Invoice(
                    number=p.number,
                    invoice_type=InvoiceType.ORDINARY,
                    issue_date=p.issued_at.date(),
                    issued_at=p.issued_at,
                    seller_uscc=merchant.uscc if merchant else "",
                    seller_name=merchant.name if merchant else "",
                    buyer_name=p.buyer_name,
                    amount=record.amount if record else None,
                    tax=record.tax if record else None,
                    total=p.total,
                    source_channel=p.channel,
                    consumer_id=consumer_ids[p.consumer],
                    merchant_id=merchant_ids.get(merchant.uscc) if merchant else None,
                    campaign=campaign if p.status != InvoiceStatus.PENDING else None,
                    status=p.status,
                    rejection_code=p.rejection_code,
                    submitted_at=p.submitted_at,
                    decided_at=p.decided_at,
                    entered_at=p.entered_at,
                    next_check_at=p.next_check_at,
                    verification_attempts=p.attempts,
                )
            )
        Invoice.objects.bulk_create(invoices, batch_size=BATCH)
        if any(inv.pk is None for inv in invoices):  # backends without RETURNING
            ids = _existing(Invoice, "uid", (inv.uid for inv in invoices), also="id")
            for inv in invoices:
                inv.pk = ids[inv.uid]
        changes = [
            InvoiceStatusChange(
                invoice_id=inv.pk,
                from_status=from_status,
                to_status=to_status,
                code=code,
                note=note,
                actor_id=reviewer_id if by_reviewer else None,
                at=at,
            )
            for inv, p in zip(invoices, batch, strict=True)
            for from_status, to_status, code, note, at, by_reviewer in p.history
        ]
        insert_plain_rows(InvoiceStatusChange, changes)
        result.created["invoices"] += len(invoices)
        result.created["history"] += len(changes)
        result.invoice_statuses.update(inv.status for inv in invoices)


def _existing_number_counts(numbers: Iterable[str]) -> dict[str, int]:
    counts: Counter = Counter()
    for batch in _chunks(list(numbers), _lookup_chunk(Invoice)):
        counts.update(Invoice.objects.filter(number__in=batch).values_list("number", flat=True))
    return counts


def seed_demo(options: DemoOptions) -> DemoResult:
    """Create whatever part of the demo is missing, in one transaction."""
    started = time.monotonic()
    result = DemoResult(options=options)
    phase = _Phases(result.phases)
    with transaction.atomic():
        rules = _ensure_campaign(result)
        now = reference_time(options, rules.campaign)
        merchants = plan_merchants(options.seed, options.merchants)
        consumers = plan_consumers(options.seed, options.consumers, now)
        invoices, registry = plan_invoices(
            options.seed, options.invoices, merchants, consumers, now
        )
        decide(invoices, consumers, rules, now)
        phase("plan")
        staff = _ensure_staff(result)
        merchant_ids = _ensure_merchants(merchants, now, result)
        consumer_ids = _ensure_consumers(consumers, result)
        phase("staff, merchants and consumers")
        _ensure_registry(registry, now, result)
        phase("registry")
        _ensure_invoices(
            invoices,
            consumer_ids,
            merchant_ids,
            rules.campaign,
            staff.get("invoice_reviewer"),
            result,
        )
        phase("invoices and history")
    result.seconds = time.monotonic() - started
    return result


def reference_time(options: DemoOptions, campaign: Campaign) -> datetime:
    """The demo's "now": when its campaign was seeded, so later runs plan the very same data.

    Nothing is issued, submitted or decided after it. `options.now` overrides it (tests).
    """
    if options.now is not None:
        now = options.now
    elif campaign.created_at >= CAMPAIGN_STARTS + timedelta(days=2):
        now = campaign.created_at
    else:  # a campaign row created by hand before the window opened
        now = timezone.now()
    now = now.astimezone(TZ)
    if now < CAMPAIGN_STARTS + timedelta(days=2):
        raise DemoError(
            f"The demo campaign starts {CAMPAIGN_STARTS:%Y-%m-%d}; the clock says {now:%Y-%m-%d}, "
            "too early for invoices issued inside its window."
        )
    return now


class _Phases:
    """Records how long each step took (shown by `seed_demo -v 2`)."""

    def __init__(self, into: dict[str, float]) -> None:
        self.into, self.last = into, time.monotonic()

    def __call__(self, name: str) -> None:
        now = time.monotonic()
        self.into[name] = now - self.last
        self.last = now
