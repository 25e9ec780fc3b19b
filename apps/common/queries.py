"""Plain SQL for the hot paths, where compiling the ORM's query costs more than running it,
and fewer round trips to the database where each costs more than the statement it carries.

On a busy machine a round trip to PostgreSQL can cost half a millisecond of CPU under load
(the client's and the server's system calls and wake-ups), more than most of the submission
path's statements take to run (docs/benchmarks.md, issue 11). These tools send several
statements in one round trip with psycopg's pipeline mode:

- `pipelined()`: a block's statements in one round trip; a transaction's `BEGIN` goes with
  them (psycopg alone would send it with a sync of its own and wait);
- `read_ahead()` with `fetch_one()` / `model_row()`: one-row reads (and `prelude` statements)
  that travel together, each row given to its reader — as one statement where they can
  (`_fused_reads`);
- `batched_writes()` with `write_later()` / `insert_objects(…, later=True)`: writes whose
  results nobody reads (history rows, queue entries), sent together just before the commit —
  and with it, `batched_writes(commit=True)` — those of different tables as one statement
  (`fused_writes`).

Each statement also costs the client and the server more than most of these statements' own
work (about 0.07 ms of the client's CPU through Django's cursor in pipeline mode, measured),
hence the fusing.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from contextlib import contextmanager, nullcontext
from functools import lru_cache

from django.db import DEFAULT_DB_ALIAS, connection, connections

# A prelude for a transaction of by-key statements only: PostgreSQL plans each prepared
# statement as a generic plan, once per connection, instead of re-planning it with every
# call's values. psycopg prepares a statement after a few calls, and PostgreSQL then keeps
# re-planning those it estimates better with their values (the caps count and the risk facts:
# 0.3 and 0.64 ms of planning for 0.3 and 0.04 ms of work). The setting ends with the
# transaction.
GENERIC_PLANS_SETTING = ("plan_cache_mode", "force_generic_plan")
GENERIC_PLANS = "SET LOCAL {} = {}".format(*GENERIC_PLANS_SETTING)

_local = threading.local()


def _db():
    """The default database's connection object itself. Every attribute read on `connection`
    (a proxy) looks the connection up again, which cost more than anything else here."""
    return connections[DEFAULT_DB_ALIAS]


def _can_pipeline(db=None) -> bool:
    db = db or _db()
    if db.vendor != "postgresql":
        return False
    db.ensure_connection()
    return hasattr(db.connection, "pipeline")


@contextmanager
def pipelined():
    """Send the statements of this block without waiting for each one's result (psycopg's
    pipeline mode): leaving the block waits once for all of them — one round trip — and a
    transaction's `BEGIN` travels with its first statement. Read a statement's rows after the
    block (reading inside waits at once). A failing statement raises on leaving, as Django's
    exception (`IntegrityError` …). Elsewhere than PostgreSQL a no-op. For plain statements
    only: the ORM reads an UPDATE's row count at once, which pipeline mode does not have yet."""
    db = _db()
    if not _can_pipeline(db):
        yield
        return
    raw = db.connection
    with db.wrap_database_errors, raw.pipeline():
        if _begin_pending(raw):
            _send_begin(db, raw)
        yield


def _begin_pending(raw) -> bool:
    """Django has opened a transaction (`atomic`) that psycopg has not begun on the server."""
    from psycopg.pq import TransactionStatus

    return (
        not raw.autocommit
        and raw.pgconn.transaction_status == TransactionStatus.IDLE
        and hasattr(raw, "_autocommit")
        and hasattr(raw, "_get_tx_start_command")
    )


def _send_begin(db, raw) -> None:
    """Queue the transaction's `BEGIN` (with the connection's isolation level, as psycopg
    words it) as the pipeline's first statement. Left to itself, psycopg sends `BEGIN` with a
    sync of its own and waits for the answer before the first statement: a round trip of its
    own (psycopg 3.3, `_start_query`). Marked autocommit for that one statement, psycopg adds
    no `BEGIN`; after it the server's transaction is open and psycopg sees it as such."""
    begin = raw._get_tx_start_command().decode()
    raw._autocommit = True
    try:
        with db.cursor() as cursor:
            cursor.execute(begin)
    finally:
        raw._autocommit = False


class _Batch(list):
    def __init__(self, depth: int):
        super().__init__()
        self.depth = depth


def _savepoints(db=None) -> int:
    """Savepoints open on the connection (`atomic(savepoint=False)` blocks open none: their
    failure rolls back the enclosing one)."""
    return sum(1 for sid in (db or _db()).savepoint_ids if sid is not None)


def _open_batch(db=None) -> _Batch | None:
    stack = getattr(_local, "batches", None)
    if not stack:
        return None
    db = db or _db()
    if not db.in_atomic_block:
        return None
    batch = stack[-1]
    # A statement made inside a savepoint opened after the batch must be undone with that
    # savepoint: it runs at once.
    return batch if _savepoints(db) == batch.depth else None


@contextmanager
def batched_writes(*, commit: bool = False):
    """Collect the `write_later` statements made in this block (at this block's savepoint
    level) and send them together when it ends without an exception: one round trip on
    PostgreSQL. Open it inside the transaction the writes belong to, e.g. `with
    transaction.atomic(), batched_writes():`; an exception drops the batch with the
    transaction. Outside a batch, `write_later` runs its statement at once.

    `commit=True`: the batch is the last thing its transaction does (`with
    transaction.atomic(), batched_writes(commit=True):` and nothing after the block inside the
    `atomic`), so its `COMMIT` travels in the same round trip; the `atomic` then finds the
    transaction committed (psycopg sends no second `COMMIT`) and runs its `on_commit` hooks as
    usual. Only where the `atomic` is the outermost one (no savepoint): inside another
    transaction — a test's, say — the batch is sent alone and the `atomic` commits as usual. A
    failing `COMMIT` (a deferred constraint) raises here, as Django's exception, and the
    `atomic` rolls back."""
    db = _db()
    stack = _local.__dict__.setdefault("batches", [])
    batch = _Batch(_savepoints(db))
    stack.append(batch)
    try:
        yield batch
    finally:
        stack.pop()
    # Reached only without an exception; a transaction already marked for rollback (an error
    # caught inside `atomic(savepoint=False)`) writes nothing more.
    if batch and not db.needs_rollback:
        pipeline = _can_pipeline(db)
        commit = commit and _outermost_transaction(db) and pipeline
        with pipelined(), db.cursor() as cursor:
            for sql, params in fused_writes(batch) if pipeline else batch:
                cursor.execute(sql, params)
            if commit:
                cursor.execute("COMMIT")


# A write that can share a statement with others (`fused_writes`): a plain `INSERT … VALUES` or
# a plain `UPDATE … SET … WHERE` of one table that reads no other (no sub-select, `FROM`,
# `RETURNING`, `ON CONFLICT` or `WITH` of its own).
_PLAIN_WRITE = re.compile(r'\s*(INSERT\s+INTO|UPDATE)\s+("[^"]+"|[A-Za-z_][\w.]*)\s', re.I)
_NOT_PLAIN = re.compile(r"\b(SELECT|RETURNING|CONFLICT|WITH|FROM|DEFAULT\s+VALUES)\b", re.I)


def _plain_write(sql: str) -> str | None:
    """The table of a write `fused_writes` may join with others, or None."""
    match = _PLAIN_WRITE.match(sql)
    if match is None or _NOT_PLAIN.search(sql, match.end()):
        return None
    return match.group(2).strip('"')


def fused_writes(batch: Sequence[tuple[str, Sequence]]) -> list[tuple[str, list]]:
    """A batch of writes as fewer statements, in the same order (PostgreSQL): consecutive plain
    writes (`_plain_write`) of different tables become one statement, the first ones as
    data-modifying `WITH` clauses of the last (`WITH w0 AS (INSERT …), w1 AS (UPDATE …)
    INSERT …`). Each statement costs the client and the server more than the rows it writes
    (docs/benchmarks.md, issue 11).

    The clauses of one statement see the same snapshot and run in no defined order, so a group
    holds one write per table: none can meet a row another inserts or updates, and rows of one
    table are still written in the order queued (a second write of a table starts a new
    group). Foreign keys are checked at the commit (Django declares them deferred), and a
    unique violation fails the statement as it failed the single write (with the same
    constraint name). Anything else (a savepoint's release, a write that reads) is sent alone
    and ends the group."""
    out: list[tuple[str, list]] = []
    group: list[tuple[str, Sequence]] = []
    tables: set[str] = set()

    def flush() -> None:
        if len(group) == 1:
            out.append((group[0][0], list(group[0][1])))
        elif group:
            clauses = ", ".join(f"w{i} AS ({sql})" for i, (sql, _) in enumerate(group[:-1]))
            out.append(
                (f"WITH {clauses} {group[-1][0]}", [p for _, params in group for p in params])
            )
        group.clear()
        tables.clear()

    for sql, params in batch:
        table = _plain_write(sql)
        if table is None:
            flush()
            out.append((sql, list(params)))
            continue
        if table in tables:
            flush()
        group.append((sql, params))
        tables.add(table)
    flush()
    return out


def batch_pipelined() -> bool:
    """Whether a write made now joins an open `batched_writes()` batch that is sent in one
    round trip (PostgreSQL): a step that has decided may then queue all its rows, with ids
    drawn ahead (`next_ids_query`)."""
    db = _db()
    return _open_batch(db) is not None and _can_pipeline(db)


def next_ids_query(*models) -> tuple[str, list]:
    """One `SELECT` of a new id from each model's table sequence (PostgreSQL), in order, so
    that rows referring to each other can be inserted later with their ids given."""
    db = _db()
    q = db.ops.quote_name
    return (
        "SELECT " + ", ".join(["nextval(pg_get_serial_sequence(%s, %s))"] * len(models)),
        [v for model in models for v in (q(model._meta.db_table), model._meta.pk.column)],
    )


def _outermost_transaction(db) -> bool:
    """In one `atomic` block that opened the transaction itself (not a savepoint in another)."""
    return (
        db.in_atomic_block
        and len(db.atomic_blocks) == 1
        and not db.savepoint_ids
        and db.commit_on_exit
    )


class Ahead:
    """A one-row read queued by `read_ahead`; `row()` gives its row. Use it as a context
    manager: leaving the block drops it if nothing took it along (an exception on the way)."""

    _unsent = object()

    def __init__(self, sql: str, params, prelude: Sequence[str] = (), then=None):
        self.sql, self.params, self.prelude, self.then = sql, params, tuple(prelude), then
        self._row = self._unsent

    @property
    def sent(self) -> bool:
        return self._row is not self._unsent

    @property
    def queued(self) -> bool:
        """Waiting for a round trip to take it along."""
        return self in _pending_reads()

    def row(self):
        if not self.sent:  # nothing took it along: sent now, with any reads queued before it
            _send(self)
        return self._row

    def discard(self) -> None:
        pending = _pending_reads()
        if self in pending:
            pending.remove(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.discard()


def _pending_reads() -> list[Ahead]:
    return _local.__dict__.setdefault("reads", [])


def read_ahead(
    sql: str, params: Sequence | dict = (), *, prelude: Sequence[str] = (), then=None
) -> Ahead:
    """Queue a one-row read to travel with the next `fetch_one` (or `model_row`) of this
    thread: one round trip for all of them on PostgreSQL, in the order queued, the one that
    takes them along last. `.row()` reads it, sending it (with the reads queued before it) if
    nothing took it along. For reads that may run in either order; use it as a context
    manager (`with read_ahead(…) as ahead:`) so that an exception never leaves it queued.

    `prelude`: statements without parameters sent before all the round trip's reads (e.g.
    `GENERIC_PLANS`; on PostgreSQL only). `then(row)`: called as soon as the round trip that
    carried the read is back, before whatever took it along returns — an exception it raises
    stops that caller (a claim that must hold before its result is used)."""
    ahead = Ahead(sql, params, prelude, then)
    _pending_reads().append(ahead)
    return ahead


def fetch_one(sql: str, params: Sequence | dict = ()):
    """The first row of a read, sent together with the reads queued by `read_ahead`."""
    return _send(Ahead(sql, params))


def _send(last: Ahead):
    """Send the queued reads and `last` in one round trip (their preludes first), give each
    its row, run their `then` callbacks in order, and return `last`'s row."""
    pending = _pending_reads()
    reads = [ahead for ahead in pending if ahead is not last]
    pending.clear()
    reads.append(last)
    db = _db()
    prelude = [statement for ahead in reads for statement in ahead.prelude]
    if prelude and not _can_pipeline(db):
        prelude = []  # elsewhere than PostgreSQL preludes are not run
    # One read alone, or several fused into one statement (`_fused_reads`), plainly; but a
    # statement that opens a transaction goes through the pipeline, where its `BEGIN` travels
    # with it.
    pipeline = _can_pipeline(db)
    fused = None if len(reads) == 1 or prelude or not pipeline else _fused_reads(reads)
    if (len(reads) == 1 and not prelude) or fused is not None:
        sql, params = fused or (last.sql, last.params)
        begin = pipeline and _begin_pending(db.connection)
        with db.cursor() as cursor:
            with pipelined() if begin else nullcontext():
                cursor.execute(sql, params)
            row = cursor.fetchone()
            description = cursor.description
        if fused is None:
            last._row = row
        else:
            starts = [i for i, column in enumerate(description) if column.name == _FOUND]
            for ahead, start, end in zip(reads, starts, [*starts[1:], None], strict=True):
                ahead._row = tuple(row[start + 1 : end]) if row[start] else None
    else:
        cursors = [db.cursor() for _ in reads]
        try:
            with pipelined():
                for statement in prelude:
                    cursors[0].execute(statement)
                for ahead, cursor in zip(reads, cursors, strict=True):
                    cursor.execute(ahead.sql, ahead.params)
            for ahead, cursor in zip(reads, cursors, strict=True):
                ahead._row = cursor.fetchone()
        finally:
            for cursor in cursors:
                cursor.close()
    for ahead in reads:
        if ahead.then is not None:
            ahead.then(ahead._row)
    return last._row


# Reads `_fused_reads` leaves as statements of their own: a locking read (what it waits for,
# the reads after it must see: each statement of a transaction takes its own snapshot) and
# any whose parameters are named.
_LOCKING = re.compile(r"\bFOR\s+(UPDATE|SHARE|NO\s+KEY|KEY)\b", re.I)
_INSERT_RETURNING = re.compile(
    r'\s*INSERT\s+INTO\s+"?([A-Za-z_][\w.]*)"?\s.*\bRETURNING\b', re.I | re.S
)
_FOUND = "_ahead_found"


def _fused_reads(reads: Sequence[Ahead]) -> tuple[str, list] | None:
    """Several one-row reads as one statement (PostgreSQL), or None where they cannot be:

        WITH r0 AS (INSERT … RETURNING id)
        SELECT a0.*, a1.* FROM (SELECT 1) AS one
        LEFT JOIN LATERAL (SELECT true AS _ahead_found, q.* FROM r0 AS q LIMIT 1) AS a0 ON true
        LEFT JOIN LATERAL (SELECT true AS _ahead_found, q.* FROM (SELECT …) AS q LIMIT 1) AS a1
            ON true

    Each read's columns follow its `_ahead_found` column, NULL when it has no row. Each
    statement costs the client and the server more than most of these reads (docs/
    benchmarks.md, issue 11). The reads share one snapshot, so a read that writes (`INSERT …
    RETURNING`) joins only if no other read names its table (none could see its row), and a
    locking read or one with named parameters leaves them all as statements of their own."""
    ctes, joins, cte_params, join_params = [], [], [], []
    for index, ahead in enumerate(reads):
        if isinstance(ahead.params, dict) or _LOCKING.search(ahead.sql):
            return None
        insert = _INSERT_RETURNING.match(ahead.sql)
        if insert is not None:
            table = insert.group(1)
            if any(table in other.sql for other in reads if other is not ahead):
                return None
            ctes.append(f"r{index} AS ({ahead.sql})")
            cte_params += list(ahead.params)
            source = f"r{index}"
        elif ahead.sql.lstrip()[:6].upper() == "SELECT":
            join_params += list(ahead.params)
            source = f"({ahead.sql})"
        else:
            return None
        joins.append(
            f"LEFT JOIN LATERAL (SELECT true AS {_FOUND}, q.* FROM {source} AS q LIMIT 1) "  # noqa: S608 - the reads' own SQL
            f"AS a{index} ON true"
        )
    columns = ", ".join(f"a{index}.*" for index in range(len(reads)))
    with_clause = f"WITH {', '.join(ctes)} " if ctes else ""
    return (
        f"{with_clause}SELECT {columns} FROM (SELECT 1) AS one {' '.join(joins)}",  # noqa: S608
        cte_params + join_params,
    )


def write_later(sql: str, params: Sequence = ()) -> None:
    """Run a write whose result nobody reads (no rows, no row count) with the open batch of
    `batched_writes()`, or now if there is none."""
    db = _db()
    batch = _open_batch(db)
    if batch is not None:
        batch.append((sql, list(params)))
        return
    with db.cursor() as cursor:
        cursor.execute(sql, params)


@lru_cache(maxsize=64)
def _read_plan(model, alias: str, table_alias: str = "") -> tuple[str, list[str], dict]:
    """The column list (qualified by `table_alias` if given), attribute names and value
    converters of `model`'s rows (the ORM's own, `SQLCompiler.get_converters`), worked out
    once per model and database."""
    from django.db import connections
    from django.db.models.sql import Query

    meta = model._meta
    if meta.parents:
        raise TypeError(f"{model.__name__}: rows of one table only (no multi-table inheritance)")
    db = connections[alias]
    fields = list(meta.concrete_fields)
    compiler = db.ops.compiler("SQLCompiler")(Query(model), db, alias)
    converters = compiler.get_converters([f.get_col(meta.db_table) for f in fields])
    prefix = f"{table_alias}." if table_alias else ""
    columns = ", ".join(prefix + db.ops.quote_name(f.column) for f in fields)
    return columns, [f.attname for f in fields], converters


def _instance(model, names: list[str], converters: dict, values: list):
    db = _db()
    for index, (functions, expression) in converters.items():
        for convert in functions:
            values[index] = convert(values[index], expression, db)
    return model.from_db(db.alias, names, values)


def model_row_query(
    model,
    column: str,
    value,
    *,
    for_update: bool = False,
    extra: Sequence[str] = (),
    extra_params=(),
) -> tuple[str, list]:
    """The plain `SELECT` of `model`'s row whose `column` equals `value` (a unique column), for
    `model_from_row`; `for_update` locks the row for the transaction (on backends that can).
    `extra`: expressions selected after the model's columns (with `extra_params`), e.g. a
    sequence's next value; `model_from_row` ignores them."""
    db = _db()
    columns, _names, _converters = _read_plan(model, db.alias)
    field = next(f for f in model._meta.concrete_fields if f.column == column)
    q = db.ops.quote_name
    lock = " FOR UPDATE" if for_update and db.features.has_select_for_update else ""
    selected = ", ".join([columns, *extra])
    sql = f"SELECT {selected} FROM {q(model._meta.db_table)} WHERE {q(column)} = %s{lock}"  # noqa: S608 - names only
    return sql, [*extra_params, field.get_db_prep_value(value, db)]


def model_from_row(model, row):
    """The instance of `model` from a row of `model_row_query` (None for None), its values
    converted as the ORM converts them (`from_db`)."""
    if row is None:
        return None
    db = _db()
    _columns, names, converters = _read_plan(model, db.alias)
    return _instance(model, names, converters, list(row[: len(names)]))


def model_row(model, column: str, value, *, for_update: bool = False, prelude: Sequence[str] = ()):
    """The row of `model` whose `column` equals `value` (a unique column), or None: one plain
    `SELECT` into the model (`model_row_query`, `model_from_row`), sent with any reads queued
    to travel along (`read_ahead`). `prelude`: statements without parameters sent first in the
    same round trip on PostgreSQL (e.g. `GENERIC_PLANS`; elsewhere they are not run)."""
    sql, params = model_row_query(model, column, value, for_update=for_update)
    return model_from_row(model, _send(Ahead(sql, params, prelude)))


def row_with_one(model, pk, accessor: str):
    """`model.objects.select_related(accessor).get(pk=pk)` for a reverse one-to-one `accessor`
    (e.g. a user's `consumer` profile), or None: one plain `SELECT … LEFT JOIN`, both objects
    converted as the ORM does and linked both ways (no query when either side is read; a
    missing profile raises `RelatedObjectDoesNotExist` as after `select_related`). The ORM
    spends more time building this join's column list than the database answering it."""
    db = _db()
    relation = model._meta.get_field(accessor)
    related = relation.related_model
    own_columns, own_names, own_converters = _read_plan(model, db.alias, "a")
    rel_columns, rel_names, rel_converters = _read_plan(related, db.alias, "b")
    q = db.ops.quote_name
    sql = (
        f"SELECT {own_columns}, {rel_columns} FROM {q(model._meta.db_table)} a "  # noqa: S608 - names only
        f"LEFT JOIN {q(related._meta.db_table)} b "
        f"ON b.{q(relation.field.column)} = a.{q(model._meta.pk.column)} "
        f"WHERE a.{q(model._meta.pk.column)} = %s"
    )
    with db.cursor() as cursor:
        cursor.execute(sql, [model._meta.pk.get_db_prep_value(pk, db)])
        row = cursor.fetchone()
    if row is None:
        return None
    split = len(own_names)
    obj = _instance(model, own_names, own_converters, list(row[:split]))
    rest = list(row[split:])
    other = None
    if rest[rel_names.index(related._meta.pk.attname)] is not None:
        other = _instance(related, rel_names, rel_converters, rest)
        relation.field.set_cached_value(other, obj)
    relation.set_cached_value(obj, other)
    return obj


@lru_cache(maxsize=256)
def _insert_plan(
    model, rows: int, vendor: str, with_pk: bool = False
) -> tuple[tuple, str | None, str]:
    """The fields written, the statement for `rows` rows and its `RETURNING` clause ("" when
    the keys cannot come back, or are given: `with_pk`); no statement (None) for what only the
    ORM writes right: multi-table inheritance, database defaults, generated fields."""
    meta = model._meta
    fields = tuple(f for f in meta.local_concrete_fields if with_pk or f is not meta.auto_field)
    if meta.parents or any(f.generated or f.has_db_default() for f in fields):
        return fields, None, ""
    q = connection.ops.quote_name
    one = f"({', '.join(['%s'] * len(fields))})"
    returning = ""
    if (
        not with_pk
        and meta.auto_field is not None
        and connection.features.can_return_rows_from_bulk_insert
    ):
        returning = f" RETURNING {q(meta.auto_field.column)}"
    sql = (
        f"INSERT INTO {q(meta.db_table)} ({', '.join(q(f.column) for f in fields)}) "  # noqa: S608 - names only
        f"VALUES {', '.join([one] * rows)}"
    )
    return fields, sql, returning


def insert_objects(objs: Sequence, *, later: bool = False) -> None:
    """Insert new instances of one model in one `INSERT … VALUES … RETURNING id`, as
    `save(force_insert=True)` / `bulk_create` would write them (each field's `pre_save(add=True)`
    and `get_db_prep_save`, so defaults, auto-now fields and encrypted fields behave the same)
    without compiling a query each time: the statement is built once per model and row count.

    For the hot paths only, and only for models whose `save()` is Django's own and that no
    `pre_save`/`post_save` receiver listens to (none is sent). A unique violation raises
    `IntegrityError` as the ORM's would. The instances get their ids and count as saved.

    Instances whose ids were drawn beforehand (from the table's sequence) are written with
    them; either all or none of `objs` have one.

    `later`: inside `batched_writes()`, the INSERT goes with the batch (a unique violation then
    raises when the batch is sent); instances without ids get none (rows nobody refers to
    afterwards, such as status history). Outside a batch, as usual."""
    if not objs:
        return
    model = type(objs[0])
    with_pk = objs[0].pk is not None
    if any(
        type(obj) is not model or (obj.pk is not None) != with_pk or not obj._state.adding
        for obj in objs
    ):
        raise ValueError("insert_objects: new instances of one model only, all with ids or none")
    db = _db()
    fields, sql, returning = _insert_plan(model, len(objs), db.vendor, with_pk)
    if sql is None or (model._meta.auto_field is not None and not returning and not with_pk):
        for obj in objs:  # what the plain statement cannot write: the ORM's way
            obj.save(force_insert=True)
        return
    params: list = []
    for obj in objs:
        # As `save()`: related objects assigned before they were saved give their ids now;
        # one still unsaved raises ValueError instead of storing NULL.
        obj._prepare_related_fields_for_save(operation_name="insert_objects")
        params.extend(f.get_db_prep_save(f.pre_save(obj, True), db) for f in fields)
    if later and _open_batch(db) is not None:
        write_later(sql, params)
        for obj in objs:
            obj._state.adding = False
            obj._state.db = db.alias
        return
    sql += returning
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        ids = [row[0] for row in cursor.fetchall()] if returning else []
    for index, obj in enumerate(objs):
        if ids:
            obj.pk = ids[index]
        obj._state.adding = False
        obj._state.db = db.alias
