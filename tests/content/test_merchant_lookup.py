"""The public merchant lookup: by name, area and industry, with qualification in the current
campaign; suspended or blacklisted merchants disappear at once; rate-limited; answered from
the n-gram index (EXPLAIN)."""

from __future__ import annotations

import pytest
from django.db import connection

from apps.content.selectors import GRAMS_MATCH, merchant_lookup
from apps.invoices.models import CampaignArea, CampaignIndustry
from apps.merchants import services as merchant_services
from apps.merchants.choices import MerchantStatus
from tests.factories.core import CampaignFactory, MerchantFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def campaign(db):
    campaign = CampaignFactory(name="郑州市2026年有奖发票活动")
    for code, excluded in [("52", False), ("62", False), ("90", False), ("904", True)]:
        CampaignIndustry.objects.create(campaign=campaign, code=code, excluded=excluded)
    CampaignArea.objects.create(campaign=campaign, code="4101")
    return campaign


@pytest.fixture
def shops(db):
    return {
        "noodles": MerchantFactory(name="合记烩面馆", area_code="410105", industry_code="6210"),
        "market": MerchantFactory(
            name="丹尼斯超市花园路店", area_code="410105", industry_code="5211"
        ),
        "casino": MerchantFactory(name="金水彩票游艺厅", area_code="410105", industry_code="9041"),
        "factory": MerchantFactory(name="郑州烩面调料厂", area_code="410122", industry_code="1469"),
        "kaifeng": MerchantFactory(name="开封烩面馆", area_code="410202", industry_code="6210"),
    }


def names(response) -> list[str]:
    return [r["name"] for r in response.json()["results"]]


def test_search_by_name_area_and_industry(client, campaign, shops):
    assert names(client.get("/api/v1/merchants/lookup/", {"q": "烩面"})) == [
        "合记烩面馆",
        "开封烩面馆",
        "郑州烩面调料厂",
    ]
    assert names(client.get("/api/v1/merchants/lookup/", {"q": "烩面", "area": "410122"})) == [
        "郑州烩面调料厂"
    ]
    assert names(client.get("/api/v1/merchants/lookup/", {"industry": "52"})) == [
        "丹尼斯超市花园路店"
    ]
    assert names(client.get("/api/v1/merchants/lookup/", {"q": "超市 花园"})) == []
    assert names(client.get("/api/v1/merchants/lookup/", {"q": "超市花园"})) == [
        "丹尼斯超市花园路店"
    ]


def test_qualification_follows_the_campaign_rules(client, campaign, shops):
    data = client.get("/api/v1/merchants/lookup/").json()
    assert data["campaign"]["code"] == campaign.code
    by_name = {r["name"]: r for r in data["results"]}
    assert by_name["合记烩面馆"]["qualifies"] is True
    assert by_name["合记烩面馆"]["area_name"] == "金水区"
    assert by_name["丹尼斯超市花园路店"]["qualifies"] is True
    assert by_name["金水彩票游艺厅"]["qualifies"] is False  # 904 excluded
    assert by_name["郑州烩面调料厂"]["qualifies"] is False  # manufacturing
    assert by_name["开封烩面馆"]["qualifies"] is False  # outside Zhengzhou
    assert all(r["reason"] for r in data["results"] if not r["qualifies"])


def test_without_a_running_campaign_nothing_qualifies(client, shops):
    data = client.get("/api/v1/merchants/lookup/", {"q": "烩面"}).json()
    assert data["campaign"] is None
    assert {r["qualifies"] for r in data["results"]} == {False}


def test_suspended_and_blacklisted_merchants_disappear_at_once(client, campaign, shops, roles):
    from .conftest import staff_in_role

    officer = staff_in_role("risk_analyst", "risk")
    assert "合记烩面馆" in names(client.get("/api/v1/merchants/lookup/", {"q": "烩面"}))
    merchant_services.merchant_set_status(
        merchant=shops["noodles"], status=MerchantStatus.SUSPENDED, reason="核查中", actor=officer
    )
    merchant_services.merchant_set_status(
        merchant=shops["kaifeng"], status=MerchantStatus.BLACKLISTED, reason="虚开", actor=officer
    )
    assert names(client.get("/api/v1/merchants/lookup/", {"q": "烩面"})) == ["郑州烩面调料厂"]
    page = client.get("/info/merchants/", {"q": "烩面"}).content.decode()
    assert "合记烩面馆" not in page and "开封烩面馆" not in page and "郑州烩面调料厂" in page
    assert client.get("/api/v1/merchants/lookup/")["Cache-Control"].startswith("max-age=0")


def test_bad_input_is_a_400(client):
    assert client.get("/api/v1/merchants/lookup/", {"q": "x" * 51}).status_code == 400
    bad_area = client.get("/api/v1/merchants/lookup/", {"area": "110101"})
    assert bad_area.status_code == 400 and bad_area.json()["code"] == "lookup.query_invalid"
    assert client.get("/info/merchants/", {"industry": "99"}).status_code == 400


def test_lookup_is_rate_limited(client, settings, shops):
    settings.API_THROTTLE_RATES = {**settings.API_THROTTLE_RATES, "merchant_lookup": "3/min"}
    for _ in range(3):
        assert client.get("/api/v1/merchants/lookup/", {"q": "烩面"}).status_code == 200
    refused = client.get("/api/v1/merchants/lookup/", {"q": "烩面"})
    assert refused.status_code == 429 and refused.json()["code"] == "throttled"
    page = client.get("/info/merchants/", {"q": "烩面"})
    assert page.status_code == 429 and "Retry-After" in page


def test_page_works_as_a_plain_form(client, campaign, shops):
    page = client.get("/info/merchants/")
    html = page.content.decode()
    assert '<form method="get"' in html and '<label for="q">' in html and "<script" not in html
    results = client.get("/info/merchants/", {"q": "烩面", "area": "410105"}).content.decode()
    assert "合记烩面馆" in results and "开封烩面馆" not in results
    assert '<th scope="row">' in results


BRANDS = ["合记", "萧记", "老蔡", "方中山", "阿五", "巴奴", "蜜雪", "胖东来", "丹尼斯", "大张"]
TRADES = ["烩面", "胡辣汤", "超市", "药房", "火锅", "书店", "影城", "酒店", "便利店", "茶饮"]
PLACES = ["花园路", "经三路", "二七广场", "紫荆山", "郑东", "高新", "中原", "惠济"]
AREAS = ["410102", "410103", "410104", "410105", "410106", "410108", "410122", "410181"]
INDUSTRIES = ["5211", "6210", "6110", "8810", "9011", "5251", "8010", "5292"]
SEED_SQL = """
INSERT INTO merchants_merchant (uscc, name, area_code, industry_code, address, status,
                                status_reason, created_at, updated_at)
SELECT 'T' || lpad(i::text, 17, '0'),
       (%(brands)s::text[])[1 + i %% 10] || (%(trades)s::text[])[1 + (i / 10) %% 10]
       || (%(places)s::text[])[1 + (i / 100) %% 8] || '店' || i,
       (%(areas)s::text[])[1 + i %% 8],
       (%(industries)s::text[])[1 + (i / 7) %% 8],
       '', CASE WHEN i %% 50 = 0 THEN 'suspended' ELSE 'active' END, '', now(), now()
FROM generate_series(1, %(count)s) AS i
"""


@pytest.mark.postgres
def test_name_search_uses_the_gram_index_not_a_table_scan():
    with connection.cursor() as cur:
        cur.execute(
            SEED_SQL,
            {
                "brands": BRANDS,
                "trades": TRADES,
                "places": PLACES,
                "areas": AREAS,
                "industries": INDUSTRIES,
                "count": 30_000,
            },
        )
        cur.execute("ANALYZE merchants_merchant")
    qs = merchant_lookup(q="胡辣汤花园")
    plan = qs[:20].explain()
    assert "merchant_name_grams_gin" in plan, plan
    assert "Seq Scan on merchants_merchant" not in plan, plan
    found = list(qs[:20])
    assert found and all("胡辣汤花园" in m.name for m in found)
    assert GRAMS_MATCH.startswith("merchant_name_grams(")
    # Two-character words, the usual Chinese query, are answered from the index too.
    assert "merchant_name_grams_gin" in merchant_lookup(q="烩面")[:20].explain()
