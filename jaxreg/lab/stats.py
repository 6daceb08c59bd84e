"""Statistics over seeds: means with Student-t intervals, and differences with a verdict.

A comparison of two frameworks or two techniques is a statement about distributions, not about
one draw each: every final metric is reported as a mean over seeds with its 95% interval, and
a difference as an interval with a verdict (``consistent`` when the interval holds 0,
``different`` when it does not). Only the standard library is used (no SciPy dependency); the
Student-t quantile is found by bisection on its CDF, written through the regularized incomplete
beta function (Numerical Recipes' continued fraction).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple


class Interval(NamedTuple):
    """A mean with its two-sided confidence interval.

    Attributes:
      mean: the sample mean.
      low: lower end of the interval.
      high: upper end of the interval.
      n: number of samples.
      sd: sample standard deviation (``ddof=1``; 0 for one sample).
      level: confidence level, e.g. 0.95.
    """

    mean: float
    low: float
    high: float
    n: int
    sd: float
    level: float

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


class Difference(NamedTuple):
    """A difference of means ``a - b`` with its interval and verdict.

    Attributes:
      interval: the :class:`Interval` of the difference (``n`` = pairs, or ``n_a + n_b``).
      verdict: ``"consistent"`` (the interval holds 0), ``"different"`` (it does not), or
        ``"no spread measured"`` (fewer than two samples a side).
      method: ``"paired"`` or ``"welch"``.
    """

    interval: Interval
    verdict: str
    method: str


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level!r}")


def _betacf(a: float, b: float, x: float) -> float:
    tiny, eps = 1e-300, 3e-16
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """The CDF of Student's t distribution with ``df`` degrees of freedom.

    Example:
      >>> round(t_cdf(0.0, 5), 6)
      0.5
    """
    if df <= 0:
        raise ValueError(f"df must be > 0, got {df!r}")
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (``scipy.stats.t.ppf``).

    Args:
      p: probability in (0, 1).
      df: degrees of freedom, > 0 (non-integer allowed, for Welch's interval).

    Returns:
      ``t`` with ``t_cdf(t, df) == p`` to about 1e-12.

    Example:
      >>> round(t_quantile(0.975, 4), 4)
      2.7764
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p!r}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    low, high = 0.0, 1.0
    while t_cdf(high, df) < p:
        high *= 2.0
    for _ in range(200):
        mid = 0.5 * (low + high)
        if t_cdf(mid, df) < p:
            low = mid
        else:
            high = mid
        if high - low < 1e-13 * max(1.0, high):
            break
    return 0.5 * (low + high)


def _finite(values: Sequence[float], name: str) -> list[float]:
    xs = [float(v) for v in values]
    if not xs:
        raise ValueError(f"{name} is empty: need at least one value")
    bad = [v for v in xs if not math.isfinite(v)]
    if bad:
        raise ValueError(f"{name} holds non-finite values {bad[:3]}: a diverged run has no mean")
    return xs


def _sd(xs: list[float]) -> float:
    if len(xs) < 2:
        return 0.0
    m = sum(xs) / len(xs)
    return math.sqrt(sum((v - m) ** 2 for v in xs) / (len(xs) - 1))


def mean_interval(values: Sequence[float], level: float = 0.95) -> Interval:
    """The mean of ``values`` with its Student-t confidence interval.

    One value gives a zero-width interval at the value (an honest "no spread measured"; the
    report then says n = 1).

    Args:
      values: one final metric per seed.
      level: confidence level in (0, 1).

    Returns:
      An :class:`Interval`.

    Example:
      >>> iv = mean_interval([0.84, 0.85, 0.86])
      >>> round(iv.mean, 4), round(iv.low, 4), round(iv.high, 4)
      (0.85, 0.8252, 0.8748)
    """
    _check_level(level)
    xs = _finite(values, "values")
    n, m, sd = len(xs), sum(xs) / len(xs), _sd(xs)
    if n < 2:
        return Interval(m, m, m, n, 0.0, level)
    half = t_quantile(0.5 + level / 2, n - 1) * sd / math.sqrt(n)
    return Interval(m, m - half, m + half, n, sd, level)


def difference(
    a: Sequence[float], b: Sequence[float], *, level: float = 0.95, paired: bool = False
) -> Difference:
    """The difference of means ``mean(a) - mean(b)`` with its interval and a verdict.

    ``paired=True`` (matched runs: seed ``i`` of ``a`` and of ``b`` share their weights, batches
    and masks) uses the t interval of the per-pair differences; otherwise Welch's interval with
    the Welch-Satterthwaite degrees of freedom.

    Args:
      a: one final metric per seed of the first side (e.g. JAX).
      b: the same metric per seed of the second side (e.g. torch).
      level: confidence level in (0, 1).
      paired: whether ``a[i]`` and ``b[i]`` are a matched pair.

    Returns:
      A :class:`Difference`; its verdict is ``"different"`` when the interval excludes 0.

    Example:
      >>> d = difference([0.85, 0.86, 0.87], [0.84, 0.85, 0.86], paired=True)
      >>> d.verdict, round(d.interval.mean, 4)
      ('different', 0.01)
    """
    _check_level(level)
    xs, ys = _finite(a, "a"), _finite(b, "b")
    if paired:
        if len(xs) != len(ys):
            raise ValueError(f"paired samples need equal lengths, got {len(xs)} and {len(ys)}")
        diffs = [x - y for x, y in zip(xs, ys, strict=True)]
        interval, method = mean_interval(diffs, level), "paired"
    else:
        na, nb = len(xs), len(ys)
        mean = sum(xs) / na - sum(ys) / nb
        va, vb = _sd(xs) ** 2 / na, _sd(ys) ** 2 / nb
        se = math.sqrt(va + vb)
        if na < 2 or nb < 2 or se == 0.0:
            interval = Interval(mean, mean, mean, na + nb, 0.0, level)
        else:
            df = (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1))
            half = t_quantile(0.5 + level / 2, df) * se
            interval = Interval(mean, mean - half, mean + half, na + nb, se, level)
        method = "welch"
    if min(len(xs), len(ys)) < 2:
        verdict = "no spread measured"  # one sample a side: no interval, so no verdict
    elif interval.low <= 0.0 <= interval.high:
        verdict = "consistent"
    else:
        verdict = "different"
    return Difference(interval, verdict, method)


def format_interval(iv: Interval, digits: int = 4) -> str:
    """``"0.8500 [0.8252, 0.8748] (n=3)"``: a mean and its interval for a report table.

    Example:
      >>> format_interval(mean_interval([1.0, 2.0, 3.0]), 2)
      '2.00 [-0.48, 4.48] (n=3)'
    """
    return f"{iv.mean:.{digits}f} [{iv.low:.{digits}f}, {iv.high:.{digits}f}] (n={iv.n})"
