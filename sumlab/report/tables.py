"""The report's tables as plain data, rendered by both the HTML and the Markdown writers.

A :class:`Table` holds display-ready strings, so both formats show exactly the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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


def setup_items(results: dict) -> list[tuple[str, str]]:
    """The Setup section as (name, value) pairs; the prompt is shown separately."""
    setup = results.get("setup") or {}
    evaluation = setup.get("eval") or {}
    splits = setup.get("splits") or {}
    items = [
        ("Base model", setup.get("base_model") or fmt.DASH),
        ("Dataset", setup.get("dataset") or fmt.DASH),
        ("Split sizes", " · ".join(f"{name} {fmt.count(size)}" for name, size in splits.items()) or fmt.DASH),
        ("Evaluation", _evaluation_text(evaluation)),
        ("Generation", _key_values(setup.get("generation"))),
        ("Versions", " · ".join(f"{name} {version}" for name, version in (setup.get("versions") or {}).items())
         or fmt.DASH),
        ("Hardware", _hardware_text(setup.get("hardware") or {})),
        ("Time taken", fmt.duration(setup.get("wall_seconds"))),
        ("Created", results.get("created") or fmt.DASH),
    ]
    return items


def _evaluation_text(evaluation: dict) -> str:
    if not evaluation:
        return fmt.DASH
    parts = [f"{fmt.count(evaluation.get('dialogues'))} dialogues from the {evaluation.get('split', '?')} split"]
    per_dialogue = evaluation.get("references_per_dialogue")
    if per_dialogue is not None:
        parts.append(f"{per_dialogue:g} references per dialogue on average")
    aggregate = {"max": "each summary scored against its best-matching reference",
                 "mean": "scores averaged over the references"}.get(evaluation.get("aggregate"))
    if aggregate and (per_dialogue or 1) > 1:
        parts.append(aggregate)
    return "; ".join(parts)


def _key_values(mapping: dict | None) -> str:
    return ", ".join(f"{key}={value}" for key, value in (mapping or {}).items()) or fmt.DASH


def _hardware_text(hardware: dict) -> str:
    parts = [hardware.get("gpu") or hardware.get("device") or fmt.DASH]
    if hardware.get("cpu_count"):
        parts.append(f"{hardware['cpu_count']} CPU cores")
    extra = {key: value for key, value in hardware.items() if key not in {"device", "gpu", "cpu_count"}}
    if extra:
        parts.append(_key_values(extra))
    return " · ".join(str(part) for part in parts)


def rouge_table(results: dict) -> Table:
    """ROUGE per model: mean, 95% CI and improvement over the baseline in points; best mean per column marked."""
    metrics = fmt.metric_keys(results)
    best = {metric: max(model["scores"][metric]["mean"] for model in results["models"].values()) for metric in metrics}
    rows = []
    for key, model in results["models"].items():
        row = [label_cell(fmt.model_label(results, key))]
        for metric in metrics:
            summary = model["scores"][metric]
            row.append(Cell(fmt.score(summary["mean"]), _rouge_details(results, key, metric),
                            best=summary["mean"] == best[metric], tone=_tone(improvement_points(results, key, metric))))
        rows.append(row)
    baseline = fmt.model_label(results, results["baseline"])
    caption = (f"Mean over the evaluation dialogues, its 95% bootstrap CI, and the absolute improvement over "
               f"{baseline} in ROUGE points. Best per column highlighted.")
    return Table(["Model", *map(fmt.metric_name, metrics)], rows, caption)


def improvement_points(results: dict, key: str, metric: str) -> float | None:
    """Points over the baseline (stored, or recomputed from the means); None for the baseline itself."""
    if key == results["baseline"]:
        return None
    stored = (results["models"][key].get("improvement") or {}).get(metric)
    if stored is not None:
        return stored
    base = results["models"][results["baseline"]]["scores"][metric]["mean"]
    return (results["models"][key]["scores"][metric]["mean"] - base) * 100


def _rouge_details(results: dict, key: str, metric: str) -> tuple[str, str]:
    low, high = results["models"][key]["scores"][metric]["ci95"]
    gain = improvement_points(results, key, metric)
    return fmt.interval(low, high), ("baseline" if gain is None else f"{fmt.points(gain)} pts")


def _tone(value: float | None) -> str:
    if value is None or value == 0:
        return ""
    return "good" if value > 0 else "bad"


def significance_table(results: dict) -> Table:
    """Paired significance tests: Δ in points, its 95% CI, the p-value and a significant-at-0.05 marker."""
    rows = []
    for test in results.get("significance") or []:
        significant = fmt.is_significant(test.get("p_value"))
        low, high = test.get("ci95") or (None, None)
        rows.append([
            label_cell(f"{fmt.model_label(results, test['a'])} vs {fmt.model_label(results, test['b'])}"),
            Cell(fmt.metric_name(test["metric"]), numeric=False, nowrap=True),
            Cell(fmt.fraction_as_points(test.get("delta")), tone=_tone(test.get("delta"))),
            Cell(fmt.DASH if low is None else fmt.interval(low, high, fmt.fraction_as_points)),
            Cell(fmt.p_value(test.get("p_value"))),
            Cell("✓ yes" if significant else "no", numeric=False, tone="good" if significant else ""),
        ])
    methods = sorted({fmt.test_name(test.get("method")) for test in results.get("significance") or []})
    caption = (f"Two-sided {' / '.join(methods) or 'paired'} test on per-example scores; Δ is the first model "
               f"minus the second, in ROUGE points. Significant means p < {fmt.SIGNIFICANCE_LEVEL}.")
    headers = ["Comparison", "Metric", "Δ (points)", "95% CI of Δ", "p-value", "Significant at 0.05"]
    return Table(headers, rows, caption)


def cost_table(results: dict) -> Table:
    """What each model cost: trainable parameters, size on disk, training time and peak memory."""
    rows = []
    for key, model in results["models"].items():
        cost = model.get("cost") or {}
        trainable = cost.get("trainable")
        rows.append([
            label_cell(fmt.model_label(results, key)),
            Cell(fmt.count(trainable), (f"of {fmt.count(cost['total'])}",) if cost.get("total") else ()),
            Cell(fmt.percent(cost.get("percent"))),
            Cell(fmt.megabytes(cost.get("saved_bytes")), _size_share(cost)),
            Cell(fmt.megabytes(cost.get("full_model_bytes"))),
            Cell(fmt.duration(cost.get("train_seconds"))),
            Cell(fmt.memory(cost.get("peak_memory_bytes"))),
        ])
    headers = ["Model", "Trainable parameters", "Trainable %", "Saved on disk", "Full model size",
               "Training time", "Peak memory"]
    caption = ("Saved on disk is what the method stores (an adapter for LoRA); sizes in decimal MB. "
               f"{fmt.DASH} means not applicable or not recorded.")
    return Table(headers, rows, caption)


def _size_share(cost: dict) -> tuple[str, ...]:
    saved, full = cost.get("saved_bytes"), cost.get("full_model_bytes")
    if not saved or not full or saved >= full:
        return ()
    return (f"{fmt.percent(100 * saved / full)} of full",)
