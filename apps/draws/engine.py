"""Periodic draw engine: `lotteryinvoice-draw/1` (../shared/DRAW_SPEC.md), pure Python.

This module is the project's own implementation of the draw contract. It imports only the
standard library, knows nothing about Django, and must give byte-identical results to the
stand-alone verifier `tools/verify_draw.py`, which is a separate implementation of the same
page (the two do not share code on purpose; tests/draws proves they agree).

Spec sections and where they live here:

- §2 ticket list: `entry_ref`, `holder_ref`, `ticket_line`, `TicketsDigest`
- §1/§3 commitment and key: `seed_commitment`, `draw_key`
- §4 random ticket stream: `ticket_from_u`, `ticket_for_counter`, `TicketStream`
- §5 selection: `select_winners` (via `DrawState`)
- §6 disqualification and substitutes: `substitute` (via `DrawState`)
- §7 publication bundle: `build_bundle`, `bundle_json`

Rules the spec leaves implicit, fixed here (and in the verifier) once and for all:

- **No ticket left** (§5 "stop", §6). A ticket is *assignable* when it has never held a slot in
  this draw (winners, substitutes and therefore every disqualified ticket count as having won)
  and its holder currently holds fewer than L slots (a disqualified slot no longer counts for its
  holder). When no ticket of the draw is assignable, the slot being filled stays unfilled; in §5
  every later slot stays unfilled too (assignability can only shrink during selection), in §6
  the disqualified slot stays unfilled and no substitute is recorded. The number of assignable
  tickets is computed exactly, never guessed:

      assignable = (N - |tickets that ever held a slot|)
                   - sum over holders h holding L slots of (tickets(h) - tickets of h that ever
                     held a slot)

  which needs the ticket count of saturated holders only (`holder_ticket_count`). The check is
  made lazily, once per search, after `SKIPS_BEFORE_CHECK` tickets in a row were skipped: if
  no ticket is assignable every candidate is skipped, so the check is reached; if one is, the
  stream is bound to reach the same first assignable ticket whether or not the check ran. So
  when the check runs never changes a result (the tests prove it); it only ends a hopeless
  search, and in large draws it practically never runs at all.
- **Where the stream continues** (§6 "the counter after the last one used"): one past the
  counter of the last ticket that took a slot (winner or substitute), or 0 when none has.
  Counters read while searching in vain for a slot that stays unfilled are not "used".
- A disqualified ticket must hold a slot at that moment (a winner or substitute not already
  disqualified); anything else is an error, not a silent no-op.
- `per_holder_limit` is at least 1; tiers are listed with strictly ascending ranks.
- A draw with N = 0 tickets fills no slot (the modulus of §4 is undefined for N = 0).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from itertools import islice, pairwise
from typing import BinaryIO

SPEC_VERSION = "lotteryinvoice-draw/1"
SEED_BYTES = 32
# After this many skipped tickets in a row, a search asks whether any ticket is left at all.
# Any value >= 1 gives the same results (see the module docstring); this one keeps the exact
# count (which needs `holder_ticket_count`) out of the way of ordinary draws.
SKIPS_BEFORE_CHECK = 32

_TWO_64 = 1 << 64
_REF_RE = re.compile(r"[0-9a-f]{16}")
_HEX64_RE = re.compile(r"[0-9a-f]{64}")
# One batch of tickets-file lines; the numbering itself is checked in Python.
_LINES_RE = re.compile(r"(?:[1-9][0-9]*,[0-9a-f]{16},[0-9a-f]{16}\n)*")
_LINES_BYTES_RE = re.compile(_LINES_RE.pattern.encode("ascii"))
_NUMBER_BYTES_RE = re.compile(rb"^([0-9]+),", re.MULTILINE)
_DIGEST_BATCH = 20_000

HolderOf = Callable[[int], str]
HolderTicketCount = Callable[[str], int]


# ---------------------------------------------------------------------------------------------
# Data


@dataclass(frozen=True)
class Tier:
    """A prize tier: `count` slots of `amount` CNY. Tiers are used in ascending `rank`."""

    rank: int
    name: str
    amount: Decimal | str
    count: int

    def __post_init__(self):
        _require_int(self.rank, "tier rank", minimum=1)
        _require_int(self.count, "tier count", minimum=0)
        if not isinstance(self.name, str) or not self.name:
            raise ValueError("tier name must be a non-empty string")
        amount_str(self.amount)  # validates

    def as_dict(self) -> dict:
        return {
            "rank": self.rank,
            "name": self.name,
            "amount": amount_str(self.amount),
            "count": self.count,
        }


@dataclass(frozen=True)
class Winner:
    """Slot `slot` of tier `rank` won by `ticket_no`, produced by stream counter `counter`."""

    rank: int
    slot: int
    ticket_no: int
    counter: int

    def as_dict(self) -> dict:
        return {
            "rank": self.rank,
            "slot": self.slot,
            "ticket_no": self.ticket_no,
            "counter": self.counter,
        }


@dataclass(frozen=True)
class Substitute:
    """`ticket_no` (stream counter `counter`) takes slot {rank, slot} of `substitute_for`."""

    rank: int
    slot: int
    ticket_no: int
    counter: int
    substitute_for: int

    def as_dict(self) -> dict:
        return {
            "rank": self.rank,
            "slot": self.slot,
            "ticket_no": self.ticket_no,
            "counter": self.counter,
            "substitute_for": self.substitute_for,
        }


@dataclass(frozen=True)
class Disqualification:
    """A winning (or substituted) ticket taken out of the draw, with a machine-readable reason."""

    ticket_no: int
    reason: str

    def as_dict(self) -> dict:
        return {"ticket_no": self.ticket_no, "reason": self.reason}


@dataclass(frozen=True)
class SubstitutionResult:
    """Outcome of processing new disqualifications (§6).

    `substitutes`: one per disqualification that found a substitute, in processing order.
    `unfilled`: disqualified ticket numbers whose slot stays empty (no ticket left).
    `next_counter`: where the stream continues for the next disqualification.
    """

    substitutes: list[Substitute]
    unfilled: list[int]
    next_counter: int


def _require_int(value, what: str, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{what} must be an integer >= {minimum}, got {value!r}")


def amount_str(amount: Decimal | str | int) -> str:
    """CNY amount as the bundle writes it: digits, a point and exactly two decimals."""
    if isinstance(amount, float | bool):
        raise ValueError("amounts must be Decimal, int or str, never float")
    try:
        value = Decimal(amount)
    except (InvalidOperation, TypeError, ValueError):
        raise ValueError(f"not an amount: {amount!r}") from None
    if not value.is_finite() or value < 0:
        raise ValueError(f"not an amount: {amount!r}")
    quantized = value.quantize(Decimal("0.01"))
    if quantized != value:
        raise ValueError(f"amount has more than two decimals: {amount!r}")
    return f"{quantized:f}"


# ---------------------------------------------------------------------------------------------
# §2 Ticket list


def _check_draw_id(draw_id: str) -> None:
    if (
        not isinstance(draw_id, str)
        or not draw_id
        or not draw_id.isascii()
        or not draw_id.isprintable()
        or "|" in draw_id
    ):
        raise ValueError(f"draw_id must be printable ASCII without '|': {draw_id!r}")


def _ref(draw_id: str, value: str) -> str:
    _check_draw_id(draw_id)
    if not isinstance(value, str) or not value:
        raise ValueError("reference source must be a non-empty string")
    return hashlib.sha256(f"{draw_id}|{value}".encode()).hexdigest()[:16]


def entry_ref(draw_id: str, invoice_number: str) -> str:
    """§2: first 16 hex of sha256("draw_id|invoice_number"); the invoice number stays private."""
    return _ref(draw_id, invoice_number)


def holder_ref(draw_id: str, holder_public_id: str) -> str:
    """§2: first 16 hex of sha256("draw_id|holder_public_id"); never a name, phone or ID."""
    return _ref(draw_id, holder_public_id)


def ticket_line(ticket_no: int, entry_ref: str, holder_ref: str) -> str:
    """§2: the line of ticket `ticket_no`, newline included."""
    _require_int(ticket_no, "ticket_no", minimum=1)
    for name, ref in (("entry_ref", entry_ref), ("holder_ref", holder_ref)):
        if not isinstance(ref, str) or not _REF_RE.fullmatch(ref):
            raise ValueError(f"{name} must be 16 lowercase hex characters, got {ref!r}")
    return f"{ticket_no},{entry_ref},{holder_ref}\n"


class TicketsDigest:
    """sha256 of the tickets file, fed in ticket order without ever holding the file.

    Invariant: after tickets 1..k were added, `count == k` and exactly the §2 lines of tickets
    1..k, well formed and numbered 1..k in order, were hashed (and written to `sink`, if given:
    a binary file that thereby receives the tickets file, e.g. for `draw_export`). Anything
    else raises ValueError. Three ways to feed it, freely mixed:

    - `add(ticket_no, entry_ref, holder_ref)`: one row;
    - `add_many(rows)`: rows in batches (about 3x faster than `add` per row);
    - `add_lines(data)`: raw file text in chunks cut anywhere, e.g. straight from PostgreSQL's
      `COPY (SELECT ticket_no || ',' || entry_ref || ',' || holder_ref ...) TO STDOUT`
      (fastest).

    `hexdigest()` may be called at any time between complete lines; it does not end the stream.
    """

    def __init__(self, sink: BinaryIO | None = None) -> None:
        self._sha = hashlib.sha256()
        self._sink = sink
        self._pending: list[str] = []
        self._partial = b""
        self.count = 0  # tickets hashed or pending, all checked in order

    def add(self, ticket_no: int, entry_ref: str, holder_ref: str) -> None:
        """Add ticket `ticket_no` (must be `count + 1`)."""
        if ticket_no != self.count + 1 or isinstance(ticket_no, bool):
            raise ValueError(f"ticket {ticket_no!r} out of order: expected {self.count + 1}")
        self._check_no_partial()
        self._pending.append(f"{ticket_no},{entry_ref},{holder_ref}\n")
        self.count = ticket_no
        if len(self._pending) >= _DIGEST_BATCH:
            self._flush()

    def add_many(self, rows: Iterable[tuple[int, str, str]]) -> None:
        """Add (ticket_no, entry_ref, holder_ref) rows in ticket order."""
        self._flush()
        self._check_no_partial()
        iterator = iter(rows)
        while batch := list(islice(iterator, _DIGEST_BATCH)):
            first = self.count + 1
            numbers = [row[0] for row in batch]
            if numbers != list(range(first, first + len(batch))):
                for expected, row in enumerate(batch, start=first):
                    if row[0] != expected:
                        raise ValueError(f"ticket {row[0]!r} out of order: expected {expected}")
            self._hash_text("".join([f"{a},{b},{c}\n" for a, b, c in batch]))
            self.count += len(batch)

    def add_lines(self, data: bytes | str) -> None:
        """Add raw tickets-file text; a chunk may end in the middle of a line."""
        self._flush()
        if isinstance(data, str):
            data = data.encode("ascii")
        data = self._partial + data if self._partial else data
        end = data.rfind(b"\n") + 1
        self._partial = data[end:]
        if not end:
            return
        complete = data[:end]
        if not _LINES_BYTES_RE.fullmatch(complete):
            for line in complete.splitlines(keepends=True):
                if not _LINES_BYTES_RE.fullmatch(line):
                    raise ValueError(f"malformed ticket line: {line!r}")
        numbers = _NUMBER_BYTES_RE.findall(complete)
        first = self.count + 1
        expected = [b"%d" % n for n in range(first, first + len(numbers))]
        if numbers != expected:
            for want, got in zip(expected, numbers, strict=True):
                if got != want:
                    raise ValueError(
                        f"ticket {got.decode()} out of order: expected {want.decode()}"
                    )
        self._sha.update(complete)
        if self._sink is not None:
            self._sink.write(complete)
        self.count += len(numbers)

    def _check_no_partial(self) -> None:
        if self._partial:
            raise ValueError(f"incomplete ticket line: {self._partial[:80]!r}")

    def _flush(self) -> None:
        if self._pending:
            batch = "".join(self._pending)
            self._pending.clear()
            self._hash_text(batch)

    def _hash_text(self, batch: str) -> None:
        if not _LINES_RE.fullmatch(batch):
            for line in batch.splitlines(keepends=True):
                if not _LINES_RE.fullmatch(line):
                    raise ValueError(f"malformed ticket line: {line!r}")
        data = batch.encode("ascii")
        self._sha.update(data)
        if self._sink is not None:
            self._sink.write(data)

    def hexdigest(self) -> str:
        self._flush()
        self._check_no_partial()
        return self._sha.hexdigest()


# ---------------------------------------------------------------------------------------------
# §1, §3 Commitment and draw key


def seed_commitment(server_seed: bytes) -> str:
    """§1: sha256(server_seed) as 64 lowercase hex; published before the entry window closes."""
    _check_seed(server_seed)
    return hashlib.sha256(server_seed).hexdigest()


def _check_seed(server_seed: bytes) -> None:
    if not isinstance(server_seed, bytes) or len(server_seed) != SEED_BYTES:
        raise ValueError(f"server_seed must be {SEED_BYTES} raw bytes")


def draw_key(server_seed: bytes, tickets_digest_hex: str, public_randomness: str) -> bytes:
    """§3: sha256(server_seed + bytes.fromhex(tickets_digest) + public_randomness UTF-8)."""
    _check_seed(server_seed)
    if not isinstance(tickets_digest_hex, str) or not _HEX64_RE.fullmatch(tickets_digest_hex):
        raise ValueError("tickets_digest must be 64 lowercase hex characters")
    if not isinstance(public_randomness, str):
        raise ValueError("public_randomness must be a string")
    return hashlib.sha256(
        server_seed + bytes.fromhex(tickets_digest_hex) + public_randomness.encode("utf-8")
    ).digest()


# ---------------------------------------------------------------------------------------------
# §4 Random ticket stream


def ticket_from_u(u: int, n: int) -> int | None:
    """§4 for one 64-bit value: the ticket `u % n + 1`, or None when `u >= bound` (rejected).

    `bound = 2**64 - 2**64 % n` is the largest multiple of n not above 2**64, so every ticket
    1..n is the image of exactly bound / n accepted values: no modulo bias.
    """
    if not 0 <= u < _TWO_64:
        raise ValueError("u must be a 64-bit unsigned integer")
    _require_int(n, "ticket count", minimum=1)
    bound = _TWO_64 - (_TWO_64 % n)
    if u >= bound:
        return None
    return u % n + 1


def ticket_for_counter(key: bytes, n: int, counter: int) -> int | None:
    """§4 for counter `counter`: the ticket it produces, or None when rejected."""
    block = hmac.digest(key, str(counter).encode("ascii"), "sha256")
    return ticket_from_u(int.from_bytes(block[:8], "big"), n)


class TicketStream:
    """Accepted tickets of §4 as (counter, ticket_no), counters ascending from `start`.

    Rejected counters are consumed silently; `next_counter` is always the counter the next
    call will examine first. The stream is infinite for n >= 1.
    """

    def __init__(self, key: bytes, n: int, start: int = 0):
        if not isinstance(key, bytes) or len(key) != 32:
            raise ValueError("draw_key must be 32 bytes")
        _require_int(n, "ticket count", minimum=1)
        _require_int(start, "start counter", minimum=0)
        self.key = key
        self.n = n
        self.next_counter = start

    def __iter__(self) -> TicketStream:
        return self

    def __next__(self) -> tuple[int, int]:
        while True:
            counter = self.next_counter
            self.next_counter = counter + 1
            ticket = ticket_for_counter(self.key, self.n, counter)
            if ticket is not None:
                return counter, ticket


# ---------------------------------------------------------------------------------------------
# §5, §6 Selection and substitutes


class DrawState:
    """The state §5 and §6 act on: who holds which slot, and where the stream continues.

    Invariants (checked by the tests against a brute-force reading of the spec):

    - `ever_won` holds every ticket that took a slot (winner or substitute); disqualified
      tickets stay in it, so they can never win again.
    - `holding[ticket] = (rank, slot)` for tickets currently holding a slot; a holder's
      `active[holder]` equals the number of tickets it has in `holding` and never exceeds L.
    - `next_counter` is one past the counter of the last ticket that took a slot (0 initially).
    - `holder_of` is called only for tickets the stream produced (cached: once per ticket);
      `holder_ticket_count` only for holders that hold L slots (cached: once per holder).
    """

    def __init__(
        self,
        *,
        draw_key: bytes,
        ticket_count: int,
        per_holder_limit: int,
        holder_of: HolderOf,
        holder_ticket_count: HolderTicketCount,
    ):
        _require_int(ticket_count, "ticket_count", minimum=0)
        _require_int(per_holder_limit, "per_holder_limit", minimum=1)
        if not isinstance(draw_key, bytes) or len(draw_key) != 32:
            raise ValueError("draw_key must be 32 bytes")
        self.draw_key = draw_key
        self.ticket_count = ticket_count
        self.limit = per_holder_limit
        self._holder_of = holder_of
        self._holder_ticket_count = holder_ticket_count
        self.next_counter = 0
        self.ever_won: set[int] = set()
        self.disqualified: set[int] = set()
        self.holding: dict[int, tuple[int, int]] = {}
        self.active: Counter[str] = Counter()
        self._ever_won_by_holder: Counter[str] = Counter()
        self._holders: dict[int, str] = {}
        self._holder_totals: dict[str, int] = {}

    # -- lookups

    def holder(self, ticket_no: int) -> str:
        holder = self._holders.get(ticket_no)
        if holder is None:
            if not 1 <= ticket_no <= self.ticket_count:
                raise ValueError(f"ticket {ticket_no} is not in 1..{self.ticket_count}")
            holder = self._holder_of(ticket_no)
            if not isinstance(holder, str) or not _REF_RE.fullmatch(holder):
                raise ValueError(f"holder_of({ticket_no}) returned {holder!r}")
            self._holders[ticket_no] = holder
        return holder

    def _tickets_of(self, holder: str) -> int:
        total = self._holder_totals.get(holder)
        if total is None:
            total = self._holder_ticket_count(holder)
            _require_int(total, f"holder_ticket_count({holder})", minimum=1)
            self._holder_totals[holder] = total
        return total

    def is_assignable(self, ticket_no: int) -> bool:
        """Never held a slot, and its holder holds fewer than L slots."""
        return ticket_no not in self.ever_won and self.active[self.holder(ticket_no)] < self.limit

    def assignable_count(self) -> int:
        """Exact number of assignable tickets (see the module docstring for the formula)."""
        blocked = 0
        for holder, slots in self.active.items():
            if slots >= self.limit:
                tickets = self._tickets_of(holder)
                spent = self._ever_won_by_holder[holder]
                if tickets < spent:
                    raise ValueError(f"holder_ticket_count({holder}) = {tickets} < {spent} won")
                blocked += tickets - spent
        return self.ticket_count - len(self.ever_won) - blocked

    # -- transitions

    def _next_assignable(self) -> tuple[int, int] | None:
        """(counter, ticket) of the next assignable ticket of the stream, or None if none is
        left. Reads the stream from `next_counter` but does not move it (`_take` does)."""
        if len(self.ever_won) >= self.ticket_count:
            return None
        stream = TicketStream(self.draw_key, self.ticket_count, start=self.next_counter)
        for skipped, (counter, ticket) in enumerate(stream, start=1):
            if self.is_assignable(ticket):
                return counter, ticket
            if skipped == SKIPS_BEFORE_CHECK and self.assignable_count() == 0:
                return None
        raise AssertionError("unreachable: the stream is infinite")  # pragma: no cover

    def _take(self, ticket_no: int, rank: int, slot: int, counter: int) -> None:
        if not self.is_assignable(ticket_no):
            raise ValueError(f"ticket {ticket_no} cannot take slot {rank}/{slot}")
        if counter < self.next_counter:
            raise ValueError(f"counter {counter} of ticket {ticket_no} goes backwards")
        holder = self.holder(ticket_no)
        self.ever_won.add(ticket_no)
        self._ever_won_by_holder[holder] += 1
        self.active[holder] += 1
        self.holding[ticket_no] = (rank, slot)
        self.next_counter = counter + 1

    def _release(self, ticket_no: int) -> tuple[int, int]:
        if ticket_no not in self.holding:
            raise ValueError(
                f"disqualified ticket {ticket_no} does not hold a slot "
                "(not a winner, or already disqualified)"
            )
        rank_slot = self.holding.pop(ticket_no)
        self.disqualified.add(ticket_no)
        self.active[self.holder(ticket_no)] -= 1
        return rank_slot

    def fill(self, tiers: Sequence[Tier]) -> list[Winner]:
        """§5: fill every slot of every tier in rank order; stop when no ticket is left."""
        _check_tiers(tiers)
        winners: list[Winner] = []
        for tier in tiers:
            for slot in range(1, tier.count + 1):
                found = self._next_assignable()
                if found is None:
                    return winners
                counter, ticket = found
                self._take(ticket, tier.rank, slot, counter)
                winners.append(Winner(tier.rank, slot, ticket, counter))
        return winners

    def disqualify(self, ticket_no: int) -> Substitute | None:
        """§6 for one disqualification: free the slot, then give it to the next assignable
        ticket of the stream. None: no ticket is left, the slot stays unfilled."""
        rank, slot = self._release(ticket_no)
        found = self._next_assignable()
        if found is None:
            return None
        counter, ticket = found
        self._take(ticket, rank, slot, counter)
        return Substitute(rank, slot, ticket, counter, substitute_for=ticket_no)

    def replay(
        self,
        winners: Sequence[Winner],
        previously_disqualified: Sequence[int],
        substitutes: Sequence[Substitute],
    ) -> None:
        """Rebuild the state from recorded results (no stream is read; inputs are checked)."""
        if self.ever_won:
            raise ValueError("replay needs a fresh state")
        for winner in winners:
            self._take(winner.ticket_no, winner.rank, winner.slot, winner.counter)
        by_disqualified = {s.substitute_for: s for s in substitutes}
        if len(by_disqualified) != len(substitutes):
            raise ValueError("two substitutes for the same disqualified ticket")
        expected_order = []
        for ticket_no in previously_disqualified:
            rank, slot = self._release(ticket_no)
            sub = by_disqualified.pop(ticket_no, None)
            if sub is not None:
                if (sub.rank, sub.slot) != (rank, slot):
                    raise ValueError(f"substitute {sub} is not in the slot of {ticket_no}")
                self._take(sub.ticket_no, rank, slot, sub.counter)
                expected_order.append(sub)
        if by_disqualified:
            raise ValueError(f"substitutes without a disqualification: {by_disqualified}")
        if list(substitutes) != expected_order:
            raise ValueError("substitutes are not in the order of the disqualifications")


def _check_tiers(tiers: Sequence[Tier]) -> None:
    ranks = [tier.rank for tier in tiers]
    if any(b <= a for a, b in pairwise(ranks)):
        raise ValueError(f"tiers must have strictly ascending ranks, got {ranks}")


def select_winners(
    *,
    draw_key: bytes,
    ticket_count: int,
    tiers: Sequence[Tier],
    per_holder_limit: int,
    holder_of: HolderOf,
    holder_ticket_count: HolderTicketCount,
) -> list[Winner]:
    """§5: the winners, slot by slot in rank order (unfilled slots are simply absent).

    `holder_of(ticket_no)` returns the ticket's holder_ref (16 hex); it is called only for
    tickets the stream produces, so the caller can look them up by ticket number instead of
    loading the ticket list. `holder_ticket_count(holder_ref)` returns how many tickets of the
    draw that holder has; it is called only for holders that hold L slots, and only to decide
    whether any ticket is left (see the module docstring).
    """
    state = DrawState(
        draw_key=draw_key,
        ticket_count=ticket_count,
        per_holder_limit=per_holder_limit,
        holder_of=holder_of,
        holder_ticket_count=holder_ticket_count,
    )
    return state.fill(tiers)


def _as_disqualification(item) -> Disqualification:
    if isinstance(item, Disqualification):
        return item
    ticket_no, reason = item
    return Disqualification(ticket_no, reason)


def substitute(
    *,
    draw_key: bytes,
    ticket_count: int,
    winners: Sequence[Winner],
    disqualified: Sequence[Disqualification | tuple[int, str]],
    substitutes_so_far: Sequence[Substitute] = (),
    previously_disqualified: Sequence[int | Disqualification | tuple[int, str]] = (),
    per_holder_limit: int,
    holder_of: HolderOf,
    holder_ticket_count: HolderTicketCount,
    next_counter: int | None = None,
) -> SubstitutionResult:
    """§6, incrementally: process the new `disqualified` entries, in order.

    The recorded past is passed back in: `winners` (§5 result), `previously_disqualified`
    (every earlier disqualification, in the order processed) and `substitutes_so_far` (what
    those produced). The state is rebuilt from them and the stream continues from one past
    the last counter used by a winner or substitute. `next_counter`, if given, must equal that
    value (a guard against feeding an incomplete past). Call it again with the grown past
    whenever another disqualification arrives during the notice period; the results are the
    same as processing all disqualifications at once.
    """
    state = DrawState(
        draw_key=draw_key,
        ticket_count=ticket_count,
        per_holder_limit=per_holder_limit,
        holder_of=holder_of,
        holder_ticket_count=holder_ticket_count,
    )
    earlier = [
        item if isinstance(item, int) else _as_disqualification(item).ticket_no
        for item in previously_disqualified
    ]
    state.replay(winners, earlier, substitutes_so_far)
    if next_counter is not None and next_counter != state.next_counter:
        raise ValueError(
            f"next_counter {next_counter} does not follow the recorded results "
            f"(expected {state.next_counter})"
        )
    found: list[Substitute] = []
    unfilled: list[int] = []
    for item in disqualified:
        disq = _as_disqualification(item)
        sub = state.disqualify(disq.ticket_no)
        if sub is None:
            unfilled.append(disq.ticket_no)
        else:
            found.append(sub)
    return SubstitutionResult(found, unfilled, state.next_counter)


# ---------------------------------------------------------------------------------------------
# §7 Publication bundle


def build_bundle(
    *,
    draw_id: str,
    server_seed: bytes,
    public_randomness_source: str,
    public_randomness: str,
    tickets_digest: str,
    ticket_count: int,
    per_holder_limit: int,
    tiers: Sequence[Tier],
    winners: Sequence[Winner],
    disqualified: Sequence[Disqualification | tuple[int, str]] = (),
    substitutes: Sequence[Substitute] = (),
) -> dict:
    """§7: the publication bundle, keys in the spec's order, amounts as "0.00" strings."""
    _check_draw_id(draw_id)
    _require_int(ticket_count, "ticket_count", minimum=0)
    _require_int(per_holder_limit, "per_holder_limit", minimum=1)
    _check_tiers(tiers)
    if not _HEX64_RE.fullmatch(tickets_digest):
        raise ValueError("tickets_digest must be 64 lowercase hex characters")
    return {
        "spec": SPEC_VERSION,
        "draw_id": draw_id,
        "seed_commitment": seed_commitment(server_seed),
        "server_seed": server_seed.hex(),
        "public_randomness_source": public_randomness_source,
        "public_randomness": public_randomness,
        "tickets_digest": tickets_digest,
        "ticket_count": ticket_count,
        "per_holder_limit": per_holder_limit,
        "tiers": [tier.as_dict() for tier in tiers],
        "winners": [winner.as_dict() for winner in winners],
        "disqualified": [_as_disqualification(d).as_dict() for d in disqualified],
        "substitutes": [sub.as_dict() for sub in substitutes],
    }


def bundle_json(bundle: dict) -> str:
    """The bundle as published: UTF-8 JSON (Chinese tier names unescaped), 2-space indent."""
    return json.dumps(bundle, ensure_ascii=False, indent=2) + "\n"
