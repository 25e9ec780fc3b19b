"""The stand-alone verifier tools/verify_draw.py: standard library only, agrees with the engine
and the reference vectors, and refuses every kind of tampering with a clear FAIL line.

Most checks run the real command line (`sys.executable tools/verify_draw.py ...`); the many
random agreement cases call the module in-process for speed. No database.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from apps.draws.engine import (
    Disqualification,
    Substitute,
    TicketsDigest,
    Tier,
    Winner,
    build_bundle,
    bundle_json,
    draw_key,
    select_winners,
    substitute,
    ticket_for_counter,
)
from tests.draws import vectors as v
from tests.draws.test_engine import lookups, pick_disqualifications, random_case

ROOT = Path(__file__).resolve().parents[2]
VERIFIER = ROOT / "tools" / "verify_draw.py"


def load_verifier():
    spec = importlib.util.spec_from_file_location("verify_draw_under_test", VERIFIER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


verify_draw = load_verifier()


def make_draw(seed, tickets, randomness, tiers, limit, disqualified, draw_id="ZZ-2026-03-B"):
    """Run the engine and return (bundle dict, tickets file bytes)."""
    digest = TicketsDigest()
    digest.add_many(tickets)
    digest_hex = digest.hexdigest()
    key = draw_key(seed, digest_hex, randomness)
    holder_of, holder_ticket_count, _ = lookups(tickets)
    common = {
        "draw_key": key,
        "ticket_count": len(tickets),
        "per_holder_limit": limit,
        "holder_of": holder_of,
        "holder_ticket_count": holder_ticket_count,
    }
    engine_tiers = [Tier(*t) for t in tiers]
    winners = select_winners(tiers=engine_tiers, **common)
    subs = substitute(winners=winners, disqualified=disqualified, **common).substitutes
    bundle = build_bundle(
        draw_id=draw_id,
        server_seed=seed,
        public_randomness_source="announced beacon",
        public_randomness=randomness,
        tickets_digest=digest_hex,
        ticket_count=len(tickets),
        per_holder_limit=limit,
        tiers=engine_tiers,
        winners=winners,
        disqualified=[Disqualification(t, r) for t, r in disqualified],
        substitutes=subs,
    )
    return bundle, "".join(f"{a},{b},{c}\n" for a, b, c in tickets).encode()


def reference_bundle(limit=2):
    winners, disqualified, substitutes = v.VECTORS[limit]
    return build_bundle(
        draw_id=v.DRAW_ID,
        server_seed=v.SERVER_SEED,
        public_randomness_source=v.PUBLIC_RANDOMNESS_SOURCE,
        public_randomness=v.PUBLIC_RANDOMNESS,
        tickets_digest=v.TICKETS_DIGEST,
        ticket_count=25,
        per_holder_limit=limit,
        tiers=[Tier(*t) for t in v.TIERS],
        winners=[Winner(**w) for w in winners],
        disqualified=[Disqualification(*d) for d in disqualified],
        substitutes=[Substitute(**s) for s in substitutes],
    )


def write(tmp_path, bundle, tickets_file, name="draw"):
    bundle_path = tmp_path / f"{name}.json"
    tickets_path = tmp_path / f"{name}.csv"
    if isinstance(bundle, dict):
        bundle = bundle_json(bundle)
    bundle_path.write_text(bundle, encoding="utf-8")
    tickets_path.write_bytes(tickets_file)
    return bundle_path, tickets_path


def run_cli(bundle_path, tickets_path, *extra):
    return subprocess.run(
        [sys.executable, str(VERIFIER), str(bundle_path), str(tickets_path), *extra],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def recompute(tmp_path, bundle, tickets_file):
    """The verifier in-process: (ok, checks, recomputed results)."""
    bundle_path, tickets_path = write(tmp_path, bundle, tickets_file)
    checks = []
    try:
        result = verify_draw.verify(
            str(bundle_path), str(tickets_path), lambda *c: checks.append(c)
        )
    except verify_draw.Mismatch as exc:
        return False, [*checks, (exc.check, "FAIL", exc.message)], None
    return True, checks, result


# ---------------------------------------------------------------------------------------------
# Stand-alone


def test_verifier_imports_only_the_standard_library():
    tree = ast.parse(VERIFIER.read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "no relative imports"
            imported.add(node.module.split(".")[0])
    assert imported <= set(sys.stdlib_module_names), imported - set(sys.stdlib_module_names)


def test_verifier_runs_outside_the_project(tmp_path):
    """Copied alone to an empty directory and run with -I (no site, no project on the path)."""
    bundle_path, tickets_path = write(tmp_path, reference_bundle(), v.TICKETS_FILE)
    lonely = tmp_path / "elsewhere"
    lonely.mkdir()
    (lonely / "verify_draw.py").write_bytes(VERIFIER.read_bytes())
    done = subprocess.run(
        [sys.executable, "-I", "verify_draw.py", str(bundle_path), str(tickets_path)],
        cwd=lonely,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


# ---------------------------------------------------------------------------------------------
# Reference vectors and agreement with the engine


@pytest.mark.parametrize("limit", [1, 2])
def test_reference_vector(tmp_path, limit):
    winners, _, substitutes = v.VECTORS[limit]
    ok, checks, result = recompute(tmp_path, reference_bundle(limit), v.TICKETS_FILE)
    assert ok, checks
    assert result == {"winners": winners, "substitutes": substitutes}
    details = {name: detail for name, _, detail in checks}
    assert v.SEED_COMMITMENT in details["commitment"]
    assert v.TICKETS_DIGEST in details["digest"]
    assert v.DRAW_KEY in details["winners"]
    slots = (
        "9 of 10 slot(s) filled, the rest unfilled" if limit == 1 else "10 of 10 slot(s) filled;"
    )
    assert details["winners"].startswith(slots)


@pytest.mark.parametrize("threshold", [32, 1])
def test_verifier_agrees_with_engine_on_random_draws(tmp_path, monkeypatch, threshold):
    monkeypatch.setattr(verify_draw, "SKIPS_BEFORE_CHECK", threshold)
    rng = random.Random(7)
    for _ in range(200):
        seed, tickets, randomness, tiers, limit = random_case(rng)
        disq = pick_disqualifications(
            rng, seed, tickets, randomness, tiers, limit, rng.randint(0, 4)
        )
        bundle, tickets_file = make_draw(seed, tickets, randomness, tiers, limit, disq)
        ok, checks, result = recompute(tmp_path, bundle, tickets_file)
        assert ok, checks
        assert result == {"winners": bundle["winners"], "substitutes": bundle["substitutes"]}


def test_search_that_goes_on_after_the_check(tmp_path):
    """One holder with 1000 tickets, another with one, L = 1: the check runs and finds one left."""
    tickets = [(no, f"{no:016x}", f"{1 + no // 1001:016x}") for no in range(1, 1002)]
    bundle, tickets_file = make_draw(bytes(32), tickets, "r", [(1, "x", "1.00", 3)], 1, [])
    assert len(bundle["winners"]) == 2
    assert bundle["winners"][1]["counter"] > 40
    ok, checks, _ = recompute(tmp_path, bundle, tickets_file)
    assert ok, checks


@pytest.mark.parametrize("n", [2**63 + 1, 3 * 2**62 + 1, 7, 25])
def test_stream_agrees_with_engine_including_rejections(n):
    """N = 2**63 + 1 rejects about half of all values, 3 * 2**62 + 1 about a quarter."""
    key = hashlib.sha256(b"rejection").digest()
    mine = [verify_draw.stream_ticket(key, n, c) for c in range(300)]
    assert mine == [ticket_for_counter(key, n, c) for c in range(300)]
    if n > 2**62:
        assert mine.count(None) > 30


def test_empty_draw(tmp_path):
    bundle, tickets_file = make_draw(bytes(32), [], "r", [(1, "x", "1.00", 3)], 1, [])
    assert tickets_file == b"" and bundle["winners"] == []
    ok, checks, _ = recompute(tmp_path, bundle, tickets_file)
    assert ok, checks


def test_block_boundaries_do_not_matter(tmp_path, monkeypatch):
    """Lines cut across read blocks of every size parse the same, and errors are still found."""
    rng = random.Random(3)
    seed, tickets, randomness, tiers, limit = random_case(rng)
    tickets = [(no, f"{no:016x}", f"{no % 11:016x}") for no in range(1, 301)]
    bundle, tickets_file = make_draw(seed, tickets, randomness, tiers, limit, [])
    for size in (1, 7, 38, 39, 40, 41, 1000):
        monkeypatch.setattr(verify_draw, "BLOCK_SIZE", size)
        ok, checks, _ = recompute(tmp_path, bundle, tickets_file)
        assert ok, (size, checks)
        broken = tickets_file.replace(b"\n150,", b"\n15O,")
        bad_bundle = dict(bundle, tickets_digest=hashlib.sha256(broken).hexdigest())
        ok, checks, _ = recompute(tmp_path, bad_bundle, broken)
        assert not ok and checks[-1][0] == "tickets" and "line 150" in checks[-1][2]


@pytest.mark.parametrize("few", [8, 0])  # per-holder search, or one pass over the array
def test_holder_counts_are_aligned(tmp_path, monkeypatch, few):
    """An 8-byte holder pattern straddling two tickets must not count as a ticket."""
    monkeypatch.setattr(verify_draw, "FEW_HOLDERS", few)
    path = tmp_path / "t.csv"
    path.write_bytes(
        b"1,0000000000000000,aaaaaaaaaaaaaaaa\n"
        b"2,0000000000000000,bbbbbbbbbbbbbbbb\n"
        b"3,0000000000000000,aaaaaaaaaaaaaaaa\n"
    )
    scan = verify_draw.TicketsFile(str(path)).scan()
    assert scan.problem is None and scan.lines == 3
    straddling = bytes.fromhex("aaaaaaaabbbbbbbb")
    a, b = bytes.fromhex("aa" * 8), bytes.fromhex("bb" * 8)
    assert scan.tickets_of([straddling, a, b]) == {straddling: 0, a: 2, b: 1}
    assert scan.holder(2) == b


# ---------------------------------------------------------------------------------------------
# The command line: a good draw, and every kind of tampering


def test_good_bundle_exits_zero(tmp_path):
    done = run_cli(*write(tmp_path, reference_bundle(), v.TICKETS_FILE))
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[:2] for line in lines[:7]] == [
        ["OK", "bundle"],
        ["OK", "commitment"],
        ["OK", "digest"],
        ["OK", "tickets"],
        ["NOTE", "randomness"],
        ["OK", "winners"],
        ["OK", "substitutes"],
    ]
    assert lines[-1].startswith("VERIFIED")
    assert v.PUBLIC_RANDOMNESS in done.stdout  # printed for the citizen to compare


def test_json_output(tmp_path):
    done = run_cli(*write(tmp_path, reference_bundle(), v.TICKETS_FILE), "--json")
    assert done.returncode == 0
    report = json.loads(done.stdout)
    assert report["ok"] is True and len(report["checks"]) == 7
    bad = dict(reference_bundle(), server_seed="00" * 32)
    done = run_cli(*write(tmp_path, bad, v.TICKETS_FILE), "--json")
    report = json.loads(done.stdout)
    assert done.returncode == 1 and report["ok"] is False
    assert report["checks"][-1] == {
        "check": "commitment",
        "result": "FAIL",
        "detail": report["checks"][-1]["detail"],
    }
    assert "published commitment" in report["checks"][-1]["detail"]


def swap_lines(data: bytes, i: int, j: int) -> bytes:
    lines = data.splitlines(keepends=True)
    lines[i - 1], lines[j - 1] = lines[j - 1], lines[i - 1]
    return b"".join(lines)


def drop_line(data: bytes, i: int) -> bytes:
    lines = data.splitlines(keepends=True)
    del lines[i - 1]
    return b"".join(lines)


def with_digest(bundle: dict, tickets_file: bytes, **changes) -> dict:
    """A bundle re-published for a changed tickets file (the digest then matches the file)."""
    return dict(bundle, tickets_digest=hashlib.sha256(tickets_file).hexdigest(), **changes)


def _changed_holder(data: bytes) -> bytes:
    line = b"7,%s,%s\n" % (v.TICKETS[6][1].encode(), v.TICKETS[6][2].encode())
    return data.replace(line, line[:-2] + (b"0" if line[-2:-1] != b"0" else b"1") + b"\n")


def _tampered_cases():
    good = reference_bundle()
    data = v.TICKETS_FILE
    tampered_winner = json.loads(json.dumps(good))
    tampered_winner["winners"][3]["ticket_no"] = 12
    tampered_counter = json.loads(json.dumps(good))
    tampered_counter["winners"][5]["counter"] = 5
    tampered_sub = json.loads(json.dumps(good))
    tampered_sub["substitutes"][1]["ticket_no"] = 9
    dropped_sub = json.loads(json.dumps(good))
    del dropped_sub["substitutes"][-1]
    bogus_disq = json.loads(json.dumps(good))
    bogus_disq["disqualified"].append({"ticket_no": 2, "reason": "red_flushed"})
    other_seed = bytes(range(1, 33))
    reseeded = dict(
        good,
        server_seed=other_seed.hex(),
        seed_commitment=hashlib.sha256(other_seed).hexdigest(),
    )
    no_newline = data[:-1]
    swapped = swap_lines(data, 3, 4)
    missing = drop_line(data, 10)
    changed = _changed_holder(data)
    return {
        # name: (bundle, tickets file, failing check, words in its message)
        "server seed": (dict(good, server_seed="ff" + good["server_seed"][2:]), data,
                        "commitment", "published commitment"),
        "commitment": (dict(good, seed_commitment="0" * 64), data,
                       "commitment", "published commitment"),
        "seed and commitment both": (reseeded, data, "winners", "entry #1 differs"),
        "changed ticket line": (good, changed, "digest", "the bundle says"),
        "changed ticket line, digest too": (with_digest(good, changed), changed,
                                            "winners", "differs"),
        "reordered tickets": (good, swapped, "digest", "hashes to"),
        "reordered tickets, digest too": (with_digest(good, swapped), swapped,
                                          "tickets", "line 3 carries ticket number 4"),
        "missing ticket": (good, missing, "digest", "hashes to"),
        "missing ticket, digest too": (with_digest(good, missing), missing,
                                       "tickets", "line 10 carries ticket number 11"),
        "missing last newline": (with_digest(good, no_newline), no_newline,
                                 "tickets", "line 25 does not end"),
        "ticket count": (dict(good, ticket_count=24), data,
                         "tickets", "25 tickets but ticket_count is 24"),
        "changed winner": (tampered_winner, data, "winners", "entry #4 differs"),
        "changed winner counter": (tampered_counter, data, "winners", "entry #6 differs"),
        "changed substitute": (tampered_sub, data, "substitutes", "entry #2 differs"),
        "missing substitute": (dropped_sub, data, "substitutes", "entry #3 differs"),
        "disqualified non-winner": (bogus_disq, data, "substitutes",
                                    "ticket 2 does not hold a prize slot"),
        "public randomness": (dict(good, public_randomness=v.PUBLIC_RANDOMNESS + " "), data,
                              "winners", "differs"),
        "per-holder limit": (dict(good, per_holder_limit=1), data, "winners", "differs"),
        "wrong spec": (dict(good, spec="lotteryinvoice-draw/2"), data, "bundle", "spec"),
        "unsorted tiers": (dict(good, tiers=good["tiers"][::-1]), data, "bundle", "ascending"),
        "float amount": (dict(good, tiers=[dict(good["tiers"][0], amount=800.0)]), data,
                         "bundle", "amount"),
        "not json": ("{not json", data, "bundle", "not valid UTF-8 JSON"),
    }  # fmt: skip


TAMPERED = _tampered_cases()


@pytest.mark.parametrize("case", list(TAMPERED))
def test_tampering_exits_non_zero_with_a_clear_line(tmp_path, case):
    bundle, tickets_file, check, words = TAMPERED[case]
    done = run_cli(*write(tmp_path, bundle, tickets_file))
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    fail = lines[-2]
    assert fail.split()[:2] == ["FAIL", check], done.stdout
    assert words in fail, fail
    assert lines[-1].startswith("NOT VERIFIED")
    # Every earlier line passed, and nothing was checked after the first failure.
    assert all(line.split()[0] in {"OK", "NOTE"} for line in lines[:-2])


def test_unreadable_file_exits_two(tmp_path):
    bundle_path, _ = write(tmp_path, reference_bundle(), v.TICKETS_FILE)
    done = run_cli(bundle_path, tmp_path / "missing.csv")
    assert done.returncode == 2
    assert "cannot read the tickets file" in done.stderr
