"""The report's tables as plain data, rendered by both the HTML and the Markdown writers.

A :class:`Table` holds display-ready strings, so both formats show exactly the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sumlab.evaluation.schema import Cost, EvalSetup, Hardware, Results
from sumlab.report import formatting as fmt


@dataclass(frozen=True)
class Cell:
    """One table cell: its main text, optional secondary lines (CI, improvement) and flags."""

    text: str
    details: tuple[str, ...] = ()
    best: bool = False
    numeric: bool = True
    nowrap: bool = False  # short labels such as metric names that must not break at their hyphen
    tone: str = ""  # "good" or "bad" colours the first detail line (improvements, significance)


@dataclass(frozen=True)
class Table:
    """A table with a header row, body rows and a one-line caption."""

    headers: list[str]
    rows: list[list[Cell]]
    caption: str = ""
    notes: list[str] = field(default_factory=list)


def label_cell(text: str) -> Cell:
    """A left-aligned text cell (model names, comparisons)."""
    return Cell(text, numeric=False)


def setup_items(results: Results) -> list[tuple[str, str]]:
    """The Setup section as (name, value) pairs; the prompt is shown separately."""
    setup = results.setup
    items = [
        ("Base model", setup.base_model or fmt.DASH),
        ("Dataset", setup.dataset or fmt.DASH),
        ("Split sizes", " · ".join(f"{name} {fmt.count(size)}" for name, size in setup.splits.items()) or fmt.DASH),
        ("Evaluation", _evaluation_text(setup.eval)),
        ("Generation", _key_values(setup.generation)),
        ("Versions", " · ".join(f"{name} {version}" for name, version in setup.versions.items()) or fmt.DASH),
        ("Hardware", _hardware_text(setup.hardware)),
        ("Time taken", fmt.duration(setup.wall_seconds)),
        ("Created", results.created or fmt.DASH),
    ]
    return items


def _evaluation_text(evaluation: EvalSetup | None) -> str:
    if evaluation is None:
        return fmt.DASH
    parts = [
        f"{fmt.count(evaluation.dialogues)} dialogues from the {evaluation.split} split",
        f"{evaluation.references_per_dialogue:g} references per dialogue on average",
    ]
    aggregate = {
        "max": "each summary scored against its best-matching reference",
        "mean": "scores averaged over the references",
    }[evaluation.aggregate]
    if evaluation.references_per_dialogue > 1:
        parts.append(aggregate)
    return "; ".join(parts)


def _key_values(mapping: dict) -> str:
    return ", ".join(f"{key}={value}" for key, value in mapping.items()) or fmt.DASH


def _hardware_text(hardware: Hardware | None) -> str:
    if hardware is None:
        return fmt.DASH
    parts = [hardware.gpu or hardware.device]
    if hardware.cpu_count:
        parts.append(f"{hardware.cpu_count} CPU cores")
    return " · ".join(parts)


def compares_models(results: Results) -> bool:
    """Whether there is more than one model, so that improvements over the baseline mean something."""
    return len(results.models) > 1


def rouge_table(results: Results) -> Table:
    """ROUGE per model: mean and 95% CI, and with several models the gain over the baseline and the best marked."""
    metrics = fmt.metric_keys(results)
    compared = compares_models(results)
    best = {metric: max(model.scores[metric].mean for model in results.models.values()) for metric in metrics}
    rows = []
    for key, model in results.models.items():
        row = [label_cell(fmt.model_label(results, key))]
        for metric in metrics:
            mean = model.scores[metric].mean
            tone = _tone(improvement_points(results, key, metric))
            row.append(
                Cell(
                    fmt.score(mean),
                    _rouge_details(results, key, metric),
                    best=compared and mean == best[metric],
                    tone=tone,
                )
            )
        rows.append(row)
    if compared:
        baseline = fmt.model_label(results, results.baseline)
        caption = (
            f"Mean over the evaluation dialogues, its 95% bootstrap CI, and the absolute improvement over "
            f"{baseline} in ROUGE points. Best per column highlighted."
        )
    else:
        caption = "Mean over the evaluation dialogues and its 95% bootstrap CI."
    return Table(["Model", *map(fmt.metric_name, metrics)], rows, caption)


def improvement_points(results: Results, key: str, metric: str) -> float | None:
    """Points over the baseline (stored, or recomputed from the means); None for the baseline itself."""
    if key == results.baseline:
        return None
    stored = results.models[key].improvement.get(metric)
    if stored is not None:
        return stored
    base = results.models[results.baseline].scores[metric].mean
    return (results.models[key].scores[metric].mean - base) * 100


def _rouge_details(results: Results, key: str, metric: str) -> tuple[str, ...]:
    low, high = results.models[key].scores[metric].ci95
    if not compares_models(results):
        return (fmt.interval(low, high),)
    gain = improvement_points(results, key, metric)
    return fmt.interval(low, high), ("baseline" if gain is None else f"{fmt.points(gain)} pts")


def _tone(value: float | None) -> str:
    if value is None or value == 0:
        return ""
    return "good" if value > 0 else "bad"


def significance_table(results: Results) -> Table:
    """Paired significance tests: Δ in points, its 95% CI, the p-value and a significant-at-0.05 marker."""
    rows = []
    for test in results.significance:
        significant = fmt.is_significant(test.p_value)
        low, high = test.ci95
        rows.append(
            [
                label_cell(f"{fmt.model_label(results, test.a)} vs {fmt.model_label(results, test.b)}"),
                Cell(fmt.metric_name(test.metric), numeric=False, nowrap=True),
                Cell(fmt.fraction_as_points(test.delta), tone=_tone(test.delta)),
                Cell(fmt.interval(low, high, fmt.fraction_as_points)),
                Cell(fmt.p_value(test.p_value)),
                Cell("✓ yes" if significant else "no", numeric=False, tone="good" if significant else ""),
            ]
        )
    methods = sorted({fmt.test_name(test.method) for test in results.significance})
    caption = (
        f"Two-sided {' / '.join(methods) or 'paired'} test on per-example scores; Δ is the first model "
        f"minus the second, in ROUGE points. Significant means p < {fmt.SIGNIFICANCE_LEVEL}."
    )
    headers = ["Comparison", "Metric", "Δ (points)", "95% CI of Δ", "p-value", "Significant at 0.05"]
    return Table(headers, rows, caption)


def cost_table(results: Results) -> Table:
    """What each model cost: trainable parameters, size on disk, training time and peak memory."""
    rows = []
    for key, model in results.models.items():
        cost = model.cost
        if cost is None:
            rows.append([label_cell(fmt.model_label(results, key)), *(Cell(fmt.DASH) for _ in range(6))])
            continue
        rows.append(
            [
                label_cell(fmt.model_label(results, key)),
                Cell(fmt.count(cost.trainable), (f"of {fmt.count(cost.total)}",) if cost.total else ()),
                Cell(fmt.percent(cost.percent)),
                Cell(fmt.megabytes(cost.saved_bytes), _size_share(cost)),
                Cell(fmt.megabytes(cost.full_model_bytes)),
                Cell(fmt.duration(cost.train_seconds)),
                Cell(fmt.memory(cost.peak_memory_bytes)),
            ]
        )
    headers = [
        "Model",
        "Trainable parameters",
        "Trainable %",
        "Saved on disk",
        "Full model size",
        "Training time",
        "Peak memory",
    ]
    caption = (
        "Saved on disk is what the method stores (an adapter for LoRA); sizes in decimal MB. "
        f"{fmt.DASH} means not applicable or not recorded."
    )
    return Table(headers, rows, caption)


def _size_share(cost: Cost) -> tuple[str, ...]:
    saved, full = cost.saved_bytes, cost.full_model_bytes
    if not saved or not full or saved >= full:
        return ()
    return (f"{fmt.percent(100 * saved / full)} of full",)
