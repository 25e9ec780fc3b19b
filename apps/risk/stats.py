"""Small exact statistics for the nightly model (pure Python, no numeric libraries).

- `beta_binomial_sf`: P(X ≥ k) when X ~ Binomial(n, p) and p itself varies between subjects as
  Beta(a, b) — the tail of a count (reversals among a seller's entries) under the spread of
  rates that ordinary peers show; exact for small samples, where a normal approximation of a
  share would call three reversals in eight entries a miracle.
- `beta_binomial_low` / `fit_censored_beta`: the Beta spread of rates fitted by maximum
  likelihood on counts of subjects with 0, 1 and 2-or-more events (censored at two, so that a
  few extreme subjects cannot widen the spread of what is ordinary).
- `z_of_p`: the one-sided normal quantile of a p-value (comparable with the other z-scores).
- `benjamini_hochberg`: which of many tests to report so that the expected share of false
  reports among them stays below `q`.
- `zero_truncated_poisson_rate` / `poisson_sf`: how many consumers an occupied phone block
  holds by chance.
"""

from __future__ import annotations

import math
from statistics import NormalDist

_NORMAL = NormalDist()
# Terms below this share of the running sum no longer change a tail probability.
_NEGLIGIBLE = 1e-12


def _log_beta(x: float, y: float) -> float:
    return math.lgamma(x) + math.lgamma(y) - math.lgamma(x + y)


def beta_binomial_sf(k: int, n: int, a: float, b: float) -> float:
    """P(X ≥ k) for X ~ BetaBinomial(n, a, b). Sums the upper tail term by term; meant for
    counts above the mean (the terms then fall away quickly)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    log_norm = _log_beta(a, b)
    log_n = math.lgamma(n + 1)
    total = 0.0
    for j in range(k, n + 1):
        term = math.exp(
            log_n
            - math.lgamma(j + 1)
            - math.lgamma(n - j + 1)
            + _log_beta(j + a, n - j + b)
            - log_norm
        )
        total += term
        if j > k + 3 and term < total * _NEGLIGIBLE:
            break
    return min(1.0, total)


def beta_binomial_low(n: int, a: float, b: float) -> tuple[float, float]:
    """(P(X = 0), P(X = 1)) for X ~ BetaBinomial(n, a, b)."""
    log_norm = _log_beta(a, b)
    p0 = math.exp(_log_beta(a, n + b) - log_norm)
    p1 = n * math.exp(_log_beta(a + 1, n - 1 + b) - log_norm) if n >= 1 else 0.0
    return p0, p1


def fit_censored_beta(
    cells: list[tuple[int, int, int, int]], concentration_range: tuple[float, float]
) -> tuple[float, float]:
    """(mean, concentration) of the Beta spread of rates that maximises the likelihood of
    `cells`: (entries n, subjects with 0, with 1, with 2 or more reversals). A grid over the
    mean (log scale, 1e-4 to 0.5) and the concentration a + b (log scale, within
    `concentration_range`), refined twice around the best point."""
    low_c, high_c = concentration_range

    def loglik(mu: float, conc: float) -> float:
        a, b = mu * conc, (1 - mu) * conc
        total = 0.0
        for n, k0, k1, k2 in cells:
            p0, p1 = beta_binomial_low(n, a, b)
            rest = max(1e-300, 1.0 - p0 - p1)
            total += k0 * math.log(max(p0, 1e-300)) + k1 * math.log(max(p1, 1e-300))
            total += k2 * math.log(rest)
        return total

    lo_mu, hi_mu = math.log(1e-4), math.log(0.5)
    lo_c, hi_c = math.log(low_c), math.log(high_c)
    best = (0.0, 0.0)
    for _round in range(3):
        grid = [
            (lo_mu + (hi_mu - lo_mu) * i / 24, lo_c + (hi_c - lo_c) * j / 24)
            for i in range(25)
            for j in range(25)
        ]
        best = max(grid, key=lambda g: loglik(math.exp(g[0]), math.exp(g[1])))
        step_mu, step_c = (hi_mu - lo_mu) / 12, (hi_c - lo_c) / 12
        lo_mu, hi_mu = best[0] - step_mu, min(math.log(0.5), best[0] + step_mu)
        lo_c = max(math.log(low_c), best[1] - step_c)
        hi_c = min(math.log(high_c), best[1] + step_c)
    return math.exp(best[0]), math.exp(best[1])


def z_of_p(p: float) -> float:
    """One-sided z of a p-value; 0 when the observation is not in the upper half."""
    if p >= 0.5:
        return 0.0
    return -_NORMAL.inv_cdf(max(p, 1e-300))


def benjamini_hochberg(pvalues: dict, q: float, tests: int) -> set:
    """Keys selected by the Benjamini–Hochberg procedure at false-discovery rate `q` among
    `tests` hypotheses (`pvalues` may hold only the smallest ones: the others are not
    selected anyway)."""
    ranked = sorted(pvalues.items(), key=lambda item: item[1])
    tests = max(tests, len(ranked))
    cut = 0
    for rank, (_key, p) in enumerate(ranked, start=1):
        if p <= rank * q / tests:
            cut = rank
    return {key for key, _p in ranked[:cut]}


def zero_truncated_poisson_rate(mean_occupied: float) -> float:
    """λ of a Poisson count whose mean over the non-zero cases is `mean_occupied`
    (solves λ / (1 − e^−λ) = m by bisection; m ≤ 1 means no repeats at all)."""
    if mean_occupied <= 1.0:
        return 0.0
    low, high = 1e-9, max(2.0, mean_occupied * 2)
    for _ in range(100):
        mid = (low + high) / 2
        if mid / -math.expm1(-mid) < mean_occupied:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def poisson_sf(k: int, lam: float) -> float:
    """P(X ≥ k) for X ~ Poisson(λ)."""
    if k <= 0:
        return 1.0
    if lam <= 0:
        return 0.0
    term = math.exp(-lam)
    below = term
    for j in range(1, k):
        term *= lam / j
        below += term
    return max(0.0, 1.0 - below) if below < 0.999 else _poisson_upper(k, lam)


def _poisson_upper(k: int, lam: float) -> float:
    """The upper tail summed directly (no cancellation when it is tiny)."""
    term = math.exp(-lam + k * math.log(lam) - math.lgamma(k + 1))
    total, j = 0.0, k
    while True:
        total += term
        j += 1
        term *= lam / j
        if term <= total * _NEGLIGIBLE:  # also when the terms underflow to zero
            return total
