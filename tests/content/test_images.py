"""Uploaded images: real type and size checked, then re-encoded (metadata and trailing bytes
gone); only images of published articles are served to the public."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from apps.content import services
from apps.content.exceptions import ContentError
from apps.content.images import MAX_UPLOAD_BYTES

from .conftest import make_article, png_bytes, publish, upload

pytestmark = pytest.mark.django_db


def test_png_is_reencoded_without_trailing_payload(writer):
    article = make_article(writer)
    data = png_bytes() + b"<script>alert(1)</script>"  # a polyglot tail
    image = services.article_image_add(
        article=article, upload=upload(data), alt_text="活动海报", actor=writer
    )
    stored = image.file.read()
    assert b"<script>" not in stored
    assert stored != data
    assert image.content_type == "image/jpeg"  # no transparency: JPEG
    with Image.open(io.BytesIO(stored)) as reopened:
        assert reopened.size == (40, 30)


def test_exif_is_dropped(writer):
    article = make_article(writer)
    exif = Image.Exif()
    exif[0x010E] = "secret GPS note"  # ImageDescription
    out = io.BytesIO()
    Image.new("RGB", (20, 20), (0, 0, 255)).save(out, format="JPEG", exif=exif.tobytes())
    assert b"secret GPS note" in out.getvalue()
    image = services.article_image_add(
        article=article,
        upload=upload(out.getvalue(), "a.jpg", "image/jpeg"),
        alt_text="蓝色方块",
        actor=writer,
    )
    assert b"secret GPS note" not in image.file.read()


def test_transparent_png_stays_png(writer):
    article = make_article(writer)
    data = png_bytes(mode="RGBA", color=(0, 0, 0, 0))
    image = services.article_image_add(
        article=article, upload=upload(data), alt_text="透明", actor=writer
    )
    assert image.content_type == "image/png" and image.extension == "png"


@pytest.mark.parametrize(
    "data, code",
    [
        (b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>", "image.type_not_allowed"),
        (b"GIF89a" + b"\x00" * 40, "image.type_not_allowed"),
        (b"\x89PNG\r\n\x1a\n" + b"garbage" * 10, "image.unreadable"),
        (b"%PDF-1.7 not an image", "image.type_not_allowed"),
    ],
)
def test_wrong_or_broken_files_are_refused(writer, data, code):
    article = make_article(writer)
    with pytest.raises(ContentError) as exc:
        services.article_image_add(
            article=article, upload=upload(data, "x.png"), alt_text="x", actor=writer
        )
    assert exc.value.code == code
    assert not article.images.exists()


def test_too_large_files_and_pixel_bombs_are_refused(writer):
    article = make_article(writer)
    big = b"\x89PNG\r\n\x1a\n" + b"\x00" * MAX_UPLOAD_BYTES
    with pytest.raises(ContentError) as exc:
        services.article_image_add(article=article, upload=upload(big), alt_text="x", actor=writer)
    assert exc.value.code == "image.too_large"
    bomb = png_bytes(size=(5000, 5000), mode="1", color=0, optimize=True)
    assert len(bomb) < MAX_UPLOAD_BYTES
    with pytest.raises(ContentError) as exc:
        services.article_image_add(article=article, upload=upload(bomb), alt_text="x", actor=writer)
    assert exc.value.code == "image.dimensions"


def test_alt_text_is_required(writer):
    article = make_article(writer)
    with pytest.raises(ContentError) as exc:
        services.article_image_add(
            article=article, upload=upload(png_bytes()), alt_text="  ", actor=writer
        )
    assert exc.value.code == "article.image_alt_missing"


def test_image_served_only_once_its_article_is_published(client, writer, reviewer):
    article = make_article(writer)
    image = services.article_image_add(
        article=article, upload=upload(png_bytes()), alt_text="海报", actor=writer
    )
    assert client.get(image.path).status_code == 404
    services.article_update(
        article=article, actor=writer, body=f'<p>见图</p><img src="{image.path}" alt="海报">'
    )
    publish(article, writer, reviewer)
    response = client.get(image.path)
    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert b"".join(response.streaming_content)[:3] == b"\xff\xd8\xff"
    page = client.get(f"/info/articles/{article.public_id}/").content.decode()
    assert f'<img src="{image.path}" alt="海报">' in page
