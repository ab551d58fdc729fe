"""The plain-language summary at the top of the report.

It answers the lab's questions in two or three sentences: how LoRA compares with full fine-tuning
(or which model is best), at what share of trained parameters, by how much the models beat the
baseline, and whether each difference is statistically significant.
"""

from __future__ import annotations

from sumlab.evaluation.schema import PairedTest, Results
from sumlab.report import formatting as fmt

HEADLINE_METRIC = "rouge1"


def headline(results: Results) -> str:
    """Summarize the results in plain language for the top of the report.

    Args:
        results: the experiment's results (see :mod:`sumlab.evaluation.schema`).

    Returns:
        Two or three sentences, e.g. "LoRA reached 97% of full fine-tuning's ROUGE-1 (0.408 vs 0.421)
        while training 1.41% of the parameters. Both beat the zero-shot base: ...".
    """
    candidates = candidate_keys(results)
    if not candidates:
        return _single_model_sentence(results)
    sentences = [_lead_sentence(results, candidates), _baseline_sentence(results, candidates)]
    return " ".join(sentence for sentence in sentences if sentence)


def candidate_keys(results: Results) -> list[str]:
    """Every model except the baseline, in the results' order."""
    return [key for key in results.models if key != results.baseline]


def find_test(results: Results, first: str, second: str, metric: str = HEADLINE_METRIC) -> PairedTest | None:
    """The significance test between two models on ``metric``, in either orientation, or None."""
    for test in results.significance:
        if test.metric == metric and {test.a, test.b} == {first, second}:
            return test
    return None


def _mean(results: Results, key: str) -> float:
    return results.models[key].scores[HEADLINE_METRIC].mean


def _improvement(results: Results, key: str) -> float:
    """Points over the baseline, from the results or recomputed from the means."""
    stored = results.models[key].improvement.get(HEADLINE_METRIC)
    if stored is not None:
        return stored
    return (_mean(results, key) - _mean(results, results.baseline)) * 100


def _trained_percent(results: Results, key: str) -> float | None:
    cost = results.models[key].cost
    return None if cost is None else cost.percent


def _first_with_method(results: Results, candidates: list[str], method: str) -> str | None:
    return next((key for key in candidates if results.models[key].method == method), None)


def _single_model_sentence(results: Results) -> str:
    key = results.baseline
    summary = results.models[key].scores[HEADLINE_METRIC]
    low, high = summary.ci95
    return (
        f"Only {fmt.model_label(results, key)} was evaluated: ROUGE-1 {summary.mean:.3f} (95% CI {low:.3f}–{high:.3f})."
    )


def _lead_sentence(results: Results, candidates: list[str]) -> str:
    full = _first_with_method(results, candidates, "full")
    lora = _first_with_method(results, candidates, "lora")
    if full and lora:
        return _lora_versus_full(results, lora, full)
    best = max(candidates, key=lambda key: _mean(results, key))
    verb = "scored best, with" if len(candidates) > 1 else "scored"
    sentence = f"{fmt.capitalize_first(fmt.model_label(results, best))} {verb} ROUGE-1 {_mean(results, best):.3f}"
    share = _trained_percent(results, best)
    if share is not None:
        trained = "all parameters" if share >= 99.995 else f"{fmt.percent(share)} of the parameters"
        sentence += f", training {trained}"
    return sentence + "."


def _lora_versus_full(results: Results, lora: str, full: str) -> str:
    lora_label, full_label = fmt.model_label(results, lora), fmt.model_label(results, full)
    lora_mean, full_mean = _mean(results, lora), _mean(results, full)
    ratio = lora_mean / full_mean if full_mean else float("nan")
    sentence = (
        f"{fmt.capitalize_first(lora_label)} reached {ratio:.0%} of {full_label}'s ROUGE-1 "
        f"({lora_mean:.3f} vs {full_mean:.3f})"
    )
    share = _trained_percent(results, lora)
    if share is not None:
        sentence += f" while training {fmt.percent(share)} of the parameters"
    sentence += "."
    test = find_test(results, lora, full)
    if test is not None:
        gap = abs(test.delta) * 100
        verdict = "is" if fmt.is_significant(test.p_value) else "is not"
        sentence += f" The {gap:.1f}-point gap {verdict} statistically significant ({fmt.p_clause(test.p_value)})."
    return sentence


def _p_of(results: Results, key: str) -> float | None:
    test = find_test(results, key, results.baseline)
    return None if test is None else test.p_value


def _baseline_sentence(results: Results, candidates: list[str]) -> str:
    baseline = "the " + fmt.model_label(results, results.baseline)
    gains = [(fmt.model_label(results, key), _improvement(results, key), _p_of(results, key)) for key in candidates]
    all_clear_wins = all(gain > 0 and fmt.is_significant(p) for _, gain, p in gains)
    if all_clear_wins:
        return _clear_wins_sentence(baseline, gains)
    clauses = [f"{gain:+.1f} points for {label}{_significance_note(p)}" for label, gain, p in gains]
    return f"Against {baseline}, ROUGE-1 changed by {_join(clauses, last='and by ')}."


def _clear_wins_sentence(baseline: str, gains: list[tuple[str, float, float]]) -> str:
    """Every candidate beat the baseline significantly: say so in one sentence."""
    p_texts = {fmt.p_clause(p) for _, _, p in gains}
    shared_p = p_texts.pop() if len(p_texts) == 1 else None
    if len(gains) == 1:  # the lead sentence has just named this model
        _, gain, p = gains[0]
        return f"It beat {baseline} by {gain:.1f} ROUGE-1 points ({fmt.p_clause(p)})."
    clauses = []
    for index, (label, gain, p) in enumerate(gains):
        unit = " points" if index == 0 else ""
        own_p = "" if shared_p else f" ({fmt.p_clause(p)})"
        clauses.append(f"{label} by {gain:.1f}{unit}{own_p}")
    subject = "Both" if len(gains) == 2 else f"All {len(gains)}"
    tail = f" ({shared_p} each)" if shared_p else ""
    return f"{subject} beat {baseline}: {_join(clauses)}{tail}."


def _significance_note(p: float | None) -> str:
    if p is None:
        return " (not tested)"
    return f" ({fmt.p_clause(p)})" if fmt.is_significant(p) else f" ({fmt.p_clause(p)}, not significant)"


def _join(parts: list[str], last: str = "and ") -> str:
    """Join clauses as English prose: 'a', 'a and b', 'a, b and c'."""
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + f" {last}" + parts[-1]
