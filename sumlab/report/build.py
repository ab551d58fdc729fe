"""Write the report files for one results document: ``report.html``, ``report.md`` and ``plots/*.png``."""

from __future__ import annotations

from pathlib import Path

from sumlab.evaluation.schema import Results
from sumlab.report.html import render_html
from sumlab.report.markdown import render_markdown
from sumlab.report.plots import render_plots
from sumlab.runtime.fileio import atomic_path, write_text_atomic

PLOTS_DIR = "plots"


def write_report(results: Results, out_dir: Path) -> dict[str, Path]:
    """Write ``report.html``, ``report.md`` and the plot PNGs into ``out_dir``; every file atomically.

    ``results.json`` is the caller's to write. The HTML embeds the plots, so it is the one file to share.

    Args:
        results: the experiment's results (a :class:`~sumlab.evaluation.schema.Results`, valid by construction;
            read a ``results.json`` with :func:`~sumlab.evaluation.schema.read_results`).
        out_dir: the directory to write into; created if missing.

    Returns:
        Paths by name: ``html``, ``markdown``, and one per plot that had data (``rouge_bars``,
        ``loss_curves``, ``summary_lengths``).
    """
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
