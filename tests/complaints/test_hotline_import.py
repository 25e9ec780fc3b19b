"""12345 hotline CSV import: good rows land, bad rows are reported by line, a ticket number is
imported once however often the file is imported."""

from __future__ import annotations

import pytest
import time_machine
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.complaints.choices import CaseChannel, CaseStatus
from apps.complaints.exceptions import CaseError
from apps.complaints.hotline import hotline_import
from apps.complaints.models import Case
from tests.factories.core import MerchantFactory

from .conftest import at

pytestmark = pytest.mark.django_db

HEADER = "工单号,受理时间,来电人,来电号码,分类,标题,内容,商户信用代码,商户名称,发票号码\n"


def csv_bytes(rows: list[str], *, bom: bool = True) -> bytes:
    text = HEADER + "".join(r + "\n" for r in rows)
    return (("\ufeff" if bom else "") + text).encode("utf-8")


def test_good_rows_land_bad_rows_are_reported_by_line(
    category, refusal_category, handlers, supervisor, calendar_2026
):
    merchant = MerchantFactory()
    rows = [
        "T-0001,2026-03-06 16:00,王某,13800000001,service,态度差,店员态度恶劣,,,",  # line 2
        "T-0002,2026-03-06 16:30,,13800000002,nope,分类错误,,,,",  # 3: unknown category
        "T-0003,yesterday,,13800000003,service,时间错误,,,,",  # 4: bad time
        "T-0004,2026-03-06 17:00,,,service,缺电话,,,,",  # 5: no phone
        f"T-0005,2026-03-07 10:00,赵某,0371-60000005,refusal,拒开发票,,{merchant.uscc},某店,",
        "T-0006,2026-03-07 10:00,,13800000006,service,少一列",  # 7: wrong number of cells
        "T-0007,2026-03-07 10:00,,12,service,号码错误,,,,",  # 8: bad phone
        "T-0008,2026-03-07 10:00,,13800000008,refusal,商户不存在,,91410105MA00000000,,",  # 9
    ]
    with time_machine.travel(at(2026, 3, 9, 10), tick=False):
        report = hotline_import(data=csv_bytes(rows), actor=supervisor, file_name="t.csv")
    assert report.rows == 8 and len(report.created) == 2 and report.skipped == []
    assert [(p.line, p.code) for p in report.problems] == [
        (3, "case.category_invalid"),
        (4, "hotline.bad_time"),
        (5, "hotline.missing_value"),
        (7, "hotline.bad_row"),
        (8, "case.phone_invalid"),
        (9, "case.link_not_found"),
    ]
    first = Case.objects.get(hotline_ticket="T-0001")
    assert first.channel == CaseChannel.HOTLINE and first.status == CaseStatus.ASSIGNED
    assert first.opened_at == at(2026, 3, 6, 16)  # the SLA starts at reception
    assert first.first_response_due == at(2026, 3, 9, 12)  # 1 h Friday + 3 h Monday
    assert first.caller_name == "王某" and first.caller_phone == "13800000001"
    assert first.masked_caller_phone == "138****0001"
    refusal = Case.objects.get(hotline_ticket="T-0005")
    assert refusal.merchant == merchant and refusal.caller_phone == "037160000005"
    assert refusal.reported_merchant_name == "某店"
    entry = AuditEvent.objects.get(action="case.hotline_imported")
    assert entry.after["created"] == 2 and entry.after["refused_lines"] == [3, 4, 5, 7, 8, 9]


def test_importing_the_same_file_again_creates_nothing(category, handlers, supervisor):
    data = csv_bytes(
        [
            "T-1,2026-03-06 16:00,,13800000001,service,一,,,,",
            "T-2,2026-03-06 16:00,,13800000002,service,二,,,,",
        ],
        bom=False,
    )
    first = hotline_import(data=data, actor=supervisor)
    second = hotline_import(data=data, actor=supervisor)
    assert len(first.created) == 2
    assert second.created == [] and second.skipped == ["T-1", "T-2"]
    assert Case.objects.count() == 2


def test_phone_numbers_are_stored_encrypted_and_indexed(category, handlers, supervisor):
    from django.db import connection

    hotline_import(
        data=csv_bytes(["T-9,2026-03-06 16:00,欧阳小明,13912340000,service,查询,,,,"]),
        actor=supervisor,
    )
    case = Case.objects.get(hotline_ticket="T-9")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT caller_name, caller_phone FROM complaints_case WHERE id = %s", [case.pk]
        )
        name, phone = cursor.fetchone()
    assert "欧阳" not in name and "13912340000" not in phone
    field = Case._meta.get_field("caller_phone_index")
    assert Case.objects.filter(caller_phone_index__in=field.candidates("139 1234 0000")).exists()


def test_unreadable_files_are_refused_whole(category, supervisor):
    with pytest.raises(CaseError) as refused:
        hotline_import(data="工单号\nx\n".encode("gbk"), actor=supervisor)
    assert refused.value.code == "hotline.file_unreadable"
    with pytest.raises(CaseError) as refused:
        hotline_import(data=b"ticket,subject\n1,x\n", actor=supervisor)
    assert refused.value.code == "hotline.missing_columns"


def test_the_import_page(category, handlers, supervisor, staff_client):
    from django.core.files.uploadedfile import SimpleUploadedFile

    client = staff_client(supervisor)
    url = reverse("complaints:hotline_import")
    assert client.get(url).status_code == 200
    response = client.post(
        url,
        {
            "file": SimpleUploadedFile(
                "t.csv",
                csv_bytes(
                    [
                        "T-1,2026-03-06 16:00,,13800000001,service,一,,,,",
                        "T-2,2026-03-06 16:00,,13800000002,nope,二,,,,",
                    ]
                ),
            )
        },
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "case.category_invalid" in html and Case.objects.count() == 1
