"""The public results page (no login, masked names only, CSP-clean) and the published files:
`draw_export` writes what the stand-alone verifier accepts, and a tampered copy is refused."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from apps.draws import engine, selectors, services
from apps.draws.models import DrawTicket, DrawWinner
from tests.draws.conftest import (
    add_entries,
    drawn_draw,
    frozen_draw,
    new_draw,
    published_draw,
)
from tests.factories.core import ConsumerFactory

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.draws.urls")]

ROOT = Path(__file__).resolve().parents[2]
VERIFIER = ROOT / "tools" / "verify_draw.py"
NAMES = ["张三丰", "欧阳小明", "李四", "王五六"]


@pytest.fixture
def consumers(db):
    return [ConsumerFactory(real_name=name) for name in NAMES]


@pytest.fixture
def published(campaign, manager, officer_a, officer_b, disqualifier, window, consumers):
    entries = add_entries(campaign, 24, start=window[0], consumers=consumers)
    draw = published_draw(campaign, manager, window, officer_a, officer_b, limit=2)
    first = DrawWinner.objects.filter(draw=draw).order_by("counter").first()
    services.draw_disqualify(
        draw=draw, ticket_no=first.ticket_no, reason="red_flushed", actor=disqualifier
    )
    draw.refresh_from_db()
    return draw, entries


def verify(bundle: Path, tickets: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(VERIFIER), str(bundle), str(tickets)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# --- the page ------------------------------------------------------------------------------


def test_results_page_needs_no_login_and_shows_masked_names_only(client, published):
    draw, entries = published
    response = client.get(reverse("draws:detail", args=[draw.code]))
    assert response.status_code == 200
    html = response.content.decode()
    for name in NAMES:
        assert name not in html
    masked = {w.masked_name for w in selectors.public_winners(draw)}
    assert masked <= {"张*丰", "欧**明", "李*", "王*六"} and masked
    for name in masked:
        assert name in html
    for entry in entries:
        assert entry.number not in html  # invoice numbers are never published
        assert str(entry.consumer.public_id) not in html
    for winner in DrawWinner.objects.filter(draw=draw):
        assert f"<td>{winner.ticket_no}</td>" in html
    assert draw.seed_commitment in html and draw.revealed_seed in html
    assert draw.tickets_digest in html
    for url in ("draws:bundle", "draws:tickets"):
        assert reverse(url, args=[draw.code]) in html
    assert reverse("draws:verifier") in html and reverse("draws:how_to_verify") in html


def test_pages_run_under_the_csp_without_scripts(client, published):
    draw, _ = published
    for url in (
        reverse("draws:list"),
        reverse("draws:detail", args=[draw.code]),
        reverse("draws:how_to_verify"),
    ):
        response = client.get(url)
        assert response.status_code == 200
        html = response.content.decode()
        assert "<script" not in html and " on" + "click=" not in html
        assert "script-src" in response["Content-Security-Policy"]
        assert 'lang="zh-hans"' in html


def test_list_shows_commitments_before_the_draw_and_hides_unannounced_draws(
    client, campaign, manager, window, published
):
    draw, _ = published
    later = (window[0], window[1] + timedelta(days=3), window[2] + timedelta(days=3))
    announced = new_draw(campaign, manager, later, code="ZZ-NEXT")
    services.draw_commit(draw=announced, actor=manager, randomness_source="福彩3D 2026年5月1日")
    announced.refresh_from_db()
    secret = new_draw(
        campaign,
        manager,
        (later[0], later[1] + timedelta(days=1), later[2] + timedelta(days=1)),
        code="ZZ-SECRET",
    )
    html = client.get(reverse("draws:list")).content.decode()
    assert draw.code in html
    assert announced.seed_commitment in html and "ZZ-NEXT" in html
    assert secret.code not in html
    assert client.get(reverse("draws:detail", args=[secret.code])).status_code == 404


def test_nothing_secret_before_publication(
    client, campaign, manager, officer_a, officer_b, window, consumers
):
    add_entries(campaign, 10, start=window[0], consumers=consumers)
    draw = drawn_draw(campaign, manager, window, officer_a, officer_b)
    html = client.get(reverse("draws:detail", args=[draw.code])).content.decode()
    seed = type(draw).objects.get(pk=draw.pk).server_seed
    assert seed not in html
    assert draw.seed_commitment in html
    for name in NAMES:
        assert name[0] + "*" not in html
    assert client.get(reverse("draws:bundle", args=[draw.code])).status_code == 404
    # The ticket list is public from freezing on.
    assert client.get(reverse("draws:tickets", args=[draw.code])).status_code == 200


def test_downloads_are_the_published_files(client, published, tmp_path):
    draw, _ = published
    bundle = client.get(reverse("draws:bundle", args=[draw.code]))
    assert bundle["Content-Disposition"] == 'attachment; filename="bundle.json"'
    assert json.loads(bundle.content) == selectors.draw_bundle(draw)
    tickets = client.get(reverse("draws:tickets", args=[draw.code]))
    body = b"".join(tickets.streaming_content)
    assert hashlib.sha256(body).hexdigest() == draw.tickets_digest
    assert body.count(b"\n") == draw.ticket_count
    assert tickets["ETag"] == f'"{draw.tickets_digest}"'
    again = client.get(
        reverse("draws:tickets", args=[draw.code]), HTTP_IF_NONE_MATCH=tickets["ETag"]
    )
    assert again.status_code == 304
    script = client.get(reverse("draws:verifier"))
    assert b"".join(script.streaming_content) == VERIFIER.read_bytes()
    # What a citizen downloads, the verifier accepts.
    (tmp_path / "bundle.json").write_bytes(bundle.content)
    (tmp_path / "tickets.csv").write_bytes(body)
    result = verify(tmp_path / "bundle.json", tmp_path / "tickets.csv")
    assert result.returncode == 0, result.stdout + result.stderr


def test_unknown_draw_is_404(client, db):
    assert client.get(reverse("draws:detail", args=["ZZ-NOPE"])).status_code == 404
    assert client.get(reverse("draws:tickets", args=["ZZ-NOPE"])).status_code == 404


def test_only_safe_methods(client, published):
    draw, _ = published
    assert client.post(reverse("draws:detail", args=[draw.code])).status_code == 405


# --- draw_export + the stand-alone verifier -------------------------------------------------


def test_export_verifies_and_a_tampered_copy_does_not(published, tmp_path):
    draw, _ = published
    out = tmp_path / "export"
    call_command("draw_export", draw.code, str(out))
    bundle, tickets = out / "bundle.json", out / "tickets.csv"
    assert json.loads(bundle.read_text(encoding="utf-8")) == selectors.draw_bundle(draw)
    assert bundle.read_text(encoding="utf-8") == engine.bundle_json(selectors.draw_bundle(draw))
    result = verify(bundle, tickets)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "VERIFIED" in result.stdout
    assert f"{draw.ticket_count} tickets" in result.stdout

    def tampered(edit_bundle=None, edit_tickets=None):
        copy = tmp_path / f"copy{len(list(tmp_path.iterdir()))}"
        shutil.copytree(out, copy)
        if edit_bundle:
            data = json.loads((copy / "bundle.json").read_text(encoding="utf-8"))
            edit_bundle(data)
            (copy / "bundle.json").write_text(json.dumps(data, ensure_ascii=False))
        if edit_tickets:
            (copy / "tickets.csv").write_bytes(edit_tickets((copy / "tickets.csv").read_bytes()))
        return verify(copy / "bundle.json", copy / "tickets.csv")

    def other_winner(data):
        data["winners"][0]["ticket_no"] = data["winners"][0]["ticket_no"] % draw.ticket_count + 1

    def other_holder(raw):
        lines = raw.splitlines(keepends=True)
        number, entry, _holder = lines[2].decode().strip().split(",")
        lines[2] = f"{number},{entry},{'0' * 16}\n".encode()
        return b"".join(lines)

    def other_seed(data):
        data["server_seed"] = "00" * 32

    def drop_substitute(data):
        data["substitutes"] = []

    for case in (
        tampered(edit_bundle=other_winner),
        tampered(edit_bundle=other_seed),
        tampered(edit_bundle=drop_substitute),
        tampered(edit_tickets=other_holder),
        tampered(edit_tickets=lambda raw: raw.rsplit(b"\n", 2)[0] + b"\n"),
    ):
        assert case.returncode == 1, case.stdout
        assert "NOT VERIFIED" in case.stdout


def test_export_before_publication_writes_only_the_tickets(
    campaign, manager, window, tmp_path, consumers
):
    add_entries(campaign, 5, start=window[0], consumers=consumers)
    draw = frozen_draw(campaign, manager, window)
    call_command("draw_export", draw.code, str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tickets.csv"]
    assert hashlib.sha256((tmp_path / "tickets.csv").read_bytes()).hexdigest() == (
        draw.tickets_digest
    )
    with pytest.raises(CommandError):
        call_command("draw_export", "ZZ-NOPE", str(tmp_path))


def test_export_refuses_a_ticket_list_that_no_longer_matches(
    campaign, manager, window, tmp_path, consumers
):
    from tests.draws.test_lifecycle import _bypassing_triggers

    add_entries(campaign, 5, start=window[0], consumers=consumers)
    draw = frozen_draw(campaign, manager, window)
    _bypassing_triggers(
        "UPDATE draws_drawticket SET entry_ref = %s WHERE draw_id = %s AND ticket_no = 1",
        ["e" * 16, draw.pk],
    )
    with pytest.raises(CommandError, match=r"draw\.tickets_changed"):
        call_command("draw_export", draw.code, str(tmp_path))
    assert not (tmp_path / "tickets.csv").exists()
    assert DrawTicket.objects.filter(draw=draw).count() == 5
