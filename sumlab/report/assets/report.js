/* sumlab report: the per-example table (sort, filter) and the biggest wins / losses between two models.
   Everything is rendered from the JSON in #report-data with textContent, so no text is parsed as HTML. */
(function () {
  "use strict";
  var source = document.getElementById("report-data");
  if (!source) { return; }
  var data = JSON.parse(source.textContent);
  var table = document.getElementById("example-table");
  var filterBox = document.getElementById("filter");
  var selectA = document.getElementById("model-a");
  var selectB = document.getElementById("model-b");
  var rowCount = document.getElementById("row-count");
  var showMore = document.getElementById("show-more");
  var PREVIEW_CHARS = 90;
  var TOP_PAIRS = 10;
  var PAGE_ROWS = 100;  /* rows in the DOM at once: keeps sorting and filtering fast with 1000s of examples */
  var state = { sort: null, direction: 1, terms: [], limit: PAGE_ROWS };

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = text; }
    return node;
  }

  function formatScore(value) { return value === null || value === undefined ? "—" : value.toFixed(4); }
  function formatPoints(value) { return value === null ? "—" : (value > 0 ? "+" : "") + value.toFixed(2); }
  function labelOf(key) {
    for (var i = 0; i < data.models.length; i++) { if (data.models[i].key === key) { return data.models[i].label; } }
    return key;
  }

  /* ROUGE-1 of model A minus model B on one example, in points; null if either was not scored. */
  function deltaOf(row) {
    var a = row.example.rouge1[selectA.value], b = row.example.rouge1[selectB.value];
    return (a === null || a === undefined || b === null || b === undefined) ? null : (a - b) * 100;
  }

  function dialogueCell(text) {
    var cell = element("td", "dialogue-cell");
    cell.dataset.label = "Dialogue";
    var details = element("details");
    var preview = text.length > PREVIEW_CHARS ? text.slice(0, PREVIEW_CHARS).replace(/\s+\S*$/, "") + " …" : text;
    details.appendChild(element("summary", null, preview.replace(/\s*\n\s*/g, " ")));
    details.appendChild(element("div", "dialogue-text", text));
    cell.appendChild(details);
    return cell;
  }

  function referencesCell(references) {
    var cell = element("td");
    cell.dataset.label = references.length === 1 ? "Reference" : "References";
    if (references.length === 1) { cell.textContent = references[0]; return cell; }
    var list = element("ul", "refs");
    references.forEach(function (text) { list.appendChild(element("li", null, text)); });
    cell.appendChild(list);
    return cell;
  }

  function buildRow(example) {
    var tr = element("tr");
    tr.dataset.id = example.id;
    var idCell = element("th", "id", example.id);
    idCell.scope = "row";
    tr.appendChild(idCell);
    tr.appendChild(dialogueCell(example.dialogue));
    tr.appendChild(referencesCell(example.references));
    data.models.forEach(function (model) {
      var cell = element("td", "summary-cell");
      cell.dataset.model = model.key;
      cell.dataset.label = model.label;
      cell.appendChild(element("div", "summary", example.predictions[model.key]));
      cell.appendChild(element("span", "score", "ROUGE-1 " + formatScore(example.rouge1[model.key])));
      tr.appendChild(cell);
    });
    return tr;
  }

  var rows = data.examples.map(function (example, index) {
    var text = [example.id, example.dialogue].concat(example.references)
      .concat(data.models.map(function (model) { return example.predictions[model.key]; }));
    var tr = buildRow(example);
    var deltaCell = element("td", "num delta");
    tr.appendChild(deltaCell);
    return { example: example, index: index, text: text.join("\n").toLowerCase(), tr: tr, deltaCell: deltaCell };
  });

  function sortHeader(text, sortKey, className) {
    var th = element("th", className);
    th.scope = "col";
    var button = element("button", "sort", text);
    button.type = "button";
    button.dataset.sort = sortKey;
    button.addEventListener("click", function () { onSort(sortKey); });
    th.appendChild(button);
    return th;
  }

  function buildHeader() {
    var tr = element("tr");
    tr.appendChild(sortHeader("id", "id", "id"));
    tr.appendChild(element("th", "static", "Dialogue"));
    tr.appendChild(element("th", "static", "Reference(s)"));
    data.models.forEach(function (model) {
      tr.appendChild(sortHeader(model.label + " · ROUGE-1", "score:" + model.key));
    });
    tr.appendChild(sortHeader("Δ ROUGE-1", "delta", "num"));
    table.tHead.appendChild(tr);
  }

  function sortValue(row, key) {
    if (key === "delta") { return deltaOf(row); }
    var value = row.example.rouge1[key.slice("score:".length)];
    return value === undefined ? null : value;
  }

  function compareRows(first, second) {
    var order;
    if (state.sort === "id") {
      order = first.example.id.localeCompare(second.example.id, undefined, { numeric: true });
    } else {
      var a = sortValue(first, state.sort), b = sortValue(second, state.sort);
      if (a === null || b === null) { return (a === null) - (b === null) || first.index - second.index; }
      order = a - b;
    }
    return order * state.direction || first.index - second.index;
  }

  function onSort(key) {
    if (state.sort === key) { state.direction = -state.direction; }
    else { state.sort = key; state.direction = key === "id" ? 1 : -1; }
    table.tHead.querySelectorAll("th").forEach(function (th) {
      var button = th.querySelector("button.sort");
      if (button && button.dataset.sort === key) {
        th.setAttribute("aria-sort", state.direction > 0 ? "ascending" : "descending");
      } else { th.removeAttribute("aria-sort"); }
    });
    renderRows();
  }

  function renderRows() {
    var visible = rows.filter(function (row) {
      return state.terms.every(function (term) { return row.text.indexOf(term) !== -1; });
    });
    if (state.sort) { visible.sort(compareRows); }
    var shown = visible.slice(0, state.limit);
    var fragment = document.createDocumentFragment();
    shown.forEach(function (row) { fragment.appendChild(row.tr); });
    table.tBodies[0].replaceChildren(fragment);
    rowCount.textContent = countText(shown.length, visible.length);
    showMore.hidden = shown.length === visible.length;
    showMore.textContent = "Show " + Math.min(PAGE_ROWS, visible.length - shown.length) + " more";
  }

  function countText(shown, matching) {
    var total = rows.length;
    if (!matching) { return "Showing 0 of " + total + " examples: none match."; }
    if (shown < matching) {
      var what = matching === total ? " examples." : " matching examples (" + total + " in all).";
      return "Showing the first " + shown + " of " + matching + what;
    }
    if (matching === total) { return "Showing all " + total + " examples."; }
    return "Showing " + matching + " of " + total + " examples.";
  }

  function pairItem(entry, a, b) {
    var item = element("li");
    item.dataset.id = entry.row.example.id;
    var head = element("div", "pair-head");
    var jump = element("button", "link", entry.row.example.id);
    jump.type = "button";
    jump.title = "Show this example in the table";
    jump.addEventListener("click", function () { showOnly(entry.row.example.id); });
    head.appendChild(jump);
    head.appendChild(element("span", entry.delta > 0 ? "good" : "bad", formatPoints(entry.delta) + " pts"));
    item.appendChild(head);
    item.appendChild(element("span", "pair-text", labelOf(a) + ": " + entry.row.example.predictions[a]));
    item.appendChild(element("span", "pair-text", labelOf(b) + ": " + entry.row.example.predictions[b]));
    return item;
  }

  function fillList(list, entries, a, b, emptyText) {
    list.replaceChildren();
    entries.forEach(function (entry) { list.appendChild(pairItem(entry, a, b)); });
    if (!entries.length) { list.appendChild(element("li", "empty", emptyText)); }
  }

  function renderPairs() {
    var a = selectA.value, b = selectB.value;
    var deltaLabel = "Δ ROUGE-1 (" + labelOf(a) + " − " + labelOf(b) + ")";
    rows.forEach(function (row) {
      row.deltaCell.textContent = formatPoints(deltaOf(row));
      row.deltaCell.dataset.label = deltaLabel + ", points";
    });
    table.tHead.querySelector('button[data-sort="delta"]').textContent = deltaLabel;
    document.getElementById("wins-title").textContent = "Where " + labelOf(a) + " beats " + labelOf(b) + " most";
    document.getElementById("losses-title").textContent = "Where " + labelOf(b) + " beats " + labelOf(a) + " most";
    var scored = rows.map(function (row) { return { row: row, delta: deltaOf(row) }; })
      .filter(function (entry) { return entry.delta !== null; });
    var byIndex = function (x, y) { return x.row.index - y.row.index; };
    var wins = scored.filter(function (entry) { return entry.delta > 0; })
      .sort(function (x, y) { return y.delta - x.delta || byIndex(x, y); }).slice(0, TOP_PAIRS);
    /* Shown from B's side: B's summary first and B - A as a positive gap. */
    var losses = scored.filter(function (entry) { return entry.delta < 0; })
      .sort(function (x, y) { return x.delta - y.delta || byIndex(x, y); }).slice(0, TOP_PAIRS)
      .map(function (entry) { return { row: entry.row, delta: -entry.delta }; });
    var same = a === b ? "Pick two different models." : null;
    fillList(document.getElementById("wins"), same ? [] : wins, a, b, same || "No example where it scores higher.");
    fillList(document.getElementById("losses"), same ? [] : losses, b, a, same || "No example where it scores higher.");
    if (state.sort === "delta") { renderRows(); }
  }

  function showOnly(id) {
    filterBox.value = id;
    applyFilter();
    table.scrollIntoView({ block: "start" });
  }

  function applyFilter() {
    state.terms = filterBox.value.toLowerCase().split(/\s+/).filter(Boolean);
    renderRows();
  }

  function fillSelect(select, selected) {
    data.models.forEach(function (model) {
      var option = element("option", null, model.label);
      option.value = model.key;
      option.selected = model.key === selected;
      select.appendChild(option);
    });
    select.addEventListener("change", renderPairs);
  }

  showMore.addEventListener("click", function () { state.limit += PAGE_ROWS; renderRows(); });
  var filterTimer = null;
  filterBox.addEventListener("input", function () {
    clearTimeout(filterTimer);
    filterTimer = setTimeout(applyFilter, 120);
  });
  buildHeader();
  fillSelect(selectA, data.pair[0]);
  fillSelect(selectB, data.pair[1]);
  renderPairs();
  renderRows();
}());
