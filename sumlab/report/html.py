"""The self-contained ``report.html``: inline CSS and JS, plots as base64 PNGs, no external resources.

Every piece of text from the results is escaped here with :func:`html.escape`; the per-example data
travels as a JSON blob (see :mod:`sumlab.report.html_examples`) that the page's script renders with
``textContent``, never ``innerHTML``.
"""

from __future__ import annotations

import base64
import struct
from html import escape
from importlib import resources
from urllib.parse import quote

from sumlab.evaluation.schema import Results
from sumlab.report import formatting as fmt
from sumlab.report.headline import headline
from sumlab.report.html_examples import examples_section, qualitative_section
from sumlab.report.tables import (
    Cell,
    Table,
    compares_models,
    cost_table,
    improvement_points,
    rouge_table,
    setup_items,
    significance_table,
)

PLOT_CAPTIONS = {
    "rouge_bars": ("ROUGE per model", "Mean score per metric, whiskers at the 95% bootstrap CI."),
    "loss_curves": ("Training and validation loss", "Solid: training loss; dashed with dots: validation loss."),
    "summary_lengths": ("Summary length", "Words per summary for each model against the human references."),
}
MISSING_PLOT_NOTES = {
    "loss_curves": "No training logs were recorded, so there are no loss curves.",
    "summary_lengths": "The results hold no per-example summaries, so there is no length distribution.",
}
NAV = [
    ("setup", "Setup"),
    ("rouge", "ROUGE"),
    ("significance", "Significance"),
    ("cost", "Cost"),
    ("plots", "Plots"),
    ("qualitative", "Qualitative"),
    ("examples", "All examples"),
    ("export", "CSV"),
]


def render_html(results: Results, plots: dict[str, bytes | None]) -> str:
    """The whole report page as one HTML string."""
    title = f"sumlab report · {results.name or 'run'}"
    body = "\n".join(
        [
            _header(results),
            _setup_section(results),
            _table_section("rouge", "ROUGE scores", rouge_table(results), "rouge-table"),
            _significance_section(results),
            _table_section("cost", "Cost", cost_table(results), "cost-table"),
            _plots_section(plots),
            qualitative_section(results),
            examples_section(results),
            _export_section(results),
            _footer(results),
        ]
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>\n{_asset('report.css')}</style>\n</head>\n"
        f"<body>\n{body}\n<script>\n{_asset('report.js')}</script>\n</body>\n</html>\n"
    )


def _asset(name: str) -> str:
    return resources.files("sumlab.report").joinpath("assets", name).read_text(encoding="utf-8")


def _header(results: Results) -> str:
    setup = results.setup
    subtitle = " on ".join(escape(part) for part in (setup.base_model, setup.dataset) if part)
    links = "".join(f'<a href="#{anchor}">{label}</a>' for anchor, label in NAV)
    return (
        '<header class="hero"><div class="wrap">'
        f'<p class="eyebrow">sumlab report · {escape(results.name or "run")}</p>'
        f"<h1>Dialogue summarization: {subtitle or 'results'}</h1>"
        f'<p class="headline" id="headline">{escape(headline(results))}</p>'
        f"{_scorecards(results)}</div>"
        f'<nav class="toc" aria-label="Sections"><div class="wrap">{links}</div></nav></header>'
    )


def _scorecards(results: Results) -> str:
    """One card per model: its ROUGE-1, the gain over the baseline (with several) and the share trained."""
    metric = "rouge1"
    compared = compares_models(results)
    best = max(model.scores[metric].mean for model in results.models.values())
    cards = []
    for key, model in results.models.items():
        mean = model.scores[metric].mean
        gain = improvement_points(results, key, metric)
        gain_text = "baseline" if gain is None else f"{fmt.points(gain)} pts vs baseline"
        tone = "" if not gain else ("good" if gain > 0 else "bad")
        gain_note = f'<div class="card-note {tone}">{escape(gain_text)}</div>' if compared else ""
        trained = "no training" if model.cost is None else f"{fmt.percent(model.cost.percent)} of parameters trained"
        cards.append(
            f'<div class="card{" best" if compared and mean == best else ""}">'
            f'<div class="card-label">{escape(fmt.model_label(results, key))}</div>'
            f'<div class="card-value">{fmt.score(mean)}<span class="unit"> {fmt.metric_name(metric)}</span></div>'
            f'{gain_note}<div class="card-note">{escape(trained)}</div></div>'
        )
    return f'<div class="cards">{"".join(cards)}</div>'


def _setup_section(results: Results) -> str:
    items = "".join(f"<dt>{escape(name)}</dt><dd>{escape(value)}</dd>" for name, value in setup_items(results))
    prompt = results.setup.prompt
    prompt_html = f'<h3>Prompt</h3><pre class="prompt">{escape(prompt)}</pre>' if prompt else ""
    return f'<section id="setup" class="wrap"><h2>Setup</h2><dl class="setup">{items}</dl>{prompt_html}</section>'


def render_table(table: Table, table_id: str) -> str:
    """A :class:`Table` as an HTML table inside a horizontally scrollable box."""
    head = "".join(f'<th scope="col">{escape(header)}</th>' for header in table.headers)
    body = "".join(
        "<tr>" + "".join(_cell(cell, index) for index, cell in enumerate(row)) + "</tr>" for row in table.rows
    )
    caption = f'<p class="caption">{escape(table.caption)}</p>' if table.caption else ""
    return (
        f'<div class="table-scroll"><table class="data" id="{table_id}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>{caption}"
    )


def _cell(cell: Cell, column: int) -> str:
    tag = 'th scope="row"' if column == 0 else "td"
    classes = " ".join(name for name, on in (("num", cell.numeric), ("best", cell.best), ("nowrap", cell.nowrap)) if on)
    details = "".join(
        f'<span class="detail{" " + cell.tone if index == len(cell.details) - 1 and cell.tone else ""}">'
        f"{escape(detail)}</span>"
        for index, detail in enumerate(cell.details)
    )
    text = escape(cell.text)
    if cell.tone and not cell.details:
        text = f'<span class="{cell.tone}">{text}</span>'
    return f'<{tag} class="{classes}">{text}{details}</{tag.split()[0]}>'


def _table_section(anchor: str, title: str, table: Table, table_id: str) -> str:
    return f'<section id="{anchor}" class="wrap"><h2>{escape(title)}</h2>{render_table(table, table_id)}</section>'


def _significance_section(results: Results) -> str:
    table = significance_table(results)
    if not table.rows:
        note = '<p class="note">No significance tests were run (a single model has nothing to compare).</p>'
        return f'<section id="significance" class="wrap"><h2>Significance</h2>{note}</section>'
    return _table_section("significance", "Significance", table, "significance-table")


def png_size(png: bytes) -> tuple[int, int]:
    """Width and height of a PNG, read from its IHDR chunk."""
    return struct.unpack(">II", png[16:24])


def _plots_section(plots: dict[str, bytes | None]) -> str:
    figures = []
    for name, (title, caption) in PLOT_CAPTIONS.items():
        png = plots.get(name)
        if png is None:
            figures.append(f'<p class="note" id="{name}-missing">{escape(MISSING_PLOT_NOTES[name])}</p>')
            continue
        width, height = png_size(png)
        data = base64.b64encode(png).decode("ascii")
        figures.append(
            f'<figure id="{name}"><img class="plot" src="data:image/png;base64,{data}" width="{width}" '
            f'height="{height}" alt="{escape(title)}"><figcaption><strong>{escape(title)}.</strong> '
            f"{escape(caption)}</figcaption></figure>"
        )
    return f'<section id="plots" class="wrap"><h2>Plots</h2>{"".join(figures)}</section>'


def _footer(results: Results) -> str:
    version = results.setup.versions.get("sumlab")
    made_by = f"sumlab {version}" if version else "sumlab"
    created = f" on {results.created}" if results.created else ""
    return (
        f'<footer class="wrap">Built by {escape(made_by)}{escape(created)} from results.json, which holds '
        "every number on this page.</footer>"
    )


def _export_section(results: Results) -> str:
    name = results.lab_csv
    if not name:
        body = '<p class="note">No lab-compatible CSV was written for this run.</p>'
    else:
        link = f'<a class="download" href="{escape(quote(name))}" download>{escape(name)}</a>'
        body = (
            f"<p>{link} holds every summary in the lab's layout (<code>human_baseline_summaries</code>, "
            "<code>original_model_summaries</code>, "
            "<code>instruct_model_summaries</code>, <code>peft_model_summaries</code>, plus a column per extra "
            "model), so the lab's pandas code reads it unchanged. It lies next to this report.</p>"
        )
    return f'<section id="export" class="wrap"><h2>Lab-compatible CSV</h2>{body}</section>'
