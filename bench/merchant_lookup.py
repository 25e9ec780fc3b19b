"""Benchmark: the public merchant lookup over 100,000 merchants on PostgreSQL.

    .venv/bin/python bench/merchant_lookup.py                    # 100,000 merchants
    .venv/bin/python bench/merchant_lookup.py --merchants 20000  # a quicker run
    .venv/bin/python bench/merchant_lookup.py --reuse            # keep the data of the last run

It creates (or, with --reuse, keeps) a database of its own next to the one in DATABASE_URL
(default: postgres://postgres@127.0.0.1:5432/lotteryinvoice_bench_lookup), migrates it (which
installs the n-gram GIN index of merchants 0002), inserts `--merchants` merchants set-based with
generate_series (Chinese names from brand × trade × street, eight districts, eight industries,
2 % suspended) and a running campaign with the default industry and area rules, and ANALYZEs.

Then, for typical searches (a two-character word, a longer phrase, a word with a district, a
district with an industry, a rare name), it prints the plan of the page query
(`EXPLAIN (ANALYZE, BUFFERS)`), and the median and 95th percentile of `--runs` requests of the
public API (`/api/v1/merchants/lookup/`, count + page + qualification) through Django's test
client. The plans must show the index (`merchant_name_grams_gin` or the B-tree indexes of
area and industry), never a sequential scan of merchants_merchant.

Benchmarks print figures; they are not timed tests. Record them in docs/content.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_SERVER = "postgres://postgres@127.0.0.1:5432/lotteryinvoice_bench_lookup"
BRANDS = [
    "合记",
    "萧记",
    "老蔡",
    "方中山",
    "阿五",
    "巴奴",
    "蜜雪",
    "胖东来",
    "丹尼斯",
    "大张",
    "四厨",
    "葛记",
    "蔡记",
    "永和",
    "管城",
    "德化",
    "金博大",
    "正弘",
    "大卫城",
    "万象",
]
TRADES = [
    "烩面",
    "胡辣汤",
    "超市",
    "药房",
    "火锅",
    "书店",
    "影城",
    "酒店",
    "便利店",
    "茶饮",
    "烤鸭",
    "面馆",
    "水果",
    "烘焙",
    "眼镜",
    "花店",
    "健身",
    "洗衣",
    "理发",
    "菜市场",
]
PLACES = [
    "花园路",
    "经三路",
    "二七广场",
    "紫荆山",
    "郑东",
    "高新",
    "中原",
    "惠济",
    "金水路",
    "农业路",
    "大学路",
    "航海路",
    "建设路",
    "文化路",
    "中州大道",
]
AREAS = ["410102", "410103", "410104", "410105", "410106", "410108", "410122", "410181"]
INDUSTRIES = ["5211", "6210", "6110", "8810", "9011", "5251", "8010", "1469"]
SEARCHES = [
    ("two-character word", {"q": "烩面"}),
    ("phrase", {"q": "胡辣汤花园路"}),
    ("word + district", {"q": "超市", "area": "410105"}),
    ("district + industry", {"area": "410103", "industry": "62"}),
    ("rare name", {"q": "葛记烘焙中州大道店12345"}),
    ("one character", {"q": "鸭"}),
]


def database_url(args) -> str:
    url = args.database_url or DEFAULT_SERVER
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/lotteryinvoice_bench_lookup"))


def create_database(url: str, *, reuse: bool) -> bool:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and reuse:
            return False
        if exists:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return True


SEED_SQL = """
INSERT INTO merchants_merchant (uscc, name, area_code, industry_code, address, status,
                                status_reason, created_at, updated_at)
SELECT 'B' || lpad(i::text, 17, '0'),
       (%(brands)s::text[])[1 + i %% 20] || (%(trades)s::text[])[1 + (i / 20) %% 20]
       || (%(places)s::text[])[1 + (i / 400) %% 15] || '店' || i,
       (%(areas)s::text[])[1 + (i / 3) %% 8],
       (%(industries)s::text[])[1 + (i / 7) %% 8],
       '郑州市' || (%(places)s::text[])[1 + i %% 15] || i || '号',
       CASE WHEN i %% 50 = 0 THEN 'suspended' ELSE 'active' END, '', now(), now()
FROM generate_series(1, %(count)s) AS i
"""


def seed(count: int) -> None:
    from datetime import timedelta

    from django.db import connection, transaction
    from django.utils import timezone

    from apps.invoices.models import Campaign, CampaignArea, CampaignIndustry

    with transaction.atomic():
        campaign = Campaign.objects.create(
            code="bench-2026",
            name="郑州市2026年有奖发票活动",
            starts_at=timezone.now() - timedelta(days=10),
            ends_at=timezone.now() + timedelta(days=170),
            status="active",
        )
        for code, excluded in [
            ("52", False),
            ("62", False),
            ("61", False),
            ("88", False),
            ("90", False),
            ("904", True),
            ("905", True),
            ("89", False),
            ("80", False),
            ("8020", True),
            ("8080", True),
        ]:
            CampaignIndustry.objects.create(campaign=campaign, code=code, excluded=excluded)
        CampaignArea.objects.create(campaign=campaign, code="4101")
        with connection.cursor() as cur:
            cur.execute(
                SEED_SQL,
                {
                    "brands": BRANDS,
                    "trades": TRADES,
                    "places": PLACES,
                    "areas": AREAS,
                    "industries": INDUSTRIES,
                    "count": count,
                },
            )
    with connection.cursor() as cur:
        cur.execute("VACUUM ANALYZE merchants_merchant")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--merchants", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", ""))
    args = parser.parse_args()

    url = database_url(args)
    created = create_database(url, reuse=args.reuse)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lotteryinvoice.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import setup_test_environment

    from apps.content.selectors import merchant_lookup
    from apps.merchants.models import Merchant

    settings.API_THROTTLE_RATES = {**settings.API_THROTTLE_RATES, "merchant_lookup": "100000/min"}
    if created:
        call_command("migrate", verbosity=0)
        started = time.perf_counter()
        seed(args.merchants)
        print(f"seeded {args.merchants:,} merchants in {time.perf_counter() - started:.1f} s")
    total = Merchant.objects.count()
    print(f"merchants in the table: {total:,}  (PostgreSQL {connection.pg_version // 10000})")

    setup_test_environment()
    client = Client()
    failures = 0
    for label, params in SEARCHES:
        qs = merchant_lookup(**params)
        plan = qs[:20].explain(analyze=True, buffers=True)
        seq_scan = "Seq Scan on merchants_merchant" in plan
        failures += seq_scan
        timings = []
        for _ in range(args.runs):
            started = time.perf_counter()
            response = client.get("/api/v1/merchants/lookup/", params)
            timings.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                raise SystemExit(f"{label}: HTTP {response.status_code} {response.content!r}")
        data = response.json()
        timings.sort()
        p95 = timings[max(0, int(len(timings) * 0.95) - 1)]
        print(f"\n== {label}: {params}")
        print(f"matches: {data['count']:,}; first: {[r['name'] for r in data['results'][:3]]}")
        print(
            f"API request (count + page + qualification): median "
            f"{statistics.median(timings):.1f} ms, p95 {p95:.1f} ms over {args.runs} runs"
        )
        print("plan of the page query:" + (" ** SEQUENTIAL SCAN **" if seq_scan else ""))
        print("\n".join("    " + line for line in plan.splitlines()))
    print(f"\n{'FAIL' if failures else 'OK'}: {failures} search(es) scanned the table")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
