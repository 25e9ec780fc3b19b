"""Every write to draws: the periodic draw's lifecycle (DRAW_SPEC.md) and the instant draw.

Periodic draw, one service per step::

    draw_create → draw_commit → draw_freeze → draw_record_randomness
        → draw_start (staff A) + draw_confirm (staff B ≠ A: executes) → draw_publish
        → draw_disqualify* (during the public notice) → draw_finalise
    draw_cancel from any step before the draw is executed.

Each step is one transaction: it locks the draw row (`select_for_update`), checks the
transition table, checks the actor's permission (`draws.manage_draw`, `draws.execute_draw`,
`draws.disqualify_winner`; `actor=None` is the system, used only by the scheduled freeze),
writes a `DrawStatusChange` and an audit record (category `draw`) in the same transaction.

Instant draw: `instant_draw_for_entry`, called by the submission pipeline inside its
transaction for every new entry.
"""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connections, router, transaction
from django.db.models import Count, Max, Q
from django.utils import timezone

from apps.accounts.choices import ConsumerStatus
from apps.accounts.models import Consumer
from apps.audit.models import AuditCategory, AuditOutcome
from apps.audit.services import audit_record
from apps.common.exceptions import InvalidTransition
from apps.common.queries import (
    batch_pipelined,
    batched_writes,
    insert_objects,
    next_ids_query,
    pipelined,
    write_later,
)
from apps.common.states import check_transition
from apps.invoices.caching import PREFIX as CONFIG_PREFIX
from apps.invoices.caching import generation_bump, read_through
from apps.invoices.choices import InvoiceStatus
from apps.invoices.models import Invoice
from apps.merchants.choices import MerchantStatus
from apps.merchants.models import Merchant
from apps.prizes.exceptions import PrizeError
from apps.prizes.ledger import balance_param, is_overdraft
from apps.prizes.models import Award, LedgerAccount
from apps.prizes.services import (
    award_create_for_instant,
    awards_create_for_draw,
    instant_reservation,
)

from . import engine
from .choices import (
    ALLOWED_TRANSITIONS,
    EDITABLE_STATUSES,
    DisqualificationReason,
    DrawStatus,
    InstantPrizeKind,
    OddsMode,
)
from .exceptions import DrawError
from .models import (
    DrawStatusChange,
    DrawTicket,
    DrawTier,
    DrawWinner,
    InstantAward,
    InstantDailyQuota,
    InstantDrawResult,
    InstantPool,
    InstantTier,
    PeriodicDraw,
    draw_code_validator,
)

PERM_MANAGE = "draws.manage_draw"
PERM_EXECUTE = "draws.execute_draw"
PERM_DISQUALIFY = "draws.disqualify_winner"
PERM_CHANGE_POOL = "draws.change_instantpool"

#: PostgreSQL work_mem for the freeze's one sort of all entries (about 120 bytes each).
FREEZE_WORK_MEM = "1GB"
# Tickets are inserted in batches of this size on the portable (non-PostgreSQL) path.
PORTABLE_BATCH = 5_000
REASON_MAX_LENGTH = PeriodicDraw._meta.get_field("cancel_reason").max_length
COMMITTED_FIELDS = (
    "code",
    "campaign_id",
    "randomness_source",
    "window_starts_at",
    "window_ends_at",
    "cutoff_at",
    "per_holder_limit",
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TierSpec:
    """A prize tier as given to `draw_create` / `draw_set_tiers`."""

    rank: int
    name: str
    amount: Decimal
    count: int


# --- helpers --------------------------------------------------------------------------------


def _require(actor, permission: str) -> None:
    if (
        actor is None
        or not getattr(actor, "is_authenticated", False)
        or not actor.has_perm(permission)
    ):
        raise DrawError("draw.permission_denied", detail={"permission": permission})


def _lock(draw: PeriodicDraw) -> PeriodicDraw:
    return PeriodicDraw.objects.select_for_update().get(pk=draw.pk)


def _check(draw: PeriodicDraw, target: str) -> None:
    check_transition(ALLOWED_TRANSITIONS, draw.status, target, entity="draw")


def _actor_or_none(actor):
    return actor if actor is not None and getattr(actor, "is_authenticated", False) else None


def _record(
    draw: PeriodicDraw,
    *,
    previous: str,
    action: str,
    actor,
    note: str = "",
    before: dict | None = None,
    after: dict | None = None,
) -> None:
    """The history row and the audit record of one step (last in the step's transaction)."""
    DrawStatusChange.objects.create(
        draw=draw,
        from_status=previous,
        to_status=draw.status,
        action=action,
        note=note[:500],
        actor=_actor_or_none(actor),
        at=timezone.now(),
    )
    audit_record(
        action=f"draw.{action}",
        category=AuditCategory.DRAW,
        target=draw,
        actor=actor,
        reason=note,
        before={"status": previous, **(before or {})},
        after={"status": draw.status, **(after or {})},
    )


def _clean_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise DrawError("draw.reason_required")
    return reason[:REASON_MAX_LENGTH]


def _validate_config(draw: PeriodicDraw) -> None:
    try:
        draw_code_validator(draw.code)
    except ValidationError:
        raise DrawError("draw.invalid_code", detail={"code": draw.code}) from None
    if (
        draw.window_starts_at is None
        or draw.window_ends_at is None
        or draw.cutoff_at is None
        or draw.window_ends_at <= draw.window_starts_at
        or draw.cutoff_at < draw.window_ends_at
    ):
        raise DrawError("draw.invalid_window")
    if not draw.per_holder_limit or draw.per_holder_limit < 1:
        raise DrawError("draw.invalid_tiers", detail={"per_holder_limit": draw.per_holder_limit})


def _validate_tiers(tiers: Sequence[TierSpec]) -> list[TierSpec]:
    tiers = sorted(tiers, key=lambda t: t.rank)
    ranks = [t.rank for t in tiers]
    if len(set(ranks)) != len(ranks):
        raise DrawError("draw.invalid_tiers", detail={"ranks": ranks})
    for tier in tiers:
        try:
            engine.Tier(tier.rank, tier.name, Decimal(tier.amount), tier.count)
        except (ValueError, ArithmeticError):
            raise DrawError("draw.invalid_tiers", detail={"rank": tier.rank}) from None
        if Decimal(tier.amount) <= 0:
            raise DrawError("draw.invalid_tiers", detail={"rank": tier.rank})
    return tiers


def _tiers_snapshot(draw: PeriodicDraw) -> list[dict]:
    return [
        {"rank": t.rank, "name": t.name, "amount": str(t.amount), "count": t.count}
        for t in draw.tiers.order_by("rank")
    ]


def engine_tiers(draw: PeriodicDraw) -> list[engine.Tier]:
    return [engine.Tier(t.rank, t.name, t.amount, t.count) for t in draw.tiers.order_by("rank")]


# --- configuration ----------------------------------------------------------------------------


def draw_create(
    *,
    campaign,
    code: str,
    name: str,
    window_starts_at: datetime,
    window_ends_at: datetime,
    cutoff_at: datetime,
    tiers: Sequence[TierSpec] = (),
    per_holder_limit: int = 1,
    notice_days: int = 7,
    randomness_source: str = "",
    actor,
) -> PeriodicDraw:
    """Schedule a new draw with its tiers. Invariant: the code is unique forever and the window
    is a real interval whose cut-off is not before its end."""
    _require(actor, PERM_MANAGE)
    draw = PeriodicDraw(
        campaign=campaign,
        code=(code or "").strip(),
        name=name,
        window_starts_at=window_starts_at,
        window_ends_at=window_ends_at,
        cutoff_at=cutoff_at,
        per_holder_limit=per_holder_limit,
        notice_days=notice_days,
        randomness_source=(randomness_source or "").strip(),
        created_by=_actor_or_none(actor),
    )
    return draw_save(draw=draw, actor=actor, tiers=tiers)


def draw_save(
    *, draw: PeriodicDraw, actor, tiers: Sequence[TierSpec] | None = None
) -> PeriodicDraw:
    """Insert a new draw or save a changed configuration, and optionally replace its tiers.

    Only while the draw is scheduled or committed: from freezing on nothing may change (the
    database refuses it as well). After commitment the code, campaign and randomness source
    stay as published (a trigger refuses them too).
    """
    _require(actor, PERM_MANAGE)
    _validate_config(draw)
    with transaction.atomic():
        if draw.pk is None:
            draw.status = DrawStatus.SCHEDULED
            draw.created_by = draw.created_by or _actor_or_none(actor)
            draw.save(force_insert=True)
            if tiers is not None:
                _replace_tiers(draw, tiers)
            _record(
                draw,
                previous="",
                action="created",
                actor=actor,
                after={"code": draw.code, "tiers": _tiers_snapshot(draw)},
            )
            return draw
        locked = _lock(draw)
        if locked.status not in EDITABLE_STATUSES:
            raise DrawError("draw.not_editable", detail={"status": locked.status})
        if locked.status != DrawStatus.SCHEDULED:
            # Published with the commitment, or deciding who gets a ticket: fixed from
            # commitment on. The name, notice period and tiers may change until freezing.
            for name in COMMITTED_FIELDS:
                setattr(draw, name, getattr(locked, name))
        draw.status = locked.status
        fields = [
            "code",
            "name",
            "campaign",
            "window_starts_at",
            "window_ends_at",
            "cutoff_at",
            "per_holder_limit",
            "notice_days",
            "randomness_source",
            "updated_at",
        ]
        before = {f: str(getattr(locked, f)) for f in fields[:-1] if f != "campaign"}
        draw.save(update_fields=fields)
        if tiers is not None:
            _replace_tiers(draw, tiers)
        _record(
            draw,
            previous=locked.status,
            action="configured",
            actor=actor,
            before=before,
            after={
                **{f: str(getattr(draw, f)) for f in fields[:-1] if f != "campaign"},
                "tiers": _tiers_snapshot(draw),
            },
        )
    return draw


def _replace_tiers(draw: PeriodicDraw, tiers: Sequence[TierSpec]) -> None:
    tiers = _validate_tiers(tiers)
    DrawTier.objects.filter(draw=draw).delete()
    DrawTier.objects.bulk_create(
        [
            DrawTier(draw=draw, rank=t.rank, name=t.name, amount=Decimal(t.amount), count=t.count)
            for t in tiers
        ]
    )


def draw_set_tiers(*, draw: PeriodicDraw, tiers: Sequence[TierSpec], actor) -> PeriodicDraw:
    """Replace the draw's tier table (scheduled or committed draws only)."""
    _require(actor, PERM_MANAGE)
    with transaction.atomic():
        locked = _lock(draw)
        if locked.status not in EDITABLE_STATUSES:
            raise DrawError("draw.not_editable", detail={"status": locked.status})
        before = _tiers_snapshot(locked)
        _replace_tiers(locked, tiers)
        _record(
            locked,
            previous=locked.status,
            action="tiers_changed",
            actor=actor,
            before={"tiers": before},
            after={"tiers": _tiers_snapshot(locked)},
        )
    return locked


# --- §1 commit ------------------------------------------------------------------------------


def draw_commit(*, draw: PeriodicDraw, actor, randomness_source: str | None = None) -> PeriodicDraw:
    """Generate the 32-byte server seed (CSPRNG) and publish its commitment and the public
    randomness source (spec §1), before the entry window closes. Neither changes afterwards.
    The seed itself is stored encrypted and revealed only at publication."""
    _require(actor, PERM_MANAGE)
    with transaction.atomic():
        locked = _lock(draw)
        _check(locked, DrawStatus.COMMITTED)
        now = timezone.now()
        if now >= locked.window_ends_at:
            raise DrawError("draw.window_closed")
        source = randomness_source if randomness_source is not None else locked.randomness_source
        source = (source or "").strip()
        if not source:
            raise DrawError("draw.randomness_source_required")
        tiers = list(locked.tiers.order_by("rank"))
        if not tiers or not any(t.count for t in tiers):
            raise DrawError("draw.no_tiers")
        seed = secrets.token_bytes(engine.SEED_BYTES)
        previous = locked.status
        locked.server_seed = seed.hex()
        locked.seed_commitment = engine.seed_commitment(seed)
        locked.randomness_source = source
        locked.committed_at = now
        locked.status = DrawStatus.COMMITTED
        locked.save(
            update_fields=[
                "server_seed",
                "seed_commitment",
                "randomness_source",
                "committed_at",
                "status",
                "updated_at",
            ]
        )
        _record(
            locked,
            previous=previous,
            action="committed",
            actor=actor,
            after={"seed_commitment": locked.seed_commitment, "randomness_source": source},
        )
    return locked


# --- §2 freeze ------------------------------------------------------------------------------


def eligible_entries(draw: PeriodicDraw):
    """The entries that get a ticket: accepted invoices of the draw's campaign that entered
    within [window_starts_at, window_ends_at), of an active consumer, whose seller (if known)
    is active — neither blacklisted nor suspended — and, when the campaign says instant
    winners do not enter periodic draws, without an instant award. Held, pending, rejected
    and reversed invoices never enter (their status is not `accepted`)."""
    entries = Invoice.objects.filter(
        campaign_id=draw.campaign_id,
        status=InvoiceStatus.ACCEPTED,
        entered_at__gte=draw.window_starts_at,
        entered_at__lt=draw.window_ends_at,
        consumer__status=ConsumerStatus.ACTIVE,
    ).filter(Q(merchant__isnull=True) | Q(merchant__status=MerchantStatus.ACTIVE))
    if not draw.campaign.instant_winner_enters_periodic:
        entries = entries.filter(instant_award__isnull=True)
    return entries


def draw_freeze(*, draw: PeriodicDraw, actor=None, set_based: bool | None = None) -> PeriodicDraw:
    """Freeze the ticket list at the cut-off (spec §2): number every eligible entry 1..N in
    (eligible_at, invoice id) order, then hash the tickets file in ticket order.

    On PostgreSQL the numbering is one `INSERT … SELECT … row_number() OVER (…)` statement and
    the digest is computed from what was stored, read back in ticket order (index ranges,
    the next one fetched while the current one is hashed); elsewhere (`set_based=False`, the
    SQLite default) the ORM inserts batches and hashes them as it goes. Both give the same
    tickets. `actor=None` is the
    scheduled task; a person needs `draws.manage_draw`.
    """
    if actor is not None:
        _require(actor, PERM_MANAGE)
    using = router.db_for_write(PeriodicDraw)
    connection = connections[using]
    if set_based is None:
        set_based = connection.vendor == "postgresql"
    with transaction.atomic(using=using):
        locked = _lock(draw)
        _check(locked, DrawStatus.FROZEN)
        now = timezone.now()
        if now < locked.cutoff_at:
            raise DrawError("draw.before_cutoff", detail={"cutoff_at": locked.cutoff_at})
        if set_based:
            count = _number_tickets_set_based(locked, connection)
            digest = _digest_stored_tickets(locked, count)
        else:
            count, digest = _number_tickets_portable(locked)
        previous = locked.status
        locked.ticket_count = count
        locked.tickets_digest = digest
        locked.frozen_at = now
        locked.status = DrawStatus.FROZEN
        locked.save(
            update_fields=["ticket_count", "tickets_digest", "frozen_at", "status", "updated_at"]
        )
        _record(
            locked,
            previous=previous,
            action="frozen",
            actor=actor,
            after={"ticket_count": count, "tickets_digest": digest},
        )
    return locked


def _number_tickets_set_based(draw: PeriodicDraw, connection) -> int:
    """One INSERT … SELECT numbering every eligible entry; returns N.

    The filter is `eligible_entries` written out in SQL (a test holds the two paths equal);
    the numbering, the two references and the insert are one statement. sha256() is built
    into PostgreSQL 11 and later. Table names come from the models, quoted.
    """
    qn = connection.ops.quote_name
    tables = {
        "ticket": qn(DrawTicket._meta.db_table),
        "invoice": qn(Invoice._meta.db_table),
        "consumer": qn(Consumer._meta.db_table),
        "merchant": qn(Merchant._meta.db_table),
        "award": qn(InstantAward._meta.db_table),
    }
    no_instant_winners = ""
    if not draw.campaign.instant_winner_enters_periodic:
        award = tables["award"]
        no_instant_winners = f"AND NOT EXISTS (SELECT 1 FROM {award} a WHERE a.invoice_id = i.id)"  # noqa: S608
    prefix = f"{draw.code}|"
    partition = _new_ticket_partition(draw, connection)
    # Into the draw's own, still unattached and unindexed table when there is one. Its ids
    # are the draw's block (`ticket_id`); rows through the parent take the identity sequence,
    # whose values stay below every block (migration 0003 caps it).
    target = qn(partition) if partition else tables["ticket"]
    id_column, id_value = (
        ("id, ", f"{int(draw.pk)}::bigint * {TICKET_ID_BLOCK} + e.ticket_no, ")
        if partition
        else ("", "")
    )
    sql = f"""
        INSERT INTO {target}
            ({id_column}draw_id, ticket_no, invoice_id, entry_ref, holder_ref, eligible_at)
        SELECT {id_value}%s, e.ticket_no, e.id,
               encode(substring(sha256(convert_to(%s || e.number, 'UTF8')) FROM 1 FOR 8), 'hex'),
               e.holder_ref,
               e.entered_at
        FROM (
            SELECT row_number() OVER (ORDER BY i.entered_at, i.id) AS ticket_no,
                   i.id, i.number, h.holder_ref, i.entered_at
            FROM {tables["invoice"]} i
            JOIN (
                -- Once per consumer, not once per ticket; OFFSET 0 keeps it a subquery,
                -- which the planner hashes (a CTE would hide its statistics).
                -- The first 8 bytes hex-encoded: the same 16 characters as the engine's
                -- references, without encoding the other 24 bytes (ten million times).
                SELECT id,
                       encode(substring(
                           sha256(convert_to(%s || public_id::text, 'UTF8')) FROM 1 FOR 8
                       ), 'hex') AS holder_ref
                FROM {tables["consumer"]}
                WHERE status = %s
                OFFSET 0
            ) AS h ON h.id = i.consumer_id
            LEFT JOIN {tables["merchant"]} m ON m.id = i.merchant_id
            WHERE i.campaign_id = %s
              AND i.status = %s
              AND i.entered_at >= %s AND i.entered_at < %s
              AND (i.merchant_id IS NULL OR m.status = %s)
              {no_instant_winners}
        ) AS e
    """  # noqa: S608
    params = [
        draw.pk,
        prefix,
        prefix,
        ConsumerStatus.ACTIVE.value,
        draw.campaign_id,
        InvoiceStatus.ACCEPTED.value,
        draw.window_starts_at,
        draw.window_ends_at,
        MerchantStatus.ACTIVE.value,
    ]
    with connection.cursor() as cursor:
        # One sort of every entry, in memory (about 120 bytes per entry), and no JIT
        # compilation for a statement that runs once. Both only for this transaction.
        cursor.execute(f"SET LOCAL work_mem = '{FREEZE_WORK_MEM}'")
        cursor.execute("SET LOCAL jit = off")
        cursor.execute(sql, params)
        count = cursor.rowcount
        if partition:
            _attach_ticket_partition(draw, partition, cursor, qn)
        # Fresh statistics, so the ordered read-back uses the (draw, ticket_no) index.
        cursor.execute(
            f"ANALYZE {qn(partition) if partition else tables['ticket']} (draw_id, ticket_no)"
        )
    return count


#: Work memory for building a new partition's indexes (sorts of up to ten million keys).
FREEZE_MAINTENANCE_WORK_MEM = "1GB"


def _ticket_partition_name(draw: PeriodicDraw) -> str:
    return f"{DrawTicket._meta.db_table}_d{draw.pk}"


#: Tickets the freeze writes into a draw's own partition get ids draw * 2³² + ticket number
#: (no sequence call per row); the identity sequence, used only for rows written through the
#: parent, ends below 2³² (migration 0003), so the two never meet.
TICKET_ID_BLOCK = 2**32


def ticket_id(draw_id: int, ticket_no: int) -> int:
    """The id of ticket `ticket_no` of a draw frozen into its own partition."""
    return draw_id * TICKET_ID_BLOCK + ticket_no


def _new_ticket_partition(draw: PeriodicDraw, connection) -> str | None:
    """Create the draw's ticket table, not yet a partition and without indexes; returns its
    name, or None when tickets are not partitioned (not PostgreSQL, or the table not
    partitioned) or the draw already has a partition (its rows then go through the parent).

    Migration 0003 made `draws_drawticket` a table partitioned by draw. Writing ten million
    rows into a bare table and building the indexes afterwards (`_attach_ticket_partition`)
    is what lets the freeze meet its time (docs/benchmarks.md)."""
    if connection.vendor != "postgresql":
        return None
    parent = DrawTicket._meta.db_table
    name = _ticket_partition_name(draw)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass(%s)),"
            " to_regclass(%s) IS NOT NULL",
            [parent, name],
        )
        partitioned, exists = cursor.fetchone()
        if not partitioned or exists:
            return None
        qn = connection.ops.quote_name
        cursor.execute(
            f"CREATE TABLE {qn(name)} (LIKE {qn(parent)} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
        )
        # Declares the partition's bound, so that attaching it need not scan the rows.
        cursor.execute(
            f"ALTER TABLE {qn(name)} ADD CONSTRAINT {qn(name + '_draw')} "
            f"CHECK (draw_id IS NOT NULL AND draw_id = {int(draw.pk)})"
        )
    return name


def _attach_ticket_partition(draw: PeriodicDraw, name: str, cursor, qn) -> None:
    """Attach the filled table as the draw's partition (PostgreSQL builds its primary key and
    both unique indexes now, from sorted runs) and give it the immutability triggers that
    statements naming the partition directly must also meet (statement triggers of the
    parent fire only for statements through the parent)."""
    cursor.execute(f"SET LOCAL maintenance_work_mem = '{FREEZE_MAINTENANCE_WORK_MEM}'")
    cursor.execute(
        f"ALTER TABLE {qn(DrawTicket._meta.db_table)} ATTACH PARTITION {qn(name)} "
        f"FOR VALUES IN ({int(draw.pk)})"
    )
    table = qn(name)
    cursor.execute(
        f"""
        CREATE TRIGGER drawticket_locked_insert AFTER INSERT ON {table}
            REFERENCING NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION draws_locked_new_rows();
        CREATE TRIGGER drawticket_locked_update AFTER UPDATE ON {table}
            REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION draws_locked_both_rows();
        CREATE TRIGGER drawticket_locked_delete AFTER DELETE ON {table}
            REFERENCING OLD TABLE AS old_rows
            FOR EACH STATEMENT EXECUTE FUNCTION draws_locked_old_rows();
        """
    )


#: Above this many tickets the freeze's digest is streamed to Python: the tickets file (about
#: 45 bytes a ticket) stays below PostgreSQL's 1 GB limit for one value.
SQL_DIGEST_MAX_TICKETS = 20_000_000


def _digest_stored_tickets(draw: PeriodicDraw, count: int) -> str:
    """sha256 of the tickets file (spec §2) as stored, in the freeze's transaction.

    Up to SQL_DIGEST_MAX_TICKETS on PostgreSQL: one statement builds the file in ticket order
    (the (draw, ticket_no) index) and hashes it, without sending it anywhere. Beyond that (the
    file would near PostgreSQL's 1 GB value limit) or elsewhere: streamed back in index ranges
    and hashed here, every line checked by `engine.TicketsDigest`.
    """
    connection = connections[router.db_for_write(DrawTicket)]
    if connection.vendor == "postgresql" and count <= SQL_DIGEST_MAX_TICKETS:
        table = connection.ops.quote_name(DrawTicket._meta.db_table)
        line = "ticket_no::text || ',' || entry_ref || ',' || holder_ref || E'\\n'"
        sql = f"""
            SELECT count(*), coalesce(min(ticket_no), 0), coalesce(max(ticket_no), 0),
                   encode(sha256(convert_to(coalesce(string_agg(line, ''), ''), 'UTF8')), 'hex')
            FROM (SELECT ticket_no, {line} AS line FROM {table}
                  WHERE draw_id = %s ORDER BY ticket_no) AS tickets
        """  # noqa: S608
        with connection.cursor() as cursor:
            # A serial plan: the aggregate takes the lines in the order the ordered subquery
            # gives them (an aggregate ORDER BY would sort ten million lines again).
            cursor.execute("SET LOCAL max_parallel_workers_per_gather = 0")
            cursor.execute(sql, [draw.pk])
            stored, low, high, hexdigest = cursor.fetchone()
        # With the unique (draw, ticket_no) index: exactly the tickets 1..count were hashed.
        if (stored, low, high) != (count, min(count, 1), count):
            raise DrawError("draw.tickets_changed", detail={"hashed": stored, "count": count})
        return hexdigest
    from .selectors import iter_ticket_chunks

    digest = engine.TicketsDigest()
    for chunk in iter_ticket_chunks(draw, ticket_count=count):
        digest.add_lines(chunk)
    if digest.count != count:
        raise DrawError("draw.tickets_changed", detail={"hashed": digest.count, "count": count})
    return digest.hexdigest()


def _number_tickets_portable(draw: PeriodicDraw) -> tuple[int, str]:
    """The ORM path: read entries in ticket order, insert in batches, hash as we go."""
    rows = (
        eligible_entries(draw)
        .order_by("entered_at", "pk")
        .values_list("pk", "number", "consumer__public_id", "entered_at")
        .iterator(chunk_size=PORTABLE_BATCH)
    )
    digest = engine.TicketsDigest()
    batch: list[DrawTicket] = []
    lines: list[tuple[int, str, str]] = []
    ticket_no = 0
    for invoice_id, number, public_id, entered_at in rows:
        ticket_no += 1
        entry = engine.entry_ref(draw.code, number)
        holder = engine.holder_ref(draw.code, str(public_id))
        batch.append(
            DrawTicket(
                draw=draw,
                ticket_no=ticket_no,
                invoice_id=invoice_id,
                entry_ref=entry,
                holder_ref=holder,
                eligible_at=entered_at,
            )
        )
        lines.append((ticket_no, entry, holder))
        if len(batch) >= PORTABLE_BATCH:
            DrawTicket.objects.bulk_create(batch)
            digest.add_many(lines)
            batch, lines = [], []
    if batch:
        DrawTicket.objects.bulk_create(batch)
        digest.add_many(lines)
    return ticket_no, digest.hexdigest()


# --- §3 randomness ----------------------------------------------------------------------------


def draw_record_randomness(*, draw: PeriodicDraw, value: str, actor) -> PeriodicDraw:
    """Record the public randomness from the announced source (it must not have existed
    before the ticket list was frozen; the source was announced at commitment)."""
    _require(actor, PERM_MANAGE)
    value = (value or "").strip()
    if not value:
        raise DrawError("draw.randomness_required")
    with transaction.atomic():
        locked = _lock(draw)
        _check(locked, DrawStatus.RANDOMNESS_RECORDED)
        previous = locked.status
        locked.public_randomness = value
        locked.randomness_recorded_at = timezone.now()
        locked.status = DrawStatus.RANDOMNESS_RECORDED
        locked.save(
            update_fields=["public_randomness", "randomness_recorded_at", "status", "updated_at"]
        )
        _record(
            locked,
            previous=previous,
            action="randomness_recorded",
            actor=actor,
            after={"public_randomness": value, "randomness_source": locked.randomness_source},
        )
    return locked


# --- §4-5 execution: two people ---------------------------------------------------------------


def draw_start(*, draw: PeriodicDraw, actor) -> PeriodicDraw:
    """First half of the two-person rule: staff A asks for the draw to be executed."""
    _require(actor, PERM_EXECUTE)
    with transaction.atomic():
        locked = _lock(draw)
        if locked.status in (DrawStatus.DRAWN, DrawStatus.PUBLISHED, DrawStatus.FINALISED):
            raise DrawError("draw.already_drawn")
        _check(locked, DrawStatus.DRAWN)
        if locked.started_by_id is not None:
            raise DrawError("draw.already_started")
        locked.started_by = actor
        locked.started_at = timezone.now()
        locked.save(update_fields=["started_by", "started_at", "updated_at"])
        _record(locked, previous=locked.status, action="started", actor=actor)
    return locked


def draw_confirm(*, draw: PeriodicDraw, actor) -> PeriodicDraw:
    """Second half of the two-person rule: staff B (not A) confirms, and the draw is executed
    (spec §3-5) — once: the row lock, the status check and the unique constraint on each
    slot's original winner all refuse a second run."""
    _require(actor, PERM_EXECUTE)
    with transaction.atomic():
        locked = _lock(draw)
        if locked.status in (DrawStatus.DRAWN, DrawStatus.PUBLISHED, DrawStatus.FINALISED):
            raise DrawError("draw.already_drawn")
        _check(locked, DrawStatus.DRAWN)
        if locked.started_by_id is None:
            raise DrawError("draw.not_started")
        same_person = locked.started_by_id == actor.pk
        if same_person:
            # Committed (the refusal is raised after the block): attempts are on record.
            audit_record(
                action="draw.confirm_refused",
                category=AuditCategory.DRAW,
                target=locked,
                actor=actor,
                outcome=AuditOutcome.DENIED,
                reason="two-person rule: the member who started the draw cannot confirm it",
            )
        else:
            if DrawWinner.objects.filter(draw=locked).exists():
                raise DrawError("draw.already_drawn")
            winners = _execute(locked)
            previous = locked.status
            locked.next_counter = winners[-1].counter + 1 if winners else 0
            locked.confirmed_by = actor
            locked.drawn_at = timezone.now()
            locked.status = DrawStatus.DRAWN
            locked.save(
                update_fields=["next_counter", "confirmed_by", "drawn_at", "status", "updated_at"]
            )
            _record(
                locked,
                previous=previous,
                action="drawn",
                actor=actor,
                after={
                    "started_by": locked.started_by_id,
                    "winners": [w.as_dict() for w in winners],
                },
            )
    if same_person:
        raise DrawError("draw.same_person")
    return locked


#: Up to this many tickets a holder's tickets are counted directly; above, all at once.
DIRECT_COUNT_TICKETS = 200_000


def ticket_lookups(draw: PeriodicDraw):
    """The engine's callbacks, so no ticket list is ever loaded into memory.

    - `holder_of(ticket_no)`: one look-up through the (draw, ticket_no) index per ticket the
      random stream produces;
    - `holder_ticket_count(holder_ref)`: asked only for holders at the per-holder limit, and
      only after a long run of skipped tickets (see `engine`). Small draws count the holder's
      tickets directly; large draws count every holder with more than one ticket in one pass
      the first time it is asked (a holder not in that result has exactly one ticket).
    """
    tickets = DrawTicket.objects.filter(draw_id=draw.pk)
    several: dict[str, int] | None = None

    def holder_of(ticket_no: int) -> str:
        return tickets.filter(ticket_no=ticket_no).values_list("holder_ref", flat=True).get()

    def holder_ticket_count(holder: str) -> int:
        nonlocal several
        if (draw.ticket_count or 0) <= DIRECT_COUNT_TICKETS:
            return tickets.filter(holder_ref=holder).count()
        if several is None:
            several = dict(
                tickets.values("holder_ref")
                .annotate(n=Count("pk"))
                .filter(n__gt=1)
                .values_list("holder_ref", "n")
                .order_by()
            )
        return several.get(holder, 1)

    return holder_of, holder_ticket_count


def _draw_key(draw: PeriodicDraw) -> bytes:
    seed = bytes.fromhex(draw.server_seed)
    return engine.draw_key(seed, draw.tickets_digest, draw.public_randomness)


def _execute(draw: PeriodicDraw) -> list[engine.Winner]:
    holder_of, holder_ticket_count = ticket_lookups(draw)
    tiers = list(draw.tiers.order_by("rank"))
    winners = engine.select_winners(
        draw_key=_draw_key(draw),
        ticket_count=draw.ticket_count,
        tiers=[engine.Tier(t.rank, t.name, t.amount, t.count) for t in tiers],
        per_holder_limit=draw.per_holder_limit,
        holder_of=holder_of,
        holder_ticket_count=holder_ticket_count,
    )
    tier_ids = {t.rank: t.pk for t in tiers}
    ticket_ids = dict(
        DrawTicket.objects.filter(
            draw_id=draw.pk, ticket_no__in=[w.ticket_no for w in winners]
        ).values_list("ticket_no", "pk")
    )
    try:
        with transaction.atomic():
            DrawWinner.objects.bulk_create(
                [
                    DrawWinner(
                        draw=draw,
                        tier_id=tier_ids[w.rank],
                        rank=w.rank,
                        slot=w.slot,
                        ticket_id=ticket_ids[w.ticket_no],
                        ticket_no=w.ticket_no,
                        counter=w.counter,
                    )
                    for w in winners
                ]
            )
    except IntegrityError:
        raise DrawError("draw.already_drawn") from None
    return winners


# --- §7 publication, §6 disqualification, finalisation -----------------------------------------


def draw_publish(*, draw: PeriodicDraw, actor) -> PeriodicDraw:
    """Publish the results (公示): reveal the server seed, start the public notice period."""
    _require(actor, PERM_MANAGE)
    with transaction.atomic():
        locked = _lock(draw)
        _check(locked, DrawStatus.PUBLISHED)
        now = timezone.now()
        previous = locked.status
        locked.revealed_seed = locked.server_seed
        locked.published_at = now
        locked.notice_ends_at = now + timedelta(days=locked.notice_days)
        locked.status = DrawStatus.PUBLISHED
        locked.save(
            update_fields=[
                "revealed_seed",
                "published_at",
                "notice_ends_at",
                "status",
                "updated_at",
            ]
        )
        _record(
            locked,
            previous=previous,
            action="published",
            actor=actor,
            after={"server_seed": locked.revealed_seed, "notice_ends_at": locked.notice_ends_at},
        )
    return locked


def recorded_results(draw: PeriodicDraw):
    """(winners, disqualified in processing order, substitutes in order) as engine objects."""
    rows = list(
        DrawWinner.objects.filter(draw_id=draw.pk)
        .order_by("counter")
        .values(
            "rank",
            "slot",
            "ticket_no",
            "counter",
            "substitute_for",
            "disqualified",
            "disqualification_reason",
            "disqualification_seq",
        )
    )
    winners = sorted(
        (
            engine.Winner(r["rank"], r["slot"], r["ticket_no"], r["counter"])
            for r in rows
            if r["substitute_for"] is None
        ),
        key=lambda w: w.counter,
    )
    substitutes = [
        engine.Substitute(r["rank"], r["slot"], r["ticket_no"], r["counter"], r["substitute_for"])
        for r in rows
        if r["substitute_for"] is not None
    ]
    disqualified = [
        engine.Disqualification(r["ticket_no"], r["disqualification_reason"])
        for r in sorted(
            (r for r in rows if r["disqualified"]), key=lambda r: r["disqualification_seq"]
        )
    ]
    return winners, disqualified, substitutes


def draw_disqualify(
    *, draw: PeriodicDraw, ticket_no: int, reason: str, actor, note: str = ""
) -> DrawWinner | None:
    """Disqualify a ticket holding a prize during the public notice period and give its slot to
    the next ticket of the stream (spec §6). Returns the substitute's row, or None when no
    ticket is left (the slot stays unfilled)."""
    _require(actor, PERM_DISQUALIFY)
    return _disqualify(draw=draw, ticket_no=ticket_no, reason=reason, actor=actor, note=note)


def winners_disqualify_for_reversal(*, invoice_id: int, note: str = "") -> int:
    """The tax authority reversed an invoice whose ticket holds a prize in a draw still in its
    public notice period: disqualify it (reason `red_flushed`, by the system, not a person) and
    let the spec's substitution fill the slot. Called by the invoice reversal, in its
    transaction. Returns how many winners were disqualified."""
    rows = DrawWinner.objects.filter(
        ticket__invoice_id=invoice_id,
        disqualified=False,
        draw__status=DrawStatus.PUBLISHED,
        draw__notice_ends_at__gt=timezone.now(),
    ).select_related("draw")
    count = 0
    for row in rows:
        _disqualify(
            draw=row.draw,
            ticket_no=row.ticket_no,
            reason=DisqualificationReason.RED_FLUSHED,
            actor=None,
            note=note or "invoice red-flushed at the tax authority",
        )
        count += 1
    return count


def _disqualify(
    *, draw: PeriodicDraw, ticket_no: int, reason: str, actor, note: str
) -> DrawWinner | None:
    if reason not in DisqualificationReason.values:
        raise DrawError("draw.reason_required", detail={"reason": reason})
    with transaction.atomic():
        locked = _lock(draw)
        if locked.status != DrawStatus.PUBLISHED:
            if locked.status == DrawStatus.FINALISED:
                raise DrawError("draw.notice_period_over")
            raise InvalidTransition(
                "draw.invalid_transition",
                DrawError("draw.notice_period_over").message,
                detail={"from": locked.status, "to": "disqualify"},
            )
        now = timezone.now()
        if now >= locked.notice_ends_at:
            raise DrawError("draw.notice_period_over")
        row = DrawWinner.objects.filter(
            draw_id=locked.pk, ticket_no=ticket_no, disqualified=False
        ).first()
        if row is None:
            raise DrawError("draw.not_a_winner", detail={"ticket_no": ticket_no})
        winners, disqualified, substitutes = recorded_results(locked)
        holder_of, holder_ticket_count = ticket_lookups(locked)
        result = engine.substitute(
            draw_key=_draw_key(locked),
            ticket_count=locked.ticket_count,
            winners=winners,
            disqualified=[(ticket_no, reason)],
            substitutes_so_far=substitutes,
            previously_disqualified=disqualified,
            per_holder_limit=locked.per_holder_limit,
            holder_of=holder_of,
            holder_ticket_count=holder_ticket_count,
            next_counter=locked.next_counter,
        )
        seq = (
            DrawWinner.objects.filter(draw_id=locked.pk).aggregate(m=Max("disqualification_seq"))[
                "m"
            ]
            or 0
        ) + 1
        row.disqualified = True
        row.disqualification_reason = reason
        row.disqualification_note = (note or "").strip()[:300]
        row.disqualification_seq = seq
        row.disqualified_at = now
        row.disqualified_by = actor
        row.save(
            update_fields=[
                "disqualified",
                "disqualification_reason",
                "disqualification_note",
                "disqualification_seq",
                "disqualified_at",
                "disqualified_by",
            ]
        )
        substitute_row = None
        if result.substitutes:
            (sub,) = result.substitutes
            substitute_row = DrawWinner.objects.create(
                draw=locked,
                tier_id=row.tier_id,
                rank=sub.rank,
                slot=sub.slot,
                ticket=DrawTicket.objects.get(draw_id=locked.pk, ticket_no=sub.ticket_no),
                ticket_no=sub.ticket_no,
                counter=sub.counter,
                substitute_for=sub.substitute_for,
            )
        locked.next_counter = result.next_counter
        locked.save(update_fields=["next_counter", "updated_at"])
        _record(
            locked,
            previous=locked.status,
            action="winner_disqualified",
            actor=actor,
            note=note,
            after={
                "ticket_no": ticket_no,
                "reason": reason,
                "substitute": result.substitutes[0].as_dict() if result.substitutes else None,
            },
        )
    return substitute_row


def draw_finalise(*, draw: PeriodicDraw, actor) -> PeriodicDraw:
    """Close the public notice period: the remaining (not disqualified) winners are final and
    their prizes payable."""
    _require(actor, PERM_MANAGE)
    with transaction.atomic():
        locked = _lock(draw)
        _check(locked, DrawStatus.FINALISED)
        now = timezone.now()
        if now < locked.notice_ends_at:
            raise DrawError("draw.notice_period_running", detail={"until": locked.notice_ends_at})
        previous = locked.status
        locked.finalised_at = now
        locked.status = DrawStatus.FINALISED
        locked.save(update_fields=["finalised_at", "status", "updated_at"])
        final = DrawWinner.objects.filter(draw_id=locked.pk, disqualified=False).count()
        # The winners' prizes become awards, reserved in the campaign's fund; a fund that
        # cannot cover them refuses the finalisation (`fund.insufficient`).
        awards = awards_create_for_draw(draw=locked, actor=actor)
        _record(
            locked,
            previous=previous,
            action="finalised",
            actor=actor,
            after={"winners": final, "awards": awards},
        )
    return locked


def draw_cancel(*, draw: PeriodicDraw, reason: str, actor) -> PeriodicDraw:
    """Cancel a draw before it is executed (never afterwards). Its tickets, if any, stay."""
    _require(actor, PERM_MANAGE)
    reason = _clean_reason(reason)
    with transaction.atomic():
        locked = _lock(draw)
        _check(locked, DrawStatus.CANCELLED)
        previous = locked.status
        locked.cancelled_at = timezone.now()
        locked.cancel_reason = reason
        locked.status = DrawStatus.CANCELLED
        locked.save(update_fields=["cancelled_at", "cancel_reason", "status", "updated_at"])
        _record(locked, previous=previous, action="cancelled", actor=actor, note=reason)
    return locked


def freeze_due_draws(*, now: datetime | None = None) -> list[str]:
    """Freeze every committed draw whose cut-off has passed (the scheduled task). Returns the
    codes frozen; a draw that fails is left committed for the next run (and logged)."""
    now = now or timezone.now()
    frozen = []
    due = PeriodicDraw.objects.filter(status=DrawStatus.COMMITTED, cutoff_at__lte=now)
    for draw in due.order_by("cutoff_at", "pk"):
        try:
            draw_freeze(draw=draw)
        except Exception:
            logger.exception("freezing draw %s failed", draw.code)
        else:
            frozen.append(draw.code)
    return frozen


# --- Instant draw ---------------------------------------------------------------------------

#: Probabilities are applied in parts per billion: exact integers, no floats.
PPB = 1_000_000_000


@dataclass(frozen=True)
class _Candidate:
    tier: InstantTier
    pool: InstantPool
    weight: int  # parts per billion


INSTANT_GEN = f"{CONFIG_PREFIX}:gen:instant"


def _instant_config_key(campaign_id: int) -> str:
    return f"{CONFIG_PREFIX}:instant:{campaign_id}"


def instant_config(campaign_id: int) -> tuple[list[InstantPool], list[InstantTier]]:
    """The campaign's enabled instant pools (whatever their window) and all their tiers, most
    valuable first (ties by id), from the configuration cache (`apps.invoices.caching` rules:
    generation stamps, replaced on every save or delete of a pool or a tier). The tiers'
    `remaining` in this copy is not current and is never used: stock and daily quotas are
    decided by the conditional UPDATEs (`_instant_take`)."""

    def load():
        pools = list(InstantPool.objects.filter(campaign_id=campaign_id, enabled=True))
        tiers = list(
            InstantTier.objects.filter(pool__in=[p.pk for p in pools]).order_by("-face_value", "pk")
        )
        return pools, tiers

    return read_through(INSTANT_GEN, _instant_config_key(campaign_id), load)


def instant_config_cache_clear() -> None:
    """Forget every cached instant pool and tier (call after writing them without `save()`)."""
    generation_bump(INSTANT_GEN)


def _on_instant_config(sender, instance, **kwargs) -> None:
    instant_config_cache_clear()


def connect_instant_config_signals() -> None:
    from django.db.models.signals import post_delete, post_save

    for model in (InstantPool, InstantTier):
        name = model.__name__
        post_save.connect(_on_instant_config, sender=model, dispatch_uid=f"instant-cfg-{name}")
        post_delete.connect(
            _on_instant_config, sender=model, dispatch_uid=f"instant-cfg-del-{name}"
        )


def _instant_fixed_candidates(pools, tiers, invoice) -> list[_Candidate] | None:
    """Candidates without reading stock or quotas, when every open pool has fixed odds and the
    odds sum to at most certainty: a tier out of stock or out of today's quota then loses its
    conditional UPDATE (no prize), exactly as if it had been left out — each tier's interval
    keeps its width. None when the rows must be read (dynamic odds, odds above certainty)."""
    if any(p.odds_mode != OddsMode.FIXED for p in pools.values()):
        return None
    limit = invoice.campaign.max_prize_per_invoice
    candidates = []
    for tier in tiers:
        pool = pools.get(tier.pool_id)
        if pool is None or tier.face_value > limit:
            continue
        weight = int(tier.probability * PPB)
        if weight > 0:
            candidates.append(_Candidate(tier, pool, weight))
    if sum(c.weight for c in candidates) > PPB:
        return None
    return candidates


def _instant_candidates(pools: Iterable[InstantPool], invoice, day, now) -> list[_Candidate]:
    pools = {p.pk: p for p in pools}
    capped = [p.pk for p in pools.values() if p.max_wins_per_consumer is not None]
    won = {}
    if capped:
        won = dict(
            InstantAward.objects.filter(consumer_id=invoice.consumer_id, pool_id__in=capped)
            .values("pool_id")
            .annotate(n=Count("id"))
            .values_list("pool_id", "n")
        )
    open_pools = [
        pk
        for pk, pool in pools.items()
        if pool.max_wins_per_consumer is None or won.get(pk, 0) < pool.max_wins_per_consumer
    ]
    if not open_pools:
        return []
    tiers = list(
        InstantTier.objects.filter(
            pool_id__in=open_pools,
            remaining__gt=0,
            face_value__lte=invoice.campaign.max_prize_per_invoice,
        ).order_by("-face_value", "pk")
    )
    left_today = {
        tier_id: quota - awarded
        for tier_id, quota, awarded in InstantDailyQuota.objects.filter(
            tier__in=tiers, day=day
        ).values_list("tier_id", "quota", "awarded")
    }
    end_of_day = timezone.make_aware(datetime.combine(day + timedelta(days=1), datetime.min.time()))
    day_fraction_left = max(0.0, (end_of_day - now).total_seconds()) / 86_400
    candidates = []
    for tier in tiers:
        left = left_today.get(tier.pk, 0)
        if left <= 0:
            continue
        pool = pools[tier.pool_id]
        if pool.odds_mode == OddsMode.DYNAMIC:
            expected = max(1, math.ceil(pool.expected_daily_entries * day_fraction_left))
            weight = min(PPB, left * PPB // expected)
        else:
            weight = int(tier.probability * PPB)
        if weight > 0:
            candidates.append(_Candidate(tier, pool, weight))
    total = sum(c.weight for c in candidates)
    if total > PPB:  # more than certainty (dynamic odds late in the day): scale down
        candidates = [_Candidate(c.tier, c.pool, c.weight * PPB // total) for c in candidates]
    return candidates


def _instant_pick(candidates: Sequence[_Candidate]) -> _Candidate | None:
    """One CSPRNG draw: candidate i with probability weight_i / 10⁹, else nothing."""
    if not candidates:
        return None
    point = secrets.randbelow(PPB)
    for candidate in candidates:
        if point < candidate.weight:
            return candidate
        point -= candidate.weight
    return None


class _NoStock(Exception):
    pass


def _instant_take(candidate: _Candidate, day):
    """Decrement the tier's stock and count the day's award: two conditional UPDATEs, so
    concurrent winners can never take more than there is. Both are sent at once (in the
    caller's pipeline, with its savepoint: one round trip); the returned function tells,
    once they are back, whether both found something left. If either did not, the caller's
    savepoint (the win's, `_instant_win`) undoes the other, so it is both or neither."""
    connection = connections[router.db_for_write(InstantTier)]
    q = connection.ops.quote_name
    stock, quota = connection.cursor(), connection.cursor()  # plain statements: every win
    stock.execute(
        f"UPDATE {q(InstantTier._meta.db_table)} SET remaining = remaining - 1 "  # noqa: S608 - names only
        "WHERE id = %s AND remaining > 0",
        [candidate.tier.pk],
    )
    quota.execute(
        f"UPDATE {q(InstantDailyQuota._meta.db_table)} SET awarded = awarded + 1 "  # noqa: S608 - names only
        "WHERE tier_id = %s AND day = %s AND awarded < quota",
        [candidate.tier.pk, connection.ops.adapt_datefield_value(day)],
    )

    def taken() -> bool:
        try:
            return bool(stock.rowcount) and bool(quota.rowcount)
        finally:
            stock.close()
            quota.close()

    return taken


def instant_prize_payload(award: InstantAward) -> dict:
    """What the submission response says about a prize."""
    return {
        "tier": award.tier.name,
        "kind": award.kind,
        "amount": engine.amount_str(award.amount),
        "payable_after": (
            timezone.localtime(award.payable_after).isoformat() if award.payable_after else None
        ),
    }


def instant_draw_for_entry(
    *, invoice, consumer_locked: bool = False, new_entry: bool = False
) -> dict | None:
    """Draw once for a new entry from its campaign's active instant pools. None: no prize.

    Called inside the submission transaction (or after a reviewer's release). Invariants:
    - an entry draws exactly once (`InstantDrawResult`, one per invoice; a repeated call
      returns the recorded outcome);
    - the draw is one `secrets.randbelow` over the tiers' odds (fixed probability, or the
      day's remaining quota over the expected remaining entries);
    - a prize is awarded only if both conditional UPDATEs succeed (tier stock > 0, the day's
      quota not reached), so awards never exceed a tier's quantity or its daily quota under
      any concurrency; the consumer's row lock serialises their own draws, so the per-consumer
      cap holds. `consumer_locked`: the caller's transaction already holds that lock (the
      submission pipeline), so it is not taken again.

    `new_entry`: the caller inserted the invoice in this same transaction (a new submission),
    so nobody else can draw for it and it has not drawn before. Its draw record is then
    written once, with the outcome, among the transaction's batched writes
    (`apps.common.queries.batched_writes`), instead of being claimed first and updated on a win.
    """
    if invoice.campaign_id is None or invoice.status != InvoiceStatus.ACCEPTED:
        return None
    now = timezone.now()
    all_pools, all_tiers = instant_config(invoice.campaign_id)
    pools = [p for p in all_pools if p.active_from <= now < p.active_until]
    if not pools:
        return None
    day = timezone.localdate(now)
    # Inside the submission's transaction (`consumer_locked`) no savepoint of its own: any
    # error here fails the submission anyway.
    with transaction.atomic(savepoint=not consumer_locked):
        if not consumer_locked:
            list(Consumer.objects.select_for_update().filter(pk=invoice.consumer_id).values("pk"))
        result_id = None
        if not new_entry:
            result_id = _instant_claim(invoice, now)
            if result_id is None:  # this entry has drawn already: its recorded outcome
                award = InstantAward.objects.filter(invoice_id=invoice.pk).select_related("tier")
                award = award.first()
                return instant_prize_payload(award) if award else None
        award = _instant_win(pools, all_tiers, invoice, day, now)
        _instant_record(invoice, now, result_id, won=award is not None)
    return instant_prize_payload(award) if award is not None else None


def _instant_win(pools, all_tiers, invoice, day, now) -> InstantAward | None:
    """Pick a tier and take the prize (stock, quota, the award and its reservation in the
    prize fund, all or nothing), or None."""
    candidates = None
    if all(p.max_wins_per_consumer is None for p in pools):
        open_pools = {p.pk: p for p in pools}
        candidates = _instant_fixed_candidates(open_pools, all_tiers, invoice)
    if candidates is None:
        candidates = _instant_candidates(pools, invoice, day, now)
    candidate = _instant_pick(candidates)
    if candidate is None:
        return None
    tier, pool = candidate.tier, candidate.pool
    payable_after = None
    if tier.kind == InstantPrizeKind.CASH and tier.face_value > pool.delay_cash_above:
        payable_after = now + timedelta(days=pool.delay_days)
    if batch_pipelined():
        try:
            reservation = instant_reservation(pool=pool, amount=tier.face_value)
        except PrizeError as exc:
            logger.warning("instant prize of pool %s not awarded: %s", pool.pk, exc.code)
            return None
        if reservation is not None:
            return _instant_win_batched(candidate, reservation, invoice, day, now, payable_after)
    try:
        # Stock, quota, the win and its reservation in the prize fund: all or nothing, so
        # a fund that cannot cover the prize means "not this time", never an overspend. The
        # savepoint and the stock and quota UPDATEs go in one round trip, the two balance
        # UPDATEs in another (`ledger_move`), the award's history, its ledger entry and its
        # coupon together before the savepoint's release (`batched_writes`).
        with ExitStack() as win:
            with pipelined():
                win.enter_context(transaction.atomic())
                win.enter_context(batched_writes())
                taken = _instant_take(candidate, day)
            if not taken():
                raise _NoStock
            award = _new_instant_award(candidate, invoice, day, now, payable_after)
            insert_objects([award])
            award_create_for_instant(instant_award=award)
    except _NoStock:  # the savepoint undid a stock decrement whose quota was gone
        return None
    except PrizeError as exc:
        logger.warning("instant prize of pool %s not awarded: %s", pool.pk, exc.code)
        return None
    return award


def _new_instant_award(candidate: _Candidate, invoice, day, now, payable_after, pk=None):
    return InstantAward(
        pk=pk,
        invoice=invoice,
        consumer_id=invoice.consumer_id,
        pool=candidate.pool,
        tier=candidate.tier,
        kind=candidate.tier.kind,
        amount=candidate.tier.face_value,
        day=day,
        drawn_at=now,
        payable_after=payable_after,
    )


def _take_and_reserve(candidate: _Candidate, day, moves) -> tuple[str, list]:
    """One statement that takes the prize and reserves its value, or changes nothing: lock
    the tier if it has stock; count the day's award if its quota has room; decrement the
    stock; move the fund's two balances (`moves`, in lock order) — each step only if the one
    before it happened. It answers (prizes taken, balances moved): (1, 1) or (0, 0). An
    overdraft fails the statement on the balance CHECK. Nothing to undo when there is no
    stock or quota: no `ROLLBACK TO SAVEPOINT`, after which psycopg forgets every prepared
    statement of the connection (its answer's status is `ROLLBACK`) and re-prepares them."""
    connection = connections[router.db_for_write(InstantTier)]
    q = connection.ops.quote_name
    tier, quota = q(InstantTier._meta.db_table), q(InstantDailyQuota._meta.db_table)
    account = q(LedgerAccount._meta.db_table)
    (first_id, first_delta), (second_id, second_delta) = moves
    sql = (
        f"WITH tier AS (SELECT id FROM {tier} WHERE id = %s AND remaining > 0 FOR UPDATE), "  # noqa: S608 - names only
        f"quota AS (UPDATE {quota} SET awarded = awarded + 1 "
        "WHERE tier_id IN (SELECT id FROM tier) AND day = %s AND awarded < quota "
        "RETURNING tier_id), "
        f"stock AS (UPDATE {tier} SET remaining = remaining - 1 "
        "WHERE id IN (SELECT tier_id FROM quota) RETURNING id), "
        f"first AS (UPDATE {account} SET balance = balance + %s "
        "WHERE id = %s AND EXISTS (SELECT 1 FROM stock) RETURNING id), "
        f"second AS (UPDATE {account} SET balance = balance + %s "
        "WHERE id = %s AND EXISTS (SELECT 1 FROM first) RETURNING id) "
        "SELECT (SELECT count(*) FROM stock), (SELECT count(*) FROM second)"
    )
    params = [
        candidate.tier.pk,
        connection.ops.adapt_datefield_value(day),
        balance_param(first_delta),
        first_id,
        balance_param(second_delta),
        second_id,
    ]
    return sql, params


def _instant_win_batched(
    candidate: _Candidate, reservation, invoice, day, now, payable_after
) -> InstantAward | None:
    """`_instant_win` where the transaction's writes are batched (the submission, on
    PostgreSQL): everything that decides travels in one round trip — a savepoint, one
    statement that takes the stock and the day's quota and reserves the prize's value in the
    fund (`_take_and_reserve`), and the ids of the instant award and the award — and the rows
    (the instant award, the award, its history, its ledger entry, its coupon) and the
    savepoint's release go with the transaction's batched writes, sent with its `COMMIT`.
    Nothing is left to fail there but what fails the whole submission anyway. No stock or no
    quota left: nothing was changed, no prize. A fund that cannot cover the prize fails the
    statement on the balance CHECK and the savepoint undoes it: one more round trip, no prize.
    The hot rows (the tier, the fund's accounts) are held from this round trip to the
    `COMMIT`, the next one."""
    db = connections[router.db_for_write(InstantAward)]
    sid, take, ids = None, db.cursor(), db.cursor()
    try:
        with pipelined():
            sid = transaction.savepoint(using=db.alias)
            take.execute(*_take_and_reserve(candidate, day, reservation.moves))
            ids.execute(*next_ids_query(InstantAward, Award))
        taken, moved = take.fetchone()
        instant_id, award_id = ids.fetchone()
    except IntegrityError as exc:
        if sid is not None:
            transaction.savepoint_rollback(sid, using=db.alias)
        if not is_overdraft(exc):
            raise
        logger.warning("instant prize of pool %s not awarded: fund.insufficient", candidate.pool.pk)
        return None
    finally:
        take.close()
        ids.close()
    if taken and not moved:  # the cached account ids name no account: undo, no prize
        transaction.savepoint_rollback(sid, using=db.alias)
        logger.error("instant prize of pool %s not awarded: fund accounts", candidate.pool.pk)
        taken = 0
    write_later(db.ops.savepoint_commit_sql(sid))
    if not taken:  # no stock or no quota left: nothing was changed
        return None
    award = _new_instant_award(candidate, invoice, day, now, payable_after, pk=instant_id)
    insert_objects([award], later=True)
    award_create_for_instant(instant_award=award, reservation=reservation, award_id=award_id)
    return award


def _instant_record(invoice, now, result_id: int | None, *, won: bool) -> None:
    """The entry's draw record: a new entry's is written now, with its outcome (batched); a
    claimed one (`_instant_claim`) is marked won."""
    connection = connections[router.db_for_write(InstantDrawResult)]
    table = connection.ops.quote_name(InstantDrawResult._meta.db_table)
    if result_id is None:
        write_later(
            f"INSERT INTO {table} (invoice_id, drawn_at, won) VALUES (%s, %s, %s)",  # noqa: S608 - names only
            [invoice.pk, connection.ops.adapt_datetimefield_value(now), won],
        )
    elif won:
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} SET won = %s WHERE id = %s",  # noqa: S608 - names only
                [True, result_id],
            )


def _instant_claim(invoice, now) -> int | None:
    """Record that the entry draws: the id of its new `InstantDrawResult`, or None when it has
    one already. One `INSERT … ON CONFLICT DO NOTHING` (PostgreSQL, and SQLite 3.35+): no
    savepoint around a possible unique violation."""
    connection = connections[router.db_for_write(InstantDrawResult)]
    table = connection.ops.quote_name(InstantDrawResult._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (invoice_id, drawn_at, won) VALUES (%s, %s, %s) "  # noqa: S608
            "ON CONFLICT (invoice_id) DO NOTHING RETURNING id",
            [invoice.pk, connection.ops.adapt_datetimefield_value(now), False],
        )
        row = cursor.fetchone()
    return row[0] if row else None


def instant_plan_quotas(*, pool: InstantPool, actor) -> int:
    """Spread each tier's remaining stock evenly over the pool's remaining local days (the
    earliest days take the remainder), creating or raising each day's quota. Staff adjust
    single days (holidays) afterwards. Returns the number of quota rows written."""
    _require(actor, PERM_CHANGE_POOL)
    start = max(timezone.localdate(), timezone.localdate(pool.active_from))
    end = timezone.localdate(pool.active_until - timedelta(microseconds=1))
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    if not days:
        return 0
    written = 0
    with transaction.atomic():
        for tier in InstantTier.objects.select_for_update().filter(pool=pool):
            base, extra = divmod(tier.remaining, len(days))
            for index, day in enumerate(days):
                quota_row, _created = InstantDailyQuota.objects.get_or_create(
                    tier=tier, day=day, defaults={"quota": 0}
                )
                wanted = quota_row.awarded + base + (1 if index < extra else 0)
                if wanted != quota_row.quota:
                    quota_row.quota = max(wanted, quota_row.awarded)
                    quota_row.save(update_fields=["quota"])
                written += 1
        audit_record(
            action="instant_pool.quotas_planned",
            category=AuditCategory.CONFIG,
            target=pool,
            actor=actor,
            after={"days": len(days), "from": start, "to": end},
        )
    return written


def instant_tier_save(*, tier: InstantTier, actor) -> InstantTier:
    """Create a tier (its whole quantity remaining) or change it. Changing `total_quantity`
    moves `remaining` by the same amount, under the tier's row lock, so prizes drawn in the
    meantime are never given back; the stock cannot drop below what has been awarded."""
    _require(actor, PERM_CHANGE_POOL)
    with transaction.atomic():
        if tier.pk is None:
            tier.remaining = tier.total_quantity
            tier.save(force_insert=True)
            before = None
        else:
            locked = InstantTier.objects.select_for_update().get(pk=tier.pk)
            awarded = locked.total_quantity - locked.remaining
            if tier.total_quantity < awarded:
                raise DrawError(
                    "instant.quantity_below_awarded",
                    detail={"awarded": awarded, "total_quantity": tier.total_quantity},
                )
            tier.remaining = tier.total_quantity - awarded
            tier.save()
            before = {"total_quantity": locked.total_quantity, "remaining": locked.remaining}
        audit_record(
            action="instant_tier.saved",
            category=AuditCategory.CONFIG,
            target=tier,
            actor=actor,
            before=before,
            after={
                "name": tier.name,
                "kind": tier.kind,
                "face_value": tier.face_value,
                "total_quantity": tier.total_quantity,
                "remaining": tier.remaining,
                "probability": tier.probability,
            },
        )
    return tier
