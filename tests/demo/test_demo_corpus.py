"""Tests for sumlab.demo.corpus: the generated DialogSum-style demo corpus."""

from __future__ import annotations

import random
import re
import string
from collections import Counter, defaultdict

import pytest

from sumlab.data.loading import load_split
from sumlab.demo.corpus import (
    HELD_OUT_OUTCOMES,
    SCENARIOS,
    SPLITS,
    TURN_RANGE,
    draw_slots,
    generate_corpus,
    generate_examples,
    parse_turns,
    split_sizes,
    write_corpus,
)
from sumlab.demo.scenarios import (
    CITIES,
    FIRST_NAMES,
    SURNAMES,
    AnyOrder,
    Scenario,
    Step,
)

TURN = re.compile(r"^#Person([12])#: .+")


@pytest.fixture(scope="module")
def corpus() -> dict[str, list[dict]]:
    return generate_corpus(seed=0)


def _mentions(value: str, text: str) -> bool:
    return re.search(rf"\b{re.escape(value)}\b", text) is not None


def _steps(scenario: Scenario) -> list[Step]:
    parts = [*scenario.opening, *(p for o in scenario.outcomes for p in o.steps), *scenario.closing]
    return [step for part in parts for step in (part.steps if isinstance(part, AnyOrder) else (part,))]


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


# ---------------------------------------------------------------- scenario data


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.topic)
def test_scenario_templates_are_well_formed(scenario):
    slots = set(draw_slots(random.Random(0), scenario, held_out=False))
    for step in _steps(scenario):
        assert 0 < step.chance <= 1
        for option in step.options:
            for _, text in parse_turns(option):  # ValueError if an option lost its "C:"/"A:" or a comma
                assert not re.search(r"\b[AC]: ", text), option
                assert _fields(text) <= slots, option
        assert _fields(step.note) <= slots | {"C", "A"}
    assert len(scenario.outcomes) >= 2
    for outcome in scenario.outcomes:
        assert len(outcome.summaries) >= 2
        for summary in outcome.summaries:
            assert _fields(summary) <= slots | {"C", "A"} and _fields(summary) & {"C", "A"}, summary


def test_parse_turns_rejects_a_turn_without_speaker():
    assert parse_turns("C: Hi.|A: Hello.") == [("C", "Hi."), ("A", "Hello.")]
    with pytest.raises(ValueError, match="must look like"):
        parse_turns("C: Hi.A: Hello.|Hello again.")


# ---------------------------------------------------------------- shape


def test_split_sizes(corpus):
    assert {split: len(rows) for split, rows in corpus.items()} == {"train": 3000, "validation": 300, "test": 300}
    assert split_sizes(120) == {"train": 100, "validation": 10, "test": 10}
    assert sum(split_sizes(1001).values()) == 1001


def test_topics_cover_train_and_test(corpus):
    train_topics = {row["topic"] for row in corpus["train"]}
    assert len(train_topics) >= 12
    assert len(SCENARIOS) == len(train_topics)
    assert train_topics == {row["topic"] for row in corpus["test"]}


def test_rows_are_complete_and_ids_unique(corpus):
    ids = [row["id"] for split in SPLITS for row in corpus[split]]
    assert len(ids) == len(set(ids))
    for split in SPLITS:
        for row in corpus[split]:
            assert set(row) == {"id", "topic", "dialogue", "summary"}
            assert all(isinstance(value, str) and value.strip() for value in row.values())
            assert row["id"].startswith(f"{split}_")


def test_dialogue_turns_are_tagged_and_alternate(corpus):
    fewest, most = TURN_RANGE
    for row in corpus["train"] + corpus["test"]:
        lines = row["dialogue"].split("\n")
        speakers = [TURN.match(line).group(1) for line in lines]  # AttributeError if a line doesn't match
        assert speakers[0] == "1"
        assert all(a != b for a, b in zip(speakers, speakers[1:])), row["dialogue"]
        assert fewest <= len(lines) <= most


# ---------------------------------------------------------------- determinism


def test_same_seed_same_corpus_other_seed_differs(corpus):
    assert generate_corpus(seed=0) == corpus
    assert generate_corpus(seed=1)["train"] != corpus["train"]


def test_write_corpus_is_byte_identical_and_loads(tmp_path):
    first = write_corpus(tmp_path / "a", seed=3, n_dialogues=240)
    second = write_corpus(tmp_path / "b", seed=3, n_dialogues=240)
    for split in SPLITS:
        assert (first / f"{split}.jsonl").read_bytes() == (second / f"{split}.jsonl").read_bytes()
    assert not list(first.glob("*.tmp")) and not list(first.glob(".*"))
    expected = split_sizes(240)
    for split in SPLITS:
        examples = load_split(str(first), split)
        assert len(examples) == expected[split]
        assert examples[0].id == f"{split}_0" and examples[0].topic


# ---------------------------------------------------------------- held out


def test_held_out_values_never_in_train_but_in_test(corpus):
    # plain substring tests: stricter than whole words for "never", and fast
    train_text = "\n".join(row["dialogue"] + "\n" + row["summary"] for row in corpus["train"])
    test_text = "\n".join(row["dialogue"] for row in corpus["test"])
    for value in ("Kenji", "Okafor", "Lisbon"):
        assert value not in train_text and value in test_text
    for held_out_pool in (FIRST_NAMES, SURNAMES, CITIES):
        assert not [value for value in held_out_pool.held_out if value in train_text]
        assert any(value in test_text for value in held_out_pool.held_out)
    every_held_out = {v for s in SCENARIOS for p in s.slots.values() for v in p.held_out if isinstance(v, str)}
    assert not [value for value in every_held_out if value in train_text]
    assert len([value for value in every_held_out if value in test_text]) >= 20


def test_held_out_values_in_a_summary_come_from_its_dialogue(corpus):
    held_out = {v for s in SCENARIOS for p in s.slots.values() for v in p.held_out if isinstance(v, str)}
    for row in corpus["validation"] + corpus["test"]:
        for value in held_out:
            if _mentions(value, row["summary"]):
                assert _mentions(value, row["dialogue"]), (value, row["id"])


def test_held_out_outcomes_only_outside_train():
    examples = generate_examples(seed=0)
    assert not [e for e in examples["train"] if (e.topic, e.outcome) in HELD_OUT_OUTCOMES]
    assert {(e.topic, e.outcome) for e in examples["test"]} >= HELD_OUT_OUTCOMES


def test_no_dialogue_repeats_across_splits(corpus):
    train = {row["dialogue"] for row in corpus["train"]}
    assert len(train) == len(corpus["train"])
    assert not [row for row in corpus["validation"] + corpus["test"] if row["dialogue"] in train]


# ---------------------------------------------------------------- summaries


def test_summaries_use_speaker_tags_and_dialogue_numbers(corpus):
    for row in corpus["train"] + corpus["test"]:
        summary = row["summary"]
        assert "#Person3#" not in summary
        assert "#Person1#" in summary or "#Person2#" in summary
        assert "{" not in summary and "{" not in row["dialogue"]
        assert 1 <= summary.count(". ") + 1 <= 3, summary
        dialogue_numbers = set(re.findall(r"\d+", row["dialogue"]))
        assert set(re.findall(r"\d+", summary)) <= dialogue_numbers, row["id"]


def test_summary_names_come_from_the_dialogue(corpus):
    names = {*FIRST_NAMES.seen, *FIRST_NAMES.held_out, *SURNAMES.seen, *SURNAMES.held_out}
    for row in corpus["test"]:
        for name in names:
            if _mentions(name, row["summary"]):
                assert _mentions(name, row["dialogue"]), (name, row["id"])


# ---------------------------------------------------------------- variety


def test_wording_and_length_vary(corpus):
    by_topic: dict[str, list[dict]] = defaultdict(list)
    for row in corpus["train"]:
        by_topic[row["topic"]].append(row)
    restaurant = by_topic["restaurant booking"]
    assert len({row["dialogue"].split("\n")[0] for row in restaurant}) >= 50
    assert len({row["summary"].split()[1] for row in restaurant}) >= 3  # "books", "calls", "wants", ...
    for rows in by_topic.values():
        assert len(Counter(len(row["dialogue"].split("\n")) for row in rows)) >= 4
    words = [len(row["dialogue"].split()) for row in corpus["train"]]
    assert max(words) >= 2 * min(words)
    assert 60 <= sorted(words)[len(words) // 2] <= 200
