"""``report.md``: the report's content in Markdown, with plots referenced as PNG files in ``plots/``.

It carries the headline, setup, tables, plots and highlighted examples, plus the first rows of the
per-example table; the full interactive table lives in ``report.html``.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from sumlab.evaluation.schema import Results
from sumlab.report import formatting as fmt
from sumlab.report.headline import headline
from sumlab.report.html import MISSING_PLOT_NOTES, PLOT_CAPTIONS
from sumlab.report.html_examples import example_score, highlighted_examples
from sumlab.report.tables import (
    Table,
    cost_table,
    rouge_table,
    setup_items,
    significance_table,
)

PREVIEW_ROWS = 20
DIALOGUE_PREVIEW_CHARS = 100
# Markdown syntax to escape; "_" only where it could open or close emphasis (not inside test_200).
_MARKDOWN_SPECIAL = re.compile(r"[\\`*\[\]|]|(?<!\w)_|_(?!\w)")
_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")  # "<" that a renderer could read as the start of HTML
_ENTITY_START = re.compile(r"&(?=#?\w+;)")  # "&" that would turn "&amp;" into "&"


def md_text(text: str) -> str:
    """Inline text safe in Markdown: one line, no HTML tags or entities, Markdown syntax escaped.

    Only what a renderer could misread is escaped, so the raw file stays readable ("p < 0.001").
    """
    text = _ENTITY_START.sub("&amp;", text)
    text = _TAG_START.sub("&lt;", text)
    return " ".join(_MARKDOWN_SPECIAL.sub(lambda match: "\\" + match.group(0), text).split())


def code_block(text: str, language: str = "text") -> str:
    """A fenced code block whose fence is longer than any backtick run inside ``text``."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{text}\n{fence}"


def md_table(table: Table) -> str:
    """A :class:`Table` as a GitHub-flavoured Markdown table, best cells in bold, caption in italics."""
    if not table.rows:
        return ""
    alignments = ["---:" if cell.numeric else ":---" for cell in table.rows[0]]
    lines = [
        "| " + " | ".join(md_text(header) for header in table.headers) + " |",
        "| " + " | ".join(alignments) + " |",
    ]
    for row in table.rows:
        cells = []
        for cell in row:
            text = f"**{md_text(cell.text)}**" if cell.best else md_text(cell.text)
            cells.append(" · ".join([text, *map(md_text, cell.details)]))
        lines.append("| " + " | ".join(cells) + " |")
    if table.caption:
        lines.append(f"\n*{md_text(table.caption)}*")
    return "\n".join(lines)


def render_markdown(results: Results, plot_files: dict[str, str | None]) -> str:
    """The whole report as Markdown; ``plot_files`` maps plot names to paths relative to the report."""
    setup = results.setup
    title = " on ".join(part for part in (setup.base_model, setup.dataset) if part) or "results"
    parts = [
        f"# Dialogue summarization: {md_text(title)}",
        f"*sumlab report · {md_text(results.name or 'run')}*",
        f"> {md_text(headline(results))}",
        _setup(results),
        "## ROUGE scores\n\n" + md_table(rouge_table(results)),
        "## Significance\n\n" + (md_table(significance_table(results)) or "*No significance tests were run.*"),
        "## Cost\n\n" + md_table(cost_table(results)),
        _plots(plot_files),
        _qualitative(results),
        _example_preview(results),
        _export(results),
    ]
    return "\n\n".join(part for part in parts if part) + "\n"


def _setup(results: Results) -> str:
    lines = ["## Setup", ""] + [f"- **{md_text(name)}:** {md_text(value)}" for name, value in setup_items(results)]
    prompt = results.setup.prompt
    if prompt:
        lines += ["", "**Prompt:**", "", code_block(prompt)]
    return "\n".join(lines)


def _plots(plot_files: dict[str, str | None]) -> str:
    lines = ["## Plots"]
    for name, (title, caption) in PLOT_CAPTIONS.items():
        path = plot_files.get(name)
        lines.append(f"![{title}]({path})\n\n*{title}.* {caption}" if path else f"*{MISSING_PLOT_NOTES[name]}*")
    return "\n\n".join(lines)


def _qualitative(results: Results) -> str:
    chosen = highlighted_examples(results)
    if not chosen:
        return ""
    blocks = ["## Qualitative comparison"]
    for example in chosen:
        blocks.append(f"### Example {md_text(example.id)}")
        blocks.append("**Dialogue:**\n\n" + code_block(example.dialogue))
        for reference in example.references:
            blocks.append(f"**Human reference:** {md_text(reference)}")
        for key in results.models:
            score = example_score(example, key)
            suffix = "" if score is None else f" (ROUGE-1 {fmt.score(score)})"
            prediction = example.predictions.get(key, "")
            blocks.append(f"**{md_text(fmt.model_label(results, key))}**{suffix}: {md_text(prediction)}")
    return "\n\n".join(blocks)


def _preview(text: str) -> str:
    return text if len(text) <= DIALOGUE_PREVIEW_CHARS else text[:DIALOGUE_PREVIEW_CHARS].rstrip() + " …"


def _example_preview(results: Results) -> str:
    examples = results.examples
    if not examples:
        return ""
    models = list(results.models)
    headers = ["id", "Dialogue (start)", "Reference", *(fmt.model_label(results, key) for key in models)]
    lines = [
        "| " + " | ".join(md_text(header) for header in headers) + " |",
        "| " + " | ".join([":---"] * len(headers)) + " |",
    ]
    for example in examples[:PREVIEW_ROWS]:
        cells = [md_text(cell) for cell in (example.id, _preview(example.dialogue), " / ".join(example.references))]
        for key in models:
            score = example_score(example, key)
            cells.append(md_text(example.predictions.get(key, "")) + f" ({fmt.score(score)})")
        lines.append("| " + " | ".join(cells) + " |")
    shown = min(PREVIEW_ROWS, len(examples))
    intro = (
        f"## Examples\n\nThe first {shown} of {len(examples)} examples; ROUGE-1 in parentheses. "
        "The full table, sortable and filterable with biggest wins and losses between models, "
        "is in [report.html](report.html)."
    )
    return intro + "\n\n" + "\n".join(lines)


def _export(results: Results) -> str:
    name = results.lab_csv
    if not name:
        return ""
    return (
        f"## Lab-compatible CSV\n\n[{md_text(name)}]({quote(name)}) holds every summary in the lab's layout "
        "(`human_baseline_summaries`, `original_model_summaries`, `instruct_model_summaries`, "
        "`peft_model_summaries`, plus a column per extra model), so the lab's pandas code reads it unchanged."
    )
