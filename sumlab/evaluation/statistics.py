"""Bootstrap confidence intervals and paired significance tests on per-example scores."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from sumlab.errors import SumlabError

_MAX_CHUNK_ELEMENTS = 4_000_000


def _as_float_vector(values: np.ndarray | Sequence[float], name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1 or array.size == 0:
        raise SumlabError(
            f"{name} must be a non-empty 1-D array of per-example scores, got shape {array.shape}",
            "pass one score per example",
        )
    return array


def _check_resampling(samples: int, confidence: float = 0.95) -> None:
    if samples < 1:
        raise SumlabError(f"samples must be at least 1, got {samples}", "use e.g. samples=1000")
    if not 0 < confidence < 1:
        raise SumlabError(f"confidence must be between 0 and 1, got {confidence}", "use e.g. confidence=0.95")


def _draw_in_chunks(samples: int, n: int, draw: Callable[[int], np.ndarray]) -> np.ndarray:
    """Concatenate ``draw(rows)`` over chunks of rows until ``samples`` statistics are drawn."""
    rows_per_chunk = max(1, _MAX_CHUNK_ELEMENTS // n)
    return np.concatenate([draw(min(rows_per_chunk, samples - start)) for start in range(0, samples, rows_per_chunk)])


def _bootstrap_means(values: np.ndarray, samples: int, seed: int) -> np.ndarray:
    """Means of ``samples`` resamples of ``values`` drawn with replacement (fixed seed)."""
    rng = np.random.default_rng(seed)
    n = values.size
    return _draw_in_chunks(samples, n, lambda rows: values[rng.integers(0, n, size=(rows, n))].mean(axis=1))


def _percentile_interval(statistics: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(statistics, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_ci(
    values: np.ndarray, *, samples: int = 1000, seed: int = 0, confidence: float = 0.95
) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of the mean of ``values``; deterministic for a fixed seed."""
    values = _as_float_vector(values, "values")
    _check_resampling(samples, confidence)
    return _percentile_interval(_bootstrap_means(values, samples, seed), confidence)


@dataclass(frozen=True)
class PairedTestResult:
    """Outcome of a paired significance test of system ``a`` against system ``b``.

    ``delta`` is mean(a - b); ``ci95`` its percentile-bootstrap 95% CI; ``p_value`` is two-sided.
    """

    method: str
    delta: float
    ci95: tuple[float, float]
    p_value: float

    def to_json(self) -> dict:
        """Plain-JSON form of the result."""
        return {"method": self.method, "delta": self.delta, "ci95": list(self.ci95), "p_value": self.p_value}


def _paired_differences(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = _as_float_vector(a, "a"), _as_float_vector(b, "b")
    if a.size != b.size:
        raise SumlabError(
            f"paired scores differ in length: {a.size} vs {b.size}",
            "score both systems on the same examples, in the same order",
        )
    return a - b


def paired_bootstrap(a: np.ndarray, b: np.ndarray, *, samples: int = 10000, seed: int = 0) -> PairedTestResult:
    """Paired bootstrap test (Koehn 2004) of per-example scores ``a`` and ``b`` on the same examples.

    Examples are resampled with replacement; each resample gives a mean difference ``d*``. With
    ``below = (#{d* <= 0} + 1) / (samples + 1)`` and ``above = (#{d* >= 0} + 1) / (samples + 1)``,
    ``p = min(1, 2 * min(below, above))``: twice the share of resampled differences whose sign disagrees
    with the observed one. This is the smallest two-sided level at which the percentile CI of the
    difference still excludes 0, so ``p < 0.05`` agrees with the reported ``ci95`` excluding 0. The
    ``+1`` keeps ``p`` at least ``1 / (samples + 1)``: a finite number of resamples never proves ``p = 0``.
    Identical systems give ``p = 1``.
    """
    differences = _paired_differences(a, b)
    _check_resampling(samples)
    resampled = _bootstrap_means(differences, samples, seed)
    below = (np.count_nonzero(resampled <= 0) + 1) / (samples + 1)
    above = (np.count_nonzero(resampled >= 0) + 1) / (samples + 1)
    return PairedTestResult(
        method="paired_bootstrap",
        delta=float(differences.mean()),
        ci95=_percentile_interval(resampled, 0.95),
        p_value=float(min(1.0, 2 * min(below, above))),
    )


def approximate_randomization(a: np.ndarray, b: np.ndarray, *, samples: int = 10000, seed: int = 0) -> PairedTestResult:
    """Paired approximate randomization (permutation) test of per-example scores ``a`` and ``b``.

    Each sample swaps ``a_i`` and ``b_i`` with probability 1/2, i.e. flips the sign of ``a_i - b_i``.
    ``p = (#{|d*| >= |d_obs|} + 1) / (samples + 1)``, two-sided. ``ci95`` is the paired bootstrap CI of the
    difference with the same seed, identical to :func:`paired_bootstrap`'s.
    """
    differences = _paired_differences(a, b)
    _check_resampling(samples)
    rng = np.random.default_rng(seed)
    permuted = _draw_in_chunks(
        samples,
        differences.size,
        lambda rows: (rng.choice((-1.0, 1.0), size=(rows, differences.size)) * differences).mean(axis=1),
    )
    observed = float(differences.mean())
    # The tolerance keeps permutations that tie with the observed difference from being lost to rounding.
    as_extreme = np.count_nonzero(np.abs(permuted) >= abs(observed) - 1e-12)
    return PairedTestResult(
        method="approximate_randomization",
        delta=observed,
        ci95=bootstrap_ci(differences, samples=samples, seed=seed),
        p_value=float((as_extreme + 1) / (samples + 1)),
    )
