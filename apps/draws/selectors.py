"""Reads of draws: the tickets file, the publication bundle, verification by replay, and what
the public results page may show (masked winners only, secrets only once published)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import BinaryIO

from django.db import connections, router
from django.db.models import QuerySet

from apps.common.crypto import DecryptionError
from apps.common.masking import mask_name

from . import engine
from .choices import COMMITTED_STATUSES, FROZEN_STATUSES, PUBLISHED_STATUSES, DrawStatus
from .exceptions import DrawError
from .models import DrawTicket, DrawWinner, PeriodicDraw

#: Tickets per chunk when the tickets file is read back (about 4.5 MB of text).
CHUNK_TICKETS = 100_000


def iter_ticket_chunks(
    draw: PeriodicDraw, *, ticket_count: int | None = None, chunk: int = CHUNK_TICKETS
) -> Iterator[bytes]:
    """The tickets file (spec §2) of a frozen draw in ticket order, as byte chunks.

    Read by ticket-number ranges through the (draw, ticket_no) index: no server-side cursor,
    no long transaction, constant memory. On PostgreSQL each range is one `string_agg`, and
    the next range is fetched (on the same connection, so inside the caller's transaction)
    while the caller hashes or sends the current one.
    """
    count = draw.ticket_count if ticket_count is None else ticket_count
    if not count:
        return
    ranges = [(low, min(count, low + chunk - 1)) for low in range(1, count + 1, chunk)]
    connection = connections[router.db_for_read(DrawTicket)]
    if connection.vendor != "postgresql":
        for low, high in ranges:
            rows = (
                DrawTicket.objects.filter(draw_id=draw.pk, ticket_no__range=(low, high))
                .order_by("ticket_no")
                .values_list("ticket_no", "entry_ref", "holder_ref")
            )
            text = "".join(f"{n},{e},{h}\n" for n, e, h in rows)
            if text:
                yield text.encode("ascii")
        return

    table = connection.ops.quote_name(DrawTicket._meta.db_table)
    # The inner ORDER BY (an index range scan) gives string_agg its order without a sort;
    # TicketsDigest checks the numbering of every line it hashes anyway.
    line = "ticket_no::text || ',' || entry_ref || ',' || holder_ref || E'\\n'"
    sql = (
        f"SELECT string_agg(line, '') FROM (SELECT {line} AS line FROM {table} "  # noqa: S608 - quoted model table; values are bound
        "WHERE draw_id = %s AND ticket_no BETWEEN %s AND %s ORDER BY ticket_no) AS chunk"
    )
    connection.ensure_connection()
    raw = connection.connection  # psycopg's connection: thread-safe, one query at a time

    def fetch(bounds: tuple[int, int]) -> bytes:
        (text,) = raw.execute(sql, [draw.pk, *bounds]).fetchone()
        return (text or "").encode("ascii")

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tickets") as prefetch:
        pending = prefetch.submit(fetch, ranges[0])
        for following in [*ranges[1:], None]:
            data = pending.result()
            if following is not None:
                pending = prefetch.submit(fetch, following)
            if data:
                yield data


def write_tickets_file(draw: PeriodicDraw, sink: BinaryIO) -> int:
    """Write the tickets file to `sink`, checking it against the frozen count and digest.
    Raises `DrawError("draw.tickets_changed")` if the stored list no longer matches."""
    digest = engine.TicketsDigest(sink=sink)
    for block in iter_ticket_chunks(draw):
        digest.add_lines(block)
    if digest.count != draw.ticket_count or digest.hexdigest() != draw.tickets_digest:
        raise DrawError(
            "draw.tickets_changed", detail={"hashed": digest.count, "count": draw.ticket_count}
        )
    return digest.count


def draw_bundle(draw: PeriodicDraw) -> dict:
    """The publication bundle (spec §7). Only for published draws: it reveals the seed."""
    from .services import engine_tiers, recorded_results

    if draw.status not in PUBLISHED_STATUSES or not draw.revealed_seed:
        raise DrawError("draw.permission_denied", detail={"status": draw.status})
    winners, disqualified, substitutes = recorded_results(draw)
    return engine.build_bundle(
        draw_id=draw.code,
        server_seed=bytes.fromhex(draw.revealed_seed),
        public_randomness_source=draw.randomness_source,
        public_randomness=draw.public_randomness,
        tickets_digest=draw.tickets_digest,
        ticket_count=draw.ticket_count,
        per_holder_limit=draw.per_holder_limit,
        tiers=engine_tiers(draw),
        winners=winners,
        disqualified=disqualified,
        substitutes=substitutes,
    )


# --- Verification by replay ("verify mode": recomputes, never writes) ---------------------------


@dataclass
class ReplayReport:
    """One line per check, like the stand-alone verifier; `ok` when every check passed."""

    checks: list[tuple[str, bool, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(passed for _name, passed, _detail in self.checks)

    def add(self, name: str, passed: bool, detail: str = "") -> None:
        self.checks.append((name, passed, detail))


def draw_replay(draw: PeriodicDraw) -> ReplayReport:
    """Recompute the draw from the stored data — seed, ticket list, randomness, tiers — and
    compare with the stored commitment, digest, winners and substitutes. Never writes."""
    from .services import engine_tiers, recorded_results, ticket_lookups

    report = ReplayReport()
    if draw.status not in COMMITTED_STATUSES and draw.status != DrawStatus.CANCELLED:
        report.add("commitment", False, "not committed")
        return report
    try:
        seed = bytes.fromhex(draw.server_seed) if draw.server_seed else b""
    except (DecryptionError, ValueError):
        seed = b""
    commitment_ok = len(seed) == engine.SEED_BYTES and (
        engine.seed_commitment(seed) == draw.seed_commitment
    )
    report.add("commitment", commitment_ok, draw.seed_commitment)
    if draw.ticket_count is None:
        return report

    digest = engine.TicketsDigest()
    try:
        for block in iter_ticket_chunks(draw):
            digest.add_lines(block)
        hexdigest = digest.hexdigest()
    except ValueError as exc:
        report.add("digest", False, str(exc))
        return report
    stored = DrawTicket.objects.filter(draw_id=draw.pk).count()
    report.add("digest", hexdigest == draw.tickets_digest, hexdigest)
    report.add(
        "tickets",
        digest.count == draw.ticket_count == stored,
        f"{digest.count} hashed, {stored} stored, {draw.ticket_count} published",
    )
    if draw.status not in (DrawStatus.DRAWN, *PUBLISHED_STATUSES) or not report.ok:
        return report

    holder_of, holder_ticket_count = ticket_lookups(draw)
    common = {
        "draw_key": engine.draw_key(seed, draw.tickets_digest, draw.public_randomness),
        "ticket_count": draw.ticket_count,
        "per_holder_limit": draw.per_holder_limit,
        "holder_of": holder_of,
        "holder_ticket_count": holder_ticket_count,
    }
    winners, disqualified, substitutes = recorded_results(draw)
    recomputed = engine.select_winners(tiers=engine_tiers(draw), **common)
    report.add("winners", recomputed == winners, f"{len(recomputed)} winner(s)")
    result = engine.substitute(winners=recomputed, disqualified=disqualified, **common)
    report.add(
        "substitutes", result.substitutes == substitutes, f"{len(result.substitutes)} substitute(s)"
    )
    return report


# --- The public results page ----------------------------------------------------------------


def public_draw_list() -> QuerySet[PeriodicDraw]:
    """Draws the public may see: every draw from its commitment on (also when cancelled
    afterwards, so a withdrawn commitment stays visible)."""
    return (
        PeriodicDraw.objects.filter(status__in=[*COMMITTED_STATUSES, DrawStatus.CANCELLED])
        .exclude(seed_commitment="")
        .select_related("campaign")
        .order_by("-cutoff_at", "-pk")
    )


def public_draw_get(code: str) -> PeriodicDraw:
    return public_draw_list().get(code=code)


@dataclass(frozen=True)
class PublicWinner:
    rank: int
    slot: int
    tier_name: str
    amount: str
    ticket_no: int
    masked_name: str
    substitute_for: int | None
    disqualified: bool
    disqualification_reason: str


def public_winners(draw: PeriodicDraw) -> list[PublicWinner]:
    """Winners and substitutes of a published draw, names masked (`张*三`), in slot order.
    Nothing before publication."""
    if draw.status not in PUBLISHED_STATUSES:
        return []
    rows = (
        DrawWinner.objects.filter(draw_id=draw.pk)
        .select_related("tier", "ticket__invoice__consumer")
        .order_by("rank", "slot", "counter")
    )
    result = []
    for row in rows:
        consumer = row.ticket.invoice.consumer
        try:
            masked = mask_name(consumer.real_name)
        except DecryptionError:
            masked = ""
        result.append(
            PublicWinner(
                rank=row.rank,
                slot=row.slot,
                tier_name=row.tier.name,
                amount=engine.amount_str(row.tier.amount),
                ticket_no=row.ticket_no,
                masked_name=masked or "*",
                substitute_for=row.substitute_for,
                disqualified=row.disqualified,
                disqualification_reason=row.get_disqualification_reason_display()
                if row.disqualified
                else "",
            )
        )
    return result


def tickets_public(draw: PeriodicDraw) -> bool:
    """The tickets file is public from freezing on (also if the draw was cancelled after)."""
    return draw.ticket_count is not None and (
        draw.status in FROZEN_STATUSES or draw.status == DrawStatus.CANCELLED
    )
