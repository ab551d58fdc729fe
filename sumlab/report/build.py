"""Write the report files for one results dict: ``report.html``, ``report.md`` and ``plots/*.png``."""

from __future__ import annotations

from pathlib import Path

from sumlab.errors import SumlabError
from sumlab.report.html import render_html
from sumlab.report.markdown import render_markdown
from sumlab.report.plots import render_plots
from sumlab.runtime.fileio import atomic_path, write_text_atomic

PLOTS_DIR = "plots"


def validate_results(results: dict) -> None:
    """Check the parts of the results the report cannot do without.

    Raises:
        SumlabError: no models, a baseline that is not among them, or a model without ROUGE-1.
    """
    models = results.get("models") or {}
    if not models:
        raise SumlabError("the results hold no models", "score at least one model before building a report")
    baseline = results.get("baseline")
    if baseline not in models:
        raise SumlabError(f"baseline {baseline!r} is not one of the models {sorted(models)}",
                          "set results['baseline'] to the key of the zero-shot model")
    for key, model in models.items():
        if "rouge1" not in (model.get("scores") or {}):
            raise SumlabError(f"model {key!r} has no rouge1 score", "score every model with the same ROUGE metrics")


def write_report(results: dict, out_dir: Path) -> dict[str, Path]:
    """Write ``report.html``, ``report.md`` and the plot PNGs into ``out_dir``; every file atomically.

    ``results.json`` is the caller's to write. The HTML embeds the plots, so it is the one file to share.

    Args:
        results: the experiment's results dict (schema in :mod:`sumlab.report`).
        out_dir: the directory to write into; created if missing.

    Returns:
        Paths by name: ``html``, ``markdown``, and one per plot that had data (``rouge_bars``,
        ``loss_curves``, ``summary_lengths``).

    Raises:
        SumlabError: the results lack models, a valid baseline or ROUGE-1 scores.
    """
    validate_results(results)
    out_dir = Path(out_dir)
    plots = render_plots(results)
    written: dict[str, Path] = {}
    plot_files: dict[str, str | None] = {}
    for name, png in plots.items():
        relative = f"{PLOTS_DIR}/{name}.png"
        plot_files[name] = relative if png is not None else None
        if png is not None:
            with atomic_path(out_dir / relative) as tmp:
                tmp.write_bytes(png)
            written[name] = out_dir / relative
    write_text_atomic(out_dir / "report.html", render_html(results, plots))
    write_text_atomic(out_dir / "report.md", render_markdown(results, plot_files))
    return {"html": out_dir / "report.html", "markdown": out_dir / "report.md", **written}
