"""From predictions to results: scores with CIs, paired tests, examples, highlights and the lab's CSV columns."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from sumlab.config import EvalSettings
from sumlab.evaluation.predictions import PredictionSet
from sumlab.evaluation.results import (
    LAB_REFERENCE_COLUMN,
    build_results,
    highlighted_ids,
    lab_csv_text,
    lab_roles,
    score_models,
    significance_table,
)
from sumlab.evaluation.rouge import (
    ROUGE_KEYS,
    ModelScores,
    rouge_per_example,
    summarize_scores,
)


def hand_scores(values) -> ModelScores:
    """A model whose per-example score is ``values`` for every ROUGE key."""
    per_example = {key: np.asarray(values, dtype=float) for key in ROUGE_KEYS}
    return ModelScores(per_example, summarize_scores(per_example, samples=200, seed=0))


def prediction_set() -> PredictionSet:
    return PredictionSet(
        ids=["d0", "d1", "d2"],
        references=[["the cat sat on the mat", "a cat was on the mat"], ["we meet at noon"], ["he buys milk and bread"]],
        predictions={
            "base": ["dogs run", "we meet at noon", "milk"],
            "tuned": ["the cat sat on the mat", "we meet at noon today", "he buys bread and milk"],
        },
        dialogues=["#Person1#: cat?", "#Person1#: when?", "#Person1#: shop?"],
    )


# -- paired tests ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["paired_bootstrap", "approximate_randomization"])
def test_a_clearly_better_system_is_significant(method):
    rng = np.random.default_rng(1)
    base = rng.uniform(0.1, 0.4, size=40)
    better = base + 0.2 + rng.normal(0, 0.02, size=40)
    rows = significance_table({"base": hand_scores(base), "better": hand_scores(better)},
                              EvalSettings(significance=method, significance_samples=2000))
    assert [(row["a"], row["b"], row["metric"]) for row in rows] == [("better", "base", key) for key in ROUGE_KEYS]
    for row in rows:
        assert row["method"] == method
        assert row["p_value"] < 0.01
        assert row["delta"] == pytest.approx(float((better - base).mean()))
        assert 0 < row["ci95"][0] < row["delta"] < row["ci95"][1]


@pytest.mark.parametrize("method", ["paired_bootstrap", "approximate_randomization"])
def test_identical_systems_have_p_one(method):
    values = [0.2, 0.5, 0.1, 0.7, 0.3]
    rows = significance_table({"a": hand_scores(values), "b": hand_scores(values)}, EvalSettings(significance=method))
    assert len(rows) == len(ROUGE_KEYS)
    assert all(row["p_value"] == 1.0 and row["delta"] == 0.0 for row in rows)


def test_significance_by_hand():
    """delta = mean(a - b) = (1 + 0 + 0 + 1) / 4; with 99 resamples that never flip sign, p = 2 * 1/100."""
    scores = {"b": hand_scores([0, 0, 1, 0]), "a": hand_scores([1, 0, 1, 1])}
    rows = significance_table(scores, EvalSettings(significance_samples=99))
    assert all(row["delta"] == 0.5 for row in rows)
    # a resample can draw only the tie (0) examples, so p is not the minimum here; it is still at least 2/100
    assert all(2 / 100 <= row["p_value"] < 0.2 for row in rows)
    always_better = {"b": hand_scores([0, 0, 0, 0]), "a": hand_scores([1, 1, 1, 1])}
    assert all(row["p_value"] == pytest.approx(2 / 100)
               for row in significance_table(always_better, EvalSettings(significance_samples=99)))


def test_every_pair_and_metric_is_tested_with_the_later_model_first():
    scores = {name: hand_scores(np.linspace(0, 1, 6) * (i + 1) / 3) for i, name in enumerate(["zero", "full", "lora"])}
    rows = significance_table(scores, EvalSettings(significance_samples=100))
    assert [(row["a"], row["b"]) for row in rows[::len(ROUGE_KEYS)]] == [("full", "zero"), ("lora", "zero"), ("lora", "full")]
    assert len(rows) == 3 * len(ROUGE_KEYS)


# -- scores ---------------------------------------------------------------------------------------------------------


def test_score_models_uses_the_settings():
    predictions = prediction_set()
    scores = score_models(predictions, EvalSettings(aggregate="mean", bootstrap_samples=1))
    direct = rouge_per_example(predictions.predictions["tuned"], predictions.references, aggregate="mean")
    for key in ROUGE_KEYS:
        assert np.array_equal(scores["tuned"].per_example[key], direct[key])
        low, high = scores["tuned"].summary[key].ci95
        assert low == high  # a single bootstrap resample: bootstrap_samples reached the CI
    by_max = score_models(predictions, EvalSettings(aggregate="max"))
    assert by_max["tuned"].summary["rouge1"].mean > scores["tuned"].summary["rouge1"].mean


def test_build_results_from_predictions():
    predictions = prediction_set()
    settings = EvalSettings(significance_samples=200)
    scores = score_models(predictions, settings)
    results = build_results(predictions, scores, settings, name="hand", setup={"note": "by hand"},
                            models_info={"tuned": {"kind": "train", "method": "lora", "label": "LoRA",
                                                   "cost": {"trainable": 1, "total": 10}, "log": [{"step": 1}]}})
    assert results["baseline"] == "base"
    assert results["models"]["base"]["improvement"] == {key: 0 for key in ROUGE_KEYS}
    assert results["models"]["base"]["kind"] == "pretrained" and results["models"]["base"]["cost"] is None
    assert results["models"]["tuned"]["label"] == "LoRA" and results["models"]["tuned"]["log"] == [{"step": 1}]
    gain = (scores["tuned"].summary["rouge1"].mean - scores["base"].summary["rouge1"].mean) * 100
    assert results["models"]["tuned"]["improvement"]["rouge1"] == pytest.approx(gain, abs=1e-4)
    assert [example["id"] for example in results["examples"]] == predictions.ids
    assert results["examples"][1]["predictions"] == {"base": "we meet at noon", "tuned": "we meet at noon today"}
    assert results["examples"][1]["scores"]["base"]["rouge1"] == 1.0
    assert results["highlight"] == ["d0"]  # the default, example 200, is out of range
    assert len(results["significance"]) == len(ROUGE_KEYS)


# -- highlighted examples ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("positions", "expected"), [
    ([200], ["d0"]),  # the lab's example 200 does not exist in a small subsample: the first is shown
    ([1], ["d0"]),  # positions count rows, one per reference, as the lab's dataset["test"][200] does
    ([2], ["d1"]),
    ([3, 200], ["d2"]),
    ([0, 1, 3], ["d0", "d2"]),
    ([-1], ["d0"]),
    ([], ["d0"]),
])
def test_highlighted_ids(positions, expected):
    assert highlighted_ids(prediction_set(), positions) == expected


# -- the lab's CSV --------------------------------------------------------------------------------------------------


def test_lab_roles_follow_the_lab():
    models = {"original": {"method": None}, "full": {"method": "full"}, "lora": {"method": "lora"}}
    assert lab_roles(models) == {"original": "original_model_summaries", "full": "instruct_model_summaries",
                                 "lora": "peft_model_summaries"}


def test_lab_roles_take_the_first_of_each_method_and_name_the_rest():
    models = {"zero": {"method": None}, "ia3": {"method": "ia3"}, "lora_r8": {"method": "lora"},
              "ft": {"method": "full"}, "ft2": {"method": "full"}, "lora_r32": {"method": "lora"}}
    assert lab_roles(models) == {
        "zero": "original_model_summaries", "ft": "instruct_model_summaries", "lora_r8": "peft_model_summaries",
        "ia3": "ia3_model_summaries", "ft2": "ft2_model_summaries", "lora_r32": "lora_r32_model_summaries",
    }


def test_lab_roles_without_methods_keep_only_the_baseline_role():
    assert lab_roles({"a": {}, "b": {}}) == {"a": "original_model_summaries", "b": "b_model_summaries"}


def test_an_extra_model_never_takes_a_lab_column():
    models = {"zero": {}, "tuned": {"method": "full"}, "instruct": {"method": "full"}, "original": {}}
    columns = lab_roles(models)
    assert columns["tuned"] == "instruct_model_summaries" and columns["zero"] == "original_model_summaries"
    assert len(set(columns.values())) == len(columns)


def test_lab_csv_has_one_row_per_reference():
    predictions = prediction_set()
    settings = EvalSettings(significance_samples=100)
    results = build_results(predictions, score_models(predictions, settings), settings, name="hand", setup={},
                            models_info={"tuned": {"method": "lora"}})
    rows = list(csv.reader(io.StringIO(lab_csv_text(results))))
    assert rows[0] == ["", LAB_REFERENCE_COLUMN, "original_model_summaries", "peft_model_summaries"]
    assert rows[1:] == [
        ["0", "the cat sat on the mat", "dogs run", "the cat sat on the mat"],
        ["1", "a cat was on the mat", "dogs run", "the cat sat on the mat"],
        ["2", "we meet at noon", "we meet at noon", "we meet at noon today"],
        ["3", "he buys milk and bread", "milk", "he buys bread and milk"],
    ]
