"""From predictions to results: scores with CIs, paired tests, examples, highlights, the lab's CSV columns,
and the typed documents (results.json, summary.json) with their published JSON Schema."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from pydantic import ValidationError

from sumlab.config import EvalSettings
from sumlab.errors import SumlabError
from sumlab.evaluation.predictions import PredictionSet
from sumlab.evaluation.results import (
    LAB_REFERENCE_COLUMN,
    build_results,
    highlighted_ids,
    lab_csv_text,
    lab_roles,
    significance_table,
)
from sumlab.evaluation.rouge import (
    ROUGE_KEYS,
    ModelScores,
    rouge_per_example,
    summarize_scores,
)
from sumlab.evaluation.schema import (
    SCHEMA_FILE,
    Cost,
    ModelInfo,
    Results,
    RunSummary,
    Setup,
    read_results,
    read_run_summary,
    results_schema_text,
)
from sumlab.evaluation.scoring import score_models


def hand_scores(values) -> ModelScores:
    """A model whose per-example score is ``values`` for every ROUGE key."""
    per_example = {key: np.asarray(values, dtype=float) for key in ROUGE_KEYS}
    return ModelScores(per_example, summarize_scores(per_example, samples=200, seed=0))


def prediction_set() -> PredictionSet:
    return PredictionSet(
        ids=["d0", "d1", "d2"],
        references=[
            ["the cat sat on the mat", "a cat was on the mat"],
            ["we meet at noon"],
            ["he buys milk and bread"],
        ],
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
    rows = significance_table(
        {"base": hand_scores(base), "better": hand_scores(better)},
        EvalSettings(significance=method, significance_samples=2000),
    )
    assert [(row.a, row.b, row.metric) for row in rows] == [("better", "base", key) for key in ROUGE_KEYS]
    for row in rows:
        assert row.method == method
        assert row.p_value < 0.01
        assert row.delta == pytest.approx(float((better - base).mean()))
        assert 0 < row.ci95[0] < row.delta < row.ci95[1]


@pytest.mark.parametrize("method", ["paired_bootstrap", "approximate_randomization"])
def test_identical_systems_have_p_one(method):
    values = [0.2, 0.5, 0.1, 0.7, 0.3]
    rows = significance_table({"a": hand_scores(values), "b": hand_scores(values)}, EvalSettings(significance=method))
    assert len(rows) == len(ROUGE_KEYS)
    assert all(row.p_value == 1.0 and row.delta == 0.0 for row in rows)


def test_significance_by_hand():
    """delta = mean(a - b) = (1 + 0 + 0 + 1) / 4; with 99 resamples that never flip sign, p = 2 * 1/100."""
    scores = {"b": hand_scores([0, 0, 1, 0]), "a": hand_scores([1, 0, 1, 1])}
    rows = significance_table(scores, EvalSettings(significance_samples=99))
    assert all(row.delta == 0.5 for row in rows)
    # a resample can draw only the tie (0) examples, so p is not the minimum here; it is still at least 2/100
    assert all(2 / 100 <= row.p_value < 0.2 for row in rows)
    always_better = {"b": hand_scores([0, 0, 0, 0]), "a": hand_scores([1, 1, 1, 1])}
    assert all(
        row.p_value == pytest.approx(2 / 100)
        for row in significance_table(always_better, EvalSettings(significance_samples=99))
    )


def test_every_pair_and_metric_is_tested_with_the_later_model_first():
    scores = {name: hand_scores(np.linspace(0, 1, 6) * (i + 1) / 3) for i, name in enumerate(["zero", "full", "lora"])}
    rows = significance_table(scores, EvalSettings(significance_samples=100))
    assert [(row.a, row.b) for row in rows[:: len(ROUGE_KEYS)]] == [
        ("full", "zero"),
        ("lora", "zero"),
        ("lora", "full"),
    ]
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


COST = Cost(
    trainable=1, total=10, percent=10.0, saved_bytes=4, full_model_bytes=40, train_seconds=1.5, peak_memory_bytes=1000
)


def hand_results(**info) -> Results:
    predictions = prediction_set()
    settings = EvalSettings(significance_samples=200)
    return build_results(
        predictions,
        score_models(predictions, settings),
        settings,
        name="hand",
        setup=Setup(dataset="by hand"),
        models_info={"tuned": ModelInfo(**info)},
    )


def test_build_results_from_predictions():
    predictions = prediction_set()
    settings = EvalSettings(significance_samples=200)
    scores = score_models(predictions, settings)
    results = build_results(
        predictions,
        scores,
        settings,
        name="hand",
        setup=Setup(dataset="by hand"),
        models_info={
            "tuned": ModelInfo(kind="train", method="lora", label="LoRA", cost=COST, log=[{"step": 1, "loss": 2.5}])
        },
    )
    assert results.baseline == "base"
    assert results.models["base"].improvement == {key: 0 for key in ROUGE_KEYS}
    assert results.models["base"].kind == "pretrained" and results.models["base"].cost is None
    assert results.models["base"].label == "base"  # no info: labelled by its key
    assert results.models["tuned"].label == "LoRA" and results.models["tuned"].log == [{"step": 1, "loss": 2.5}]
    assert results.models["tuned"].cost == COST
    gain = (scores["tuned"].summary["rouge1"].mean - scores["base"].summary["rouge1"].mean) * 100
    assert results.models["tuned"].improvement["rouge1"] == pytest.approx(gain, abs=1e-4)
    assert results.models["tuned"].scores["rouge1"].mean == scores["tuned"].summary["rouge1"].mean
    assert [example.id for example in results.examples] == predictions.ids
    assert results.examples[1].predictions == {"base": "we meet at noon", "tuned": "we meet at noon today"}
    assert results.examples[1].scores["base"]["rouge1"] == 1.0
    assert results.highlight == ["d0"]  # the default, example 200, is out of range
    assert len(results.significance) == len(ROUGE_KEYS)
    assert results.created is None and "created" not in results.to_json()  # only when the caller dates it


def test_results_json_round_trips_with_the_same_keys(tmp_path):
    results = hand_results(kind="train", method="full", cost=COST)
    data = results.to_json()
    assert list(data) == ["name", "setup", "baseline", "models", "significance", "examples", "highlight", "lab_csv"]
    assert data["setup"] == {"dataset": "by hand"}  # a setup key never given is left out, not written as null
    assert list(data["models"]["tuned"]) == [
        "kind",
        "method",
        "label",
        "base_model",
        "scores",
        "improvement",
        "cost",
        "log",
    ]
    assert data["models"]["tuned"]["scores"]["rouge1"]["ci95"] == list(results.models["tuned"].scores["rouge1"].ci95)
    path = tmp_path / "results.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    again = read_results(path)
    assert again == results and again.to_json() == data


# -- the typed documents --------------------------------------------------------------------------------------------


def test_the_published_schema_is_the_models_schema():
    assert SCHEMA_FILE.is_file(), "run: python -m sumlab.evaluation.schema"
    assert json.loads(SCHEMA_FILE.read_text(encoding="utf-8")) == json.loads(results_schema_text()), (
        "results.schema.json is stale; regenerate it with: python -m sumlab.evaluation.schema"
    )


def test_the_schema_rejects_what_the_models_reject():
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))
    data = hand_results(kind="train", method="lora").to_json()
    validator.validate(data)
    for broken in (
        {**data, "modles": {}},  # an unknown (misspelt) key
        {**data, "models": {**data["models"], "tuned": {**data["models"]["tuned"], "kind": "trained"}}},
    ):
        assert not validator.is_valid(broken)
        with pytest.raises(ValidationError):
            Results.model_validate(broken)


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"baseline": "missing"}, "baseline 'missing' is not one of the models"),
        ({"models": {}}, "the results hold no models"),
        ({"kind": "trained"}, "models.tuned.kind: Input should be 'zero_shot', 'train' or 'pretrained'"),
        ({"no_rouge1": True}, "model 'tuned' has no rouge1 score"),
    ],
)
def test_a_broken_results_file_is_one_clear_error(tmp_path, change, says):
    data = hand_results(kind="train", method="lora").to_json()
    if "kind" in change:
        data["models"]["tuned"]["kind"] = change["kind"]
    elif "no_rouge1" in change:
        del data["models"]["tuned"]["scores"]["rouge1"]
    else:
        data.update(change)
    path = tmp_path / "broken.json"  # not results.json, which conftest checks against the schema after each test
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(SumlabError, match="is not a sumlab results file") as error:
        read_results(path)
    assert says in str(error.value) and "\n" not in str(error.value)


def test_a_file_that_is_not_json_is_one_clear_error(tmp_path):
    path = tmp_path / "notes.json"
    path.write_text("{'not': json", encoding="utf-8")
    with pytest.raises(SumlabError, match="notes.json is not a sumlab results file: Invalid JSON"):
        read_results(path)


def test_run_summary_gives_the_reports_cost(tmp_path):
    parameters = {"trainable": 10, "total": 1000, "percent": 1.0}
    summary = RunSummary(
        method="lora",
        parameters=parameters,
        saved_bytes=40,
        full_model_bytes=4000,
        wall_seconds=12.5,
        peak_memory={"rss_bytes": 3000},
        train_examples=64,
        truncated={"train": {"sources": 1, "targets": 0, "examples": 64}},
        device="cpu",
        learning_rate=1e-3,
    )
    assert summary.to_json()["peak_memory"] == {"rss_bytes": 3000}  # no CUDA figure on a CPU run
    assert summary.cost() == Cost(
        **parameters, saved_bytes=40, full_model_bytes=4000, train_seconds=12.5, peak_memory_bytes=3000
    )
    on_gpu = RunSummary.model_validate({**summary.to_json(), "peak_memory": {"rss_bytes": 3000, "cuda_bytes": 2000}})
    assert on_gpu.cost().peak_memory_bytes == 2000  # the GPU's when one was used
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(summary.to_json()), encoding="utf-8")
    assert read_run_summary(path) == summary
    path.write_text(json.dumps({**summary.to_json(), "wall_seconds": "long"}), encoding="utf-8")
    with pytest.raises(SumlabError, match="is not a sumlab run summary: wall_seconds"):
        read_run_summary(path)


# -- highlighted examples ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("positions", "expected"),
    [
        ([200], ["d0"]),  # the lab's example 200 does not exist in a small subsample: the first is shown
        ([1], ["d0"]),  # positions count rows, one per reference, as the lab's dataset["test"][200] does
        ([2], ["d1"]),
        ([3, 200], ["d2"]),
        ([0, 1, 3], ["d0", "d2"]),
        ([-1], ["d0"]),
        ([], ["d0"]),
    ],
)
def test_highlighted_ids(positions, expected):
    assert highlighted_ids(prediction_set(), positions) == expected


# -- the lab's CSV --------------------------------------------------------------------------------------------------


def test_lab_roles_follow_the_lab():
    methods = {"original": None, "full": "full", "lora": "lora"}
    assert lab_roles(methods) == {
        "original": "original_model_summaries",
        "full": "instruct_model_summaries",
        "lora": "peft_model_summaries",
    }


def test_lab_roles_take_the_first_of_each_method_and_name_the_rest():
    methods = {"zero": None, "ia3": "ia3", "lora_r8": "lora", "ft": "full", "ft2": "full", "lora_r32": "lora"}
    assert lab_roles(methods) == {
        "zero": "original_model_summaries",
        "ft": "instruct_model_summaries",
        "lora_r8": "peft_model_summaries",
        "ia3": "ia3_model_summaries",
        "ft2": "ft2_model_summaries",
        "lora_r32": "lora_r32_model_summaries",
    }


def test_lab_roles_without_methods_keep_only_the_baseline_role():
    assert lab_roles({"a": None, "b": None}) == {"a": "original_model_summaries", "b": "b_model_summaries"}


def test_an_extra_model_never_takes_a_lab_column():
    methods = {"zero": None, "tuned": "full", "instruct": "full", "original": None}
    columns = lab_roles(methods)
    assert columns["tuned"] == "instruct_model_summaries" and columns["zero"] == "original_model_summaries"
    assert len(set(columns.values())) == len(columns)


def test_lab_csv_has_one_row_per_reference():
    predictions = prediction_set()
    settings = EvalSettings(significance_samples=100)
    results = build_results(
        predictions,
        score_models(predictions, settings),
        settings,
        name="hand",
        setup=Setup(),
        models_info={"tuned": ModelInfo(method="lora")},
    )
    rows = list(csv.reader(io.StringIO(lab_csv_text(results))))
    assert rows[0] == ["", LAB_REFERENCE_COLUMN, "original_model_summaries", "peft_model_summaries"]
    assert rows[1:] == [
        ["0", "the cat sat on the mat", "dogs run", "the cat sat on the mat"],
        ["1", "a cat was on the mat", "dogs run", "the cat sat on the mat"],
        ["2", "we meet at noon", "we meet at noon", "we meet at noon today"],
        ["3", "he buys milk and bread", "milk", "he buys bread and milk"],
    ]
