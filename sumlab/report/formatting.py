"""Number and label formatting shared by the HTML and Markdown reports.

Scores are fractions (0-1) shown with four decimals as the lab prints them (0.4214); differences
between models are shown in ROUGE points, i.e. the fraction times 100 (+18.81).
"""

from __future__ import annotations

from pathlib import Path

from sumlab.evaluation.schema import Results

DASH = "—"
SIGNIFICANCE_LEVEL = 0.05
METRIC_NAMES = {"rouge1": "ROUGE-1", "rouge2": "ROUGE-2", "rougeL": "ROUGE-L", "rougeLsum": "ROUGE-Lsum"}
TEST_NAMES = {"paired_bootstrap": "paired bootstrap", "approximate_randomization": "approximate randomization"}


def metric_name(key: str) -> str:
    """Display name of a metric key: ``rouge1`` -> ``ROUGE-1``."""
    return METRIC_NAMES.get(key, key)


def test_name(method: str | None) -> str:
    """Display name of a significance test method."""
    return TEST_NAMES.get(method or "", (method or "unknown test").replace("_", " "))


def model_label(results: Results, key: str) -> str:
    """A model's human label, falling back to its key; with several base models, its base's name too."""
    model = results.models.get(key)
    if model is None:
        return key
    label = model.label or key
    bases = {other.base_model for other in results.models.values()} - {None}
    if len(bases) > 1 and model.base_model:
        return f"{label} · {Path(model.base_model.removesuffix(' (random init)')).name}"
    return label


def metric_keys(results: Results) -> list[str]:
    """The metrics to report, in the order the baseline model lists them."""
    return list(results.models[results.baseline].scores)


def score(value: float | None) -> str:
    """A score fraction with four decimals (0.4214), or a dash."""
    return DASH if value is None else f"{value:.4f}"


def points(value: float | None, decimals: int = 2) -> str:
    """A signed difference already in ROUGE points (+18.81), or a dash."""
    return DASH if value is None else f"{value:+.{decimals}f}"


def fraction_as_points(value: float | None, decimals: int = 2) -> str:
    """A signed difference given as a fraction, shown in points (0.1881 -> +18.81)."""
    return DASH if value is None else points(value * 100, decimals)


def interval(low: float, high: float, render=score) -> str:
    """A confidence interval as ``low – high``."""
    return f"{render(low)} – {render(high)}"


def p_value(value: float | None) -> str:
    """A p-value: ``< 0.001`` below a thousandth, else three decimals."""
    if value is None:
        return DASH
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def p_clause(value: float | None) -> str:
    """A p-value as prose: ``p < 0.001`` or ``p = 0.210``."""
    text = p_value(value)
    return "p " + text if text.startswith("<") else f"p = {text}"


def is_significant(value: float | None) -> bool:
    """Whether a p-value is below the report's significance level (0.05)."""
    return value is not None and value < SIGNIFICANCE_LEVEL


def count(value: int | None) -> str:
    """An integer with thousands separators (247,577,856), or a dash."""
    return DASH if value is None else f"{int(value):,}"


def percent(value: float | None) -> str:
    """A percentage with enough decimals to stay informative for small shares (1.41%, 0.018%)."""
    if value is None:
        return DASH
    decimals = 2 if value >= 0.1 else 3
    return f"{value:.{decimals}f}%"


def megabytes(value: int | float | None) -> str:
    """A byte count in decimal megabytes (990.0 MB), or a dash."""
    return DASH if value is None else f"{value / 1e6:,.1f} MB"


def memory(value: int | float | None) -> str:
    """A memory size in GB from 1 GB up, else in MB."""
    if value is None:
        return DASH
    return f"{value / 1e9:.2f} GB" if value >= 1e9 else megabytes(value)


def duration(seconds: float | None) -> str:
    """A wall time in the largest sensible unit: 45 s, 10.0 min, 1.25 h."""
    if seconds is None:
        return DASH
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def capitalize_first(text: str) -> str:
    """Upper-case the first character only (keeps 'LoRA' and 'FLAN-T5' intact)."""
    return text[:1].upper() + text[1:]
