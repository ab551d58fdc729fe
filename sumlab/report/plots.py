"""The report's plots as PNG bytes: ROUGE bars with CI whiskers, loss curves and summary lengths.

Figures are built with ``matplotlib.figure.Figure`` (Agg canvas) rather than pyplot, so rendering
touches no global backend or figure state, and PNGs are written without the version metadata,
so the same results give byte-identical images.
"""

from __future__ import annotations

import inspect
import io

import matplotlib
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from sumlab.evaluation.schema import Results
from sumlab.report import formatting as fmt

DPI = 100
# Colour-blind-friendly palette (Okabe-Ito); the same model keeps the same colour in every plot.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]
REFERENCE_COLOR = "#777777"
STYLE = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.frameon": False,
}


def model_colors(results: Results) -> dict[str, str]:
    """A fixed colour per model key, in the results' order."""
    return {key: PALETTE[index % len(PALETTE)] for index, key in enumerate(results.models)}


def render_plots(results: Results) -> dict[str, bytes | None]:
    """Render every plot; a value is None when its data is missing (no logs, no examples)."""
    with matplotlib.rc_context(STYLE):
        return {
            "rouge_bars": rouge_bars(results),
            "loss_curves": loss_curves(results),
            "summary_lengths": summary_lengths(results),
        }


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def rouge_bars(results: Results) -> bytes:
    """Grouped bars: one group per metric, one bar per model, whiskers at the 95% CI."""
    metrics = fmt.metric_keys(results)
    models = list(results.models)
    colors = model_colors(results)
    width = 0.8 / len(models)
    figure = Figure(figsize=(7.2, 3.6), layout="constrained")
    axes = figure.add_subplot()
    for index, key in enumerate(models):
        scores = results.models[key].scores
        means = [scores[metric].mean for metric in metrics]
        below = [scores[metric].mean - scores[metric].ci95[0] for metric in metrics]
        above = [scores[metric].ci95[1] - scores[metric].mean for metric in metrics]
        positions = [group + (index - (len(models) - 1) / 2) * width for group in range(len(metrics))]
        axes.bar(
            positions,
            means,
            width * 0.92,
            yerr=[below, above],
            capsize=3,
            color=colors[key],
            label=fmt.model_label(results, key),
            error_kw={"elinewidth": 1, "ecolor": "#333333"},
        )
    axes.set_xticks(range(len(metrics)), [fmt.metric_name(metric) for metric in metrics])
    axes.set_ylabel("score (mean, 95% CI)")
    axes.set_ylim(bottom=0)
    axes.grid(axis="x", visible=False)
    axes.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=min(len(models), 4))
    return _png(figure)


def _log_series(log: list[dict], field: str) -> tuple[list[float], list[float]]:
    points = [(entry["step"], entry[field]) for entry in log if entry.get(field) is not None and "step" in entry]
    return [step for step, _ in points], [value for _, value in points]


def loss_curves(results: Results) -> bytes | None:
    """Training loss (solid) and validation loss (dashed) per trained model; None if nothing was logged."""
    colors = model_colors(results)
    figure = Figure(figsize=(7.2, 3.4), layout="constrained")
    axes = figure.add_subplot()
    drawn = False
    for key, model in results.models.items():
        label = fmt.model_label(results, key)
        for field, style, suffix in (("loss", "-", "training"), ("eval_loss", "--o", "validation")):
            steps, values = _log_series(model.log, field)
            if steps:
                axes.plot(
                    steps, values, style, color=colors[key], markersize=3, linewidth=1.4, label=f"{label} · {suffix}"
                )
                drawn = True
    if not drawn:
        return None
    axes.set_xlabel("training step")
    axes.set_ylabel("loss")
    axes.legend(loc="upper right", fontsize=8)
    return _png(figure)


def word_count(text: str) -> int:
    """Length of a summary in whitespace-separated words."""
    return len(text.split())


def summary_lengths(results: Results) -> bytes | None:
    """Box plots of summary length in words: the human references, then each model; None without examples."""
    examples = results.examples
    if not examples:
        return None
    colors = model_colors(results)
    labels = ["human references"]
    series = [[word_count(reference) for example in examples for reference in example.references]]
    box_colors = [REFERENCE_COLOR]
    for key in results.models:
        labels.append(fmt.model_label(results, key))
        series.append([word_count(example.predictions[key]) for example in examples if key in example.predictions])
        box_colors.append(colors[key])
    figure = Figure(figsize=(7.2, 0.9 + 0.45 * len(series)), layout="constrained")
    axes = figure.add_subplot()
    boxes = axes.boxplot(
        series[::-1],
        **_horizontal(),
        showmeans=True,
        patch_artist=True,
        widths=0.6,
        meanprops={"marker": "D", "markerfacecolor": "white", "markeredgecolor": "#333333", "markersize": 4},
        medianprops={"color": "#222222"},
        flierprops={"markersize": 3, "alpha": 0.5},
    )
    for patch, color in zip(boxes["boxes"], box_colors[::-1]):
        patch.set_facecolor(color)
        patch.set_alpha(0.75)
    axes.set_yticks(range(1, len(labels) + 1), labels[::-1])
    axes.set_xlabel("summary length (words); box = quartiles, line = median, ◆ = mean")
    axes.grid(axis="y", visible=False)
    return _png(figure)


def _horizontal() -> dict:
    """Keyword for a horizontal box plot: ``orientation`` since matplotlib 3.10, ``vert`` before."""
    if "orientation" in inspect.signature(Axes.boxplot).parameters:
        return {"orientation": "horizontal"}
    return {"vert": False}
