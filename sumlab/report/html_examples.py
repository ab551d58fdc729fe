"""The example sections of ``report.html``: the highlighted side-by-side and the interactive table.

The highlighted examples are rendered here as escaped HTML. The full per-example table is rendered
by the page's script from a JSON blob, which keeps the file small and the page fast with hundreds of
examples; :func:`embed_json` makes that blob safe inside a ``<script>`` element.
"""

from __future__ import annotations

import json
from html import escape

from sumlab.evaluation.schema import ExampleRow, Results
from sumlab.report import formatting as fmt

EXAMPLE_METRIC = "rouge1"
DATA_ELEMENT_ID = "report-data"


def embed_json(data: object) -> str:
    """JSON that cannot end its ``<script>`` element early or open a comment.

    ``<``, ``>`` and ``&`` only occur inside JSON strings, where ``\\u003c``-style escapes are
    equivalent, so ``JSON.parse`` (and ``json.loads``) read back exactly ``data``.
    """
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def example_score(example: ExampleRow, key: str) -> float | None:
    """An example's per-example ROUGE-1 for one model, or None if it was not scored."""
    return example.scores.get(key, {}).get(EXAMPLE_METRIC)


def highlighted_examples(results: Results) -> list[ExampleRow]:
    """The examples that ``results.highlight`` names, in its order; unknown ids are skipped."""
    by_id = {example.id: example for example in results.examples}
    return [by_id[name] for name in results.highlight if name in by_id]


def explorer_data(results: Results) -> dict:
    """What the page script needs: models, the default pair for wins/losses, and each example."""
    models = list(results.models)
    candidates = [key for key in models if key != results.baseline]
    best = max(candidates, key=lambda key: results.models[key].scores[EXAMPLE_METRIC].mean) if candidates else models[0]
    return {
        "models": [{"key": key, "label": fmt.model_label(results, key)} for key in models],
        "pair": [best, results.baseline],
        "examples": [
            {
                "id": example.id,
                "dialogue": example.dialogue,
                "references": list(example.references),
                "predictions": {key: example.predictions.get(key, "") for key in models},
                "rouge1": {key: example_score(example, key) for key in models},
            }
            for example in results.examples
        ],
    }


def qualitative_section(results: Results) -> str:
    """The highlighted examples (the lab's example 200) with dialogue, reference and every summary."""
    chosen = highlighted_examples(results)
    if not chosen:
        body = '<p class="note">No examples were highlighted for this run.</p>'
    else:
        body = "".join(_qualitative_card(results, example) for example in chosen)
    intro = (
        "<p>The lab's side-by-side: the dialogue, the human reference and what each model wrote, "
        "with each summary's ROUGE-1 against the references.</p>"
    )
    return f'<section id="qualitative" class="wrap"><h2>Qualitative comparison</h2>{intro}{body}</section>'


def _qualitative_card(results: Results, example: ExampleRow) -> str:
    references = "".join(f"<blockquote>{escape(text)}</blockquote>" for text in example.references)
    summaries = []
    for key in results.models:
        score = example_score(example, key)
        badge = "" if score is None else f'<span class="badge">ROUGE-1 {fmt.score(score)}</span>'
        summaries.append(
            f'<div class="summary-block"><h4>{escape(fmt.model_label(results, key))} {badge}</h4>'
            f"<p>{escape(example.predictions.get(key, ''))}</p></div>"
        )
    return (
        f'<article class="qualitative"><h3>Example {escape(example.id)}</h3><div class="side-by-side">'
        f'<div><h4>Dialogue</h4><pre class="dialogue">{escape(example.dialogue)}</pre></div>'
        f'<div><div class="summary-block reference"><h4>Human reference</h4>{references}</div>'
        f"{''.join(summaries)}</div></div></article>"
    )


def examples_section(results: Results) -> str:
    """The sortable, filterable per-example table and the wins/losses view, filled in by the page script."""
    count = len(results.examples)
    if not count:
        return (
            '<section id="examples" class="wrap"><h2>All examples</h2>'
            '<p class="note">The results hold no per-example summaries.</p></section>'
        )
    return f"""<section id="examples" class="wrap wide">
<h2>All examples</h2>
<p>Every evaluated dialogue ({count}) with each model's summary and its ROUGE-1. Click a column header to sort;
type to filter; pick two models to see where one beats the other most.</p>
<div class="controls">
<label class="grow">Filter <input type="search" id="filter" placeholder="words from a dialogue, summary or id"
 autocomplete="off"></label>
<label>Model A <select id="model-a"></select></label>
<label>Model B <select id="model-b"></select></label>
</div>
<div class="wins-losses" id="wins-losses">
<div><h3 id="wins-title">Biggest wins</h3><ol id="wins" class="pairs"></ol></div>
<div><h3 id="losses-title">Biggest losses</h3><ol id="losses" class="pairs"></ol></div>
</div>
<p class="row-count" id="row-count" aria-live="polite"></p>
<div class="table-scroll"><table class="data examples" id="example-table"><thead></thead><tbody></tbody></table></div>
<p><button type="button" class="more" id="show-more" hidden>Show more</button></p>
<noscript><p class="note">The per-example table needs JavaScript; report.md lists the first rows.</p></noscript>
<script type="application/json" id="{DATA_ELEMENT_ID}">{embed_json(explorer_data(results))}</script>
</section>"""
