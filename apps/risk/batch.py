"""The nightly model: set-based features per merchant and per consumer, robust z-scores against
peers, linked clusters of consumers, and alerts with explanations (PostgreSQL).

For one campaign and a moment `as_of`, over the entries of the last `WINDOW_DAYS`:

Merchant features (peer group: the 2-digit industry; groups under `MIN_PEERS` merchants join
one city-wide group):
- `surge`: log of (recent daily volume + 1) / (usual daily volume + 1), where "usual" is the
  seller's own earlier volume, or for a seller with less than a week of history its peers'
  recent median — sudden volume of old and new sellers alike;
- `few_buyers`: 1 − distinct buyers / invoices;
- `round_share`: share of totals that are whole tens;
- `near_min_share`: share of totals just above the campaign minimum (within `NEAR_MIN_BAND`);
- `red_excess`: entries red-flushed after entry (reversed) beyond what the peers' reversal
  rates explain — a calibrated small-sample statistic, see below (scored from
  `RED_MIN_INVOICES` entries on, not only from `MERCHANT_MIN_INVOICES`);
- `fast_share`: share entered within `FAST_SECONDS` of issue;
- `repeat_share`: share of the recent week's entries made by buyers with `REPEAT_BUYER_MIN` or
  more entries at this seller in that week (when at least `REPEAT_BUYERS_MIN` buyers repeat) —
  a surge carried by a few controlled buyers rather than by many customers.

Consumer features (one peer group per campaign): `volume`, `near_cap_share` (share of the
invoices entered on days at or one below the daily cap), `cap_days` (days at the daily cap),
`near_cap_streak` (longest run of consecutive days at or one below the cap), `near_min_share`,
`fast_share`, `top_seller_share` (share at their most used seller), `round_share`,
`win_excess` (instant wins above what the day's odds predict: a one-sided Poisson z),
`draw_win_excess` (the same for the periodic draws: winners / tickets of each drawn draw is
the chance of one ticket), `red_excess` (the consumer's entries red-flushed after entry —
claim, then return the goods — the sellers' calibrated test with a prior fitted on consumers,
see `CONSUMER_RED_MIN_INVOICES`; scored from that many entries on), `red_large` (the same
for the consumer's large entries — among the campaign's dearest `RiskSettings.
reversal_large_share` — red-flushed after entry, per entry), and groups of consumers who
returned at the same sellers (`linked_returns`, `RiskSettings.reversal_link_min`), pooled and
tested like one consumer; the three consumer tests share one Benjamini–Hochberg procedure, and
a seller's test is then re-run without the reported claimers' entries (their reversals are
theirs, not the shop's).

Shares are taken at the lower bound of their 95 % Wilson interval, so a share seen on a handful
of invoices weighs less than the same share seen on hundreds. Each feature's robust
z = 0.6745 · (x − median) / max(MAD, floor) within the peer group,
oriented so that high is suspicious. An entity becomes an alert when at least
`alert_min_features` features reach `feature_z`, or one reaches `alert_z` (RiskSettings) —
except the `NOT_ALONE` features (volume), which need company.
Reversals (`red_excess`) are not a peer z-score but a calibrated test: each seller's count of
reversed entries against the beta-binomial of ordinary sellers' rates; the sellers passing
Benjamini–Hochberg at `RiskSettings.reversal_fdr` are alerts on their own, a z of
`feature_z` or more counts as one feature towards `alert_min_features`; the same for consumers.
Clusters: consumers linked by a shared device or payout account, or by a phone block (the
keyed blind index of the number's first nine digits) holding more of the campaign's consumers
than chance allows (union-find over the edges); a component of `CLUSTER_MIN` or more consumers
is an alert.

Everything heavy is SQL over the invoice table (`GROUP BY`, `percentile_cont`);
Python only sees the rows above the thresholds, the sellers with two or more reversals (for
the exact beta-binomial tail) and the device/account/phone-block edges.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial

from django.db import connection, transaction
from django.utils import timezone

from apps.accounts.models import Consumer
from apps.draws.models import DrawTicket, DrawWinner, InstantDrawResult, PeriodicDraw
from apps.invoices.choices import CampaignStatus, InvoiceStatus
from apps.invoices.models import Campaign, Invoice
from apps.merchants.models import Merchant
from apps.prizes.models import PayoutAccount

from .choices import AlertStatus, SubjectKind
from .models import BatchRun, MerchantBaseline, RiskAlert
from .services import risk_settings_get
from .stats import (
    benjamini_hochberg,
    beta_binomial_sf,
    fit_censored_beta,
    poisson_sf,
    z_of_p,
    zero_truncated_poisson_rate,
)

WINDOW_DAYS = 30
RECENT_DAYS = 7
FAST_SECONDS = 120
NEAR_MIN_BAND = Decimal("0.10")
MIN_PEERS = 20
MERCHANT_MIN_INVOICES = 15
# A buyer with this many entries at one seller within the recent week is a "repeat buyer".
REPEAT_BUYER_MIN = 3
# ... and it takes a group of them: one regular (or one cashier entering the shop's receipts,
# which the insider features catch) is not a surge carried by a few controlled buyers.
REPEAT_BUYERS_MIN = 2
CONSUMER_MIN_INVOICES = 3
CLUSTER_MIN = 4
# Floor of the expected wins in the win-excess z: one lucky win among a few entries at long
# odds is not evidence.
MIN_EXPECTED_WINS = 0.25
# Reversals after entry (`red_excess`): sellers with at least this many entries are tested;
# the peers' spread of reversal rates (a Beta distribution) is fitted on sellers with at least
# `RED_PRIOR_MIN_INVOICES` entries, leaving out the highest `RED_PRIOR_TRIM` of their rates
# (the suspects must not define what is ordinary); a seller is reported when it passes the
# Benjamini–Hochberg procedure over all sellers tested, at the false-discovery rate
# `RiskSettings.reversal_fdr` (default 1 %, editable on the desk).
RED_MIN_INVOICES = 5
RED_PRIOR_MIN_INVOICES = 30
RED_PRIOR_TRIM = 0.01
# Without enough history the prior is a mean rate of at least RED_PRIOR_MIN_RATE with the
# spread of RED_PRIOR_CONCENTRATION (a + b): a campaign with no reversals yet must not make
# every single reversal a miracle. The fitted concentration is kept within these bounds.
RED_PRIOR_MIN_RATE = 0.005
RED_PRIOR_CONCENTRATION = 100.0
RED_PRIOR_CONCENTRATION_RANGE = (10.0, 2000.0)
# Reversals after entry per consumer (the consumer's `red_excess`): a claim-and-return
# operation buys, enters the invoice, returns the goods and the invoice is red-flushed. Consumers
# with at least `CONSUMER_RED_MIN_INVOICES` entries are tested against the beta-binomial of
# ordinary consumers' reversal rates. Consumers enter a few invoices each (a monthly cap), too
# few to estimate each one's rate, so the Beta spread is fitted by maximum likelihood on the
# counts of consumers with 0, 1 and 2-or-more reversals at each number of entries (censored at
# two: the suspects, all in the last class, cannot pull the tail of what is ordinary towards
# themselves); with fewer than `RED_PRIOR_MIN_REVERSALS` reversals among the fitting consumers
# the fallback prior above is used.
CONSUMER_RED_MIN_INVOICES = 4
RED_PRIOR_MIN_REVERSALS = 20
# Phone-pattern links: consumers whose phones share a 100-number block are linked only when the
# block holds more of the campaign's consumers than chance allows (a Poisson count of the
# observed density: the expected number of such blocks among all occupied ones below
# PHONE_BLOCK_ALPHA), and at least PHONE_BLOCK_MIN.
PHONE_BLOCK_MIN = 4
PHONE_BLOCK_ALPHA = 0.01
DRAWN_STATUSES = ("drawn", "published", "finalised")
Z_SCALE = 0.6745
WILSON_Z = 1.96
ENTERED = (InvoiceStatus.ACCEPTED, InvoiceStatus.HELD, InvoiceStatus.REVERSED)

# (feature, MAD floor): the floor keeps a feature that is nearly constant among peers (most
# merchants have no reversals) from turning every small deviation into a huge z.
MERCHANT_FEATURES = (
    ("surge", 0.25),
    ("few_buyers", 0.10),
    ("round_share", 0.08),
    ("near_min_share", 0.08),
    ("fast_share", 0.05),
    ("repeat_share", 0.06),
)
CONSUMER_FEATURES = (
    ("volume", 2.0),
    ("near_cap_share", 0.12),
    ("cap_days", 1.0),
    ("near_cap_streak", 1.0),
    ("win_excess", 1.0),
    ("draw_win_excess", 1.0),
    ("near_min_share", 0.10),
    ("fast_share", 0.10),
    ("top_seller_share", 0.10),
    ("round_share", 0.10),
)

# Context, not evidence on its own: a seller that joins late or runs a promotion really does
# sell more than before, and a heavy shopper really does enter many invoices. Volume raises an
# alert only together with another feature (few buyers, repeat buyers, round amounts, days at
# the cap, ...), never alone at `alert_z`.
NOT_ALONE = frozenset({"surge", "volume"})


@dataclass(frozen=True)
class Thresholds:
    alert_z: float
    feature_z: float
    min_features: int


def _union_find_root(parent: dict[int, int], x: int) -> int:
    """Union-find over `parent`: x's representative, compressing the path (x unseen so far
    becomes its own)."""
    root = x
    while parent.setdefault(root, root) != root:
        root = parent[root]
    while parent[x] != root:
        parent[x], x = root, parent[x]
    return root


def _z_sql(table: str, features, peer: str) -> str:
    """Robust z of every feature within its peer group, for every row of `table`."""
    med = ", ".join(
        f"percentile_cont(0.5) WITHIN GROUP (ORDER BY {f}) AS m_{f}" for f, _ in features
    )
    mad = ", ".join(
        f"percentile_cont(0.5) WITHIN GROUP (ORDER BY abs(t.{f} - med.m_{f})) AS d_{f}"
        for f, _ in features
    )
    zs = ", ".join(
        f"{Z_SCALE} * (t.{f} - med.m_{f}) / greatest(mad.d_{f}, {floor}) AS z_{f}, "
        f"med.m_{f} AS m_{f}"
        for f, floor in features
    )
    return f"""
        WITH med AS (SELECT {peer} AS peer, {med} FROM {table} GROUP BY {peer}),
        mad AS (
            SELECT t.{peer} AS peer, {mad} FROM {table} t JOIN med ON med.peer = t.{peer}
            GROUP BY t.{peer}
        )
        SELECT t.*, {zs}
        FROM {table} t JOIN med ON med.peer = t.{peer} JOIN mad ON mad.peer = t.{peer}
    """  # noqa: S608 - identifiers are module constants


def _wilson(share: str, n: str) -> str:
    """SQL for the lower bound of the 95 % Wilson interval of a share observed over `n` cases:
    a share seen on few invoices counts for less than the same share on many (three reversals
    out of twenty is weak evidence; thirty out of two hundred is not)."""
    z2 = WILSON_Z * WILSON_Z
    return (
        f"greatest(0.0, (({share}) + {z2 / 2}/({n}) - {WILSON_Z} * sqrt(greatest(0.0, "
        f"({share}) * (1 - ({share})) / ({n}) + {z2 / 4}/(({n}) * ({n}))))) / (1 + {z2}/({n})))"
    )


def _explained_with_reversals(rows: list[dict], reversals: dict, features, thresholds):
    """(row, alert?, score, items) for each scored subject and each subject whose reversal
    tests (one `_Reversals` or a list of them per subject) are reported or strong (those not
    scored otherwise get only those items); a reported reversal test is an alert on its own."""
    by_id = {row["id"]: row for row in rows}
    shown: dict[int, list[_Reversals]] = {}
    for subject_id, evidence in reversals.items():
        tests = evidence if isinstance(evidence, list) else [evidence]
        strong_tests = [t for t in tests if t.reported or t.z >= thresholds.feature_z]
        if strong_tests:
            shown[subject_id] = strong_tests
            by_id.setdefault(subject_id, {"id": subject_id, "scored": False})
    for row in by_id.values():
        tests = shown.get(row["id"], [])
        strong, score, items = _explain(
            row,
            features if row.get("scored", True) else (),
            thresholds,
            extra=[t.item() for t in tests],
            decisive=any(t.reported for t in tests),
        )
        yield row, strong, score, items


def _explain(row: dict, features, thresholds: Thresholds, extra=(), decisive: bool = False):
    """(alert?, score, explanation items) of one scored row; `extra` are items scored outside
    the peer z-scores (calibrated tests), `decisive` that one of them alone is an alert."""
    items = list(extra)
    for name, _floor in features:
        z = float(row[f"z_{name}"] or 0)
        if z >= thresholds.feature_z:
            items.append(
                {
                    "feature": name,
                    "value": round(float(row[name]), 4),
                    "peer_median": round(float(row[f"m_{name}"]), 4),
                    "z": round(z, 2),
                }
            )
    items.sort(key=lambda item: -item["z"])
    strong = (
        decisive
        or len(items) >= thresholds.min_features
        or any(
            item["z"] >= thresholds.alert_z and item["feature"] not in NOT_ALONE for item in items
        )
    )
    score = round(sum(item["z"] for item in items), 2)
    return strong, score, items


def _fetch(cursor, sql: str, params) -> list[dict]:
    cursor.execute(sql, params)
    names = [c.name for c in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _merchant_rows(cursor, params: dict, thresholds: Thresholds) -> tuple[list[dict], int]:
    invoice, merchant = Invoice._meta.db_table, Merchant._meta.db_table
    cursor.execute("DROP TABLE IF EXISTS risk_m")
    cursor.execute(
        f"""
        CREATE TEMP TABLE risk_m ON COMMIT DROP AS
        SELECT i.merchant_id AS id,
               left(m.industry_code, 2) AS peer,
               count(*) AS n,
               count(*) FILTER (WHERE i.submitted_at >= %(recent)s) AS n_recent,
               min(i.submitted_at) AS first_seen,
               count(DISTINCT i.consumer_id) AS buyers,
               avg(CASE WHEN i.total %% 10 = 0 THEN 1.0 ELSE 0.0 END) AS round_share,
               avg(CASE WHEN i.total >= %(min_total)s AND i.total < %(near_min)s
                        THEN 1.0 ELSE 0.0 END) AS near_min_share,
               avg(CASE WHEN i.issued_at IS NOT NULL
                         AND i.submitted_at - i.issued_at <= %(fast)s
                        THEN 1.0 ELSE 0.0 END) AS fast_share
        FROM {invoice} i JOIN {merchant} m ON m.id = i.merchant_id
        WHERE i.campaign_id = %(campaign)s AND i.status = ANY(%(entered)s)
          AND i.submitted_at >= %(start)s AND i.submitted_at < %(as_of)s
        GROUP BY i.merchant_id, m.industry_code
        HAVING count(*) >= %(min_n)s
        """,  # noqa: S608
        {**params, "min_n": MERCHANT_MIN_INVOICES},
    )
    scored = cursor.rowcount
    cursor.execute(
        "ALTER TABLE risk_m ADD COLUMN surge float8, ADD COLUMN few_buyers float8, "
        "ADD COLUMN daily_mean numeric(10, 2), ADD COLUMN repeat_share float8 DEFAULT 0.0"
    )
    cursor.execute("CREATE INDEX ON risk_m (id)")
    # Fake sales that lift a seller's volume are entered by a few controlled buyers again and
    # again: the share of the recent week's entries made by buyers with `REPEAT_BUYER_MIN` or
    # more entries at this seller in that week (ordinary customers rarely come back three
    # times a week, so a surge of ordinary customers keeps this share low). Counted only when
    # at least `REPEAT_BUYERS_MIN` buyers repeat.
    cursor.execute(
        f"""
        UPDATE risk_m t SET repeat_share = r.k::float8 / t.n_recent FROM (
            SELECT merchant_id, sum(k) AS k FROM (
                SELECT i.merchant_id, i.consumer_id, count(*) AS k
                FROM {invoice} i
                WHERE i.campaign_id = %(campaign)s AND i.status = ANY(%(entered)s)
                  AND i.submitted_at >= %(recent)s AND i.submitted_at < %(as_of)s
                GROUP BY 1, 2 HAVING count(*) >= %(repeat_min)s
            ) x GROUP BY merchant_id HAVING count(*) >= %(repeat_buyers)s
        ) r WHERE r.merchant_id = t.id AND t.n_recent > 0
        """,  # noqa: S608
        {**params, "repeat_min": REPEAT_BUYER_MIN, "repeat_buyers": REPEAT_BUYERS_MIN},
    )
    cursor.execute(
        """
        UPDATE risk_m SET
          daily_mean = round((n - n_recent)::numeric / greatest(1.0,
              extract(epoch FROM %(recent)s - greatest(first_seen, %(start)s)) / 86400.0)::numeric,
              2),
          few_buyers = 1.0 - buyers::float8 / n
        """,
        params,
    )
    shares = ", ".join(
        [
            *(
                f"{f} = {_wilson(f, 'n')}"
                for f in ("round_share", "near_min_share", "fast_share", "few_buyers")
            ),
            f"repeat_share = {_wilson('repeat_share', 'greatest(n_recent, 1)')}",
        ]
    )
    cursor.execute(f"UPDATE risk_m SET {shares}")  # noqa: S608 - module constants
    cursor.execute(
        "UPDATE risk_m SET peer = '*' WHERE peer IN "
        "(SELECT peer FROM risk_m GROUP BY peer HAVING count(*) < %(min_peers)s)",
        {"min_peers": MIN_PEERS},
    )
    # A seller with a week or more of history is compared with itself; a newer one (no
    # baseline of its own) with the usual recent volume of its peers.
    cursor.execute(
        """
        UPDATE risk_m t SET surge = ln((t.n_recent::float8 / %(recent_days)s + 1.0) / (
            CASE WHEN t.first_seen > %(recent)s - interval '7 days'
                 THEN p.usual ELSE t.daily_mean::float8 END + 1.0))
        FROM (SELECT peer, percentile_cont(0.5) WITHIN GROUP (
                  ORDER BY n_recent::float8 / %(recent_days)s) AS usual
              FROM risk_m GROUP BY peer) p
        WHERE p.peer = t.peer
        """,
        params,
    )
    # The real-time rule's "usual day" of a new seller is its own average so far.
    cursor.execute(
        """
        UPDATE risk_m SET daily_mean = round(n::numeric / greatest(1.0,
            extract(epoch FROM %(as_of)s - greatest(first_seen, %(start)s)) / 86400.0)::numeric, 2)
        WHERE first_seen > %(recent)s - interval '7 days'
        """,
        params,
    )
    baseline = MerchantBaseline._meta.db_table
    cursor.execute(
        f"""
        INSERT INTO {baseline} (merchant_id, daily_mean, score, features, computed_at)
        SELECT id, daily_mean, 0, '{{}}'::jsonb, %(now)s FROM risk_m
        ON CONFLICT (merchant_id) DO UPDATE
           SET daily_mean = EXCLUDED.daily_mean, score = 0, features = '{{}}'::jsonb,
               computed_at = EXCLUDED.computed_at
        """,  # noqa: S608
        params,
    )
    zs = " OR ".join(f"z_{f} >= %(feature_z)s" for f, _ in MERCHANT_FEATURES)
    rows = _fetch(
        cursor,
        f"SELECT * FROM ({_z_sql('risk_m', MERCHANT_FEATURES, 'peer')}) s WHERE {zs}",  # noqa: S608
        {"feature_z": thresholds.feature_z},
    )
    return rows, scored


@dataclass(frozen=True)
class _Reversals:
    entries: int
    reversed: int
    p: float
    z: float
    prior_mean: float
    reported: bool
    feature: str = "red_excess"

    def item(self) -> dict:
        """The explanation shown on the desk: reversed entries among entries, the rate that
        ordinary peers show (`peer_median`: the prior's mean) and the z of the exact tail."""
        return {
            "feature": self.feature,
            "value": round(self.reversed / self.entries, 4),
            "peer_median": round(self.prior_mean, 4),
            "z": round(self.z, 2),
            "reversed": self.reversed,
            "entries": self.entries,
        }


def _reversal_prior(cursor) -> tuple[float, float]:
    """(a, b) of the Beta spread of ordinary sellers' reversal rates, by the method of moments
    on the well-observed sellers (binomial noise of each rate taken out), the top
    `RED_PRIOR_TRIM` of rates left out."""
    cursor.execute(
        """
        WITH big AS (SELECT n, r, r::float8 / n AS rate FROM risk_r WHERE n >= %(big)s),
        cut AS (SELECT percentile_cont(%(keep)s) WITHIN GROUP (ORDER BY rate) AS c FROM big)
        SELECT count(*), sum(r), sum(n), avg(rate), var_pop(rate), avg(1.0 / n)
        FROM big, cut WHERE rate <= cut.c
        """,
        {"big": RED_PRIOR_MIN_INVOICES, "keep": 1 - RED_PRIOR_TRIM},
    )
    sellers, reversed_, entries, mean_rate, var_rate, mean_inv_n = cursor.fetchone()
    if not sellers or sellers < MIN_PEERS or not entries:
        cursor.execute("SELECT sum(r), sum(n) FROM risk_r")
        reversed_, entries = cursor.fetchone()
        mu = max(RED_PRIOR_MIN_RATE, float(reversed_ or 0) / float(entries or 1))
        return mu * RED_PRIOR_CONCENTRATION, (1 - mu) * RED_PRIOR_CONCENTRATION
    mu = max(RED_PRIOR_MIN_RATE, float(reversed_) / float(entries))
    spread = float(var_rate or 0) + (float(mean_rate or 0) - mu) ** 2
    true_var = spread - mu * (1 - mu) * float(mean_inv_n or 0)
    low, high = RED_PRIOR_CONCENTRATION_RANGE
    concentration = mu * (1 - mu) / true_var - 1 if true_var > 0 else high
    concentration = min(high, max(low, concentration))
    return mu * concentration, (1 - mu) * concentration


def _reversal_evidence(cursor, params: dict, fdr: float) -> dict[int, _Reversals]:
    """Sellers whose entries are red-flushed after entry more often than the spread of their
    peers' rates explains. The count of reversals among a seller's entries is tested against
    the beta-binomial of the ordinary sellers' rates (exact, so that a small seller with three
    reversals in eight entries and a big one with sixty in four hundred are judged each by
    what chance gives at its size), and sellers are reported by Benjamini–Hochberg over all
    sellers tested. Returns the sellers above the mean rate with two or more reversals."""
    invoice = Invoice._meta.db_table
    cursor.execute("DROP TABLE IF EXISTS risk_r")
    cursor.execute(
        f"""
        CREATE TEMP TABLE risk_r ON COMMIT DROP AS
        SELECT i.merchant_id AS id, count(*) AS n,
               count(*) FILTER (WHERE i.status = 'reversed') AS r
        FROM {invoice} i
        WHERE i.campaign_id = %(campaign)s AND i.status = ANY(%(entered)s)
          AND i.merchant_id IS NOT NULL
          AND i.submitted_at >= %(start)s AND i.submitted_at < %(as_of)s
        GROUP BY i.merchant_id HAVING count(*) >= %(min_n)s
        """,  # noqa: S608
        {**params, "min_n": RED_MIN_INVOICES},
    )
    tests = cursor.rowcount
    return _reversal_tests(cursor, "risk_r", _reversal_prior(cursor), fdr, tests)


def _reversal_pvalues(
    cursor, table: str, prior: tuple[float, float], *, column: str = "r", feature="red_excess"
) -> dict[int, _Reversals]:
    """The exact beta-binomial tail for every subject of `table` (id, n entries, `column`
    reversed) with two or more reversals above the prior's mean rate (not yet `reported`)."""
    a, b = prior
    mean = a / (a + b)
    cursor.execute(
        f"SELECT id, n, {column} FROM {table} "  # noqa: S608 - module constants
        f"WHERE {column} >= 2 AND {column} > n * %(mean)s",
        {"mean": mean},
    )
    found: dict[int, _Reversals] = {}
    for subject_id, n, r in cursor.fetchall():
        p = beta_binomial_sf(int(r), int(n), a, b)
        found[subject_id] = _Reversals(int(n), int(r), p, z_of_p(p), mean, False, feature)
    return found


def _reversals_without_claimers(
    cursor, params: dict, reversals: dict[int, _Reversals], claimers: set[int], fdr: float
) -> dict[int, _Reversals]:
    """The sellers' reversal test again, for the reported sellers, without the entries of the
    consumers reported as claimers (alone or in a linked group): a shop where claimers bought
    and returned has their reversals, but they are the claimers' doing, already alerted. A
    seller that stays significant without them (it red-flushes its other buyers too) stays
    reported; Benjamini–Hochberg is applied again over all sellers tested (`risk_r`)."""
    reported = sorted(k for k, v in reversals.items() if v.reported)
    if not reported or not claimers:
        return reversals
    invoice = Invoice._meta.db_table
    cursor.execute("SELECT count(*) FROM risk_r")
    tests = cursor.fetchone()[0]
    a, b = _reversal_prior(cursor)
    cursor.execute(
        f"""
        SELECT i.merchant_id, count(*), count(*) FILTER (WHERE i.status = 'reversed')
        FROM {invoice} i
        WHERE i.campaign_id = %(campaign)s AND i.status = ANY(%(entered)s)
          AND i.submitted_at >= %(start)s AND i.submitted_at < %(as_of)s
          AND i.merchant_id = ANY(%(sellers)s) AND NOT (i.consumer_id = ANY(%(claimers)s))
        GROUP BY 1
        """,  # noqa: S608
        {**params, "sellers": reported, "claimers": sorted(claimers)},
    )
    remaining = {m: (int(n), int(r)) for m, n, r in cursor.fetchall()}
    updated = {k: v for k, v in reversals.items() if not v.reported}
    for seller in reported:
        n, r = remaining.get(seller, (0, 0))
        if n >= RED_MIN_INVOICES:
            p = beta_binomial_sf(r, n, a, b)
            updated[seller] = _Reversals(n, r, p, z_of_p(p), a / (a + b), False)
    selected = benjamini_hochberg({k: v.p for k, v in updated.items()}, fdr, tests)
    return {k: replace(v, reported=k in selected) for k, v in updated.items()}


def _reversal_tests(
    cursor, table: str, prior: tuple[float, float], fdr: float, tests: int
) -> dict[int, _Reversals]:
    """`_reversal_pvalues`; those that Benjamini–Hochberg selects at `fdr` among all `tests`
    subjects are `reported`."""
    found = _reversal_pvalues(cursor, table, prior)
    for subject_id in benjamini_hochberg({k: v.p for k, v in found.items()}, fdr, tests):
        found[subject_id] = replace(found[subject_id], reported=True)
    return found


def _consumer_reversal_prior(
    cursor,
    column: str = "r",
    min_rate: float = RED_PRIOR_MIN_RATE,
    fallback_mean: float | None = None,
) -> tuple[float, float]:
    """(a, b) of the Beta spread of ordinary consumers' reversal rates (see
    `CONSUMER_RED_MIN_INVOICES`); `column` counts the reversals (all, or the large ones),
    `min_rate` is the least mean rate assumed, `fallback_mean` the mean taken when there are
    too few reversals to fit (default: the observed rate)."""
    cursor.execute(
        f"""
        SELECT n, count(*) FILTER (WHERE {column} = 0), count(*) FILTER (WHERE {column} = 1),
               count(*) FILTER (WHERE {column} >= 2), sum({column})
        FROM risk_cr GROUP BY n ORDER BY n
        """  # noqa: S608 - module constants
    )
    rows = cursor.fetchall()
    subjects = sum(k0 + k1 + k2 for _n, k0, k1, k2, _r in rows)
    reversed_ = sum(int(r) for *_rest, r in rows)
    entries = sum(int(n) * (k0 + k1 + k2) for n, k0, k1, k2, _r in rows)
    if subjects < MIN_PEERS or reversed_ < RED_PRIOR_MIN_REVERSALS:
        observed = reversed_ / max(entries, 1) if fallback_mean is None else fallback_mean
        mu = max(min_rate, observed)
        return mu * RED_PRIOR_CONCENTRATION, (1 - mu) * RED_PRIOR_CONCENTRATION
    mu, conc = fit_censored_beta(
        [(int(n), k0, k1, k2) for n, k0, k1, k2, _r in rows], RED_PRIOR_CONCENTRATION_RANGE
    )
    mu = max(min_rate, mu)
    return mu * conc, (1 - mu) * conc


@dataclass(frozen=True)
class _Returners:
    """Consumers linked by returning at the same sellers, and their pooled reversal test."""

    members: list[int]
    sellers: int
    test: _Reversals

    def items(self) -> list[dict]:
        item = self.test.item()
        item["sellers"] = self.sellers
        return [
            item,
            {
                "feature": "linked_consumers",
                "value": len(self.members),
                "peer_median": 1,
                "z": len(self.members),
            },
        ]


def _consumer_reversal_evidence(
    cursor,
    params: dict,
    fdr: float,
    *,
    large_share: float = 0.0,
    link_min: int = 0,
    skip_sellers=(),
) -> tuple[dict[int, list[_Reversals]], list[_Returners]]:
    """Consumers whose entries are red-flushed after entry more often than ordinary consumers'
    spread of return rates explains at their number of entries — claim, then return the goods.
    Three tests, selected together by one Benjamini–Hochberg procedure at
    `RiskSettings.reversal_fdr` over all of them (the family: every consumer tested for
    `red_excess`, the consumers with two or more large entries for `red_large` — the others
    cannot have two large reversals — and the groups):

    - `red_excess`: the consumer's reversals among their entries (the sellers' construction:
      an exact beta-binomial tail against the censored fit of ordinary consumers' rates);
    - `red_large` (when `large_share` > 0): the same for the consumer's *large* entries
      red-flushed after entry — entries among the dearest `large_share` of the campaign's
      entries, the tax offices' 大额红冲 — against ordinary consumers' rate of such
      reversals per entry (a claimer with a few returns of dear goods, or a long ordinary
      history, is diluted in the count of all reversals but not here);
    - `linked_returns` (when `link_min` > 0): consumers linked by returning at the same sellers
      (reversals at each common seller counted as the smaller of the two, summed, at least
      `link_min`; sellers in `skip_sellers`, whose own reversal test is reported, do not link:
      their reversals are the seller's doing), grouped into connected components; each group's
      pooled reversals among its pooled entries are tested against the ordinary consumers'
      spread (one shared rate for the group is a wider spread than independent people's:
      conservative).

    Returns the consumers' tests (above the mean rate with two or more reversals) and the
    groups (every group of two or more; `test.reported` when selected)."""
    invoice = Invoice._meta.db_table
    window = f"""
        FROM {invoice} i
        WHERE i.campaign_id = %(campaign)s AND i.status = ANY(%(entered)s)
          AND i.submitted_at >= %(start)s AND i.submitted_at < %(as_of)s
    """
    large_total = None
    if large_share > 0:
        cursor.execute(
            f"SELECT percentile_cont(%(q)s) WITHIN GROUP (ORDER BY i.total) {window}",
            {**params, "q": 1.0 - large_share},
        )
        large_total = cursor.fetchone()[0]
    cursor.execute("DROP TABLE IF EXISTS risk_cr")
    cursor.execute(
        f"""
        CREATE TEMP TABLE risk_cr ON COMMIT DROP AS
        SELECT i.consumer_id AS id, count(*) AS n,
               count(*) FILTER (WHERE i.status = 'reversed') AS r,
               count(*) FILTER (WHERE i.status = 'reversed' AND i.total >= %(large)s) AS rl,
               count(*) FILTER (WHERE i.total >= %(large)s) AS nl
        {window}
        GROUP BY i.consumer_id HAVING count(*) >= %(min_n)s
        """,
        {**params, "min_n": CONSUMER_RED_MIN_INVOICES, "large": large_total},
    )
    consumers = cursor.rowcount
    prior = _consumer_reversal_prior(cursor)
    tests: dict[int, list[_Reversals]] = defaultdict(list)
    pvalues: dict[tuple[str, int], float] = {}
    count = consumers
    for subject_id, test in _reversal_pvalues(cursor, "risk_cr", prior).items():
        tests[subject_id].append(test)
    if large_total is not None:
        # Large reversals per entry are rarer than reversals: the least mean rate assumed
        # shrinks with the share; with too few large reversals to fit (a small or young
        # campaign) large entries are assumed to be returned as often as the others.
        large_prior = _consumer_reversal_prior(
            cursor,
            "rl",
            RED_PRIOR_MIN_RATE * large_share,
            fallback_mean=prior[0] / (prior[0] + prior[1]) * large_share,
        )
        found = _reversal_pvalues(cursor, "risk_cr", large_prior, column="rl", feature="red_large")
        for subject_id, test in found.items():
            tests[subject_id].append(test)
        # Only consumers with two or more large entries can have the two large reversals the
        # test reports at all: the others are not hypotheses of this family. Which entries are
        # large depends on the amounts, not on whether they were returned, so leaving the
        # untestable ones out of the count keeps the false-discovery rate (and stops them from
        # diluting the threshold of every other test in the family).
        cursor.execute("SELECT count(*) FROM risk_cr WHERE nl >= 2")
        count += cursor.fetchone()[0]
    for subject_id, found in tests.items():
        for test in found:
            pvalues[(test.feature, subject_id)] = test.p
    groups = _returner_groups(cursor, params, link_min, skip_sellers, prior) if link_min else []
    for index, group in enumerate(groups):
        pvalues[("linked_returns", index)] = group.test.p
    count += len(groups)
    selected = benjamini_hochberg(pvalues, fdr, count)
    for feature, key in selected:
        if feature == "linked_returns":
            groups[key] = replace(groups[key], test=replace(groups[key].test, reported=True))
        else:
            tests[key] = [
                replace(t, reported=True) if t.feature == feature else t for t in tests[key]
            ]
    return dict(tests), groups


def _returner_groups(
    cursor, params: dict, link_min: int, skip_sellers, prior: tuple[float, float]
) -> list[_Returners]:
    """Connected components of consumers linked by returns at the same sellers (see
    `_consumer_reversal_evidence`), each with its pooled test (not yet `reported`). Only
    consumers with `link_min` or more reversals can be linked, which keeps the self-join small."""
    invoice = Invoice._meta.db_table
    cursor.execute(
        f"""
        WITH rc AS (
            SELECT i.consumer_id, i.merchant_id, count(*) AS k
            FROM {invoice} i
            WHERE i.campaign_id = %(campaign)s AND i.status = 'reversed'
              AND i.merchant_id IS NOT NULL AND NOT (i.merchant_id = ANY(%(skip)s))
              AND i.submitted_at >= %(start)s AND i.submitted_at < %(as_of)s
            GROUP BY 1, 2
        ),
        returners AS (SELECT consumer_id FROM rc GROUP BY 1 HAVING sum(k) >= %(link)s),
        rr AS (SELECT rc.* FROM rc JOIN returners USING (consumer_id))
        SELECT a.consumer_id, b.consumer_id, array_agg(a.merchant_id)
        FROM rr a JOIN rr b ON b.merchant_id = a.merchant_id AND b.consumer_id > a.consumer_id
        GROUP BY 1, 2 HAVING sum(least(a.k, b.k)) >= %(link)s
        """,  # noqa: S608
        {**params, "skip": sorted(skip_sellers), "link": link_min},
    )
    parent: dict[int, int] = {}
    find = partial(_union_find_root, parent)

    shared: dict[tuple[int, int], list[int]] = {}
    for one, other, sellers in cursor.fetchall():
        shared[(one, other)] = sellers
        a, b = find(one), find(other)
        if a != b:
            parent[max(a, b)] = min(a, b)
    if not parent:
        return []
    members_of: dict[int, list[int]] = defaultdict(list)
    for node in parent:
        members_of[find(node)].append(node)
    sellers_of: dict[int, set[int]] = defaultdict(set)
    for (one, _other), sellers in shared.items():
        sellers_of[find(one)].update(sellers)
    cursor.execute(
        f"""
        SELECT i.consumer_id, count(*), count(*) FILTER (WHERE i.status = 'reversed')
        FROM {invoice} i
        WHERE i.campaign_id = %(campaign)s AND i.status = ANY(%(entered)s)
          AND i.submitted_at >= %(start)s AND i.submitted_at < %(as_of)s
          AND i.consumer_id = ANY(%(ids)s)
        GROUP BY 1
        """,  # noqa: S608
        {**params, "ids": sorted(parent)},
    )
    counts = {consumer: (int(n), int(r)) for consumer, n, r in cursor.fetchall()}
    a, b = prior
    groups = []
    for root, members in sorted(members_of.items()):
        n = sum(counts[m][0] for m in members)
        r = sum(counts[m][1] for m in members)
        p = beta_binomial_sf(r, n, a, b)
        test = _Reversals(n, r, p, z_of_p(p), a / (a + b), False, "linked_returns")
        groups.append(_Returners(sorted(members), len(sellers_of[root]), test))
    return groups


def _consumer_rows(cursor, params: dict, thresholds: Thresholds) -> tuple[list[dict], int]:
    invoice = Invoice._meta.db_table
    where = f"""
        FROM {invoice} i
        WHERE i.campaign_id = %(campaign)s AND i.status = ANY(%(entered)s)
          AND i.submitted_at >= %(start)s AND i.submitted_at < %(as_of)s
    """
    cursor.execute("DROP TABLE IF EXISTS risk_c")
    cursor.execute(
        f"""
        CREATE TEMP TABLE risk_c ON COMMIT DROP AS
        SELECT i.consumer_id AS id, '*'::text AS peer,
               count(*)::float8 AS volume,
               avg(CASE WHEN i.total >= %(min_total)s AND i.total < %(near_min)s
                        THEN 1.0 ELSE 0.0 END)::float8 AS near_min_share,
               avg(CASE WHEN i.issued_at IS NOT NULL
                         AND i.submitted_at - i.issued_at <= %(fast)s
                        THEN 1.0 ELSE 0.0 END)::float8 AS fast_share,
               avg(CASE WHEN i.total %% 10 = 0 THEN 1.0 ELSE 0.0 END)::float8 AS round_share,
               0.0::float8 AS near_cap_share, 0.0::float8 AS top_seller_share,
               1 AS active_days, 0.0::float8 AS cap_days, 0.0::float8 AS near_cap_streak,
               0.0::float8 AS win_excess, 0 AS wins, 0.0::float8 AS expected_wins,
               0.0::float8 AS draw_win_excess, 0 AS draw_wins,
               0.0::float8 AS draw_expected_wins
        {where}
        GROUP BY i.consumer_id
        HAVING count(*) >= %(min_n)s
        """,
        {**params, "min_n": CONSUMER_MIN_INVOICES},
    )
    scored = cursor.rowcount
    cursor.execute("CREATE INDEX ON risk_c (id)")
    cursor.execute(
        f"""
        UPDATE risk_c c SET near_cap_share = d.near::float8 / c.volume, active_days = d.days,
                            cap_days = d.capped FROM (
            SELECT consumer_id, count(*) AS days,
                   coalesce(sum(k) FILTER (WHERE k >= %(near_cap)s), 0) AS near,
                   count(*) FILTER (WHERE k >= %(near_cap)s + 1) AS capped
            FROM (
                SELECT i.consumer_id, (i.submitted_at AT TIME ZONE %(tz)s)::date AS day,
                       count(*) AS k
                {where}
                GROUP BY 1, 2
            ) x GROUP BY consumer_id
        ) d WHERE d.consumer_id = c.id
        """,  # noqa: S608
        params,
    )
    # "Near every cap every day": the longest run of consecutive calendar days each at or one
    # below the daily cap (gaps and islands: day minus its rank is constant along a run).
    cursor.execute(
        f"""
        UPDATE risk_c c SET near_cap_streak = s.streak FROM (
            SELECT consumer_id, max(run)::float8 AS streak FROM (
                SELECT consumer_id, count(*) AS run FROM (
                    SELECT consumer_id, day - (row_number() OVER (
                               PARTITION BY consumer_id ORDER BY day))::int AS island
                    FROM (
                        SELECT i.consumer_id, (i.submitted_at AT TIME ZONE %(tz)s)::date AS day
                        {where}
                        GROUP BY 1, 2 HAVING count(*) >= %(near_cap)s
                    ) d
                ) x GROUP BY consumer_id, island
            ) r GROUP BY consumer_id
        ) s WHERE s.consumer_id = c.id
        """,  # noqa: S608
        params,
    )
    # Instant wins vs what chance predicts: each entry drew at that day's odds, which every
    # entrant of the campaign shared, so the chance of one entry is the share of winning draws
    # among the *other* entrants' draws of that day (leave-one-out: a consumer's own wins do
    # not raise their own expectation), and a consumer's expected wins the sum over their
    # entries. The excess is the one-sided Poisson z with a continuity correction,
    # (wins − ½ − expected) / √expected.
    cursor.execute(
        f"""
        WITH mine AS (
            SELECT i.consumer_id, (i.submitted_at AT TIME ZONE %(tz)s)::date AS day,
                   count(*) AS n, count(*) FILTER (WHERE r.won) AS w
            FROM {invoice} i JOIN {InstantDrawResult._meta.db_table} r ON r.invoice_id = i.id
            WHERE i.campaign_id = %(campaign)s AND i.status = ANY(%(entered)s)
              AND i.submitted_at >= %(start)s AND i.submitted_at < %(as_of)s
            GROUP BY 1, 2
        ),
        daily AS (SELECT day, sum(n) AS n, sum(w) AS w FROM mine GROUP BY day)
        UPDATE risk_c c SET wins = x.wins, expected_wins = x.expected,
            win_excess = greatest(0.0, (x.wins - 0.5 - x.expected)
                                       / sqrt(greatest(x.expected, %(min_expected)s)))
        FROM (
            SELECT m.consumer_id, sum(m.w) AS wins,
                   sum(m.n * (d.w - m.w)::float8 / greatest(d.n - m.n, 1)) AS expected
            FROM mine m JOIN daily d ON d.day = m.day
            GROUP BY m.consumer_id
        ) x WHERE x.consumer_id = c.id
        """,  # noqa: S608
        {**params, "min_expected": MIN_EXPECTED_WINS},
    )
    # Periodic draws, the same construction: in a drawn draw every ticket had the same chance,
    # winners / tickets, so one consumer's expected wins in a draw are their tickets times the
    # share of winning tickets among the *other* tickets of that draw (leave-one-out), summed
    # over the draws whose entry window overlaps the model's window.
    draw, ticket, winner = (
        PeriodicDraw._meta.db_table,
        DrawTicket._meta.db_table,
        DrawWinner._meta.db_table,
    )
    cursor.execute(
        f"""
        WITH mine AS (
            SELECT i.consumer_id, k.draw_id, count(*) AS n, count(w.id) AS w
            FROM {draw} d
            JOIN {ticket} k ON k.draw_id = d.id
            JOIN {invoice} i ON i.id = k.invoice_id
            LEFT JOIN {winner} w ON w.ticket_id = k.id
            WHERE d.campaign_id = %(campaign)s AND d.status = ANY(%(drawn)s)
              AND d.window_ends_at > %(start)s AND d.window_starts_at < %(as_of)s
            GROUP BY 1, 2
        ),
        per_draw AS (SELECT draw_id, sum(n) AS n, sum(w) AS w FROM mine GROUP BY draw_id)
        UPDATE risk_c c SET draw_wins = x.wins, draw_expected_wins = x.expected,
            draw_win_excess = greatest(0.0, (x.wins - 0.5 - x.expected)
                                            / sqrt(greatest(x.expected, %(min_expected)s)))
        FROM (
            SELECT m.consumer_id, sum(m.w) AS wins,
                   sum(m.n * (d.w - m.w)::float8 / greatest(d.n - m.n, 1)) AS expected
            FROM mine m JOIN per_draw d ON d.draw_id = m.draw_id
            GROUP BY m.consumer_id
        ) x WHERE x.consumer_id = c.id
        """,  # noqa: S608
        {**params, "min_expected": MIN_EXPECTED_WINS, "drawn": list(DRAWN_STATUSES)},
    )
    cursor.execute(
        f"""
        UPDATE risk_c c SET top_seller_share = s.top / c.volume FROM (
            SELECT consumer_id, max(k)::float8 AS top FROM (
                SELECT i.consumer_id, i.seller_uscc, count(*) AS k
                {where}
                GROUP BY 1, 2
            ) x GROUP BY consumer_id
        ) s WHERE s.consumer_id = c.id
        """,  # noqa: S608
        params,
    )
    shares = ", ".join(
        [
            *(
                f"{f} = {_wilson(f, 'volume')}"
                for f in ("near_min_share", "fast_share", "round_share", "top_seller_share")
            ),
            f"near_cap_share = {_wilson('near_cap_share', 'volume')}",
        ]
    )
    cursor.execute(f"UPDATE risk_c SET {shares}")  # noqa: S608 - module constants
    zs = " OR ".join(f"z_{f} >= %(feature_z)s" for f, _ in CONSUMER_FEATURES)
    rows = _fetch(
        cursor,
        f"SELECT * FROM ({_z_sql('risk_c', CONSUMER_FEATURES, 'peer')}) s WHERE {zs}",  # noqa: S608
        {"feature_z": thresholds.feature_z},
    )
    return rows, scored


def _phone_block_threshold(cursor, params: dict) -> tuple[int, float]:
    """(consumers a phone block must hold to link them, the chance occupancy λ). Among the
    consumers who entered in the window, blocks are occupied like a Poisson count with the
    observed density (fitted on the occupied blocks: zero-truncated); the threshold is the
    smallest count that fewer than PHONE_BLOCK_ALPHA of the occupied blocks reach by chance."""
    invoice, consumer = Invoice._meta.db_table, Consumer._meta.db_table
    cursor.execute("DROP TABLE IF EXISTS risk_pb")
    cursor.execute(
        f"""
        CREATE TEMP TABLE risk_pb ON COMMIT DROP AS
        SELECT c.id AS consumer_id, c.phone_block_index AS block
        FROM {consumer} c
        WHERE c.phone_block_index IS NOT NULL AND c.id IN (
            SELECT i.consumer_id FROM {invoice} i
            WHERE i.campaign_id = %(campaign)s
              AND i.submitted_at >= %(start)s AND i.submitted_at < %(as_of)s)
        """,  # noqa: S608
        params,
    )
    # The density is fitted without the most crowded 1 % of blocks (the suspects must not
    # define what is ordinary); the multiplicity is every occupied block.
    cursor.execute(
        """
        WITH occ AS (SELECT block, count(*) AS k FROM risk_pb GROUP BY block),
        cut AS (SELECT percentile_cont(0.99) WITHIN GROUP (ORDER BY k) AS c FROM occ)
        SELECT (SELECT count(*) FROM occ), count(*), sum(k) FROM occ, cut WHERE k <= cut.c
        """
    )
    blocks, kept, consumers = cursor.fetchone()
    if not blocks or not kept:
        return PHONE_BLOCK_MIN, 0.0
    lam = zero_truncated_poisson_rate(float(consumers) / kept)
    occupied = -math.expm1(-lam) if lam > 0 else 1.0
    k = PHONE_BLOCK_MIN
    while blocks * poisson_sf(k, lam) / occupied > PHONE_BLOCK_ALPHA:
        k += 1
    return k, lam


def _clusters(cursor, params: dict) -> list[tuple[list[int], int]]:
    """Connected components of consumers linked by a shared device, a shared payout account
    or an improbably crowded phone block, with the largest such block in each (0: none)."""
    invoice, account = Invoice._meta.db_table, PayoutAccount._meta.db_table
    block_min, _lam = _phone_block_threshold(cursor, params)
    cursor.execute(
        f"""
        SELECT DISTINCT i.device_hash, i.consumer_id
        FROM {invoice} i
        WHERE i.campaign_id = %(campaign)s AND i.device_hash <> ''
          AND i.submitted_at >= %(start)s AND i.submitted_at < %(as_of)s
          AND i.device_hash IN (
              SELECT device_hash FROM {invoice}
              WHERE campaign_id = %(campaign)s AND device_hash <> ''
                AND submitted_at >= %(start)s AND submitted_at < %(as_of)s
              GROUP BY device_hash HAVING count(DISTINCT consumer_id) > 1)
        UNION ALL
        SELECT a.account_no_index, a.consumer_id FROM {account} a
        WHERE a.account_no_index IN (
            SELECT account_no_index FROM {account} WHERE account_no_index IS NOT NULL
            GROUP BY account_no_index HAVING count(DISTINCT consumer_id) > 1)
        UNION ALL
        SELECT 'p:' || block, consumer_id FROM risk_pb
        WHERE block IN (SELECT block FROM risk_pb GROUP BY block HAVING count(*) >= %(k)s)
        """,  # noqa: S608
        {**params, "k": block_min},
    )
    parent: dict[int, int] = {}
    find = partial(_union_find_root, parent)

    first_of: dict[str, int] = {}
    block_size: dict[str, int] = defaultdict(int)
    block_of: dict[int, str] = {}
    for key, consumer_id in cursor.fetchall():
        if key.startswith("p:"):
            block_size[key] += 1
            block_of[consumer_id] = key
        find(consumer_id)
        other = first_of.setdefault(key, consumer_id)
        if other != consumer_id:
            a, b = find(other), find(consumer_id)
            if a != b:
                parent[max(a, b)] = min(a, b)
    groups: dict[int, list[int]] = defaultdict(list)
    for node in parent:
        groups[find(node)].append(node)
    return [
        (
            sorted(members),
            max((block_size[block_of[m]] for m in members if m in block_of), default=0),
        )
        for members in groups.values()
        if len(members) >= CLUSTER_MIN
    ]


@dataclass
class _Alert:
    kind: str
    key: str
    score: Decimal
    features: list
    merchant_id: int | None = None
    consumer_id: int | None = None
    members: list | None = None


def _store_alerts(run: BatchRun, alerts: list[_Alert]) -> None:
    """One open alert per subject: refresh the open ones, add the new ones."""
    open_alerts = {
        (a.subject_kind, a.subject_key): a
        for a in RiskAlert.objects.filter(campaign_id=run.campaign_id, status=AlertStatus.OPEN)
    }
    new, changed = [], []
    for item in alerts:
        existing = open_alerts.get((item.kind, item.key))
        if existing is not None:
            existing.run, existing.score, existing.features = run, item.score, item.features
            existing.members = item.members or []
            changed.append(existing)
        else:
            new.append(
                RiskAlert(
                    run=run,
                    campaign_id=run.campaign_id,
                    subject_kind=item.kind,
                    subject_key=item.key,
                    merchant_id=item.merchant_id,
                    consumer_id=item.consumer_id,
                    score=item.score,
                    features=item.features,
                    members=item.members or [],
                )
            )
    RiskAlert.objects.bulk_update(changed, ["run", "score", "features", "members"], batch_size=500)
    RiskAlert.objects.bulk_create(new, batch_size=1000)


def batch_run(*, campaign: Campaign, as_of: datetime | None = None) -> BatchRun:
    """Score one campaign's merchants and consumers as of `as_of` (default now) and raise
    alerts. One transaction: either the whole run's alerts and baselines land, or none."""
    if connection.vendor != "postgresql":
        raise RuntimeError("the nightly risk model needs PostgreSQL")
    as_of = as_of or timezone.now()
    started = time.monotonic()
    config = risk_settings_get()
    thresholds = Thresholds(
        float(config.alert_z), float(config.feature_z), int(config.alert_min_features)
    )
    params = {
        "campaign": campaign.pk,
        "as_of": as_of,
        "start": as_of - timedelta(days=WINDOW_DAYS),
        "recent": as_of - timedelta(days=RECENT_DAYS),
        "recent_days": float(RECENT_DAYS),
        "min_total": campaign.min_total,
        "near_min": campaign.min_total * (1 + NEAR_MIN_BAND),
        "fast": timedelta(seconds=FAST_SECONDS),
        "entered": [s.value for s in ENTERED],
        "tz": "Asia/Shanghai",
        "near_cap": max(1, (campaign.cap_per_day or 10**6) - 1),
        "now": timezone.now(),
    }
    alerts: list[_Alert] = []
    with transaction.atomic():
        run = BatchRun.objects.create(campaign=campaign, as_of=as_of, started_at=timezone.now())
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL work_mem = '256MB'")
            cursor.execute("SET LOCAL jit = off")
            cursor.execute(
                f"SELECT count(*) FROM {Invoice._meta.db_table} WHERE campaign_id = %(campaign)s "  # noqa: S608
                "AND status = ANY(%(entered)s) AND submitted_at >= %(start)s "
                "AND submitted_at < %(as_of)s",
                params,
            )
            run.invoices = cursor.fetchone()[0]
            merchant_rows, run.merchants = _merchant_rows(cursor, params, thresholds)
            reversals = _reversal_evidence(cursor, params, float(config.reversal_fdr))
            consumer_rows, run.consumers = _consumer_rows(cursor, params, thresholds)
            claims, returners = _consumer_reversal_evidence(
                cursor,
                params,
                float(config.reversal_fdr),
                large_share=float(config.reversal_large_share),
                link_min=int(config.reversal_link_min),
                skip_sellers={k for k, v in reversals.items() if v.reported},
            )
            claimers = {k for k, found in claims.items() if any(t.reported for t in found)}
            for group in returners:
                if group.test.reported:
                    claimers.update(group.members)
            reversals = _reversals_without_claimers(
                cursor, params, reversals, claimers, float(config.reversal_fdr)
            )
            clusters = _clusters(cursor, params)
        for row, strong, score, items in _explained_with_reversals(
            merchant_rows, reversals, MERCHANT_FEATURES, thresholds
        ):
            MerchantBaseline.objects.filter(merchant_id=row["id"]).update(
                score=score, features={i["feature"]: i["z"] for i in items}
            )
            if strong:
                alerts.append(
                    _Alert(
                        SubjectKind.MERCHANT,
                        str(row["id"]),
                        Decimal(str(score)),
                        items,
                        merchant_id=row["id"],
                    )
                )
        for row, strong, score, items in _explained_with_reversals(
            consumer_rows, claims, CONSUMER_FEATURES, thresholds
        ):
            if strong:
                alerts.append(
                    _Alert(
                        SubjectKind.CONSUMER,
                        str(row["id"]),
                        Decimal(str(score)),
                        items,
                        consumer_id=row["id"],
                    )
                )
        for group in returners:
            if group.test.reported:
                alerts.append(
                    _Alert(
                        SubjectKind.CLUSTER,
                        f"returns:{group.members[0]}",
                        Decimal(str(round(group.test.z, 2))),
                        group.items(),
                        consumer_id=group.members[0],
                        members=group.members[:200],
                    )
                )
        for members, block in clusters:
            size = len(members)
            explanation = [
                {"feature": "linked_consumers", "value": size, "peer_median": 1, "z": size}
            ]
            if block:  # consumers in one phone block, more than chance puts there
                explanation.append(
                    {"feature": "shared_phone_block", "value": block, "peer_median": 1, "z": block}
                )
            alerts.append(
                _Alert(
                    SubjectKind.CLUSTER,
                    str(members[0]),
                    Decimal(str(round(math.log2(size) * 4, 2))),
                    explanation,
                    consumer_id=members[0],
                    members=members[:200],
                )
            )
        _store_alerts(run, alerts)
        run.alerts = len(alerts)
        run.finished_at = timezone.now()
        run.seconds = round(time.monotonic() - started, 3)
        run.save()
    return run


def batch_run_active_campaigns(*, as_of: datetime | None = None) -> list[BatchRun]:
    return [
        batch_run(campaign=campaign, as_of=as_of)
        for campaign in Campaign.objects.filter(status=CampaignStatus.ACTIVE)
    ]
