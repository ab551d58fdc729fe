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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from nltk.stem import porter
from rouge_score import rouge_scorer, tokenize, tokenizers

from sumlab.errors import SumlabError
from sumlab.evaluation.statistics import bootstrap_ci

ROUGE_KEYS = ("rouge1", "rouge2", "rougeL", "rougeLsum")
Aggregate = Literal["max", "mean"]
# Bootstrap and permutation draws are made in chunks of at most this many numbers (~32 MB of float64),
# so 10,000 resamples of 1500 examples never materialise a 15M-element index array at once.


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
        raise SumlabError(
            "predictions and references must be sequences, not a single string",
            "wrap a single example in a list: [prediction], [reference]",
        )
    if len(predictions) != len(references):
        raise SumlabError(
            f"got {len(predictions)} predictions but {len(references)} references",
            "pass one reference (or one list of references) per prediction",
        )
    reference_lists = []
    for index, (prediction, refs) in enumerate(zip(predictions, references)):
        refs = [refs] if isinstance(refs, str) else list(refs)
        if not refs:
            raise SumlabError(f"example {index} has no reference", "give every prediction at least one reference")
        if not all(isinstance(text, str) for text in [prediction, *refs]):
            raise SumlabError(
                f"example {index} has a prediction or reference that is not a string",
                "replace missing values (None/NaN) with '' or drop the row",
            )
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
        per_reference = np.array(
            [[result[key].fmeasure for key in ROUGE_KEYS] for result in (scorer.score(ref, prediction) for ref in refs)]
        )
        scores[index] = per_reference.max(axis=0) if aggregate == "max" else per_reference.mean(axis=0)
    return {key: scores[:, column] for column, key in enumerate(ROUGE_KEYS)}


@dataclass(frozen=True)
class MetricSummary:
    """Mean of a per-example metric and its percentile-bootstrap 95% confidence interval."""

    mean: float
    ci95: tuple[float, float]


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
