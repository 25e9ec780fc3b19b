"""The small exact statistics of the nightly model, against values computed by hand."""

from __future__ import annotations

import math

from apps.risk.stats import (
    benjamini_hochberg,
    beta_binomial_low,
    beta_binomial_sf,
    fit_censored_beta,
    poisson_sf,
    z_of_p,
    zero_truncated_poisson_rate,
)


def test_beta_binomial_tail_matches_the_direct_sum():
    # BetaBinomial(n=3, a=1, b=1) is uniform on 0..3.
    assert math.isclose(beta_binomial_sf(2, 3, 1.0, 1.0), 0.5)
    assert beta_binomial_sf(0, 3, 1.0, 1.0) == 1.0 and beta_binomial_sf(4, 3, 1.0, 1.0) == 0.0
    # A very concentrated prior approaches the binomial: P(X ≥ 2 | n=4, p=0.1) = 0.0523.
    assert math.isclose(beta_binomial_sf(2, 4, 0.1 * 1e6, 0.9 * 1e6), 0.0523, abs_tol=1e-4)


def test_spread_of_ordinary_rates_makes_small_counts_less_surprising():
    spread, exact = (1.3, 98.7), (1.3e6, 98.7e6)  # the same mean rate 1.3 %
    assert beta_binomial_sf(3, 10, *spread) > beta_binomial_sf(3, 10, *exact)


def test_z_of_p():
    assert z_of_p(0.5) == 0.0 and z_of_p(0.9) == 0.0
    assert math.isclose(z_of_p(0.025), 1.96, abs_tol=1e-3)
    assert z_of_p(1e-300) > 37


def test_benjamini_hochberg_selects_the_step_up_set():
    # 10 tests at q = 0.1: thresholds 0.01, 0.02, 0.03, ...; the third passes, so all three.
    selected = benjamini_hochberg({"a": 0.001, "b": 0.025, "c": 0.029, "d": 0.5}, 0.1, 10)
    assert selected == {"a", "b", "c"}
    assert benjamini_hochberg({"a": 0.02}, 0.1, 10) == set()


def test_poisson_tail_and_zero_truncated_rate():
    assert math.isclose(poisson_sf(1, 2.0), 1 - math.exp(-2))
    assert math.isclose(poisson_sf(3, 0.01), 0.01**3 / 6, rel_tol=0.01)
    assert 0 < poisson_sf(200, 0.001) < 1e-300 or poisson_sf(200, 0.001) == 0.0
    assert zero_truncated_poisson_rate(1.0) == 0.0
    lam = zero_truncated_poisson_rate(2.0)
    assert math.isclose(lam / (1 - math.exp(-lam)), 2.0, rel_tol=1e-9)


def test_beta_binomial_low_counts():
    # Uniform on 0..3 again; and n = 0 has no events for sure.
    p0, p1 = beta_binomial_low(3, 1.0, 1.0)
    assert math.isclose(p0, 0.25) and math.isclose(p1, 0.25)
    assert beta_binomial_low(0, 2.0, 50.0) == (1.0, 0.0)


def _expected_cells(mu: float, conc: float, subjects: int) -> list[tuple[int, int, int, int]]:
    cells = []
    for n in range(4, 21):
        p0, p1 = beta_binomial_low(n, mu * conc, (1 - mu) * conc)
        k0, k1 = round(subjects * p0), round(subjects * p1)
        cells.append((n, k0, k1, subjects - k0 - k1))
    return cells


def test_the_censored_fit_recovers_mean_and_spread():
    for mu, conc in ((0.012, 100.0), (0.03, 25.0), (0.01, 800.0)):
        got_mu, got_conc = fit_censored_beta(_expected_cells(mu, conc, 200_000), (10.0, 2000.0))
        assert math.isclose(got_mu, mu, rel_tol=0.03)
        assert math.isclose(got_conc, conc, rel_tol=0.15)


def test_a_few_extreme_subjects_barely_move_the_censored_fit():
    ordinary = _expected_cells(0.012, 100.0, 10_000)
    # Fifty claimers with most of their entries reversed fall in the "2 or more" class only.
    claimers = [(n, k0, k1, k2 + (50 if n == 10 else 0)) for n, k0, k1, k2 in ordinary]
    mu, conc = fit_censored_beta(claimers, (10.0, 2000.0))
    assert math.isclose(mu, 0.012, rel_tol=0.15) and conc > 40
