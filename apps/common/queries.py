"""Plain-SQL reads for the hot paths, where compiling the ORM's query costs more than running it."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

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


@lru_cache(maxsize=256)
def _insert_plan(model, rows: int, vendor: str) -> tuple[tuple, str, bool]:
    """The fields written, the statement for `rows` rows and whether it returns the keys."""
    meta = model._meta
    fields = tuple(f for f in meta.local_concrete_fields if f is not meta.auto_field)
    q = connection.ops.quote_name
    one = f"({', '.join(['%s'] * len(fields))})"
    returning = meta.auto_field is not None and connection.features.can_return_rows_from_bulk_insert
    sql = (
        f"INSERT INTO {q(meta.db_table)} ({', '.join(q(f.column) for f in fields)}) "  # noqa: S608 - names only
        f"VALUES {', '.join([one] * rows)}"
    )
    if returning:
        sql += f" RETURNING {q(meta.auto_field.column)}"
    return fields, sql, returning


def insert_objects(objs: Sequence) -> None:
    """Insert new instances of one model in one `INSERT … VALUES … RETURNING id`, as
    `save(force_insert=True)` / `bulk_create` would write them (each field's `pre_save(add=True)`
    and `get_db_prep_save`, so defaults, auto-now fields and encrypted fields behave the same)
    without compiling a query each time: the statement is built once per model and row count.

    For the hot paths only, and only for models whose `save()` is Django's own and that no
    `pre_save`/`post_save` receiver listens to (none is sent). A unique violation raises
    `IntegrityError` as the ORM's would. The instances get their ids and count as saved."""
    if not objs:
        return
    model = type(objs[0])
    fields, sql, returning = _insert_plan(model, len(objs), connection.vendor)
    if model._meta.auto_field is not None and not returning:  # no RETURNING: the ORM's way
        for obj in objs:
            obj.save(force_insert=True)
        return
    params: list = []
    for obj in objs:
        params.extend(f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        ids = [row[0] for row in cursor.fetchall()] if returning else []
    for index, obj in enumerate(objs):
        if ids:
            obj.pk = ids[index]
        obj._state.adding = False
        obj._state.db = connection.alias
