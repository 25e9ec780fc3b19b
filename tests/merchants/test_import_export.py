"""Merchant import (CSV, XLSX) through `merchant_upsert` with a dry-run preview; merchant export.

The admin's two steps are driven as a browser does: upload (dry run, preview) → confirm.
"""

from __future__ import annotations

import csv
import io
import re

import pytest
from django.contrib.auth.models import Group
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from openpyxl import Workbook, load_workbook

from apps.audit.models import AuditEvent
from apps.common.exceptions import InvalidTransition
from apps.merchants.choices import MerchantStatus
from apps.merchants.models import Merchant
from apps.merchants.services import (
    MerchantError,
    merchant_set_status,
    merchant_upsert,
    merchant_upsert_preview,
)
from tests.accounts.helpers import sign_in_staff
from tests.factories.core import MerchantFactory, UserFactory, make_uscc

pytestmark = pytest.mark.django_db

LIST = reverse("admin:merchants_merchant_changelist")
IMPORT = reverse("admin:merchants_merchant_import")
PROCESS = reverse("admin:merchants_merchant_process_import")
EXPORT = reverse("admin:merchants_merchant_export")
FORMAT = {"csv": "0", "xlsx": "1"}
HEADER = ["uscc", "name", "area_code", "industry_code", "address", "status", "status_reason"]

GOOD_A = make_uscc(7001, area="410105")
GOOD_B = make_uscc(7002, area="410103")
BAD_CHECK = GOOD_A[:-1] + ("0" if GOOD_A[-1] != "0" else "1")


def fullwidth(text: str) -> str:
    return "".join(chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch for ch in text)


def csv_bytes(rows, header=HEADER) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8-sig")


def xlsx_bytes(rows, header=HEADER) -> bytes:
    book = Workbook()
    sheet = book.active
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def staff_in(group: str):
    user = UserFactory(is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    return type(user).objects.get(pk=user.pk)


@pytest.fixture
def officer():
    """A campaign administrator (专班管理员): may add and change merchants."""
    return staff_in("专班管理员")


@pytest.fixture
def officer_client(officer):
    return sign_in_staff(Client(), officer)


def upload(client, content: bytes, *, kind="csv", name=None):
    name = name or f"merchants.{kind}"
    return client.post(
        IMPORT,
        {"import_file": SimpleUploadedFile(name, content), "format": FORMAT[kind], "resource": "0"},
    )


def confirm(client, preview):
    form = preview.context["confirm_form"]
    fields = ("import_file_name", "original_file_name", "format", "resource")
    return client.post(PROCESS, {f: form.initial.get(f, "") for f in fields})


def audit_actions() -> list[str]:
    return list(
        AuditEvent.objects.filter(action__startswith="merchant.")
        .order_by("seq")
        .values_list("action", flat=True)
    )


def export(client, url, kind, *, resource=0, query=""):
    """The export form as a browser posts it: a format, a resource, all its columns ticked."""
    form = client.get(url + query).context["form"]
    data = {"format": FORMAT[kind], "resource": str(resource)}
    for name, field in form.fields.items():
        if getattr(field, "resource_index", None) == resource:
            data[name] = "on"
    return client.post(url + query, data)


def read_export(response, kind) -> list[list]:
    assert response.status_code == 200, getattr(response, "context", None) and response.context
    body = b"".join(response.streaming_content)
    if kind == "csv":
        return list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    return [list(r) for r in load_workbook(io.BytesIO(body)).active.iter_rows(values_only=True)]


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


# --- the service --------------------------------------------------------------------------


def test_upsert_creates_normalised_and_audited(officer):
    result = merchant_upsert(
        uscc=fullwidth(GOOD_A.lower()),
        name="  郑州测试超市有限公司 ",
        area_code="",
        industry_code="５２１１",
        address="金水路1号",
        actor=officer,
        source="test",
    )
    merchant = result.merchant
    assert result.outcome == "created"
    assert (merchant.uscc, merchant.name, merchant.area_code, merchant.industry_code) == (
        GOOD_A,
        "郑州测试超市有限公司",
        GOOD_A[2:8],
        "5211",
    )
    event = AuditEvent.objects.get(action="merchant.created")
    assert event.target_id == str(merchant.pk) and event.reason == "test"
    assert event.after["industry_code"] == "5211" and event.actor_username == officer.username


def test_upsert_updates_only_what_changed_and_skips_unchanged(officer):
    merchant = MerchantFactory(uscc=GOOD_A, name="旧名称", area_code="410105")
    values = {
        "uscc": GOOD_A,
        "name": "新名称",
        "area_code": "410105",
        "industry_code": "5211",
        "actor": officer,
    }
    result = merchant_upsert(**values, source="first")
    assert result.outcome == "updated" and result.changes == {"name": ("旧名称", "新名称")}
    event = AuditEvent.objects.get(action="merchant.updated")
    assert event.before == {"name": "旧名称"} and event.after == {"name": "新名称"}
    again = merchant_upsert(**values, source="second")
    assert again.outcome == "unchanged"
    assert AuditEvent.objects.filter(action__startswith="merchant.").count() == 1
    merchant.refresh_from_db()
    assert merchant.name == "新名称"


@pytest.mark.parametrize(
    ("field", "values", "code"),
    [
        ("uscc", {"uscc": BAD_CHECK}, "uscc.bad_check_character"),
        ("uscc", {"uscc": "123"}, "uscc.invalid_length"),
        ("area_code", {"area_code": "99010A"}, "area.invalid"),
        ("area_code", {"area_code": "990105"}, "area.invalid"),  # no such province
        ("industry_code", {"industry_code": "52110"}, "industry.invalid"),
        ("name", {"name": "  "}, "merchant.name_required"),
        ("status", {"status": "closed"}, "merchant.invalid_status"),
        ("status_reason", {"status": "blacklisted"}, "merchant.reason_required"),
    ],
)
def test_upsert_refuses_bad_input_with_a_stable_code(officer, field, values, code):
    base = {"uscc": GOOD_A, "name": "店", "area_code": "410105", "industry_code": "5211"}
    with pytest.raises(MerchantError) as caught:
        merchant_upsert(**{**base, **values}, actor=officer, source="test")
    assert caught.value.code == code and caught.value.detail["field"] == field
    with pytest.raises(MerchantError):
        merchant_upsert_preview(**{**base, **values})
    assert not Merchant.objects.exists() and audit_actions() == []


def test_upsert_moves_the_status_through_merchant_set_status(officer):
    merchant = MerchantFactory(uscc=GOOD_A)
    base = {"uscc": GOOD_A, "name": merchant.name, "area_code": "410105", "industry_code": "5211"}
    result = merchant_upsert(
        **base, status="blacklisted", status_reason="虚开发票", actor=officer, source="t"
    )
    assert result.changes == {"status": ("active", "blacklisted")}
    merchant.refresh_from_db()
    assert merchant.status == "blacklisted" and merchant.status_reason == "虚开发票"
    assert audit_actions() == ["merchant.status_changed"]
    # The transition table still rules: blacklisted → suspended is not a move.
    with pytest.raises(InvalidTransition):
        merchant_upsert(**base, status="suspended", status_reason="x", actor=officer, source="t")
    with pytest.raises(InvalidTransition):
        merchant_upsert_preview(**base, status="suspended", status_reason="x")


# --- the admin: permissions and pages -----------------------------------------------------


def test_pages_render_for_a_campaign_administrator(officer_client):
    MerchantFactory()
    page = officer_client.get(LIST)
    assert page.status_code == 200
    assert IMPORT.encode() in page.content and EXPORT.encode() in page.content
    assert officer_client.get(IMPORT).status_code == 200
    assert officer_client.get(EXPORT).status_code == 200


@pytest.mark.parametrize("group", ["数据分析", "审计员", "风控专员"])
def test_import_is_refused_without_add_and_change(client, group):
    """The statistician and the auditor may only view (and export); the risk analyst may change
    a merchant's status but not register merchants."""
    sign_in_staff(client, staff_in(group))
    page = client.get(LIST)
    assert page.status_code == 200
    assert IMPORT.encode() not in page.content
    assert EXPORT.encode() in page.content
    assert client.get(IMPORT).status_code == 403
    response = upload(client, csv_bytes([[GOOD_A, "店", "410105", "5211", "", "", ""]]))
    assert response.status_code == 403
    refused = client.post(
        PROCESS,
        {"import_file_name": "x", "original_file_name": "x.csv", "format": "0", "resource": "0"},
    )
    assert refused.status_code == 403
    assert not Merchant.objects.exists()


def test_staff_without_any_merchant_permission_gets_403(client):
    sign_in_staff(client, UserFactory(is_staff=True))
    assert client.get(IMPORT).status_code == 403
    assert client.get(EXPORT).status_code == 403


# --- the admin: dry run, confirm ------------------------------------------------------------


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_dry_run_previews_and_writes_nothing_then_confirm_writes_through_the_service(
    officer_client, kind
):
    existing = MerchantFactory(uscc=GOOD_B, name="二七老店", area_code="410103")
    if kind == "csv":
        rows = [
            [GOOD_A.lower(), "郑州测试超市有限公司", "410105", "5211", "金水路1号", "", ""],
            [GOOD_B, "二七新店", "", "", "", "", ""],
        ]
        content = csv_bytes(rows)
    else:  # spreadsheets type codes as numbers
        rows = [
            [GOOD_A, "郑州测试超市有限公司", 410105, 5211, "金水路1号", None, None],
            [GOOD_B, "二七新店", None, None, None, None, None],
        ]
        content = xlsx_bytes(rows)
    before = AuditEvent.objects.count()

    preview = upload(officer_client, content, kind=kind)

    assert preview.status_code == 200
    result = preview.context["result"]
    assert not result.has_errors() and not result.has_validation_errors()
    assert [r.import_type for r in result.rows] == ["new", "update"]
    assert "confirm_form" in preview.context
    html = preview.content.decode()
    assert "郑州测试超市有限公司" in html and "<del" in html and "<ins" in html  # the diff
    assert Merchant.objects.count() == 1 and AuditEvent.objects.count() == before
    existing.refresh_from_db()
    assert existing.name == "二七老店"

    done = confirm(officer_client, preview)

    assert done.status_code == 302
    created = Merchant.objects.get(uscc=GOOD_A)
    assert (created.area_code, created.industry_code) == ("410105", "5211")
    existing.refresh_from_db()
    # Empty cells keep the stored values.
    assert (existing.name, existing.area_code, existing.industry_code) == (
        "二七新店",
        "410103",
        "5211",
    )
    assert audit_actions() == ["merchant.created", "merchant.updated", "merchant.imported"]
    summary = AuditEvent.objects.get(action="merchant.imported")
    assert summary.after["file_name"] == f"merchants.{kind}"
    assert (summary.after["created"], summary.after["updated"], summary.after["invalid"]) == (
        1,
        1,
        0,
    )
    assert summary.after["rows"] == 2
    line = AuditEvent.objects.get(action="merchant.created")
    assert re.search(r"\b2\b", line.reason) and f"merchants.{kind}" in line.reason  # line 2


def test_a_file_with_bad_rows_lands_the_good_rows_and_reports_the_bad_by_line(officer_client):
    blacklisted = MerchantFactory(uscc=make_uscc(7010), name="问题商户")
    rows = [
        [GOOD_A, "好商户一", "410105", "5211", "", "", ""],  # line 2
        [BAD_CHECK, "校验位错误", "410105", "5211", "", "", ""],  # line 3
        [make_uscc(7003), "区划错误", "41010X", "5211", "", "", ""],  # line 4
        [make_uscc(7004), "行业错误", "410105", "52A", "", "", ""],  # line 5
        [make_uscc(7005), "状态错误", "410105", "5211", "", "closed", ""],  # line 6
        [blacklisted.uscc, "问题商户", "", "", "", "黑名单", ""],  # line 7: no reason
        [GOOD_B, "好商户二", "410103", "6210", "", "", ""],  # line 8
        [blacklisted.uscc, "问题商户", "", "", "", "黑名单", "虚开发票"],  # line 9
    ]
    preview = upload(officer_client, csv_bytes(rows))
    assert preview.status_code == 200
    result = preview.context["result"]
    assert {r.number + 1 for r in result.invalid_rows} == {3, 4, 5, 6, 7}
    errors = {r.number + 1: r.error.message_dict for r in result.invalid_rows}
    assert "uscc" in errors[3] and "area_code" in errors[4] and "industry_code" in errors[5]
    assert "status" in errors[6] and "status_reason" in errors[7]
    html = preview.content.decode()
    assert 'id="import-invalid-rows"' in html and 'id="import-valid-rows"' in html
    assert "confirm_form" in preview.context  # the valid rows may still go in
    assert not Merchant.objects.exclude(pk=blacklisted.pk).exists()

    done = confirm(officer_client, preview)

    assert done.status_code == 302
    assert set(Merchant.objects.values_list("uscc", flat=True)) == {
        GOOD_A,
        GOOD_B,
        blacklisted.uscc,
    }
    blacklisted.refresh_from_db()
    assert blacklisted.status == MerchantStatus.BLACKLISTED
    assert blacklisted.status_reason == "虚开发票"
    notes = messages_of(done)
    for line in (3, 4, 5, 6, 7):
        assert any(f"{line}" in n and ("not imported" in n or "未导入" in n) for n in notes), line
    summary = AuditEvent.objects.get(action="merchant.imported")
    assert summary.after["invalid_lines"] == [3, 4, 5, 6, 7]
    assert (summary.after["created"], summary.after["updated"], summary.after["invalid"]) == (
        2,
        1,
        5,
    )
    assert audit_actions().count("merchant.status_changed") == 1


def test_status_words_and_chinese_headers_are_accepted_in_xlsx(officer_client):
    merchant = MerchantFactory(uscc=GOOD_A)
    header = ["统一社会信用代码", "状态", "状态原因"]
    preview = upload(
        officer_client, xlsx_bytes([[GOOD_A.lower(), "Suspended", "停业整顿"]], header), kind="xlsx"
    )
    assert [r.import_type for r in preview.context["result"].rows] == ["update"]
    assert confirm(officer_client, preview).status_code == 302
    merchant.refresh_from_db()
    assert merchant.status == "suspended" and merchant.status_reason == "停业整顿"


def test_an_unchanged_row_is_skipped_and_audits_nothing_but_the_import(officer_client):
    merchant = MerchantFactory(uscc=GOOD_A, name="店", area_code="410105", industry_code="5211")
    preview = upload(officer_client, csv_bytes([[GOOD_A, "店", "410105", "5211", "", "", ""]]))
    assert [r.import_type for r in preview.context["result"].rows] == ["skip"]
    confirm(officer_client, preview)
    assert audit_actions() == ["merchant.imported"]
    merchant.refresh_from_db()
    assert merchant.name == "店"


def test_a_change_between_preview_and_confirm_is_still_refused_by_the_service(
    officer_client, officer
):
    merchant = MerchantFactory(uscc=GOOD_A)
    preview = upload(
        officer_client,
        csv_bytes([[GOOD_A, merchant.name, "", "", "", "suspended", "核查"]]),
    )
    assert "confirm_form" in preview.context
    merchant_set_status(merchant=merchant, status="blacklisted", reason="先行拉黑", actor=officer)
    done = confirm(officer_client, preview)
    merchant.refresh_from_db()
    assert merchant.status == "blacklisted"
    assert any("2" in n for n in messages_of(done) if "not imported" in n or "未导入" in n)


def test_a_file_without_the_credit_code_column_offers_no_confirmation(officer_client):
    preview = upload(officer_client, csv_bytes([["店", "410105"]], header=["name", "area_code"]))
    assert preview.status_code == 200
    assert preview.context["result"].has_errors()
    assert "confirm_form" not in preview.context


# --- export --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_export_is_audited_and_formula_cells_are_neutralised(client, kind):
    MerchantFactory(uscc=GOOD_A, name='=HYPERLINK("http://evil.example","点我")', address="+1")
    sign_in_staff(client, staff_in("数据分析"))
    rows = read_export(export(client, EXPORT, kind, query="?status__exact=active"), kind)
    assert rows[0][:2] == ["uscc", "name"]
    assert rows[1][0] == GOOD_A
    assert rows[1][1] == '\'=HYPERLINK("http://evil.example","点我")'
    assert rows[1][4] == "'+1"
    event = AuditEvent.objects.get(action="data.exported")
    assert event.category == "export" and event.target_type == "merchants.merchant"
    assert event.after["rows"] == 1 and event.after["format"] == kind
    assert event.after["filters"] == {"status__exact": "active"}
    assert event.after["personal_data"] == "none"
