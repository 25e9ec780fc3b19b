"""The periodic draw engine (apps/draws/engine.py) against ../shared/DRAW_SPEC.md.

`naive_draw` below is a deliberately naive, brute-force reading of the spec, written straight
from its text and sharing no code with the engine or the verifier. It produced the literal
reference vectors in vectors.py (which were then checked by hand); the tests hold the naive
reading, the engine and (in test_verifier.py) the verifier to those literals and to each other.
No database.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import time
from collections import Counter
from decimal import Decimal

import pytest

from apps.draws import engine
from apps.draws.engine import (
    Disqualification,
    Substitute,
    TicketsDigest,
    TicketStream,
    Tier,
    Winner,
    build_bundle,
    bundle_json,
    draw_key,
    entry_ref,
    holder_ref,
    seed_commitment,
    select_winners,
    substitute,
    ticket_for_counter,
    ticket_from_u,
    ticket_line,
)
from tests.draws import vectors as v

# ---------------------------------------------------------------------------------------------
# The naive reading of the spec


def naive_draw(seed, tickets, public_randomness, tiers, limit, disqualified):
    """Sections 2-6 read literally, brute force over the whole ticket list, no shortcuts.

    Returns (tickets_digest, draw_key hex, winners, substitutes). Before each slot it asks
    whether any ticket at all could still take a slot (so no counter is read for a slot that
    stays unfilled), and the stream always continues where it stopped.
    """
    tickets_file = "".join(f"{no},{e},{h}\n" for no, e, h in tickets).encode("utf-8")
    digest = hashlib.sha256(tickets_file).hexdigest()
    key = hashlib.sha256(seed + bytes.fromhex(digest) + public_randomness.encode("utf-8")).digest()
    n = len(tickets)
    holder = {no: h for no, _, h in tickets}

    def stream_ticket(c):
        block = hmac.new(key, str(c).encode("ascii"), hashlib.sha256).digest()
        u = int.from_bytes(block[:8], "big")
        bound = 2**64 - (2**64 % n)
        return None if u >= bound else u % n + 1

    ever_won = []  # every ticket that took a slot, in order
    holding = {}  # ticket -> (rank, slot), slots held now

    def can_take(t):
        held = sum(1 for x in holding if holder[x] == holder[t])
        return t not in ever_won and held < limit

    def any_left():
        return any(can_take(t) for t in range(1, n + 1))

    counter = 0

    def next_ticket():
        nonlocal counter
        while True:
            c = counter
            counter += 1
            t = stream_ticket(c)
            if t is not None and can_take(t):
                return c, t

    winners = []
    stopped = False
    for rank, _name, _amount, count in tiers:
        for slot in range(1, count + 1):
            if stopped or not any_left():
                stopped = True
                break
            c, t = next_ticket()
            ever_won.append(t)
            holding[t] = (rank, slot)
            winners.append({"rank": rank, "slot": slot, "ticket_no": t, "counter": c})
    substitutes = []
    for d, _reason in disqualified:
        rank, slot = holding.pop(d)
        if not any_left():
            continue
        c, t = next_ticket()
        ever_won.append(t)
        holding[t] = (rank, slot)
        substitutes.append(
            {"rank": rank, "slot": slot, "ticket_no": t, "counter": c, "substitute_for": d}
        )
    return digest, key.hex(), winners, substitutes


# ---------------------------------------------------------------------------------------------
# Helpers


def engine_tiers(tiers):
    return [Tier(rank, name, amount, count) for rank, name, amount, count in tiers]


def lookups(tickets):
    """holder_of and holder_ticket_count over an in-memory ticket list, counting calls."""
    holder = {no: h for no, _, h in tickets}
    per_holder = Counter(holder.values())
    calls = {"holder_of": [], "holder_ticket_count": []}

    def holder_of(ticket_no):
        calls["holder_of"].append(ticket_no)
        return holder[ticket_no]

    def holder_ticket_count(h):
        calls["holder_ticket_count"].append(h)
        return per_holder[h]

    return holder_of, holder_ticket_count, calls


def run_engine(seed, tickets, public_randomness, tiers, limit, disqualified, *, one_by_one=True):
    """The engine end to end; disqualifications processed one call at a time (as they arrive
    during the notice period) or all in one call."""
    digest = TicketsDigest()
    for row in tickets:
        digest.add(*row)
    digest_hex = digest.hexdigest()
    key = draw_key(seed, digest_hex, public_randomness)
    holder_of, holder_ticket_count, _ = lookups(tickets)
    common = {
        "draw_key": key,
        "ticket_count": len(tickets),
        "per_holder_limit": limit,
        "holder_of": holder_of,
        "holder_ticket_count": holder_ticket_count,
    }
    winners = select_winners(tiers=engine_tiers(tiers), **common)
    subs: list[Substitute] = []
    if one_by_one:
        done: list[tuple[int, str]] = []
        for item in disqualified:
            result = substitute(
                winners=winners,
                previously_disqualified=done,
                substitutes_so_far=subs,
                disqualified=[item],
                next_counter=max((x.counter + 1 for x in [*winners, *subs]), default=0),
                **common,
            )
            subs.extend(result.substitutes)
            done.append(item)
    else:
        subs = substitute(winners=winners, disqualified=disqualified, **common).substitutes
    return (
        digest_hex,
        key.hex(),
        [w.as_dict() for w in winners],
        [s.as_dict() for s in subs],
    )


def random_case(rng: random.Random):
    """A random draw: tickets, holders (skewed), tiers, L; disqualifications are chosen later
    among tickets that hold a slot."""
    n = rng.choice([1, 2, 3, rng.randint(4, 40), rng.randint(4, 40), rng.randint(41, 500)])
    holders = rng.randint(1, max(1, n if rng.random() < 0.3 else max(1, n // 3)))
    weights = [rng.random() ** 3 + 0.01 for _ in range(holders)]
    owners = rng.choices(range(holders), weights=weights, k=n)
    draw_id = f"ZZ-2026-{rng.randint(1, 12):02d}-R"
    tickets = [
        (no, entry_ref(draw_id, f"inv-{no}"), holder_ref(draw_id, f"holder-{k}"))
        for no, k in enumerate(owners, start=1)
    ]
    tiers = [
        (rank, f"tier {rank}", f"{rng.randint(1, 900)}.00", rng.randint(0, 6))
        for rank in sorted(rng.sample(range(1, 9), rng.randint(1, 4)))
    ]
    limit = rng.choice([1, 1, 2, 3])
    seed = rng.randbytes(32)
    randomness = f"beacon round {rng.randint(1, 10**9)}"
    return seed, tickets, randomness, tiers, limit


def pick_disqualifications(rng, seed, tickets, randomness, tiers, limit, how_many):
    """Disqualify tickets that hold a slot at that moment, growing the list one at a time."""
    chosen: list[tuple[int, str]] = []
    for _ in range(how_many):
        _, _, winners, subs = naive_draw(seed, tickets, randomness, tiers, limit, chosen)
        holding = {w["ticket_no"] for w in winners} | {s["ticket_no"] for s in subs}
        holding -= {t for t, _ in chosen}
        if not holding:
            break
        chosen.append((rng.choice(sorted(holding)), rng.choice(["red_flushed", "kyc"])))
    return chosen


# ---------------------------------------------------------------------------------------------
# Reference vector


def test_vector_inputs_match_engine_refs():
    for no, k in enumerate(v.TICKET_HOLDERS, start=1):
        assert v.TICKETS[no - 1] == (
            no,
            entry_ref(v.DRAW_ID, v.invoice_number(no)),
            holder_ref(v.DRAW_ID, v.holder_public_id(k)),
        )
    assert v.TICKETS[0] == (1, "a370a7ae571b9016", "407c5f0c8e75618d")
    assert ticket_line(*v.TICKETS[0]) == "1,a370a7ae571b9016,407c5f0c8e75618d\n"
    assert "".join(ticket_line(*t) for t in v.TICKETS).encode() == v.TICKETS_FILE


def test_reference_commitment_digest_key_and_stream():
    assert seed_commitment(v.SERVER_SEED) == v.SEED_COMMITMENT
    assert hashlib.sha256(v.TICKETS_FILE).hexdigest() == v.TICKETS_DIGEST
    digest = TicketsDigest()
    digest.add_many(v.TICKETS)
    assert (digest.hexdigest(), digest.count) == (v.TICKETS_DIGEST, 25)
    key = draw_key(v.SERVER_SEED, v.TICKETS_DIGEST, v.PUBLIC_RANDOMNESS)
    assert key.hex() == v.DRAW_KEY
    stream = TicketStream(key, 25)
    assert [next(stream) for _ in range(40)] == list(enumerate(v.STREAM_PREFIX))
    assert stream.next_counter == 40


@pytest.mark.parametrize("limit", [1, 2])
def test_naive_reading_gives_the_literal_vector(limit):
    winners, disqualified, substitutes = v.VECTORS[limit]
    got = naive_draw(v.SERVER_SEED, v.TICKETS, v.PUBLIC_RANDOMNESS, v.TIERS, limit, disqualified)
    assert got == (v.TICKETS_DIGEST, v.DRAW_KEY, winners, substitutes)


@pytest.mark.parametrize("one_by_one", [True, False])
@pytest.mark.parametrize("limit", [1, 2])
def test_engine_gives_the_literal_vector(limit, one_by_one):
    winners, disqualified, substitutes = v.VECTORS[limit]
    got = run_engine(
        v.SERVER_SEED,
        v.TICKETS,
        v.PUBLIC_RANDOMNESS,
        v.TIERS,
        limit,
        disqualified,
        one_by_one=one_by_one,
    )
    assert got == (v.TICKETS_DIGEST, v.DRAW_KEY, winners, substitutes)


def test_reference_vector_unfilled_slots_are_reported():
    key = bytes.fromhex(v.DRAW_KEY)
    holder_of, holder_ticket_count, calls = lookups(v.TICKETS)
    common = {
        "draw_key": key,
        "ticket_count": 25,
        "per_holder_limit": 1,
        "holder_of": holder_of,
        "holder_ticket_count": holder_ticket_count,
    }
    winners = select_winners(tiers=engine_tiers(v.TIERS), **common)
    assert len(winners) == 9  # nine holders, L = 1: rank 3 slot 5 stays unfilled
    # Lookups are cached: each ticket's holder is asked at most once per call.
    assert len(calls["holder_of"]) == len(set(calls["holder_of"]))
    calls["holder_of"].clear()
    result = substitute(winners=winners, disqualified=v.L1_DISQUALIFIED, **common)
    assert result.unfilled == v.L1_UNFILLED_AFTER_DISQUALIFICATION
    assert [s.as_dict() for s in result.substitutes] == v.L1_SUBSTITUTES
    assert result.next_counter == 40
    assert len(calls["holder_of"]) == len(set(calls["holder_of"]))


def test_reference_bundle():
    winners, disqualified, substitutes = v.VECTORS[2]
    bundle = build_bundle(
        draw_id=v.DRAW_ID,
        server_seed=v.SERVER_SEED,
        public_randomness_source=v.PUBLIC_RANDOMNESS_SOURCE,
        public_randomness=v.PUBLIC_RANDOMNESS,
        tickets_digest=v.TICKETS_DIGEST,
        ticket_count=25,
        per_holder_limit=2,
        tiers=engine_tiers(v.TIERS),
        winners=[Winner(**w) for w in winners],
        disqualified=[Disqualification(t, r) for t, r in disqualified],
        substitutes=[Substitute(**s) for s in substitutes],
    )
    assert list(bundle) == [
        "spec",
        "draw_id",
        "seed_commitment",
        "server_seed",
        "public_randomness_source",
        "public_randomness",
        "tickets_digest",
        "ticket_count",
        "per_holder_limit",
        "tiers",
        "winners",
        "disqualified",
        "substitutes",
    ]
    assert bundle["spec"] == "lotteryinvoice-draw/1"
    assert bundle["seed_commitment"] == v.SEED_COMMITMENT
    assert bundle["server_seed"] == bytes(range(32)).hex()
    assert bundle["tiers"][0] == {"rank": 1, "name": "一等奖", "amount": "800.00", "count": 2}
    assert list(bundle["tiers"][0]) == ["rank", "name", "amount", "count"]
    assert list(bundle["winners"][0]) == ["rank", "slot", "ticket_no", "counter"]
    assert bundle["winners"] == winners
    assert bundle["disqualified"][0] == {"ticket_no": 17, "reason": "red_flushed"}
    assert list(bundle["substitutes"][0]) == [
        "rank",
        "slot",
        "ticket_no",
        "counter",
        "substitute_for",
    ]
    assert bundle["substitutes"] == substitutes
    text = bundle_json(bundle)
    assert "一等奖" in text and text.endswith("}\n")
    assert json.loads(text) == bundle


# ---------------------------------------------------------------------------------------------
# Engine against the naive reading on random draws


def test_engine_agrees_with_naive_reading_on_random_draws():
    rng = random.Random(20260401)
    for _ in range(400):
        seed, tickets, randomness, tiers, limit = random_case(rng)
        disq = pick_disqualifications(
            rng, seed, tickets, randomness, tiers, limit, rng.randint(0, 4)
        )
        expected = naive_draw(seed, tickets, randomness, tiers, limit, disq)
        assert run_engine(seed, tickets, randomness, tiers, limit, disq) == expected
        assert run_engine(seed, tickets, randomness, tiers, limit, disq, one_by_one=False) == (
            expected
        )


# ---------------------------------------------------------------------------------------------
# "No ticket left" and lazy lookups


def _plain_draw(n, owners, slots, limit, disqualified=()):
    tickets = [(no, f"{no:016x}", f"{owners[no - 1]:016x}") for no in range(1, n + 1)]
    key = hashlib.sha256(b"fixed key %d" % n).digest()
    holder_of, holder_ticket_count, calls = lookups(tickets)
    tiers = [Tier(1, "x", "1.00", slots)]
    winners = select_winners(
        draw_key=key,
        ticket_count=n,
        tiers=tiers,
        per_holder_limit=limit,
        holder_of=holder_of,
        holder_ticket_count=holder_ticket_count,
    )
    return winners, calls


def test_more_slots_than_tickets_fills_every_ticket_once():
    winners, _ = _plain_draw(3, [1, 2, 3], slots=5, limit=1)
    assert sorted(w.ticket_no for w in winners) == [1, 2, 3]
    assert [w.slot for w in winners] == [1, 2, 3]


def test_single_holder_wins_at_most_l_slots_and_the_search_ends():
    started = time.monotonic()
    winners, calls = _plain_draw(2000, [7] * 2000, slots=50, limit=3)
    assert len(winners) == 3
    assert len({w.ticket_no for w in winners}) == 3
    assert calls["holder_ticket_count"] == [f"{7:016x}"]  # asked once, then remembered
    assert time.monotonic() - started < 2


def test_check_that_finds_a_ticket_left_lets_the_search_go_on():
    """Holder A has 1000 tickets, holder B one; L = 1, two slots. Once A won, only B's ticket is
    assignable: the search skips A's tickets, asks (exactly) whether any ticket is left, learns
    that one is, and goes on until the stream produces it."""
    owners = [1] * 1000 + [2]
    tickets = [(no, f"{no:016x}", f"{owners[no - 1]:016x}") for no in range(1, 1002)]
    winners, calls = _plain_draw(1001, owners, slots=2, limit=1)
    assert [w.ticket_no for w in winners][1] == 1001  # A won first (p = 1000/1001), then B
    assert winners[1].counter > winners[0].counter + engine.SKIPS_BEFORE_CHECK
    assert calls["holder_ticket_count"] == [f"{1:016x}"]
    key = hashlib.sha256(b"fixed key %d" % 1001).digest()
    naive_winners = _naive_with_key(key, tickets, [(1, "x", "1.00", 2)], 1)
    assert naive_winners == [w.as_dict() for w in winners]


def _naive_with_key(key, tickets, tiers, limit):
    """naive_draw's selection for a given key (the key does not come from a seed here)."""
    holder = {no: h for no, _, h in tickets}
    n = len(tickets)
    winners, counter = [], 0
    for rank, _name, _amount, count in tiers:
        for slot in range(1, count + 1):
            won = [w["ticket_no"] for w in winners]

            def can_take(t, won=won):
                held = sum(1 for x in won if holder[x] == holder[t])
                return t not in won and held < limit

            if not any(can_take(t) for t in range(1, n + 1)):
                return winners
            while True:
                block = hmac.new(key, str(counter).encode("ascii"), hashlib.sha256).digest()
                u = int.from_bytes(block[:8], "big")
                counter += 1
                if u < 2**64 - 2**64 % n and can_take(u % n + 1):
                    winners.append(
                        {"rank": rank, "slot": slot, "ticket_no": u % n + 1, "counter": counter - 1}
                    )
                    break
    return winners


@pytest.mark.parametrize("threshold", [1, 2, 1000])
def test_when_the_check_runs_never_changes_a_result(monkeypatch, threshold):
    rng = random.Random(99)
    cases = []
    for _ in range(120):
        seed, tickets, randomness, tiers, limit = random_case(rng)
        disq = pick_disqualifications(rng, seed, tickets, randomness, tiers, limit, 3)
        cases.append((seed, tickets, randomness, tiers, limit, disq))
    default = [run_engine(*case) for case in cases]
    monkeypatch.setattr(engine, "SKIPS_BEFORE_CHECK", threshold)
    assert [run_engine(*case) for case in cases] == default


def test_no_tickets_no_winners():
    winners = select_winners(
        draw_key=bytes(32),
        ticket_count=0,
        tiers=[Tier(1, "x", "1.00", 3)],
        per_holder_limit=1,
        holder_of=lambda t: pytest.fail("no ticket to look up"),
        holder_ticket_count=lambda h: pytest.fail("no holder to count"),
    )
    assert winners == []


def test_holder_lookups_touch_only_stream_tickets():
    """10 slots among 1,000,000 tickets: a handful of lookups by ticket number, never a scan."""
    n = 1_000_000
    key = hashlib.sha256(b"lazy").digest()
    asked = []

    def holder_of(ticket_no):
        asked.append(ticket_no)
        return hashlib.sha256(b"%d" % (ticket_no % 1000)).hexdigest()[:16]

    winners = select_winners(
        draw_key=key,
        ticket_count=n,
        tiers=[Tier(1, "a", "800.00", 3), Tier(2, "b", "50.00", 7)],
        per_holder_limit=1,
        holder_of=holder_of,
        holder_ticket_count=lambda h: 1000,
    )
    assert len(winners) == 10
    produced = {ticket_for_counter(key, n, c) for c in range(winners[-1].counter + 1)}
    assert set(asked) <= produced
    assert len(asked) == len(set(asked)) <= 11


def test_substitute_can_leave_the_slot_unfilled_then_fill_a_later_one():
    # Holder A: tickets 1, 2; holder B: ticket 3. L = 1, three slots: two fill, one stays empty.
    owners = {1: "a" * 16, 2: "a" * 16, 3: "b" * 16}
    key = hashlib.sha256(b"three").digest()
    common = {
        "draw_key": key,
        "ticket_count": 3,
        "per_holder_limit": 1,
        "holder_of": owners.__getitem__,
        "holder_ticket_count": lambda h: Counter(owners.values())[h],
    }
    winners = select_winners(tiers=[Tier(1, "x", "1.00", 3)], **common)
    assert len(winners) == 2
    b_ticket = next(w.ticket_no for w in winners if owners[w.ticket_no] == "b" * 16)
    a_ticket = next(w.ticket_no for w in winners if owners[w.ticket_no] == "a" * 16)
    first = substitute(winners=winners, disqualified=[(b_ticket, "kyc")], **common)
    assert first.substitutes == [] and first.unfilled == [b_ticket]
    assert first.next_counter == winners[-1].counter + 1  # nothing was "used"
    second = substitute(
        winners=winners,
        previously_disqualified=[b_ticket],
        disqualified=[(a_ticket, "red_flushed")],
        next_counter=first.next_counter,
        **common,
    )
    (sub,) = second.substitutes
    other_a = ({1, 2} - {a_ticket}).pop()
    assert (sub.ticket_no, sub.substitute_for) == (other_a, a_ticket)
    assert sub.counter >= first.next_counter


def test_substitute_guards():
    key = bytes.fromhex(v.DRAW_KEY)
    holder_of, holder_ticket_count, _ = lookups(v.TICKETS)
    common = {
        "draw_key": key,
        "ticket_count": 25,
        "per_holder_limit": 2,
        "holder_of": holder_of,
        "holder_ticket_count": holder_ticket_count,
    }
    winners = [Winner(**w) for w in v.L2_WINNERS]
    with pytest.raises(ValueError, match="does not hold a slot"):
        substitute(winners=winners, disqualified=[(2, "x")], **common)  # never won
    with pytest.raises(ValueError, match="does not hold a slot"):
        substitute(winners=winners, disqualified=[(17, "x"), (17, "x")], **common)
    with pytest.raises(ValueError, match="next_counter"):
        substitute(winners=winners, disqualified=[(17, "x")], next_counter=3, **common)
    with pytest.raises(ValueError, match="without a disqualification"):
        substitute(
            winners=winners,
            substitutes_so_far=[Substitute(**v.L2_SUBSTITUTES[0])],
            disqualified=[(13, "x")],
            **common,
        )


def test_per_holder_limit_and_tiers_are_validated():
    with pytest.raises(ValueError, match="per_holder_limit"):
        _plain_draw(3, [1, 2, 3], slots=1, limit=0)
    with pytest.raises(ValueError, match="ascending"):
        select_winners(
            draw_key=bytes(32),
            ticket_count=3,
            tiers=[Tier(2, "b", "1.00", 1), Tier(1, "a", "2.00", 1)],
            per_holder_limit=1,
            holder_of=str,
            holder_ticket_count=len,
        )


# ---------------------------------------------------------------------------------------------
# Section 4: rejection sampling, no modulo bias


def test_bound_logic_rejects_the_top_of_the_range():
    n = 7  # 2**64 % 7 == 2: the two largest 64-bit values would favour tickets 2 and 3
    bound = 2**64 - 2
    assert 2**64 % n == 2 and bound % n == 0
    assert ticket_from_u(bound - 1, n) == (bound - 1) % n + 1 == 7
    assert ticket_from_u(bound, n) is None
    assert ticket_from_u(2**64 - 1, n) is None
    assert ticket_from_u(0, n) == 1
    # A power of two divides 2**64: nothing is ever rejected.
    assert ticket_from_u(2**64 - 1, 8) == 8
    with pytest.raises(ValueError):
        ticket_from_u(2**64, n)


def test_rejection_path_in_the_stream():
    """N = 2**63 + 1: bound = N, so about half of all counters are rejected and skipped."""
    n = 2**63 + 1
    key = hashlib.sha256(b"rejection").digest()
    raw = [ticket_for_counter(key, n, c) for c in range(200)]
    rejected = [c for c, t in enumerate(raw) if t is None]
    assert 60 < len(rejected) < 140
    stream = TicketStream(key, n)
    accepted = [next(stream) for _ in range(200 - len(rejected))]
    assert accepted == [(c, t) for c, t in enumerate(raw) if t is not None]
    assert all(1 <= t <= n for _, t in accepted)
    # The selection skips rejected counters too: the first winner carries the first accepted one.
    (winner,) = select_winners(
        draw_key=key,
        ticket_count=n,
        tiers=[Tier(1, "x", "1.00", 1)],
        per_holder_limit=1,
        holder_of=lambda t: hashlib.sha256(b"%d" % t).hexdigest()[:16],
        holder_ticket_count=lambda h: 1,
    )
    assert (winner.counter, winner.ticket_no) == accepted[0]
    if rejected and rejected[0] == 0:
        assert winner.counter > 0


def test_win_frequencies_pass_chi_square():
    """100,000 one-slot draws over N = 7 tickets, public randomness varying: uniform wins."""
    n, draws = 7, 100_000
    tickets = [(no, f"{no:016x}", f"{no:016x}") for no in range(1, n + 1)]
    digest = TicketsDigest()
    digest.add_many(tickets)
    digest_hex = digest.hexdigest()
    seed = bytes(range(32))
    tiers = [Tier(1, "x", "1.00", 1)]
    holders = {no: h for no, _, h in tickets}
    wins = Counter()
    for i in range(draws):
        key = draw_key(seed, digest_hex, f"round {i}")
        (winner,) = select_winners(
            draw_key=key,
            ticket_count=n,
            tiers=tiers,
            per_holder_limit=1,
            holder_of=holders.__getitem__,
            holder_ticket_count=lambda h: 1,
        )
        wins[winner.ticket_no] += 1
    expected = draws / n
    chi2 = sum((wins[t] - expected) ** 2 / expected for t in range(1, n + 1))
    # Critical value of the chi-square distribution, df = 6, p = 0.001.
    assert chi2 < 22.458, (chi2, sorted(wins.items()))
    assert set(wins) == set(range(1, n + 1))


# ---------------------------------------------------------------------------------------------
# Small parts


def test_tickets_digest_streams_in_batches(monkeypatch):
    monkeypatch.setattr(engine, "_DIGEST_BATCH", 7)
    rows = [(no, f"{no:016x}", f"{no % 5:016x}") for no in range(1, 101)]
    digest = TicketsDigest()
    digest.add_many(rows)
    middle = digest.hexdigest()  # may be read mid-stream without ending it
    expected = hashlib.sha256("".join(f"{a},{b},{c}\n" for a, b, c in rows).encode())
    assert middle == expected.hexdigest() and digest.count == 100
    digest.add(101, "0" * 16, "1" * 16)
    expected.update(b"101,0000000000000000,1111111111111111\n")
    assert digest.hexdigest() == expected.hexdigest()
    assert TicketsDigest().hexdigest() == hashlib.sha256(b"").hexdigest()


def test_tickets_digest_raw_lines_and_sink(tmp_path):
    rows = [(no, f"{no:016x}", f"{no % 3:016x}") for no in range(1, 60)]
    text = "".join(f"{a},{b},{c}\n" for a, b, c in rows).encode()
    expected = hashlib.sha256(text).hexdigest()
    for cut in (1, 5, 37, 38, 1000):
        digest = TicketsDigest()
        for i in range(0, len(text), cut):
            digest.add_lines(text[i : i + cut])
        assert (digest.hexdigest(), digest.count) == (expected, 59)
    # Mixed feeding, with the file written alongside.
    with open(tmp_path / "tickets.csv", "wb") as sink:
        digest = TicketsDigest(sink=sink)
        digest.add(*rows[0])
        digest.add_many(rows[1:20])
        digest.add_lines("".join(f"{a},{b},{c}\n" for a, b, c in rows[20:40]))
        for row in rows[40:]:
            digest.add(*row)
        assert digest.hexdigest() == expected
    assert (tmp_path / "tickets.csv").read_bytes() == text
    partial = TicketsDigest()
    partial.add_lines(text[:50])
    with pytest.raises(ValueError, match="incomplete"):
        partial.hexdigest()
    for bad in (b"2,0000000000000000,0000000000000000\n", b"1,00,00\n", b"01,%s,%s\n"):
        with pytest.raises(ValueError):
            TicketsDigest().add_lines(bad.replace(b"%s", b"0" * 16))
    with pytest.raises(ValueError, match="out of order"):
        TicketsDigest().add_many([(1, "0" * 16, "0" * 16), (3, "0" * 16, "0" * 16)])


def test_tickets_digest_refuses_disorder_and_bad_refs():
    digest = TicketsDigest()
    with pytest.raises(ValueError, match="out of order"):
        digest.add(2, "0" * 16, "0" * 16)
    digest.add(1, "0" * 16, "0" * 16)
    with pytest.raises(ValueError, match="out of order"):
        digest.add(1, "0" * 16, "0" * 16)
    digest.add(2, "A" * 16, "0" * 16)  # uppercase hex is not a ref
    with pytest.raises(ValueError, match="malformed"):
        digest.hexdigest()
    with pytest.raises(ValueError):
        ticket_line(1, "abc", "0" * 16)
    with pytest.raises(ValueError):
        ticket_line(0, "0" * 16, "0" * 16)


def test_refs_and_key_inputs_are_checked():
    assert (
        entry_ref("ZZ-2026-03-B", "044031900111")
        == (hashlib.sha256(b"ZZ-2026-03-B|044031900111").hexdigest()[:16])
    )
    for bad in ("", "Z|Z", "ZZ-2026-03-乙", "ZZ\n"):
        with pytest.raises(ValueError):
            holder_ref(bad, "x")
    with pytest.raises(ValueError):
        seed_commitment(b"short")
    with pytest.raises(ValueError):
        draw_key(bytes(32), "AB" * 32, "x")


def test_amounts():
    assert engine.amount_str("800") == "800.00"
    assert engine.amount_str(Decimal("0.5")) == "0.50"
    assert engine.amount_str(12) == "12.00"
    for bad in ("12.345", "-1.00", "abc", 1.5, "NaN"):
        with pytest.raises(ValueError):
            engine.amount_str(bad)
    with pytest.raises(ValueError):
        Tier(1, "x", "1.001", 1)
