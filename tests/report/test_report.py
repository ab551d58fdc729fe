"""The report: files, escaping, embedded data, formatting, headline wording and degenerate inputs."""

from __future__ import annotations

import json
import re
from html import escape

import pytest

from sumlab.evaluation.schema import Results
from sumlab.report import headline, write_report
from sumlab.report.html_examples import DATA_ELEMENT_ID, embed_json
from sumlab.report.markdown import code_block, md_text
from sumlab.report.sample import sample_results

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TRICKY = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def results() -> Results:
    return sample_results(examples=30)


@pytest.fixture(scope="module")
def report(results, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("report")
    paths = write_report(results, out)
    return {
        "paths": paths,
        "html": paths["html"].read_text(encoding="utf-8"),
        "markdown": paths["markdown"].read_text(encoding="utf-8"),
    }


def embedded_data(html: str) -> dict:
    match = re.search(rf'<script type="application/json" id="{DATA_ELEMENT_ID}">(.*?)</script>', html, re.S)
    assert match, "the per-example JSON blob is missing"
    return json.loads(match.group(1))


def two_model_results(lora_mean: float, full_mean: float, p_full_lora: float = 0.001) -> Results:
    """Zero-shot at 0.23, full and LoRA at the given ROUGE-1, LoRA training 1.41% of the parameters."""
    results = sample_results(examples=3)
    results.models["lora"].scores["rouge1"].mean = lora_mean
    results.models["full"].scores["rouge1"].mean = full_mean
    results.models["lora"].improvement["rouge1"] = (lora_mean - 0.23) * 100
    results.models["full"].improvement["rouge1"] = (full_mean - 0.23) * 100
    for test in results.significance:
        if {test.a, test.b} == {"full", "lora"}:
            test.p_value = p_full_lora
            test.delta = full_mean - lora_mean
    return results


def test_write_report_writes_every_file(report):
    paths = report["paths"]
    assert set(paths) == {"html", "markdown", "rouge_bars", "loss_curves", "summary_lengths"}
    for path in paths.values():
        assert path.is_file() and path.stat().st_size > 0
    for name in ("rouge_bars", "loss_curves", "summary_lengths"):
        assert paths[name].read_bytes().startswith(PNG_MAGIC)
        assert paths[name].parent.name == "plots"
    assert not list(paths["html"].parent.glob(".*.tmp")), "temporary files were left behind"


def test_html_is_self_contained(report):
    html = report["html"]
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", html, re.I)
    assert "@import" not in html and "url(http" not in html
    assert html.count('src="data:image/png;base64,') == 3
    assert '<a class="download" href="lab_results.csv" download>' in html


def test_html_shows_headline_models_and_formatted_scores(report, results):
    html = report["html"]
    assert escape(headline(results)) in html
    for model in results.models.values():
        assert model.label in html
    assert "0.4210" in html and "0.2330" in html  # ROUGE-1 means, four decimals like the lab
    assert "+18.80 pts" in html and "+17.50 pts" in html  # improvement over the baseline in points
    assert "0.4100 – 0.4330" in html  # the 95% CI of full fine-tuning's ROUGE-1
    assert '<td class="num best">0.4210' in html  # best per column is highlighted
    assert "247,577,856" in html and "1.41%" in html and "14.2 MB" in html and "990.0 MB" in html
    assert "10.0 min" in html and "4.00 GB" in html and "—" in html
    assert "✓ yes" in html and "&lt; 0.001" in html and "0.012" in html


def test_embedded_json_round_trips(report, results):
    data = embedded_data(report["html"])
    assert [model["key"] for model in data["models"]] == list(results.models)
    assert data["pair"] == ["full", "original"]
    assert len(data["examples"]) == len(results.examples)
    for row, example in zip(data["examples"], results.examples):
        assert row["dialogue"] == example.dialogue
        assert row["predictions"] == example.predictions
        assert row["rouge1"] == {key: scores["rouge1"] for key, scores in example.scores.items()}


def test_dialogue_markup_is_escaped(report, results):
    assert any(TRICKY in example.dialogue for example in results.examples)
    html = report["html"]
    assert TRICKY not in html
    assert html.count("<script") == 2  # the JSON blob and the page script, nothing from the data
    assert "</pre> or" not in html and "<!-- x -->" not in html


def test_embed_json_cannot_close_the_script_element():
    data = {"text": "</script><!-- & \u2028 'quotes' \"double\""}
    embedded = embed_json(data)
    assert "<" not in embedded and ">" not in embedded and "&" not in embedded
    assert json.loads(embedded) == data


def test_highlighted_example_comes_first(report, results):
    html = report["html"]
    highlight = results.highlight[0]
    assert f"<h3>Example {highlight}</h3>" in html
    assert html.index('id="qualitative"') < html.index('id="examples"')


def test_markdown_has_tables_plots_and_preview(report, results):
    markdown = report["markdown"]
    assert headline(results).split(" (")[0] in markdown
    assert "| Model | ROUGE-1 | ROUGE-2 | ROUGE-L | ROUGE-Lsum |" in markdown
    assert "| Comparison | Metric |" in markdown and "| Model | Trainable parameters |" in markdown
    assert "**0.4210**" in markdown
    for name in ("rouge_bars", "loss_curves", "summary_lengths"):
        assert f"(plots/{name}.png)" in markdown
    assert "### Example test_200" in markdown
    assert "The first 20 of 30 examples" in markdown and "[report.html](report.html)" in markdown
    assert TRICKY not in markdown


def test_markdown_helpers_escape():
    assert md_text("a | b <c> & *d* p < 0.001\nnext") == r"a \| b &lt;c> & \*d\* p < 0.001 next"
    assert md_text("test_200 _x_ &amp; </script>") == r"test_200 \_x\_ &amp;amp; &lt;/script>"
    assert code_block("x ``` y").startswith("````text\n")


def test_headline_for_lora_versus_full():
    text = headline(two_model_results(lora_mean=0.40, full_mean=0.42))
    assert text.startswith(
        "LoRA reached 95% of full fine-tuning's ROUGE-1 (0.400 vs 0.420) while training 1.41% of the parameters."
    )
    assert "The 2.0-point gap is statistically significant (p = 0.001)." in text
    assert "Both beat the zero-shot base: full fine-tuning by 19.0 points and LoRA by 17.0 (p < 0.001 each)." in text


def test_headline_says_when_a_difference_is_not_significant():
    text = headline(two_model_results(lora_mean=0.418, full_mean=0.42, p_full_lora=0.31))
    assert "The 0.2-point gap is not statistically significant (p = 0.310)." in text
    results = two_model_results(lora_mean=0.40, full_mean=0.42)
    for test in results.significance:
        if test.a == "lora" and test.b == "original" and test.metric == "rouge1":
            test.p_value = 0.2
    text = headline(results)
    assert (
        "ROUGE-1 changed by +19.0 points for full fine-tuning (p < 0.001) "
        "and by +17.0 points for LoRA (p = 0.200, not significant)." in text
    )


def test_headline_without_lora_names_the_best_model(results):
    only_full = results.model_copy(deep=True)
    del only_full.models["lora"]
    text = headline(only_full)
    assert text.startswith("Full fine-tuning scored ROUGE-1 0.421, training all parameters.")
    assert text.endswith("It beat the zero-shot base by 18.8 ROUGE-1 points (p < 0.001).")


def test_headline_with_only_lora_and_an_untested_pair(results):
    only_lora = results.model_copy(deep=True)
    del only_lora.models["full"]
    only_lora.significance = []
    text = headline(only_lora)
    assert text == (
        "LoRA scored ROUGE-1 0.408, training 1.41% of the parameters. "
        "Against the zero-shot base, ROUGE-1 changed by +17.5 points for LoRA (not tested)."
    )


def single_model(results: Results) -> Results:
    single = results.model_copy(deep=True)
    single.models = {"original": single.models["original"]}
    single.significance = []
    for example in single.examples:
        example.predictions = {"original": example.predictions["original"]}
        example.scores = {"original": example.scores["original"]}
    return Results.model_validate(single.model_dump())


def test_report_with_one_model_and_no_logs(results, tmp_path):
    single = single_model(results)
    assert headline(single).startswith("Only zero-shot base was evaluated: ROUGE-1 0.233")
    paths = write_report(single, tmp_path)
    assert "loss_curves" not in paths
    html = paths["html"].read_text(encoding="utf-8")
    assert 'id="loss_curves-missing"' in html and "No significance tests were run" in html
    assert len(embedded_data(html)["models"]) == 1
    assert "no loss curves" in paths["markdown"].read_text(encoding="utf-8")


def test_one_model_gets_no_improvement_over_itself(results, tmp_path):
    """With nothing to compare, no table, caption or card speaks of an improvement over a baseline."""
    paths = write_report(single_model(results), tmp_path)
    html, markdown = (paths[name].read_text(encoding="utf-8") for name in ("html", "markdown"))
    page_text = re.sub(r"<(style|script)\b.*?</\1>", "", html, flags=re.S)  # what the page shows, not its code
    for text in (page_text, markdown):
        assert "Mean over the evaluation dialogues and its 95% bootstrap CI." in text
        assert "improvement" not in text and " pts" not in text
        assert not re.search(r"\bbaseline\b", text)  # (the lab's CSV column human_baseline_summaries is fine)
        assert "Best per column" not in text
    assert '<td class="num">0.2330<span class="detail">0.2220 – 0.2450</span></td>' in html
    assert "| zero-shot base | 0.2330 · 0.2220 – 0.2450 |" in markdown
    # two models: the baseline is named, and the other model's gain is shown
    pair = results.model_copy(deep=True)
    del pair.models["lora"]
    paths = write_report(pair, tmp_path / "pair")
    html = paths["html"].read_text(encoding="utf-8")
    assert "absolute improvement over zero-shot base" in html and "+18.80 pts" in html and ">baseline<" in html


def test_report_without_examples_or_logs(results, tmp_path):
    bare = results.model_copy(deep=True)
    bare.examples, bare.highlight, bare.lab_csv = [], [], None
    for model in bare.models.values():
        model.log = []
    paths = write_report(bare, tmp_path)
    assert set(paths) == {"html", "markdown", "rouge_bars"}
    html = paths["html"].read_text(encoding="utf-8")
    assert "The results hold no per-example summaries." in html and f'id="{DATA_ELEMENT_ID}"' not in html


def test_plots_are_deterministic(results, tmp_path):
    first = write_report(results, tmp_path / "a")
    second = write_report(results, tmp_path / "b")
    for name in ("rouge_bars", "loss_curves", "summary_lengths"):
        assert first[name].read_bytes() == second[name].read_bytes()


def test_sample_results_are_what_the_pipeline_writes(results):
    """The preview data passes the same validation as results.json: the pipeline's kinds, no unknown keys."""
    assert Results.model_validate_json(json.dumps(results.to_json())) == results
    assert {model.kind for model in results.models.values()} == {"zero_shot", "train"}


def test_cost_of_a_model_without_training_is_dashes(report):
    row = re.search(r'<table class="data" id="cost-table">.*?<tbody><tr>(.*?)</tr>', report["html"], re.S).group(1)
    assert row.count("—") == 6  # the zero-shot base: nothing trained, nothing recorded
