"""The public merchant lookup's name index (PostgreSQL only; SQLite scans its small tables).

A GIN index over every character and every pair of adjacent characters of the lower-cased name.
Chinese shop names are searched by two-character words (烩面, 超市, 药房) that a trigram index
cannot look up (`LIKE '%烩面%'` has no trigram and would read the whole index); with bigrams any
substring of two or more characters is answered from the index (`@>`), then rechecked exactly
with ILIKE. See apps/content/selectors.py::merchant_lookup and bench/merchant_lookup.py.
"""

from django.db import migrations

CREATE_SQL = r"""
CREATE OR REPLACE FUNCTION merchant_name_grams(value text) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT coalesce(array_agg(DISTINCT gram), '{}'::text[])
    FROM (
        SELECT substr(lower(value), i, 1) AS gram
        FROM generate_series(1, char_length(value)) AS i
        UNION
        SELECT substr(lower(value), i, 2)
        FROM generate_series(1, char_length(value) - 1) AS i
    ) AS grams
    WHERE gram <> ''
$$;
CREATE INDEX IF NOT EXISTS merchant_name_grams_gin
    ON merchants_merchant USING gin (merchant_name_grams(name));
"""

DROP_SQL = """
DROP INDEX IF EXISTS merchant_name_grams_gin;
DROP FUNCTION IF EXISTS merchant_name_grams(text);
"""


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE_SQL, params=None)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_SQL, params=None)


class Migration(migrations.Migration):
    dependencies = [("merchants", "0001_initial")]

    operations = [migrations.RunPython(create, drop)]
