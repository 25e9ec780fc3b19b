"""Plain-SQL reads for the hot paths, where compiling the ORM's query costs more than running it."""

from __future__ import annotations

from django.db import connection


def model_row(model, column: str, value, *, for_update: bool = False):
    """The row of `model` whose `column` equals `value` (a unique column), or None: one
    `SELECT *` into the model, its fields decoded as the ORM does. `for_update` locks the row
    for the transaction (on backends that can)."""
    q = connection.ops.quote_name
    lock = " FOR UPDATE" if for_update and connection.features.has_select_for_update else ""
    rows = list(
        model.objects.raw(
            f"SELECT * FROM {q(model._meta.db_table)} WHERE {q(column)} = %s{lock}",  # noqa: S608 - names only
            [value],
        )
    )
    return rows[0] if rows else None
