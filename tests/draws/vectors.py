"""The reference vectors (spec section "Reference vector"): fixed inputs, expected outputs.

The expected outputs below are literals. They were produced by `naive_draw` in test_engine.py
(a deliberately naive, brute-force reading of the spec that shares no code with the engine or
the verifier) and checked by hand against `STREAM_PREFIX` (see the trace in the comments). Any
change to the engine or verifier that alters them makes the tests fail loudly: changing them
means a new spec version.
"""

from __future__ import annotations

import hashlib

DRAW_ID = "ZZ-2026-03-B"
SERVER_SEED = bytes(range(32))
PUBLIC_RANDOMNESS_SOURCE = "中国福利彩票 福彩3D 2026年4月1日开奖号码（第2026085期）"
PUBLIC_RANDOMNESS = "福彩3D 第2026085期: 4 7 1"
# (rank, name, amount, count)
TIERS = [
    (1, "一等奖", "800.00", 2),
    (2, "二等奖", "200.00", 3),
    (3, "三等奖", "50.00", 5),
]
# Holder (1..9) of tickets 1..25. Holder 1 has 6 tickets; holders 8 and 9 have one each.
TICKET_HOLDERS = [1, 2, 1, 3, 4, 1, 5, 2, 6, 1, 7, 3, 8, 1, 2, 9, 4, 1, 5, 3, 2, 6, 4, 7, 3]


def holder_public_id(k: int) -> str:
    """A canonical lowercase UUID4-shaped public id for holder k."""
    return f"{k:08x}-0000-4000-8000-{k:012x}"


def invoice_number(ticket_no: int) -> str:
    return f"26442000000{ticket_no:09d}"


def _ref(value: str) -> str:
    # Written out here (not imported from the engine) so the vector does not depend on it.
    return hashlib.sha256(f"{DRAW_ID}|{value}".encode()).hexdigest()[:16]


# (ticket_no, entry_ref, holder_ref), ticket order.
TICKETS = [
    (no, _ref(invoice_number(no)), _ref(holder_public_id(k)))
    for no, k in enumerate(TICKET_HOLDERS, start=1)
]
TICKETS_FILE = "".join(f"{no},{e},{h}\n" for no, e, h in TICKETS).encode("utf-8")


# ---------------------------------------------------------------------------------------------
# Expected outputs (literals; do not regenerate casually)

SEED_COMMITMENT = "630dcd2966c4336691125448bbb25b4ff412a49c732db2c8abc1b8581bd710dd"
TICKETS_DIGEST = "6b33fe72dc8ec658c823a619514b14da04af174547a602f8c1aec4eeb212f86a"
DRAW_KEY = "ed10cabe969c2f8a50e74c25bac69cf39fd53c3f38b59262da108f5410bedcdd"
# Ticket produced by counters 0..39 (none rejected: for N = 25, bound = 2**64 - 16).
STREAM_PREFIX = [
    17, 13, 21, 11, 6, 6, 23, 13, 20, 16, 1, 23, 20, 19, 5, 13, 23, 8, 23, 1,
    4, 20, 4, 10, 7, 16, 2, 17, 6, 9, 14, 13, 6, 2, 6, 17, 20, 17, 17, 3,
]  # fmt: skip

# L = 1. Trace (ticket/holder): c0 17/h4, c1 13/h8, c2 21/h2, c3 11/h7, c4 6/h1 win; c5 6 won,
# c6 23/h4 at limit, c7 13 won, c8 20/h3 wins; c9 16/h9 wins; c10-c12 skipped, c13 19/h5 wins;
# c14-c28 skipped (holders at limit or tickets won), c29 9/h6 wins. Now all nine holders hold
# one slot: no ticket is left, rank 3 slot 5 stays unfilled.
# Disqualify 6 (h1): the stream continues at c30 = 14/h1, whose holder is below L again.
# Disqualify 13 (h8's only ticket): no ticket is left, the slot stays unfilled.
# Disqualify 14 (the substitute): c31 13 and c32 6 are disqualified, c33-c38 at limit or won,
# c39 3/h1 takes the slot.
L1_DISQUALIFIED = [(6, "red_flushed"), (13, "reverification_failed"), (14, "red_flushed")]
L1_WINNERS = [
    {"rank": 1, "slot": 1, "ticket_no": 17, "counter": 0},
    {"rank": 1, "slot": 2, "ticket_no": 13, "counter": 1},
    {"rank": 2, "slot": 1, "ticket_no": 21, "counter": 2},
    {"rank": 2, "slot": 2, "ticket_no": 11, "counter": 3},
    {"rank": 2, "slot": 3, "ticket_no": 6, "counter": 4},
    {"rank": 3, "slot": 1, "ticket_no": 20, "counter": 8},
    {"rank": 3, "slot": 2, "ticket_no": 16, "counter": 9},
    {"rank": 3, "slot": 3, "ticket_no": 19, "counter": 13},
    {"rank": 3, "slot": 4, "ticket_no": 9, "counter": 29},
]
L1_SUBSTITUTES = [
    {"rank": 2, "slot": 3, "ticket_no": 14, "counter": 30, "substitute_for": 6},
    {"rank": 2, "slot": 3, "ticket_no": 3, "counter": 39, "substitute_for": 14},
]
L1_UNFILLED_AFTER_DISQUALIFICATION = [13]

# L = 2. c5 6 won, c6 23/h4 (second slot of h4) wins; c7 13 won; c8 20, c9 16, c10 1/h1
# (second slot of h1), c11 23 won, c12 20 won, c13 19: all ten slots filled.
# Disqualify 17 (h4, rank 1 slot 1): c14 5/h4 takes it, h4 is below L again.
# Disqualify 13: c15 13 disqualified, c16 23 won, c17 8/h2 takes rank 1 slot 2.
# Disqualify 5 (the substitute): c18 23, c19 1 won, c20 4/h3 takes rank 1 slot 1.
L2_DISQUALIFIED = [(17, "red_flushed"), (13, "reverification_failed"), (5, "red_flushed")]
L2_WINNERS = [
    {"rank": 1, "slot": 1, "ticket_no": 17, "counter": 0},
    {"rank": 1, "slot": 2, "ticket_no": 13, "counter": 1},
    {"rank": 2, "slot": 1, "ticket_no": 21, "counter": 2},
    {"rank": 2, "slot": 2, "ticket_no": 11, "counter": 3},
    {"rank": 2, "slot": 3, "ticket_no": 6, "counter": 4},
    {"rank": 3, "slot": 1, "ticket_no": 23, "counter": 6},
    {"rank": 3, "slot": 2, "ticket_no": 20, "counter": 8},
    {"rank": 3, "slot": 3, "ticket_no": 16, "counter": 9},
    {"rank": 3, "slot": 4, "ticket_no": 1, "counter": 10},
    {"rank": 3, "slot": 5, "ticket_no": 19, "counter": 13},
]
L2_SUBSTITUTES = [
    {"rank": 1, "slot": 1, "ticket_no": 5, "counter": 14, "substitute_for": 17},
    {"rank": 1, "slot": 2, "ticket_no": 8, "counter": 17, "substitute_for": 13},
    {"rank": 1, "slot": 1, "ticket_no": 4, "counter": 20, "substitute_for": 5},
]

VECTORS = {
    1: (L1_WINNERS, L1_DISQUALIFIED, L1_SUBSTITUTES),
    2: (L2_WINNERS, L2_DISQUALIFIED, L2_SUBSTITUTES),
}
