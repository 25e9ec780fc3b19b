"""Attachments: the type is sniffed from the bytes (JPEG, PNG, PDF only), size and count are
limited, files are stored under random names outside the web roots and leave only through
permission-checked downloads."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from apps.complaints import services
from apps.complaints.exceptions import CaseError
from apps.complaints.models import CaseAttachment, CaseSettings
from tests.factories.core import ConsumerFactory

pytestmark = pytest.mark.django_db

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + b"0" * 64


@pytest.fixture(autouse=True)
def private_root(settings, tmp_path):
    settings.COMPLAINT_ATTACHMENT_ROOT = tmp_path / "private"
    return tmp_path / "private"


def upload(api, case, content: bytes, name: str, content_type: str = "image/png"):
    return api.post(
        f"/api/v1/me/cases/{case.public_id}/attachments/",
        {"file": SimpleUploadedFile(name, content, content_type=content_type)},
        format="multipart",
    )


def test_a_photo_is_stored_privately_under_a_random_name(api, open_case, handlers, private_root):
    case = open_case()
    response = upload(api, case, PNG, "../../etc/小票.png")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["name"] == "小票.png" and body["content_type"] == "image/png"
    attachment = CaseAttachment.objects.get(uid=body["id"])
    stored = Path(attachment.file.path)
    assert stored.is_file() and stored.read_bytes() == PNG
    assert private_root in stored.parents
    assert "小票" not in stored.name and stored.suffix == ".png"
    for public in (django_settings.MEDIA_ROOT, django_settings.STATIC_ROOT):
        assert Path(public) not in stored.parents
    with pytest.raises(ValueError):
        attachment.file.url  # noqa: B018 - no public URL exists


def test_the_type_comes_from_the_bytes_not_the_name(api, open_case, handlers):
    case = open_case()
    fake = upload(api, case, b"<script>alert(1)</script>", "photo.png", "image/png")
    assert fake.status_code == 415 and fake.json()["code"] == "attachment.type_not_allowed"
    html = upload(api, case, b"<html></html>" * 10, "x.pdf", "application/pdf")
    assert html.status_code == 415
    renamed = upload(api, case, PDF, "receipt.exe", "application/octet-stream")
    assert renamed.status_code == 201 and renamed.json()["content_type"] == "application/pdf"
    stored = CaseAttachment.objects.get(uid=renamed.json()["id"])
    assert stored.file.name.endswith(".pdf")
    assert upload(api, case, b"", "empty.png").status_code == 400


def test_size_and_count_limits(api, open_case, handlers):
    config = CaseSettings.load()
    config.attachment_max_bytes, config.attachments_per_case = 1024, 2
    config.save()
    case = open_case()
    big = upload(api, case, PNG + b"\x00" * 2000, "big.png")
    assert big.status_code == 413 and big.json()["code"] == "attachment.too_large"
    assert upload(api, case, PNG, "1.png").status_code == 201
    assert upload(api, case, JPEG, "2.jpg").status_code == 201
    third = upload(api, case, PNG, "3.png")
    assert third.status_code == 409 and third.json()["code"] == "attachment.too_many"
    assert CaseAttachment.objects.filter(case=case).count() == 2


def test_consumers_attach_only_to_their_own_open_cases(api, open_case, handlers):
    theirs = open_case(consumer=ConsumerFactory(real_name="李四"))
    assert upload(api, theirs, PNG, "x.png").status_code == 404
    with pytest.raises(CaseError):
        services.attachment_add(
            case=theirs,
            upload=SimpleUploadedFile("x.png", PNG),
            consumer=ConsumerFactory(real_name="王五"),
        )
    assert not CaseAttachment.objects.exists()


def test_note_attachments_are_internal_and_downloads_are_checked(
    api, open_case, handlers, outsider, staff_client
):
    case = open_case()
    handler = case.assignee
    note = services.case_note(case=case, actor=handler, body="商户营业执照")
    internal = services.attachment_add(
        case=case, upload=SimpleUploadedFile("licence.pdf", PDF), actor=handler, message=note
    )
    mine = CaseAttachment.objects.get(uid=upload(api, case, JPEG, "receipt.jpg").json()["id"])
    assert internal.is_public is False and mine.is_public is True
    detail = api.get(f"/api/v1/me/cases/{case.public_id}/").json()
    assert [a["id"] for a in detail["attachments"]] == [str(mine.uid)]
    base = f"/api/v1/me/cases/{case.public_id}/attachments/"
    assert api.get(f"{base}{internal.uid}/").status_code == 404
    download = api.get(f"{base}{mine.uid}/")
    assert download.status_code == 200 and b"".join(download.streaming_content) == JPEG
    assert "attachment" in download["Content-Disposition"]
    assert download["X-Content-Type-Options"] == "nosniff"
    # Staff: a handler of the queue downloads; a handler of another queue gets a 404.
    url = reverse("complaints:attachment", args=[internal.uid])
    assert staff_client(outsider).get(url).status_code == 404
    response = staff_client(handler).get(url)
    assert response.status_code == 200 and b"".join(response.streaming_content) == PDF
    from apps.audit.models import AuditEvent

    assert AuditEvent.objects.filter(action="case.attachment_downloaded").count() == 1
