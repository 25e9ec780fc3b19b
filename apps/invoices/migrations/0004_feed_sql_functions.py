"""SQL helpers of the tax-feed importer, on PostgreSQL only (SQLite uses the Python rules).

- `pgcrypto`, for `hmac()`: the importer computes the buyer-name blind index in SQL. The key is
  sent as a bound parameter of the importing statement and is never stored in the database.
- `invoices_uscc_valid(text)`: GB 32100-2015 check of a unified social credit code (upper
  case, 18 characters of the code alphabet, correct check character); same rule as
  `apps.invoices.feed.uscc_ok`.
- `invoices_feed_timestamp(text)`: the feed's `issued_at` as timestamptz, or NULL when it is
  not `YYYY-MM-DD[ T]HH:MM:SS[.ffffff][Z|±HH:MM]` with real date and time values (no offset:
  Asia/Shanghai); same rule as `apps.invoices.feed.parse_issued_at`. It never raises, so one
  bad row cannot abort a set-based statement.

Both functions are plain `LANGUAGE sql` expressions: the planner inlines them into the
importer's statements, with no per-row function-call overhead.
"""

from django.db import migrations

# Bounded repetitions (`[0-9]{20}`) make PostgreSQL's regex engine slow; a length check plus
# an unbounded class is the same rule at a fraction of the cost.
USCC_FUNCTION = """
CREATE OR REPLACE FUNCTION invoices_uscc_valid(code text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT octet_length(code) = 18 AND code ~ '^[0-9A-HJ-NP-RTUW-Y]+$'
    AND substr('0123456789ABCDEFGHJKLMNPQRTUWXY', (31 - (
          (strpos('0123456789ABCDEFGHJKLMNPQRTUWXY', substr(code, 1, 1)) - 1) * 1
        + (strpos('0123456789ABCDEFGHJKLMNPQRTUWXY', substr(code, 2, 1)) - 1) * 3
        + (strpos('0123456789ABCDEFGHJKLMNPQRTUWXY', substr(code, 3, 1)) - 1) * 9
        + (strpos('0123456789ABCDEFGHJKLMNPQRTUWXY', substr(code, 4, 1)) - 1) * 27
        + (strpos('0123456789ABCDEFGHJKLMNPQRTUWXY', substr(code, 5, 1)) - 1) * 19
        + (strpos('0123456789ABCDEFGHJKLMNPQRTUWXY', substr(code, 6, 1)) - 1) * 26
        + (strpos('0123456789ABCDEFGHJKLMNPQRTUWXY', substr(code, 7, 1)) - 1) * 16
        + (strpos('0123456789ABCDEFGHJKLMNPQRTUWXY', substr(code, 8, 1)) - 1) * 17
        + (strpos('0123456789ABCDEFGHJKLMNPQRTUWXY', substr(code, 9, 1)) - 1) * 20
        + (strpos('0123456789ABCDEFGHJKLMNPQRTUWXY', substr(code, 10, 1)) - 1) * 29
        + (strpos('0123456789ABCDEFGHJKLMNPQRTUWXY', substr(code, 11, 1)) - 1) * 25
        + (strpos('0123456789ABCDEFGHJKLMNPQRTUWXY', substr(code, 12, 1)) - 1) * 13
        + (strpos('0123456789ABCDEFGHJKLMNPQRTUWXY', substr(code, 13, 1)) - 1) * 8
        + (strpos('0123456789ABCDEFGHJKLMNPQRTUWXY', substr(code, 14, 1)) - 1) * 24
        + (strpos('0123456789ABCDEFGHJKLMNPQRTUWXY', substr(code, 15, 1)) - 1) * 10
        + (strpos('0123456789ABCDEFGHJKLMNPQRTUWXY', substr(code, 16, 1)) - 1) * 30
        + (strpos('0123456789ABCDEFGHJKLMNPQRTUWXY', substr(code, 17, 1)) - 1) * 28
    ) % 31) % 31 + 1, 1) = substr(code, 18, 1)
$$
"""

# Every accepted layout, digits written as 9: `translate()` maps the value onto its layout.
TIMESTAMP_FUNCTION = r"""
CREATE OR REPLACE FUNCTION invoices_feed_timestamp(v text) RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN v IS NULL OR translate(v, '0123456789', '9999999999') <> ALL (ARRAY[
            '9999-99-99 99:99:99', '9999-99-99 99:99:99Z',
            '9999-99-99 99:99:99+99:99', '9999-99-99 99:99:99-99:99',
            '9999-99-99 99:99:99.9', '9999-99-99 99:99:99.9Z',
            '9999-99-99 99:99:99.9+99:99', '9999-99-99 99:99:99.9-99:99',
            '9999-99-99 99:99:99.99', '9999-99-99 99:99:99.99Z',
            '9999-99-99 99:99:99.99+99:99', '9999-99-99 99:99:99.99-99:99',
            '9999-99-99 99:99:99.999', '9999-99-99 99:99:99.999Z',
            '9999-99-99 99:99:99.999+99:99', '9999-99-99 99:99:99.999-99:99',
            '9999-99-99 99:99:99.9999', '9999-99-99 99:99:99.9999Z',
            '9999-99-99 99:99:99.9999+99:99', '9999-99-99 99:99:99.9999-99:99',
            '9999-99-99 99:99:99.99999', '9999-99-99 99:99:99.99999Z',
            '9999-99-99 99:99:99.99999+99:99', '9999-99-99 99:99:99.99999-99:99',
            '9999-99-99 99:99:99.999999', '9999-99-99 99:99:99.999999Z',
            '9999-99-99 99:99:99.999999+99:99', '9999-99-99 99:99:99.999999-99:99',
            '9999-99-99T99:99:99', '9999-99-99T99:99:99Z',
            '9999-99-99T99:99:99+99:99', '9999-99-99T99:99:99-99:99',
            '9999-99-99T99:99:99.9', '9999-99-99T99:99:99.9Z',
            '9999-99-99T99:99:99.9+99:99', '9999-99-99T99:99:99.9-99:99',
            '9999-99-99T99:99:99.99', '9999-99-99T99:99:99.99Z',
            '9999-99-99T99:99:99.99+99:99', '9999-99-99T99:99:99.99-99:99',
            '9999-99-99T99:99:99.999', '9999-99-99T99:99:99.999Z',
            '9999-99-99T99:99:99.999+99:99', '9999-99-99T99:99:99.999-99:99',
            '9999-99-99T99:99:99.9999', '9999-99-99T99:99:99.9999Z',
            '9999-99-99T99:99:99.9999+99:99', '9999-99-99T99:99:99.9999-99:99',
            '9999-99-99T99:99:99.99999', '9999-99-99T99:99:99.99999Z',
            '9999-99-99T99:99:99.99999+99:99', '9999-99-99T99:99:99.99999-99:99',
            '9999-99-99T99:99:99.999999', '9999-99-99T99:99:99.999999Z',
            '9999-99-99T99:99:99.999999+99:99', '9999-99-99T99:99:99.999999-99:99'
        ]) THEN NULL
        WHEN substr(v, 1, 4) NOT BETWEEN '2000' AND '2099'
            OR substr(v, 6, 2) NOT BETWEEN '01' AND '12'
            OR substr(v, 9, 2) < '01'
            OR substr(v, 9, 2) > CASE
                WHEN substr(v, 6, 2) IN ('04', '06', '09', '11') THEN '30'
                WHEN substr(v, 6, 2) <> '02' THEN '31'
                WHEN substr(v, 1, 4)::int % 4 = 0
                    AND (substr(v, 1, 4)::int % 100 <> 0 OR substr(v, 1, 4)::int % 400 = 0)
                    THEN '29'
                ELSE '28' END
            OR substr(v, 12, 2) > '23' OR substr(v, 15, 2) > '59' OR substr(v, 18, 2) > '59'
            THEN NULL
        WHEN right(v, 1) = 'Z' THEN v::timestamptz
        WHEN substr(v, length(v) - 5, 1) IN ('+', '-') THEN
            CASE WHEN substr(v, length(v) - 4, 2) > '14' OR right(v, 2) > '59' THEN NULL
                 ELSE v::timestamptz END
        ELSE v::timestamp AT TIME ZONE 'Asia/Shanghai'
    END
$$
"""


def install(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pgcrypto")
    schema_editor.execute(USCC_FUNCTION, params=None)
    schema_editor.execute(TIMESTAMP_FUNCTION, params=None)


def uninstall(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("DROP FUNCTION IF EXISTS invoices_feed_timestamp(text)")
    schema_editor.execute("DROP FUNCTION IF EXISTS invoices_uscc_valid(text)")
    # pgcrypto stays: other code may use it, and dropping an extension is the DBA's call.


class Migration(migrations.Migration):
    dependencies = [
        ("invoices", "0003_feed_import"),
    ]

    operations = [
        migrations.RunPython(install, uninstall, elidable=False),
    ]
