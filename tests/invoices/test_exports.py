"""Admin exports of invoices, campaign entries, draw winners and instant awards (masked unless
the user may reveal personal data, audited, formula-safe), and the import of campaign industry
and area lists through `campaign_rule_upsert`."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from openpyxl import Workbook, load_workbook

from apps.audit.models import AuditEvent
from apps.draws.choices import InstantPrizeKind
from apps.draws.models import DrawWinner, InstantAward, InstantPool, InstantTier
from apps.draws.resources import DrawWinnerResource, InstantAwardResource
from apps.invoices.campaign_lists import CampaignListError, campaign_rule_upsert
from apps.invoices.choices import CampaignStatus, InvoiceStatus
from apps.invoices.models import CampaignArea, CampaignIndustry
from apps.invoices.resources import CampaignEntryResource, InvoiceResource
from tests.accounts.helpers import sign_in_staff
from tests.draws.conftest import add_entries, drawn_draw, make_staff
from tests.factories.core import ConsumerFactory, InvoiceFactory, MerchantFactory, UserFactory

pytestmark = pytest.mark.django_db

INVOICES = reverse("admin:invoices_invoice_export")
WINNERS = reverse("admin:draws_drawwinner_export")
AWARDS = reverse("admin:draws_instantaward_export")
INDUSTRIES = reverse("admin:invoices_campaignindustry_changelist")
INDUSTRY_IMPORT = reverse("admin:invoices_campaignindustry_import")
INDUSTRY_PROCESS = reverse("admin:invoices_campaignindustry_process_import")
INDUSTRY_EXPORT = reverse("admin:invoices_campaignindustry_export")
AREA_IMPORT = reverse("admin:invoices_campaignarea_import")
AREA_PROCESS = reverse("admin:invoices_campaignarea_process_import")
FORMAT = {"csv": "0", "xlsx": "1"}


def staff_client(group: str) -> Client:
    user = UserFactory(is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    return sign_in_staff(Client(), type(user).objects.get(pk=user.pk))


def export(client, url, kind, *, resource=0, query=""):
    """The export form as a browser posts it: a format, a resource, all its columns ticked."""
    page = client.get(url + query)
    assert page.status_code == 200
    data = {"format": FORMAT[kind], "resource": str(resource)}
    for name, field in page.context["form"].fields.items():
        if getattr(field, "resource_index", None) == resource:
            data[name] = "on"
    return client.post(url + query, data)


def read_export(response, kind, resource=None) -> list[dict]:
    """The file's rows as dicts keyed by column header — or, given the resource class, by its
    field names (headers are translated labels)."""
    assert response.status_code == 200
    assert "attachment" in response["Content-Disposition"]
    body = b"".join(response.streaming_content)
    if kind == "csv":
        assert body.startswith(b"\xef\xbb\xbf")  # BOM: Excel reads it as UTF-8
        rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    else:
        sheet = load_workbook(io.BytesIO(body)).active
        rows = [["" if v is None else v for v in r] for r in sheet.iter_rows(values_only=True)]
    header, *data = rows
    if resource is not None:
        names = {str(field.column_name): name for name, field in resource.fields.items()}
        header = [names[h] for h in header]
    return [dict(zip(header, row, strict=True)) for row in data]


def last_export() -> AuditEvent:
    return AuditEvent.objects.filter(action="data.exported").latest("seq")


@pytest.fixture
def invoices(campaign):
    consumer = ConsumerFactory(real_name="欧阳小明", phone="13812345678")
    merchant = MerchantFactory(name="=cmd|' /C calc'!A0")
    entered = InvoiceFactory(
        consumer=consumer,
        merchant=merchant,
        seller_name="=cmd|' /C calc'!A0",
        buyer_name="欧阳小明",
        campaign=campaign,
        status=InvoiceStatus.ACCEPTED,
        entered_at=timezone.now(),
    )
    pending = InvoiceFactory(consumer=consumer, merchant=merchant, buyer_name="欧阳小明")
    return entered, pending


# --- invoices and entries --------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_invoice_export_is_masked_without_the_reveal_permission(invoices, kind):
    entered, pending = invoices
    client = staff_client("数据分析")  # statistician: views invoices, never personal data
    rows = read_export(export(client, INVOICES, kind), kind, InvoiceResource)

    assert {r["number"] for r in rows} == {entered.number, pending.number}
    row = next(r for r in rows if r["number"] == entered.number)
    assert row["buyer_name"] == "欧**明"
    assert row["consumer_name"] == "欧**明"
    assert row["consumer_phone"] == "138****5678"
    assert "欧阳小明" not in str(rows) and "13812345678" not in str(rows)
    # Formula injection neutralised; amounts stay numbers in a spreadsheet.
    assert row["seller_name"] == "'=cmd|' /C calc'!A0"
    assert row["merchant_name"] == "'=cmd|' /C calc'!A0"
    if kind == "xlsx":
        assert row["total"] == 200 and isinstance(row["total"], (int, float))
    else:
        assert row["total"] == "200.00"

    event = last_export()
    assert event.category == "export" and event.actor_username
    assert event.target_type == "invoices.invoice"
    assert event.after["rows"] == 2 and event.after["format"] == kind
    assert event.after["personal_data"] == "masked"
    assert event.after["resource"] == "InvoiceResource"


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_invoice_export_is_unmasked_with_the_reveal_permission_and_audited_as_reveal(
    invoices, kind
):
    client = staff_client("风控专员")  # risk analyst: may reveal personal data
    rows = read_export(export(client, INVOICES, kind), kind, InvoiceResource)
    assert {r["buyer_name"] for r in rows} == {"欧阳小明"}
    assert {r["consumer_phone"] for r in rows} == {"13812345678"}
    event = last_export()
    assert event.category == "reveal" and event.after["personal_data"] == "revealed"


def test_export_follows_the_changelist_filter_and_records_it(invoices):
    entered, _pending = invoices
    client = staff_client("审计员")
    response = export(client, INVOICES, "csv", query="?status__exact=accepted")
    rows = read_export(response, "csv", InvoiceResource)
    assert [r["number"] for r in rows] == [entered.number]
    assert last_export().after["filters"] == {"status__exact": "accepted"}


def test_campaign_entries_are_the_entered_invoices(invoices, campaign):
    entered, _pending = invoices
    InvoiceFactory(campaign=campaign, status=InvoiceStatus.REVERSED, entered_at=timezone.now())
    client = staff_client("数据分析")
    rows = read_export(export(client, INVOICES, "xlsx", resource=1), "xlsx", CampaignEntryResource)
    assert [r["number"] for r in rows] == [entered.number]
    assert rows[0]["campaign"] == campaign.code
    assert rows[0]["consumer_name"] == "欧**明"
    event = last_export()
    assert event.after["resource"] == "CampaignEntryResource" and event.after["rows"] == 1


def test_only_the_selected_columns_are_exported(invoices):
    """No personal column chosen: nothing to mask or reveal, even for a user who may reveal."""
    client = staff_client("风控专员")
    client.get(INVOICES)
    response = client.post(
        INVOICES,
        {
            "format": FORMAT["csv"],
            "resource": "0",
            "invoiceresource_number": "on",
            "invoiceresource_total": "on",
        },
    )
    rows = read_export(response, "csv", InvoiceResource)
    assert set(rows[0]) == {"number", "total"}
    headers = [str(InvoiceResource.fields[f].column_name) for f in ("number", "total")]
    event = last_export()
    assert event.after["columns"] == headers
    assert event.after["personal_data"] == "none" and event.category == "export"


def test_export_needs_the_view_permission(client, invoices):
    sign_in_staff(client, UserFactory(is_staff=True))
    assert client.get(INVOICES).status_code == 403
    assert client.post(INVOICES, {"format": "0", "resource": "0"}).status_code == 403
    assert not AuditEvent.objects.filter(action="data.exported").exists()


def test_export_reads_in_chunks_with_the_relations_joined(invoices, django_assert_max_num_queries):
    """Two invoices or two thousand: a fixed number of queries (no query per row)."""
    campaign = invoices[0].campaign
    for _ in range(30):
        InvoiceFactory(campaign=campaign, buyer_name="张三")
    client = staff_client("数据分析")
    page = client.get(INVOICES)
    assert page.status_code == 200
    data = {"format": "0", "resource": "0", "invoiceresource_consumer_name": "on"}
    with django_assert_max_num_queries(20):
        response = client.post(INVOICES, data)
    assert len(read_export(response, "csv")) == 32


# --- draw winners and instant awards -------------------------------------------------------


@pytest.fixture
def drawn(campaign):
    manager = make_staff("draw_manager", "draws.manage_draw")
    a = make_staff("officer_a", "draws.execute_draw")
    b = make_staff("officer_b", "draws.execute_draw")
    now = timezone.now()
    window = (now - timedelta(days=10), now + timedelta(days=1), now + timedelta(days=1, hours=1))
    consumers = [ConsumerFactory(real_name=f"王{n}明", phone=f"1391234{n:04d}") for n in range(12)]
    add_entries(campaign, 12, start=window[0], consumers=consumers)
    return drawn_draw(campaign, manager, window, a, b)


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_winner_export_masks_for_the_auditor_and_reveals_for_the_risk_analyst(drawn, kind):
    winners = DrawWinner.objects.filter(draw=drawn).count()
    assert winners == 6

    masked = read_export(export(staff_client("审计员"), WINNERS, kind), kind, DrawWinnerResource)
    assert len(masked) == winners
    assert all(r["draw"] == drawn.code for r in masked)
    assert all(r["winner_name"].startswith("王*") for r in masked)
    assert all("****" in r["winner_phone"] for r in masked)
    assert all("*" * 10 in r["winner_id_number"] for r in masked)
    assert last_export().after["personal_data"] == "masked"

    revealed = read_export(
        export(staff_client("风控专员"), WINNERS, kind), kind, DrawWinnerResource
    )
    assert {r["winner_name"] for r in revealed} <= {f"王{n}明" for n in range(12)}
    event = last_export()
    assert event.category == "reveal" and event.after["rows"] == winners
    assert event.target_type == "draws.drawwinner"


def test_the_statistician_cannot_export_winners(drawn):
    assert staff_client("数据分析").get(WINNERS).status_code == 403


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_instant_award_export(campaign, kind):
    now = timezone.now()
    pool = InstantPool.objects.create(
        campaign=campaign,
        name="郑州即时奖池",
        active_from=now - timedelta(days=1),
        active_until=now + timedelta(days=1),
    )
    tier = InstantTier.objects.create(
        pool=pool,
        name="+20元现金",
        kind=InstantPrizeKind.CASH,
        face_value=Decimal("20.00"),
        total_quantity=10,
        remaining=9,
        probability=Decimal("0.5"),
    )
    consumer = ConsumerFactory(real_name="李四", phone="13700001111")
    invoice = InvoiceFactory(
        consumer=consumer, campaign=campaign, status=InvoiceStatus.ACCEPTED, entered_at=now
    )
    InstantAward.objects.create(
        invoice=invoice,
        consumer=consumer,
        pool=pool,
        tier=tier,
        kind=tier.kind,
        amount=Decimal("20.00"),
        day=timezone.localdate(),
        drawn_at=now,
    )
    rows = read_export(export(staff_client("审计员"), AWARDS, kind), kind, InstantAwardResource)
    assert len(rows) == 1
    row = rows[0]
    assert row["invoice"] == invoice.number
    assert row["consumer_name"] == "李*" and row["consumer_phone"] == "137****1111"
    assert row["tier"] == "'+20元现金"
    event = last_export()
    assert event.target_type == "draws.instantaward" and event.after["rows"] == 1


# --- campaign industry and area lists ----------------------------------------------------------


def upload(client, url, content: bytes, *, kind="csv"):
    return client.post(
        url,
        {
            "import_file": SimpleUploadedFile(f"list.{kind}", content),
            "format": FORMAT[kind],
            "resource": "0",
        },
    )


def confirm(client, url, preview):
    form = preview.context["confirm_form"]
    fields = ("import_file_name", "original_file_name", "format", "resource")
    return client.post(url, {f: form.initial.get(f, "") for f in fields})


def csv_bytes(rows) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue().encode("utf-8")


def test_industry_list_import_previews_then_writes_through_the_service(campaign):
    client = staff_client("专班管理员")
    assert client.get(INDUSTRIES).status_code == 200
    assert client.get(INDUSTRY_IMPORT).status_code == 200
    content = csv_bytes(
        [
            ["campaign", "code", "excluded", "label"],
            [campaign.code, "52", "", "零售业"],  # line 2: label added
            [campaign.code, "5811", "是", "图书出版"],  # line 3: new exclusion
            [campaign.code, "5A", "", ""],  # line 4: bad code
            ["no-such-campaign", "52", "", ""],  # line 5: unknown campaign
            [campaign.code, "62", "maybe", ""],  # line 6: bad flag
            [campaign.code, "90", "0", ""],  # line 7: unchanged
        ]
    )
    before = AuditEvent.objects.count()
    preview = upload(client, INDUSTRY_IMPORT, content)
    assert preview.status_code == 200
    result = preview.context["result"]
    assert {r.number + 1 for r in result.invalid_rows} == {4, 5, 6}
    assert [r.import_type for r in result.valid_rows()] == ["update", "new", "skip"]
    assert "confirm_form" in preview.context
    assert AuditEvent.objects.count() == before
    assert not CampaignIndustry.objects.filter(code="5811").exists()

    done = confirm(client, INDUSTRY_PROCESS, preview)
    assert done.status_code == 302
    assert CampaignIndustry.objects.get(campaign=campaign, code="52").label == "零售业"
    assert CampaignIndustry.objects.get(campaign=campaign, code="5811").excluded is True
    actions = list(
        AuditEvent.objects.filter(action__startswith="campaign.")
        .order_by("seq")
        .values_list("action", flat=True)
    )
    assert actions == [
        "campaign.industry_rule_updated",
        "campaign.industry_rule_created",
        "campaign.industry_list_imported",
    ]
    summary = AuditEvent.objects.get(action="campaign.industry_list_imported")
    assert summary.after["invalid_lines"] == [4, 5, 6] and summary.after["unchanged"] == 1
    notes = [str(m) for m in get_messages(done.wsgi_request)]
    assert sum("not imported" in n or "未导入" in n for n in notes) == 3


def test_area_list_import_from_xlsx_with_chinese_headers(campaign):
    book = Workbook()
    sheet = book.active
    sheet.append(["活动代码", "区划代码", "名称"])
    sheet.append([campaign.code, 410105, "金水区"])
    out = io.BytesIO()
    book.save(out)
    client = staff_client("专班管理员")
    preview = upload(client, AREA_IMPORT, out.getvalue(), kind="xlsx")
    assert [r.import_type for r in preview.context["result"].rows] == ["new"]
    assert confirm(client, AREA_PROCESS, preview).status_code == 302
    assert CampaignArea.objects.get(campaign=campaign, code="410105").label == "金水区"
    assert AuditEvent.objects.filter(action="campaign.area_rule_created").exists()


def test_list_import_needs_add_and_change(campaign):
    client = staff_client("审核员")  # views campaigns, never changes them
    page = client.get(INDUSTRIES)
    assert page.status_code == 200 and INDUSTRY_IMPORT.encode() not in page.content
    assert client.get(INDUSTRY_IMPORT).status_code == 403
    assert client.get(AREA_IMPORT).status_code == 403


def test_an_ended_campaigns_rules_do_not_change(campaign):
    officer = UserFactory()
    campaign.status = CampaignStatus.ENDED
    campaign.save(update_fields=["status"])
    with pytest.raises(CampaignListError) as caught:
        campaign_rule_upsert(
            kind="area", campaign=campaign.code, code="410105", actor=officer, source="t"
        )
    assert caught.value.code == "campaign_rule.campaign_ended"


def test_industry_list_export_round_trips(campaign):
    client = staff_client("专班管理员")
    rows = read_export(export(client, INDUSTRY_EXPORT, "csv"), "csv")
    assert {(r["campaign"], r["code"], r["excluded"]) for r in rows} == {
        (campaign.code, "52", "0"),
        (campaign.code, "62", "0"),
        (campaign.code, "90", "0"),
        (campaign.code, "904", "1"),
    }
    assert last_export().after["personal_data"] == "none"
