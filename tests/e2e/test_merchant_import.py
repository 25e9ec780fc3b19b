"""Issue 5, "done means" 4: merchant import (CSV, then XLSX) with a dry-run preview, and a masked
export, in a browser.

A campaign administrator (the role that may add and change merchants) signs in with password and
TOTP, opens the merchants, clicks Import and uploads a UTF-8 CSV with Chinese headers (the aliases
of docs/formats.md): the preview shows the new and changed rows and the bad row (a wrong check
character in its credit code) under its line number, and nothing is written yet; confirming
writes the good rows, each with its service's audit entry, plus one `merchant.imported`. The same
again with an XLSX file whose codes are typed as numbers. Then a statistician (no permission to
reveal personal data) exports the invoices as CSV through the Export button: buyers' and
consumers' names and phones are masked in the downloaded file, and the export is audited.
"""

from __future__ import annotations

import csv
import io

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.utils import timezone, translation
from openpyxl import Workbook

from apps.accounts.roles import ROLES_BY_CODE
from apps.audit.models import AuditEvent
from apps.invoices.choices import InvoiceStatus
from apps.invoices.resources import InvoiceResource
from apps.merchants.models import Merchant
from apps.merchants.validators import uscc_check_character, validate_uscc
from tests.e2e.conftest import admin_url, screenshot, sign_in, staff_with_totp
from tests.factories.core import (
    CampaignFactory,
    ConsumerFactory,
    InvoiceFactory,
    MerchantFactory,
    make_uscc,
)

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

HEADER = ["统一社会信用代码", "名称", "区划代码", "行业代码", "地址", "状态", "状态原因"]
KNOWN = make_uscc(8101, area="410105")  # on file before the imports
NEW_A = make_uscc(8102, area="410103")
NEW_B = make_uscc(8103, area="410122")
NEW_C = make_uscc(8104, area="410105")


def bad_check(code: str) -> str:
    """`code` with a wrong check character."""
    wrong = "0" if uscc_check_character(code[:-1]) != "0" else "1"
    return code[:-1] + wrong


def uscc_refusal(code: str) -> str:
    """The validator's message for a bad credit code, as the (Chinese) preview shows it."""
    with translation.override("zh-hans"), pytest.raises(ValidationError) as refused:
        validate_uscc(code)
    return str(refused.value.messages[0])


def csv_file(path, rows):
    with path.open("w", encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return path


def xlsx_file(path, rows):
    book = Workbook()
    sheet = book.active
    sheet.append(HEADER)
    for row in rows:
        sheet.append(row)
    book.save(path)
    return path


def merchant_events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("seq"))


def preview(page, base, path, kind: str):
    """Merchants → Import → choose the file and its format → submit: the dry-run preview."""
    page.goto(admin_url(base, "merchants_merchant_changelist"))
    page.click("#content-main .object-tools a[href$='/import/']")
    page.wait_for_url("**/import/")
    page.set_input_files("input[name=import_file]", str(path))
    page.locator("select[name=format]").select_option(label=kind)
    page.click("#content form input[type=submit].default")
    page.wait_for_selector("#import-invalid-rows")


def preview_rows(page) -> dict[str, list[str]]:
    """What the preview lists: valid rows by import type ("new", "update", "skip") → their
    credit codes; and "invalid" → the line numbers of the refused rows."""
    shown: dict[str, list[str]] = {"invalid": []}
    for row in page.locator("#import-valid-rows tr[class]").all():
        kind = row.get_attribute("class")
        shown.setdefault(kind, []).append(row.locator("td").nth(1).inner_text().strip())
    for line in page.locator("#import-invalid-rows td.import-line").all_inner_texts():
        shown["invalid"].append(line.strip())
    return shown


def confirm(page):
    page.click("input[type=submit][name=confirm]")
    page.wait_for_selector(".messagelist .success")
    return page.locator(".messagelist").inner_text()


@pytest.fixture
def people(transactional_db, fast_passwords):
    admins = Group.objects.get(name=ROLES_BY_CODE["campaign_admin"].group_name)
    statisticians = Group.objects.get(name=ROLES_BY_CODE["statistician"].group_name)
    return {
        "admin": staff_with_totp("zhao_admin", groups=[admins]),
        "statistician": staff_with_totp("qian_stats", groups=[statisticians]),
    }


def test_merchant_import_csv_and_xlsx_with_preview(live_server, new_context, people, tmp_path):
    base = live_server.url
    admin, secret = people["admin"]
    MerchantFactory(uscc=KNOWN, name="郑州老店", area_code="410105", industry_code="5211")
    page = sign_in(new_context().new_page(), base, admin, secret)

    # --- CSV: one change, two new merchants, a bad credit code on line 5.
    rows = [
        [KNOWN, "郑州老店（金水路店）", "", "", "", "", ""],
        [NEW_A, "郑州二七商贸有限公司", "410103", "5211", "大学路8号", "", ""],
        [NEW_B, "郑州测试超市有限公司", "", "5212", "", "", ""],
        [bad_check(NEW_C), "错误代码商店", "410105", "5211", "", "", ""],
    ]
    preview(page, base, csv_file(tmp_path / "商户导入.csv", rows), "csv")
    assert preview_rows(page) == {"invalid": ["5"], "update": [KNOWN], "new": [NEW_A, NEW_B]}
    invalid = page.locator("#import-invalid-rows").inner_text()
    assert bad_check(NEW_C) in invalid and uscc_refusal(bad_check(NEW_C)) in invalid
    screenshot(page, "merchant-import-preview")
    # A dry run writes nothing.
    assert Merchant.objects.count() == 1
    assert Merchant.objects.get(uscc=KNOWN).name == "郑州老店"
    assert not AuditEvent.objects.filter(action__startswith="merchant.").exists()

    message = confirm(page)
    assert "5" in message  # the refused line is named again
    assert set(Merchant.objects.values_list("uscc", flat=True)) == {KNOWN, NEW_A, NEW_B}
    assert Merchant.objects.get(uscc=KNOWN).name == "郑州老店（金水路店）"
    new_b = Merchant.objects.get(uscc=NEW_B)
    assert (new_b.area_code, new_b.industry_code) == ("410122", "5212")  # area from the code
    assert {e.target_id for e in merchant_events("merchant.created")} == {
        str(Merchant.objects.get(uscc=code).pk) for code in (NEW_A, NEW_B)
    }
    assert len(merchant_events("merchant.updated")) == 1
    (imported,) = merchant_events("merchant.imported")
    assert imported.actor_username == admin.username
    assert (imported.after["created"], imported.after["updated"]) == (2, 1)
    assert imported.after["invalid_lines"] == [5]

    # --- XLSX: codes typed as numbers, one more change, one new merchant, a bad row on line 3.
    rows = [
        [NEW_C, "郑州金水便利店", 410105, 5211, "花园路3号", None, None],
        [bad_check(KNOWN), "不应写入", None, None, None, None, None],
        [NEW_A, None, None, None, "大学路10号", None, None],
    ]
    preview(page, base, xlsx_file(tmp_path / "商户导入.xlsx", rows), "xlsx")
    assert preview_rows(page) == {"invalid": ["3"], "new": [NEW_C], "update": [NEW_A]}
    assert Merchant.objects.count() == 3 and not Merchant.objects.filter(uscc=NEW_C).exists()

    confirm(page)
    new_c = Merchant.objects.get(uscc=NEW_C)
    assert (new_c.name, new_c.area_code, new_c.industry_code) == (
        "郑州金水便利店",
        "410105",
        "5211",
    )
    new_a = Merchant.objects.get(uscc=NEW_A)
    assert (new_a.name, new_a.address) == ("郑州二七商贸有限公司", "大学路10号")
    assert len(merchant_events("merchant.created")) == 3
    assert len(merchant_events("merchant.updated")) == 2
    second = merchant_events("merchant.imported")[-1]
    assert second.after["file_name"].endswith(".xlsx") and second.after["invalid_lines"] == [3]


def test_invoice_export_is_masked_for_the_statistician(live_server, new_context, people, tmp_path):
    base = live_server.url
    statistician, secret = people["statistician"]
    consumer = ConsumerFactory(real_name="欧阳小明", phone="13812345678")
    invoice = InvoiceFactory(
        consumer=consumer,
        buyer_name="欧阳小明",
        campaign=CampaignFactory(),
        status=InvoiceStatus.ACCEPTED,
        entered_at=timezone.now(),
    )
    page = sign_in(new_context().new_page(), base, statistician, secret)
    page.goto(admin_url(base, "invoices_invoice_changelist"))
    page.click("#content-main .object-tools a[href*='/export/']")
    page.wait_for_url("**/export/**")
    page.locator("select[name=format]").select_option(label="csv")
    screenshot(page, "invoice-export-page")
    with page.expect_download() as info:
        page.click("#content form input[type=submit]")
    download = info.value
    assert download.suggested_filename.startswith("invoices-")
    path = tmp_path / download.suggested_filename
    download.save_as(path)

    body = path.read_bytes()
    assert body.startswith(b"\xef\xbb\xbf")
    header, *data = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    with translation.override("zh-hans"):
        names = {str(f.column_name): name for name, f in InvoiceResource().fields.items()}
    rows = [dict(zip([names[h] for h in header], row, strict=True)) for row in data]
    assert [r["number"] for r in rows] == [invoice.number]
    (row,) = rows
    assert (row["buyer_name"], row["consumer_name"]) == ("欧**明", "欧**明")
    assert row["consumer_phone"] == "138****5678"
    assert "欧阳小明" not in body.decode("utf-8-sig") and "13812345678" not in body.decode()

    event = AuditEvent.objects.get(action="data.exported")
    assert event.actor_username == statistician.username and event.category == "export"
    assert event.after["personal_data"] == "masked" and event.after["rows"] == 1
