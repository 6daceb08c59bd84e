"""Tests for jaxreg.lab.stats: t quantiles against tabulated values, intervals, verdicts."""

import math
import random

import pytest

from jaxreg.lab import stats

# Tabulated two-sided 95% critical values t_{0.975, df} (any statistics table).
T_975 = {1: 12.7062, 2: 4.3027, 4: 2.7764, 9: 2.2622, 30: 2.0423, 1000: 1.9623}


@pytest.mark.parametrize("df,expected", sorted(T_975.items()))
def test_t_quantile_matches_tables(df, expected):
    assert stats.t_quantile(0.975, df) == pytest.approx(expected, abs=1e-4)
    assert stats.t_quantile(0.025, df) == pytest.approx(-expected, abs=1e-4)


def test_t_cdf_inverts_quantile_for_non_integer_df():
    for df in (1.5, 3.7, 12.25):
        for p in (0.6, 0.9, 0.99):
            assert stats.t_cdf(stats.t_quantile(p, df), df) == pytest.approx(p, abs=1e-10)


def test_mean_interval_closed_form():
    iv = stats.mean_interval([1.0, 2.0, 3.0, 4.0, 5.0])
    half = 2.7764451051977987 * math.sqrt(2.5) / math.sqrt(5)
    assert iv.mean == 3.0 and iv.n == 5
    assert iv.low == pytest.approx(3.0 - half, rel=1e-9)
    assert iv.high == pytest.approx(3.0 + half, rel=1e-9)


def test_mean_interval_covers_the_mean_about_95_percent():
    rng = random.Random(0)
    trials, hits = 2000, 0
    for _ in range(trials):
        iv = stats.mean_interval([rng.gauss(1.0, 2.0) for _ in range(5)])
        hits += iv.low <= 1.0 <= iv.high
    # Binomial(2000, 0.95): sd ~ 0.0049, so 0.93..0.97 is beyond 4 sd either way.
    assert 0.93 < hits / trials < 0.97


def test_difference_verdicts():
    same = stats.difference([0.80, 0.82, 0.81, 0.83], [0.81, 0.80, 0.82, 0.83])
    assert same.verdict == "consistent" and same.method == "welch"
    apart = stats.difference([0.90, 0.91, 0.92], [0.80, 0.81, 0.82])
    assert apart.verdict == "different"
    assert apart.interval.low > 0
    paired = stats.difference([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], paired=True)
    assert paired.verdict == "consistent" and paired.interval.mean == 0.0
    single = stats.difference([0.9], [0.8])
    assert single.verdict == "no spread measured"


def test_paired_beats_welch_when_pairs_share_noise():
    base = [0.70, 0.80, 0.90, 0.75]
    a = [v + 0.01 for v in base]
    assert stats.difference(a, base, paired=True).verdict == "different"
    assert stats.difference(a, base).verdict == "consistent"


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: stats.mean_interval([]), "values is empty"),
        (lambda: stats.mean_interval([1.0, float("nan")]), "non-finite"),
        (lambda: stats.mean_interval([1.0, 2.0], level=1.5), "level must be in"),
        (lambda: stats.difference([1.0], [1.0, 2.0], paired=True), "equal lengths"),
        (lambda: stats.t_quantile(1.0, 3), "p must be in"),
        (lambda: stats.t_cdf(0.0, 0), "df must be"),
    ],
)
def test_bad_input_names_the_parameter(call, match):
    with pytest.raises(ValueError, match=match):
        call()
