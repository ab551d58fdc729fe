"""Tests for sumlab.evaluation.rouge and .statistics: ROUGE parity with the lab, bootstrap CIs, paired tests."""

from __future__ import annotations

import csv
import itertools
import json

import numpy as np
import pytest
from rouge_score import rouge_scorer

from sumlab.errors import SumlabError
from sumlab.evaluation.rouge import (
    ROUGE_KEYS,
    MetricSummary,
    improvement,
    rouge_per_example,
    score_predictions,
    summarize_scores,
)
from sumlab.evaluation.statistics import (
    approximate_randomization,
    bootstrap_ci,
    paired_bootstrap,
)

MODELS = ("original", "instruct", "peft")


@pytest.fixture(scope="module")
def direct_scorer() -> rouge_scorer.RougeScorer:
    """rouge_score configured exactly as evaluate's `rouge` with use_stemmer=True."""
    return rouge_scorer.RougeScorer(list(ROUGE_KEYS), use_stemmer=True)


# ---- ROUGE ----------------------------------------------------------------------------------------

PAIRS = [  # (prediction, reference)
    ("the cat sat", "the cat sat on the mat"),
    ("He is running to the shops.", "he runs to the shop"),  # stemming: running/runs -> run, shops -> shop
    ("#Person1# asks #Person2# for directions.", "#Person2# gives #Person1# directions to the bank."),
    ("first line.\nsecond line here.", "second line.\nfirst line here."),  # rougeLsum 1.0 (newline split), rougeL 0.6
    ("Ünïcödé café déjà-vu", "cafe deja vu"),
    ("", "a reference"),
    ("a prediction", ""),
    ("", ""),
]


@pytest.mark.parametrize("prediction, reference", PAIRS)
def test_rouge_equals_rouge_score_direct(direct_scorer, prediction, reference):
    ours = rouge_per_example([prediction], [reference])
    direct = direct_scorer.score(reference, prediction)
    for key in ROUGE_KEYS:
        assert ours[key][0] == pytest.approx(direct[key].fmeasure, abs=1e-12)


def test_rouge_hand_computed():
    # prediction "the cat sat" (3 tokens) vs reference "the cat sat on the mat" (6 tokens):
    # rouge1: overlap {the, cat, sat} = 3 -> P = 3/3 = 1, R = 3/6 = 1/2, F = 2PR/(P+R) = 1/1.5 = 2/3
    # rouge2: bigrams 2 vs 5, overlap {the cat, cat sat} = 2 -> P = 1, R = 2/5, F = 0.8/1.4 = 4/7
    # rougeL: LCS "the cat sat" = 3 -> same as rouge1, 2/3; rougeLsum: one line, so equal to rougeL
    scores = rouge_per_example(["the cat sat"], ["the cat sat on the mat"])
    assert scores["rouge1"][0] == pytest.approx(2 / 3)
    assert scores["rouge2"][0] == pytest.approx(4 / 7)
    assert scores["rougeL"][0] == pytest.approx(2 / 3)
    assert scores["rougeLsum"][0] == pytest.approx(2 / 3)


def test_rouge_stems_like_the_lab():
    # Porter: "runs" and "running" both stem to "run", so every token matches.
    scores = rouge_per_example(["he runs"], ["He is running"])
    # pred {he, run}, ref {he, is, run}: P = 1, R = 2/3, F = 0.8
    assert scores["rouge1"][0] == pytest.approx(0.8)


def test_empty_texts_score_zero():
    scores = rouge_per_example(["", "text", ""], ["text", "", ""])
    for key in ROUGE_KEYS:
        np.testing.assert_array_equal(scores[key], [0.0, 0.0, 0.0])


def test_no_examples_give_empty_arrays():
    assert all(values.shape == (0,) for values in rouge_per_example([], []).values())


def test_multi_reference_max_picks_best_reference_per_metric(direct_scorer):
    prediction = "cat dog fish bird"
    unigram_best = "bird fish dog cat"  # rouge1 F = 1, no bigram in common -> rouge2 F = 0
    bigram_best = "cat dog lion tiger"  # rouge1 F = 2/4 = 0.5; bigrams {cat dog} 1 of 3 each -> rouge2 F = 1/3
    scores = rouge_per_example([prediction], [[unigram_best, bigram_best]])
    assert scores["rouge1"][0] == pytest.approx(1.0)
    assert scores["rouge2"][0] == pytest.approx(1 / 3)
    # Same as rouge_score's own multi-reference scoring (used by evaluate for lists of references).
    multi = direct_scorer.score_multi([unigram_best, bigram_best], prediction)
    for key in ROUGE_KEYS:
        assert scores[key][0] == pytest.approx(multi[key].fmeasure)


def test_multi_reference_mean_averages_references():
    scores = rouge_per_example(["cat dog fish bird"], [["bird fish dog cat", "cat dog lion tiger"]], aggregate="mean")
    assert scores["rouge1"][0] == pytest.approx((1.0 + 0.5) / 2)
    assert scores["rouge2"][0] == pytest.approx((0.0 + 1 / 3) / 2)


def test_string_reference_equals_single_reference_list():
    predictions = ["the cat sat", "a dog ran"]
    as_strings = rouge_per_example(predictions, ["the cat sat on the mat", "the dog ran away"])
    as_lists = rouge_per_example(predictions, [["the cat sat on the mat"], ["the dog ran away"]])
    for key in ROUGE_KEYS:
        np.testing.assert_array_equal(as_strings[key], as_lists[key])


@pytest.mark.parametrize(
    "predictions, references, kwargs",
    [
        (["a", "b"], ["a"], {}),  # mismatched lengths
        (["a"], ["a"], {"aggregate": "median"}),
        (["a"], [[]], {}),  # no reference
        ([None], ["a"], {}),  # missing value, e.g. NaN from pandas
        ("a prediction", "a reference", {}),  # bare strings instead of sequences
    ],
)
def test_rouge_input_errors(predictions, references, kwargs):
    with pytest.raises(SumlabError):
        rouge_per_example(predictions, references, **kwargs)


# ---- parity with the lab's seed results -------------------------------------------------------------

# rouge_score called directly (evaluate's per-example scores), then np.mean over the 1500 rows.
DIRECT_MEANS = {
    "original": {
        "rouge1": 0.2332775555439418,
        "rouge2": 0.07605161662436043,
        "rougeL": 0.20154301878517647,
        "rougeLsum": 0.20154301878517647,
    },
    "instruct": {
        "rouge1": 0.4214269714687025,
        "rouge2": 0.180340470221194,
        "rougeL": 0.3383735434370324,
        "rougeLsum": 0.3383735434370324,
    },
    "peft": {
        "rouge1": 0.4081321637933288,
        "rouge2": 0.1634540619121825,
        "rougeL": 0.32511992855297017,
        "rougeLsum": 0.32511992855297017,
    },
}
# What the lab printed (evaluate's aggregate is the median of unseeded bootstrap means, hence ~1e-4 noise).
LAB_PRINTED = {
    "original": {"rouge1": 0.2334, "rouge2": 0.0760, "rougeL": 0.2015, "rougeLsum": 0.2015},
    "instruct": {"rouge1": 0.4216, "rouge2": 0.1804, "rougeL": 0.3384, "rougeLsum": 0.3384},
    "peft": {"rouge1": 0.4081, "rouge2": 0.1633, "rougeL": 0.3251, "rougeLsum": 0.3249},
}


@pytest.fixture(scope="module")
def seed_rows(lab_csv) -> list[dict[str, str]]:
    with lab_csv.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 1500
    return rows


@pytest.fixture(scope="module")
def seed_scores(seed_rows) -> dict[str, dict[str, MetricSummary]]:
    references = [row["human_baseline_summaries"] for row in seed_rows]
    return {
        model: score_predictions([row[f"{model}_model_summaries"] for row in seed_rows], references).summary
        for model in MODELS
    }


@pytest.mark.parametrize("model", MODELS)
def test_seed_csv_per_example_scores_equal_rouge_score(seed_rows, direct_scorer, model):
    rows = seed_rows[:200]
    predictions = [row[f"{model}_model_summaries"] for row in rows]
    references = [row["human_baseline_summaries"] for row in rows]
    ours = rouge_per_example(predictions, references)
    direct = [direct_scorer.score(ref, pred) for ref, pred in zip(references, predictions)]
    for key in ROUGE_KEYS:
        np.testing.assert_allclose(ours[key], [scores[key].fmeasure for scores in direct], rtol=0, atol=1e-12)


@pytest.mark.parametrize("model", MODELS)
def test_seed_csv_means_match_rouge_score_and_the_lab(seed_scores, model):
    for key in ROUGE_KEYS:
        summary = seed_scores[model][key]
        assert summary.mean == pytest.approx(DIRECT_MEANS[model][key], abs=1e-9)
        assert summary.mean == pytest.approx(LAB_PRINTED[model][key], abs=1e-3)
        assert summary.ci95[0] < summary.mean < summary.ci95[1]


def test_seed_csv_peft_improvement_over_original_matches_the_lab(seed_scores):
    points = improvement(seed_scores["peft"], seed_scores["original"])
    lab_points = {"rouge1": 17.47, "rouge2": 8.73, "rougeL": 12.36, "rougeLsum": 12.34}
    for key in ROUGE_KEYS:
        assert points[key] == pytest.approx(lab_points[key], abs=0.05)


# ---- bootstrap CIs and summaries ----------------------------------------------------------------------


def test_bootstrap_ci_is_deterministic_and_contains_the_mean():
    values = np.random.default_rng(1).uniform(size=300)
    ci = bootstrap_ci(values, seed=7)
    assert ci == bootstrap_ci(values, seed=7)
    assert ci != bootstrap_ci(values, seed=8)
    assert ci[0] < values.mean() < ci[1]


def test_bootstrap_ci_narrows_with_more_data():
    rng = np.random.default_rng(2)
    small_low, small_high = bootstrap_ci(rng.uniform(size=50))
    large_low, large_high = bootstrap_ci(rng.uniform(size=5000))
    # The width shrinks like 1/sqrt(n): 10x narrower for 100x the data.
    assert (large_high - large_low) < 0.2 * (small_high - small_low)


def test_bootstrap_ci_of_constant_values_has_zero_width():
    assert bootstrap_ci(np.full(20, 0.25)) == pytest.approx((0.25, 0.25))


@pytest.mark.parametrize("values, kwargs", [([], {}), ([0.1, 0.2], {"samples": 0}), ([0.1], {"confidence": 1.5})])
def test_bootstrap_ci_input_errors(values, kwargs):
    with pytest.raises(SumlabError):
        bootstrap_ci(np.asarray(values), **kwargs)


def test_score_predictions_summary_and_json():
    scores = score_predictions(
        ["the cat sat", "a dog ran", "birds fly"],
        ["the cat sat on the mat", "the dog ran away", "fish swim"],
        samples=200,
    )
    assert set(scores.summary) == set(ROUGE_KEYS)
    assert scores.summary == summarize_scores(scores.per_example, samples=200)
    exported = json.loads(json.dumps(scores.to_json()))
    assert exported["rouge1"]["mean"] == pytest.approx(scores.per_example["rouge1"].mean())
    low, high = exported["rouge1"]["ci95"]
    assert low <= exported["rouge1"]["mean"] <= high


def test_improvement_in_points_from_floats_and_summaries():
    assert improvement({"rouge1": 0.45}, {"rouge1": 0.40}) == pytest.approx({"rouge1": 5.0})
    summaries = {"rouge1": MetricSummary(0.30, (0.2, 0.4))}
    assert improvement(summaries, {"rouge1": 0.35}) == pytest.approx({"rouge1": -5.0})
    with pytest.raises(SumlabError):
        improvement({"rouge1": 0.4, "rouge2": 0.2}, {"rouge1": 0.3})


# ---- paired tests ------------------------------------------------------------------------------------------

PAIRED_TESTS = (paired_bootstrap, approximate_randomization)


@pytest.mark.parametrize("test", PAIRED_TESTS)
def test_identical_systems_are_not_different(test):
    scores = np.random.default_rng(3).uniform(size=40)
    result = test(scores, scores.copy(), samples=2000)
    assert result.delta == 0.0
    assert result.p_value == 1.0
    assert result.ci95 == (0.0, 0.0)


@pytest.mark.parametrize("test", PAIRED_TESTS)
def test_system_better_on_every_example_is_significant(test):
    rng = np.random.default_rng(4)
    b = rng.uniform(0.1, 0.5, size=50)
    a = b + rng.uniform(0.01, 0.05, size=50)
    result = test(a, b, samples=2000, seed=0)
    assert result.delta == pytest.approx(np.mean(a - b))
    assert result.p_value < 0.01
    assert 0 < result.ci95[0] < result.delta < result.ci95[1]
    assert test(a, b, samples=2000, seed=0) == result  # deterministic
    assert type(result.p_value) is float
    assert json.loads(json.dumps(result.to_json()))["method"] == test.__name__


def test_approximate_randomization_matches_exact_permutation_p():
    differences = np.array([0.3, 0.1, -0.2, 0.5])
    observed = abs(differences.mean())
    flipped_means = [abs(np.mean(np.array(signs) * differences)) for signs in itertools.product((-1, 1), repeat=4)]
    exact_p = sum(mean >= observed - 1e-12 for mean in flipped_means) / 16  # 6 of the 16 sign flips: 0.375
    result = approximate_randomization(differences, np.zeros(4), samples=20000)
    assert result.p_value == pytest.approx(exact_p, abs=0.02)


def test_paired_bootstrap_matches_exact_bootstrap_p():
    differences = np.array([0.4, 0.1, -0.3])
    # All 3^3 resamples with replacement are equally likely; the p-value is twice the smaller sign share.
    resample_means = [differences[list(indices)].mean() for indices in itertools.product(range(3), repeat=3)]
    share_not_positive = sum(mean <= 1e-12 for mean in resample_means) / 27
    share_not_negative = sum(mean >= -1e-12 for mean in resample_means) / 27
    exact_p = min(1.0, 2 * min(share_not_positive, share_not_negative))
    result = paired_bootstrap(differences, np.zeros(3), samples=20000)
    assert result.p_value == pytest.approx(exact_p, abs=0.02)


@pytest.mark.parametrize("test", PAIRED_TESTS)
def test_paired_tests_reject_mismatched_lengths(test):
    with pytest.raises(SumlabError):
        test(np.zeros(3), np.zeros(4))
