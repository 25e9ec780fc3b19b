"""The tax-authority feed importer (apps.invoices.feed): every kind of bad row is reported with
its line and code while good rows land; re-imports change nothing; both database paths agree."""

from __future__ import annotations

import csv
import io
from datetime import UTC, timedelta
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone, translation

from apps.common import crypto
from apps.invoices import feed
from apps.invoices.choices import IssuerKind, RegistryStatus
from apps.invoices.models import FeedImport, FeedImportError, FeedImportStatus, TaxInvoiceRecord
from tests.factories.core import make_invoice_number, make_uscc
from tests.invoices.conftest import name_index

pytestmark = pytest.mark.django_db

HEADER = ",".join(feed.FEED_COLUMNS)
SELLER = make_uscc(70_001, area="410105")
BAD_USCC = SELLER[:-1] + ("0" if SELLER[-1] != "0" else "1")
ISSUED = (timezone.localtime() - timedelta(days=2)).strftime("%Y-%m-%d %H:%M:%S")


def n(i: int) -> str:
    return make_invoice_number(800_000 + i)


def row(number, *, total="200.00", amount=None, tax=None, reverses="", **fields) -> str:
    if amount is None:
        tax = tax or (Decimal(total) * Decimal("0.13") / Decimal("1.13")).quantize(Decimal("0.01"))
        amount = Decimal(total) - Decimal(tax)
    values = {
        "number": number,
        "invoice_type": "32",
        "issued_at": ISSUED,
        "seller_uscc": SELLER,
        "seller_name": "郑州测试商贸有限公司",
        "buyer_name": "张三",
        "buyer_tax_id": "",
        "amount": str(amount),
        "tax": str(tax),
        "total": str(total),
        "issuer_kind": "self",
        "industry_code": "5211",
        "area_code": "410105",
        "reverses_number": reverses,
        **fields,
    }
    return feed._csv_line([values[c] for c in feed.FEED_COLUMNS])


def red(number, blue, total="-200.00", **fields) -> str:
    tax = (Decimal(total) * Decimal("0.13") / Decimal("1.13")).quantize(Decimal("0.01"))
    return row(number, total=total, tax=tax, amount=Decimal(total) - tax, reverses=blue, **fields)


def feed_bytes(*lines: str | bytes, header: str = HEADER) -> bytes:
    parts = [header.encode()] + [ln if isinstance(ln, bytes) else ln.encode() for ln in lines]
    return b"\n".join(parts) + b"\n"


def run(data: bytes, name: str = "feed.csv", on_progress=None) -> FeedImport:
    feed_import = FeedImport.objects.create(file_name=name)
    return feed.feed_import_run(
        feed_import=feed_import, stream=io.BytesIO(data), on_progress=on_progress
    )


def errors_of(feed_import) -> list[tuple[int, str, str]]:
    return sorted(
        FeedImportError.objects.filter(feed_import=feed_import).values_list(
            "line", "column", "code"
        )
    )


# Every kind of bad row, between good ones. Line 1 is the header.
BAD_FEED = feed_bytes(
    row(n(1)),  # 2: good
    row(n(2), total="300.00"),  # 3: good; reversed in part on line 12
    row("2641ABC0000000000003"),  # 4: bad number
    row(n(4), seller_uscc=BAD_USCC),  # 5: bad credit code (check character)
    row(n(5), amount="12.345", tax="23.01"),  # 6: bad amount (three decimals)
    row(n(6), amount="100.00", tax="13.00", total="120.00"),  # 7: total != amount + tax
    red(n(7), make_invoice_number(999_999)),  # 8: red invoice of an unknown blue one
    row(n(1), total="999.00"),  # 9: duplicate of line 2 (the first wins)
    row(n(9)).encode().replace("张三".encode(), b"\xd5\xc5\xc8\xfd"),  # 10: GBK bytes, not UTF-8
    row(n(10)) + ",extra",  # 11: one column too many
    red(n(11), n(2), total="-100.00"),  # 12: partial red of line 3's invoice
    red(n(12), n(13)),  # 13: red whose blue comes later in the same file
    row(n(13)),  # 14: that blue
    row(n(14), issued_at="2026-02-30 10:00:00"),  # 15: no such date
    row(n(15), issuer_kind="代开", seller_name="郑州,测试"),  # 16: good, quoted comma
    row(n(16), seller_name="郑州\n测试"),  # 17-18: a line break inside a quoted name
    row(n(17), buyer_name=" 李 四 "),  # 19: good, spaces normalised away in the index
    "",  # 20: blank lines are skipped
    row(n(18), total="-5.00", amount="-4.42", tax="-0.58"),  # 21: negative blue invoice
    row(n(19), invoice_type="99", area_code="41010"),  # 22: two problems in one row
)
EXPECTED_ERRORS = [
    (4, "number", "feed.invalid_number"),
    (5, "seller_uscc", "feed.invalid_uscc"),
    (6, "amount", "feed.invalid_amount"),
    (7, "total", "feed.total_mismatch"),
    (8, "reverses_number", "feed.unknown_blue_invoice"),
    (9, "number", "feed.duplicate_number"),
    (10, "", "feed.invalid_utf8"),
    (11, "", "feed.column_count"),
    (15, "issued_at", "feed.invalid_issued_at"),
    (17, "seller_name", "feed.invalid_seller_name"),
    (21, "total", "feed.amount_sign"),
    (22, "area_code", "feed.invalid_area_code"),
    (22, "invoice_type", "feed.invalid_invoice_type"),
]
LANDED = {n(1), n(2), n(11), n(12), n(13), n(15), n(17)}


def test_bad_rows_are_reported_with_line_and_code_and_good_rows_land():
    result = run(BAD_FEED)
    assert result.status == FeedImportStatus.DONE, result.error_message
    assert errors_of(result) == EXPECTED_ERRORS
    assert set(TaxInvoiceRecord.objects.values_list("number", flat=True)) == LANDED
    assert result.total_rows == 19  # records: not the blank line, not line 18 (inside 17)
    assert (result.inserted, result.updated, result.unchanged) == (7, 0, 0)
    assert result.error_rows == 12
    assert result.red_applied == 2
    assert result.progress == 100 and result.finished_at


def test_landed_rows_hold_the_feed_facts():
    run(BAD_FEED)
    first = TaxInvoiceRecord.objects.get(number=n(1))
    assert first.total == Decimal("200.00")  # the first line, not the duplicate's 999.00
    assert first.buyer_name_index == name_index("张三")
    assert first.status == RegistryStatus.NORMAL and not first.is_red
    assert timezone.localtime(first.issued_at).strftime("%Y-%m-%d %H:%M:%S") == ISSUED
    spaced = TaxInvoiceRecord.objects.get(number=n(17))
    assert spaced.buyer_name_index == name_index("李四")
    agent = TaxInvoiceRecord.objects.get(number=n(15))
    assert agent.issuer_kind == IssuerKind.AGENT and agent.seller_name == "郑州,测试"


def test_red_invoices_flush_their_blue_ones():
    run(BAD_FEED)
    partial = TaxInvoiceRecord.objects.get(number=n(2))
    assert partial.status == RegistryStatus.PARTIALLY_RED_FLUSHED
    assert partial.red_total == Decimal("100.00")
    full = TaxInvoiceRecord.objects.get(number=n(13))
    assert full.status == RegistryStatus.RED_FLUSHED and full.red_total == Decimal("200.00")
    the_red = TaxInvoiceRecord.objects.get(number=n(12))
    assert the_red.is_red and the_red.reverses_number == n(13)
    assert the_red.total == Decimal("-200.00")


def test_every_error_keeps_its_raw_row_encrypted():
    result = run(BAD_FEED)
    errors = {e.line: e for e in FeedImportError.objects.filter(feed_import=result)}
    assert "2641ABC0000000000003" in errors[4].raw_row
    assert "\\xd5\\xc5" in errors[10].raw_row  # undecodable bytes are kept, escaped
    assert errors[17].raw_row.count("\n") == 1  # the whole two-line record
    assert errors[9].message  # a readable message, in the configured language
    with connection.cursor() as cursor:
        cursor.execute("SELECT raw_row FROM invoices_feedimporterror WHERE line = 4")
        (stored,) = cursor.fetchone()
    assert "2641ABC" not in stored and "张三" not in stored  # ciphertext at rest


def test_reimporting_the_same_file_changes_nothing():
    first = run(BAD_FEED)
    before = dict(TaxInvoiceRecord.objects.values_list("number", "last_synced_at"))
    states = dict(TaxInvoiceRecord.objects.values_list("number", "status"))
    again = run(BAD_FEED)
    assert (again.inserted, again.updated, again.red_applied) == (0, 0, 0)
    assert again.unchanged == first.inserted
    assert errors_of(again) == EXPECTED_ERRORS
    assert dict(TaxInvoiceRecord.objects.values_list("number", "last_synced_at")) == before
    assert dict(TaxInvoiceRecord.objects.values_list("number", "status")) == states


def test_a_changed_row_is_updated_and_only_it_moves():
    run(feed_bytes(row(n(1)), row(n(2))))
    before = dict(TaxInvoiceRecord.objects.values_list("number", "last_synced_at"))
    result = run(feed_bytes(row(n(1)), row(n(2), seller_name="郑州更名商贸有限公司")))
    assert (result.inserted, result.updated, result.unchanged) == (0, 1, 1)
    after = dict(TaxInvoiceRecord.objects.values_list("number", "last_synced_at"))
    assert after[n(1)] == before[n(1)]
    assert after[n(2)] > before[n(2)]
    assert TaxInvoiceRecord.objects.get(number=n(2)).seller_name == "郑州更名商贸有限公司"


def test_missing_columns_fail_the_file_and_nothing_lands():
    header = HEADER.replace(",tax,", ",")
    body = ",".join(
        v for c, v in zip(feed.FEED_COLUMNS, row(n(1)).split(","), strict=True) if c != "tax"
    )
    result = run(feed_bytes(body, header=header))
    assert result.status == FeedImportStatus.FAILED
    assert "tax" in result.error_message
    assert errors_of(result) == [(0, "", "feed.missing_columns")]
    assert not TaxInvoiceRecord.objects.exists()


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "feed.empty_file"),
        (
            ("\n".join([HEADER] + [row(n(i)) for i in range(30)]) + "\n").encode("gb18030"),
            "feed.not_utf8",
        ),
        ((HEADER + ",number\n").encode(), "feed.duplicate_columns"),
    ],
    ids=["empty", "not-utf8", "duplicate-columns"],  # stable ids: xdist workers must agree
)
def test_file_level_problems(data, code):
    result = run(data)
    assert result.status == FeedImportStatus.FAILED
    assert errors_of(result) == [(0, "", code)]
    assert not TaxInvoiceRecord.objects.exists()


def test_header_in_another_order_with_extra_columns_bom_and_crlf():
    columns = [*reversed(feed.FEED_COLUMNS), "remark"]
    values = dict(zip(feed.FEED_COLUMNS, row(n(1)).split(","), strict=True))
    line = ",".join([values[c] for c in reversed(feed.FEED_COLUMNS)] + ["备注"])
    data = b"\xef\xbb\xbf" + (",".join(columns) + "\r\n" + line + "\r\n").encode()
    result = run(data)
    assert result.status == FeedImportStatus.DONE and result.inserted == 1
    assert not errors_of(result)


def test_reading_in_small_blocks_keeps_line_numbers(monkeypatch):
    monkeypatch.setattr(feed, "BLOCK_BYTES", 64)
    result = run(BAD_FEED)
    assert errors_of(result) == EXPECTED_ERRORS
    assert set(TaxInvoiceRecord.objects.values_list("number", flat=True)) == LANDED


def test_progress_is_reported_and_throttled():
    reports = []
    run(BAD_FEED, on_progress=reports.append)
    phases = [r.phase for r in reports]
    assert phases[-1] == "done" and reports[-1].rows == 19
    assert {"writing", "reversals"} <= set(phases)
    assert len(reports) < 20  # at most four a second, plus one per phase


def test_the_command_shows_rows_rate_and_eta(tmp_path):
    path = tmp_path / "feed.csv"
    path.write_bytes(feed_bytes(*[row(n(i)) for i in range(40)], row("bad")))
    out, err = io.StringIO(), io.StringIO()
    with translation.override("en"):
        call_command("import_tax_feed", str(path), progress="always", stdout=out, stderr=err)
    bar = err.getvalue()
    assert "rows" in bar and "rows/s" in bar
    assert "ETA" in bar or "elapsed" in bar
    assert "done" in bar
    summary = out.getvalue()
    assert "40 inserted" in summary and "1 rows with errors" in summary
    assert FeedImport.objects.get().status == FeedImportStatus.DONE


def test_the_progress_bar_renders_an_eta_while_reading():
    from apps.invoices.management.commands.import_tax_feed import ProgressBar

    stream = io.StringIO()
    bar = ProgressBar(stream, redraw=True)
    started = feed.time.monotonic() - 10
    bar(feed.Progress("reading", 50_000, 25, 100, started))
    line = stream.getvalue()
    assert "25%" in line and "50,000 rows" in line and "rows/s" in line
    assert "ETA 0:00:3" in line  # a quarter in ten seconds: about thirty to go


def test_the_command_fails_for_a_failed_file(tmp_path):
    path = tmp_path / "broken.csv"
    path.write_bytes(b"number,total\n1,2\n")
    with translation.override("en"), pytest.raises(CommandError, match="1 of 1"):
        call_command("import_tax_feed", str(path), progress="never", stdout=io.StringIO())


# --- The rules themselves, and the agreement of the two paths ---------------------------------


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("2026-03-01 10:15:00", True),
        ("2026-03-01T10:15:00", True),
        ("2026-03-01T10:15:00.123456+08:00", True),
        ("2026-03-01T02:15:00Z", True),
        ("2024-02-29 00:00:00", True),
        ("2025-02-29 00:00:00", False),
        ("2100-02-29 00:00:00", False),
        ("2026-04-31 00:00:00", False),
        ("2026-13-01 00:00:00", False),
        ("2026-03-01 24:00:00", False),
        ("2026-03-01 10:60:00", False),
        ("2026-03-01 10:15:00+15:00", False),
        ("2026-03-01 10:15:00.1234567", False),
        ("2026-3-1 10:15:00", False),
        ("２０２６-03-01 10:15:00", False),
        ("", False),
    ],
)
def test_issued_at_rule(value, ok):
    assert (feed.parse_issued_at(value) is not None) is ok
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT invoices_feed_timestamp(%s)", [value])
            assert cursor.fetchone()[0] == feed.parse_issued_at(value)


def test_local_times_are_china_time():
    assert feed.parse_issued_at("2026-03-01 08:00:00").astimezone(UTC).hour == 0


@pytest.mark.parametrize(
    "code", [SELLER, BAD_USCC, SELLER.lower(), SELLER[:-1], SELLER + "0", "I" * 18]
)
def test_credit_code_rule(code):
    expected = code == SELLER
    assert feed.uscc_ok(code) is expected
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT invoices_uscc_valid(%s)", [code])
            assert cursor.fetchone()[0] is expected


@pytest.mark.postgres
@pytest.mark.parametrize(
    "name", ["张三", " 张 三 ", "ＡＢＣ", "阿依古丽•买买提", "阿依古丽．买买提", "王\u3000五", ""]
)
def test_the_blind_index_in_sql_is_the_python_one(name):
    import psycopg

    params = {
        "n": name,
        "f": feed.NAME_DOTS + feed.PY_WHITESPACE,
        "t": "·" * len(feed.NAME_DOTS),
        "k": crypto.keyring().blind_keys[0],
    }
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(
            "SELECT coalesce(encode(hmac(convert_to('name|' || nullif(translate("
            "normalize(%(n)s, NFKC), %(f)s, %(t)s), ''), 'UTF8'), %(k)s, 'sha256'), 'hex'), '')",
            params,
        )
        assert cursor.fetchone()[0] == feed.name_index(name)


@pytest.mark.postgres
def test_postgres_and_portable_paths_agree():
    """The set-based path and the Python rules give the same registry and the same report."""

    def outcome(path_class):
        feed_import = FeedImport.objects.create(file_name="x.csv")
        importer = feed.FeedImporter(feed_import, io.BytesIO(BAD_FEED))
        columns = importer.reader.read_header()
        importer.errors = feed.ErrorSink(feed_import, columns)
        path_class(importer).run(columns)
        importer.errors.flush()
        records = sorted(
            TaxInvoiceRecord.objects.values_list("number", *feed.FACT_FIELDS, "status", "red_total")
        )
        TaxInvoiceRecord.objects.all().delete()
        return records, errors_of(feed_import), importer.counters

    sql_records, sql_errors, sql_counters = outcome(feed.PostgresPath)
    py_records, py_errors, py_counters = outcome(feed.PortablePath)
    assert sql_errors == py_errors == EXPECTED_ERRORS
    assert sql_records == py_records
    assert sql_counters == py_counters


@pytest.mark.postgres
def test_a_number_that_landed_meanwhile_is_settled_row_by_row(monkeypatch):
    """The plain INSERT of a slice meets a number that is in the registry after all (another
    import or a verification reply wrote it after the check): ON CONFLICT takes over, with the
    same outcome and counters as if the record had been seen."""
    run(feed_bytes(row(n(1)), row(n(3))))
    before = TaxInvoiceRecord.objects.get(number=n(3)).last_synced_at
    monkeypatch.setattr(feed, "EXISTING_SQL", "SELECT false")  # the check misses them
    changed = feed_bytes(row(n(1), seller_name="郑州更名商贸有限公司"), row(n(2)), row(n(3)))
    result = run(changed)
    assert result.status == FeedImportStatus.DONE, result.error_message
    assert (result.inserted, result.updated, result.unchanged) == (1, 1, 1)
    assert TaxInvoiceRecord.objects.get(number=n(1)).seller_name == "郑州更名商贸有限公司"
    assert TaxInvoiceRecord.objects.get(number=n(3)).last_synced_at == before
    assert TaxInvoiceRecord.objects.count() == 3


@pytest.mark.postgres
def test_rows_land_in_number_order_and_first_wins_across_the_sort_key():
    """The ranking sorts on two integers (the first 18 digits, the last two): a scattered file
    lands in number order (the registry's rows are written in that order), numbers that share their
    first 18 digits stay apart, and a repeated number is still reported against its first
    line. A feed without red invoices skips the red step's scan and counts no reds."""
    order = [199, 101, 200, 100, 150, 101, 299]  # 101 twice: lines 3 and 7
    result = run(feed_bytes(*(row(n(i), total=f"{i}.00") for i in order)))
    assert result.status == FeedImportStatus.DONE, result.error_message
    assert (result.inserted, result.red_applied, result.error_rows) == (6, 0, 1)
    assert errors_of(result) == [(7, "number", "feed.duplicate_number")]
    with connection.cursor() as cursor:  # the order the rows were written in
        cursor.execute(f"SELECT number, total FROM {feed.REGISTRY} ORDER BY ctid")
        landed = cursor.fetchall()
    assert [number for number, _total in landed] == sorted({n(i) for i in order})
    assert dict(landed)[n(101)] == Decimal("101.00")
    from django.conf import settings

    message = FeedImportError.objects.get(feed_import=result).message
    with translation.override(settings.LANGUAGE_CODE):
        assert message == feed.error_message("feed.duplicate_number", {"first_line": 3})


@pytest.mark.postgres
def test_staging_tables_are_dropped():
    run(BAD_FEED)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_class WHERE relname LIKE 'invoices_feed_stage_%%'")
        assert cursor.fetchone()[0] == 0


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_slices_land_side_by_side_on_their_own_connections(monkeypatch, settings):
    """Outside a caller's transaction the rows are ranked in `FEED_IMPORT_WORKERS` ranges of
    numbers and their blue slices land on as many connections of their own: the same registry,
    report and counters as one connection (a number repeated across the file is still caught),
    and a re-import is still a no-op."""
    import threading

    settings.FEED_IMPORT_WORKERS = 2
    monkeypatch.setattr(feed.PostgresPath, "chunk_rows", 2)
    landers = set()
    land = feed.PostgresPath._land

    def spy(self, table, where):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            landers.add((threading.current_thread().name, table, cursor.fetchone()[0]))
        return land(self, table, where)

    monkeypatch.setattr(feed.PostgresPath, "_land", spy)
    result = run(BAD_FEED)
    assert result.status == FeedImportStatus.DONE, result.error_message
    assert errors_of(result) == EXPECTED_ERRORS
    assert set(TaxInvoiceRecord.objects.values_list("number", flat=True)) == LANDED
    assert (result.inserted, result.red_applied) == (len(LANDED), 2)
    blue = {(name, pid) for name, table, pid in landers if "_ranked_" in table}
    assert len({pid for _name, pid in blue}) >= 2  # more than one connection landed slices
    assert all(name.startswith("feed-land") for name, _pid in blue)

    again = run(BAD_FEED, name="again.csv")
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, len(LANDED))


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_failing_slice_fails_the_import_and_its_tables_go(monkeypatch, settings):
    settings.FEED_IMPORT_WORKERS = 2
    monkeypatch.setattr(feed.PostgresPath, "chunk_rows", 2)
    land = feed.PostgresPath._land
    calls = []

    def flaky(self, table, where):
        calls.append(where)
        if len(calls) == 2:
            raise RuntimeError("connection lost")
        return land(self, table, where)

    monkeypatch.setattr(feed.PostgresPath, "_land", flaky)
    with pytest.raises(RuntimeError, match="connection lost"):  # re-raised for the task runner
        run(BAD_FEED)
    assert FeedImport.objects.get(file_name="feed.csv").status == FeedImportStatus.FAILED
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_class WHERE relname LIKE 'invoices_feed_stage_%%'")
        assert cursor.fetchone()[0] == 0
    # The slices that landed are whole, and the next import completes the registry.
    monkeypatch.setattr(feed.PostgresPath, "_land", land)
    assert run(BAD_FEED, name="again.csv").status == FeedImportStatus.DONE
    assert set(TaxInvoiceRecord.objects.values_list("number", flat=True)) == LANDED


@pytest.mark.postgres
def test_a_dead_imports_tables_are_dropped_by_the_next_one():
    """A killed worker leaves its staging, lookup and ranked tables; the next import drops
    them (unless that import is still running)."""
    dead = FeedImport.objects.create(file_name="dead.csv", status=FeedImportStatus.FAILED)
    alive = FeedImport.objects.create(file_name="alive.csv", status=FeedImportStatus.RUNNING)
    with connection.cursor() as cursor:
        for owner in (dead.pk, alive.pk):
            for suffix in ("", "_sellers", "_ranked"):
                cursor.execute(f"CREATE UNLOGGED TABLE {feed.STAGE_PREFIX}{owner}{suffix} (x int)")
    run(feed_bytes(row(n(1))))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname FROM pg_class WHERE relname LIKE 'invoices_feed_stage_%%' "
            "ORDER BY relname"
        )
        left = [name for (name,) in cursor.fetchall()]
    assert left == sorted(f"{feed.STAGE_PREFIX}{alive.pk}{s}" for s in ("", "_sellers", "_ranked"))


# --- The admin: upload, progress, error report ----------------------------------------------


@pytest.fixture
def feed_admin(settings, tmp_path):
    """The feed admin registered and routed (until apps/invoices/admin.py imports it)."""
    import importlib
    import sys

    from django.urls import clear_url_caches

    import apps.invoices.admin_feed  # noqa: F401 - registers FeedImportAdmin

    settings.MEDIA_ROOT = tmp_path
    module = sys.modules.get(settings.ROOT_URLCONF)
    if module is not None:
        importlib.reload(module)
    clear_url_caches()
    yield
    clear_url_caches()


def _staff_with(*codenames):
    from django.contrib.auth.models import Permission

    from tests.factories.core import UserFactory

    user = UserFactory(is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="invoices", codename__in=codenames)
    )
    return user


def test_upload_in_the_admin_queues_the_import_and_shows_the_outcome(
    feed_admin, admin_client, django_capture_on_commit_callbacks
):
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.urls import reverse

    upload = SimpleUploadedFile("今日发票.csv", BAD_FEED, content_type="text/csv")
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("admin:invoices_feedimport_add"), {"file": upload})
    assert response.status_code == 302
    feed_import = FeedImport.objects.get()
    assert feed_import.file_name == "今日发票.csv" and feed_import.file.name.startswith("feeds/")
    assert feed_import.status == FeedImportStatus.DONE
    assert errors_of(feed_import) == EXPECTED_ERRORS
    page = admin_client.get(reverse("admin:invoices_feedimport_change", args=[feed_import.pk]))
    assert page.status_code == 200
    text = page.content.decode()
    assert "feed.duplicate_number" in text and "errors.csv" in text
    assert "张三" not in text  # raw rows are shown with the buyer name masked
    listing = admin_client.get(reverse("admin:invoices_feedimport_changelist"))
    assert "今日发票.csv" in listing.content.decode()


def test_the_error_report_downloads_masked_and_formula_safe(feed_admin, admin_client):
    from django.urls import reverse

    from apps.audit.models import AuditEvent

    result = run(feed_bytes(row("bad-number", seller_name="=HYPERLINK(1)"), row(n(1))))
    response = admin_client.get(reverse("admin:invoices_feedimport_errors", args=[result.pk]))
    assert response.status_code == 200
    body = b"".join(response.streaming_content).decode("utf-8-sig")
    lines = list(csv.reader(io.StringIO(body)))
    assert lines[0] == ["line", "column", "code", "message", "raw_row"]
    line, column, code, _message, raw = lines[1]
    assert (line, column, code) == ("2", "number", "feed.invalid_number")
    assert "张三" not in raw and "张*" in raw
    assert "=HYPERLINK" in raw and not raw.startswith("=")
    assert AuditEvent.objects.filter(action="feed.errors_exported").exists()


def test_a_formula_at_the_start_of_a_cell_is_neutralised(feed_admin, admin_client):
    from django.urls import reverse

    result = run(feed_bytes("=1+2," + row(n(1)).split(",", 1)[1]))
    response = admin_client.get(reverse("admin:invoices_feedimport_errors", args=[result.pk]))
    body = b"".join(response.streaming_content).decode("utf-8-sig")
    raw = list(csv.reader(io.StringIO(body)))[1][4]
    assert raw.startswith("'=1+2")


def test_viewers_cannot_upload_and_outsiders_cannot_read(feed_admin, client):
    from django.urls import reverse

    from tests.accounts.helpers import sign_in_staff

    result = run(feed_bytes(row("bad")))
    viewer = _staff_with("view_feedimport")
    sign_in_staff(client, viewer)
    assert client.get(reverse("admin:invoices_feedimport_add")).status_code == 403
    assert client.get(reverse("admin:invoices_feedimport_changelist")).status_code == 200
    ok = client.get(reverse("admin:invoices_feedimport_errors", args=[result.pk]))
    assert ok.status_code == 200
    client.logout()
    sign_in_staff(client, _staff_with())
    denied = client.get(reverse("admin:invoices_feedimport_errors", args=[result.pk]))
    assert denied.status_code == 403


def test_only_csv_files_are_accepted(feed_admin, admin_client):
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.urls import reverse

    upload = SimpleUploadedFile("feed.xlsx", b"PK\x03\x04", content_type="application/zip")
    response = admin_client.post(reverse("admin:invoices_feedimport_add"), {"file": upload})
    assert response.status_code == 200 and not FeedImport.objects.exists()


def test_the_task_runs_a_queued_import_once(tmp_path, settings):
    from django.core.files.base import ContentFile

    from apps.invoices.tasks import import_tax_feed_task

    settings.MEDIA_ROOT = tmp_path
    feed_import = FeedImport(file_name="f.csv")
    feed_import.file.save("f.csv", ContentFile(feed_bytes(row(n(1)))), save=True)
    assert import_tax_feed_task(feed_import.pk) == FeedImportStatus.DONE
    assert import_tax_feed_task(feed_import.pk) == FeedImportStatus.DONE  # no second run
    feed_import.refresh_from_db()
    assert feed_import.inserted == 1 and feed_import.columns == list(feed.FEED_COLUMNS)
