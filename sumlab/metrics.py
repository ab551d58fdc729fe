"""ROUGE per example, multi-reference scoring, bootstrap confidence intervals and paired significance tests.

ROUGE matches the lab's ``evaluate.load("rouge").compute(..., use_stemmer=True)``: the same
``rouge_score`` F-measures (default tokenizer, Porter stemmer, no sentence splitting, so rougeLsum
splits "sentences" on newlines only). ``evaluate``'s aggregated number is the ``mid`` of
``rouge_score``'s ``BootstrapAggregator``: the median of 1000 *unseeded* bootstrap resample means,
which estimates the plain mean but is not equal to it (on the lab's 1500 rows it differs by up to
1.5e-4 and changes from run to run). We report the exact mean and a seeded bootstrap CI instead.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from nltk.stem import porter
from rouge_score import rouge_scorer, tokenize, tokenizers

from sumlab.errors import SumlabError

ROUGE_KEYS = ("rouge1", "rouge2", "rougeL", "rougeLsum")
Aggregate = Literal["max", "mean"]
# Bootstrap and permutation draws are made in chunks of at most this many numbers (~32 MB of float64),
# so 10,000 resamples of 1500 examples never materialise a 15M-element index array at once.
_MAX_CHUNK_ELEMENTS = 4_000_000


class _CachedStemTokenizer(tokenizers.Tokenizer):
    """rouge_score's default stemming tokenizer with memoized stems.

    Porter stemming is ~70% of ROUGE time and summaries reuse a small vocabulary; the stemmer is a pure
    function of the word, so caching leaves every token (and score) unchanged.
    """

    def __init__(self) -> None:
        self._stemmer = porter.PorterStemmer()
        self._stemmer.stem = functools.lru_cache(maxsize=100_000)(self._stemmer.stem)

    def tokenize(self, text: str) -> list[str]:
        return tokenize.tokenize(text, self._stemmer)


@functools.cache
def _rouge_scorer() -> rouge_scorer.RougeScorer:
    return rouge_scorer.RougeScorer(list(ROUGE_KEYS), tokenizer=_CachedStemTokenizer())


def _reference_lists(predictions: Sequence[str], references: Sequence[Sequence[str] | str]) -> list[list[str]]:
    """Check the inputs and return one list of reference strings per prediction."""
    if isinstance(predictions, str) or isinstance(references, str):
        raise SumlabError("predictions and references must be sequences, not a single string",
                          "wrap a single example in a list: [prediction], [reference]")
    if len(predictions) != len(references):
        raise SumlabError(f"got {len(predictions)} predictions but {len(references)} references",
                          "pass one reference (or one list of references) per prediction")
    reference_lists = []
    for index, (prediction, refs) in enumerate(zip(predictions, references)):
        refs = [refs] if isinstance(refs, str) else list(refs)
        if not refs:
            raise SumlabError(f"example {index} has no reference", "give every prediction at least one reference")
        if not all(isinstance(text, str) for text in [prediction, *refs]):
            raise SumlabError(f"example {index} has a prediction or reference that is not a string",
                              "replace missing values (None/NaN) with '' or drop the row")
        reference_lists.append(refs)
    return reference_lists


def rouge_per_example(
    predictions: Sequence[str],
    references: Sequence[Sequence[str] | str],
    *,
    aggregate: Aggregate = "max",
) -> dict[str, np.ndarray]:
    """ROUGE F-measure of each prediction, in [0, 1], for every key in ``ROUGE_KEYS``.

    Args:
        predictions: one generated summary per example.
        references: per example, one reference string or a sequence of references.
        aggregate: how several references combine, per key independently: ``"max"`` (the best reference,
            as ``rouge_score``'s ``score_multi`` and ``evaluate`` do) or ``"mean"``.

    Returns:
        ``{key: array of shape (len(predictions),)}``. Empty texts score 0.

    Raises:
        SumlabError: lengths differ, an example has no reference, a text is not a string, or ``aggregate``
            is unknown.
    """
    if aggregate not in ("max", "mean"):
        raise SumlabError(f"unknown reference aggregate {aggregate!r}", "use 'max' or 'mean'")
    reference_lists = _reference_lists(predictions, references)
    scorer = _rouge_scorer()
    scores = np.zeros((len(predictions), len(ROUGE_KEYS)))
    for index, (prediction, refs) in enumerate(zip(predictions, reference_lists)):
        # rouge_score's argument order is (target, prediction).
        per_reference = np.array([[result[key].fmeasure for key in ROUGE_KEYS]
                                  for result in (scorer.score(ref, prediction) for ref in refs)])
        scores[index] = per_reference.max(axis=0) if aggregate == "max" else per_reference.mean(axis=0)
    return {key: scores[:, column] for column, key in enumerate(ROUGE_KEYS)}


@dataclass(frozen=True)
class MetricSummary:
    """Mean of a per-example metric and its percentile-bootstrap 95% confidence interval."""

    mean: float
    ci95: tuple[float, float]


def _as_float_vector(values: np.ndarray | Sequence[float], name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1 or array.size == 0:
        raise SumlabError(f"{name} must be a non-empty 1-D array of per-example scores, got shape {array.shape}",
                          "pass one score per example")
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


def summarize_scores(
    per_example: dict[str, np.ndarray], *, samples: int = 1000, seed: int = 0
) -> dict[str, MetricSummary]:
    """Mean and bootstrap 95% CI of each metric.

    Every metric uses the same seed, hence the same resampled examples, so the intervals are consistent.
    """
    return {
        key: MetricSummary(float(np.mean(values)), bootstrap_ci(values, samples=samples, seed=seed))
        for key, values in per_example.items()
    }


@dataclass(frozen=True, eq=False)
class ModelScores:
    """Per-example ROUGE scores of one system and their summaries."""

    per_example: dict[str, np.ndarray]
    summary: dict[str, MetricSummary]

    def to_json(self) -> dict[str, dict]:
        """``{metric: {"mean": x, "ci95": [lo, hi]}}``, ready for ``json.dump``."""
        return {key: {"mean": s.mean, "ci95": list(s.ci95)} for key, s in self.summary.items()}


def score_predictions(
    predictions: Sequence[str],
    references: Sequence[Sequence[str] | str],
    *,
    aggregate: Aggregate = "max",
    samples: int = 1000,
    seed: int = 0,
) -> ModelScores:
    """Score predictions with ROUGE and summarize each metric with its mean and bootstrap CI."""
    per_example = rouge_per_example(predictions, references, aggregate=aggregate)
    return ModelScores(per_example, summarize_scores(per_example, samples=samples, seed=seed))


def improvement(
    candidate: dict[str, MetricSummary] | dict[str, float], baseline: dict[str, MetricSummary] | dict[str, float]
) -> dict[str, float]:
    """Absolute improvement of ``candidate`` over ``baseline`` in ROUGE points, ``(candidate - baseline) * 100``.

    This is the lab's "absolute percentage improvement", matched by metric name rather than dict order.

    Raises:
        SumlabError: a metric of ``candidate`` is missing from ``baseline``.
    """
    missing = [key for key in candidate if key not in baseline]
    if missing:
        raise SumlabError(f"baseline lacks metrics {missing}", "compare scores computed with the same metrics")

    def mean_of(score: MetricSummary | float) -> float:
        return score.mean if isinstance(score, MetricSummary) else float(score)

    return {key: (mean_of(candidate[key]) - mean_of(baseline[key])) * 100 for key in candidate}


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
        raise SumlabError(f"paired scores differ in length: {a.size} vs {b.size}",
                          "score both systems on the same examples, in the same order")
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


def approximate_randomization(
    a: np.ndarray, b: np.ndarray, *, samples: int = 10000, seed: int = 0
) -> PairedTestResult:
    """Paired approximate randomization (permutation) test of per-example scores ``a`` and ``b``.

    Each sample swaps ``a_i`` and ``b_i`` with probability 1/2, i.e. flips the sign of ``a_i - b_i``.
    ``p = (#{|d*| >= |d_obs|} + 1) / (samples + 1)``, two-sided. ``ci95`` is the paired bootstrap CI of the
    difference with the same seed, identical to :func:`paired_bootstrap`'s.
    """
    differences = _paired_differences(a, b)
    _check_resampling(samples)
    rng = np.random.default_rng(seed)
    permuted = _draw_in_chunks(
        samples, differences.size,
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
