"""Insert compiler: `UNNEST` arrays only for batches large enough to gain from them.

Django 5.2 writes every multi-row `bulk_create` on PostgreSQL as `INSERT … SELECT * FROM
UNNEST(%s::type[], …)`, one array parameter per column, so that a large batch is planned once
whatever its size. For the two- and three-row batches of the submission path (status history,
outbox events) the arrays cost more than they save: psycopg dumps an array in Python, element
by element, and that was about 8 % of a submission's CPU (docs/benchmarks.md, issue 11). Below
`UNNEST_MIN_ROWS` rows a batch is written as plain `VALUES (…), (…)`, Django's generic form.
"""

from django.db.backends.postgresql import compiler as postgresql
from django.db.models.sql import compiler as generic

SQLAggregateCompiler = postgresql.SQLAggregateCompiler
SQLCompiler = postgresql.SQLCompiler
SQLDeleteCompiler = postgresql.SQLDeleteCompiler
SQLUpdateCompiler = postgresql.SQLUpdateCompiler

UNNEST_MIN_ROWS = 32

__all__ = [
    "UNNEST_MIN_ROWS",
    "SQLAggregateCompiler",
    "SQLCompiler",
    "SQLDeleteCompiler",
    "SQLInsertCompiler",
    "SQLUpdateCompiler",
]


class SQLInsertCompiler(postgresql.SQLInsertCompiler):
    def assemble_as_sql(self, fields, value_rows):
        if len(value_rows) < UNNEST_MIN_ROWS:
            return generic.SQLInsertCompiler.assemble_as_sql(self, fields, value_rows)
        return super().assemble_as_sql(fields, value_rows)
