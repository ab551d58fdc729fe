"""Generate the demo corpus: synthetic everyday dialogues with observer-style summaries, like DialogSum.

Each row is ``{"id", "topic", "dialogue", "summary"}``. Dialogue turns are ``#Person1#: ...`` lines
(``#Person1#`` is whoever speaks first); summaries are 1-3 sentences that name the speakers
``#Person1#`` / ``#Person2#`` and restate the key facts (who wants what, the decision, the
numbers, times and names), reworded but recoverable from the dialogue.

Scenarios (15, defined as data in the ``scenario_*`` modules: bookings, travel, errands,
problems and services) fill slots from pools, pick one phrasing per step, drop optional steps
(small talk, clarifications, side questions), shuffle some steps, and end with one of a few
outcomes, each with a few summary templates.

Splits, with the default ``n_dialogues=3600``: 3000 train, 300 validation, 300 test (train
gets 10/12 of the dialogues, the other two 1/12 each). Topics are balanced within each split.

Held out of train, so that memorising is not enough:

- **Slot values.** Each slot pool (``scenarios.Pool``) has ``seen`` values and may have
  ``held_out`` ones. Train draws only ``seen`` values; validation and test draw a held-out
  value with probability ``HELD_OUT_VALUE_CHANCE`` wherever a pool has some. Pools with
  held-out values: first names (e.g. Kenji, Priya), surnames (e.g. Okafor, Lindqvist), cities
  (e.g. Lisbon, Nairobi), restaurants, dishes, hotels, shop items (e.g. corduroy blazer),
  medicines, lost items (e.g. violin case), job positions and courses. A summary copies such
  values from its dialogue, so a model that learns to copy still gets them right.
- **Scenario x outcome combinations** (``HELD_OUT_OUTCOMES``): a hairdresser appointment moved
  to another time, a car rental declined as too expensive, and a course enrolment that ends on
  the waiting list. Each has a counterpart with the same shape in another scenario that train
  does see (restaurant ``alternative``, moving house ``too expensive``, flight ``waitlist``).

No dialogue text occurs twice anywhere in the corpus, so no test dialogue is a train dialogue.
Generation uses only ``random.Random(seed)``: the same seed gives byte-identical files.
"""

from __future__ import annotations

import hashlib
import os
import random
from dataclasses import dataclass
from pathlib import Path

from sumlab.demo import (
    scenario_bookings,
    scenario_errands,
    scenario_problems,
    scenario_services,
    scenario_travel,
)
from sumlab.demo.scenarios import (
    AnyOrder,
    Outcome,
    Part,
    Pool,
    Scenario,
    SlotValue,
    Step,
)
from sumlab.runtime.fileio import write_jsonl_atomic

SCENARIOS: tuple[Scenario, ...] = (
    *scenario_bookings.SCENARIOS,
    *scenario_travel.SCENARIOS,
    *scenario_errands.SCENARIOS,
    *scenario_problems.SCENARIOS,
    *scenario_services.SCENARIOS,
)
SPLITS = ("train", "validation", "test")
EVAL_SHARE = 1 / 12  # of all dialogues, for validation and for test each
HELD_OUT_OUTCOMES = frozenset(
    {
        ("hairdresser appointment", "alternative"),
        ("car rental", "declined"),
        ("course enrolment", "waitlist"),
    }
)
HELD_OUT_VALUE_CHANCE = 0.4
SPEAKER_TAGS = ("#Person1#", "#Person2#")
TURN_RANGE = (6, 14)  # fewest and most turns a dialogue may have; others are redrawn
_MAX_TRIES = 100  # redraws of a dialogue that repeats an earlier one or has too few or too many turns


@dataclass(frozen=True)
class Example:
    """One generated dialogue, its summary, and the scenario topic and outcome it came from."""

    topic: str
    outcome: str
    dialogue: str
    summary: str


def split_sizes(n_dialogues: int) -> dict[str, int]:
    """How many dialogues each split gets: 3000/300/300 of 3600, proportionally for other sizes."""
    if n_dialogues < 0:
        raise ValueError(f"n_dialogues must be >= 0, not {n_dialogues}")
    eval_size = round(n_dialogues * EVAL_SHARE)
    return {"train": n_dialogues - 2 * eval_size, "validation": eval_size, "test": eval_size}


def generate_examples(seed: int = 0, n_dialogues: int = 3600) -> dict[str, list[Example]]:
    """Generate the corpus as ``Example`` objects per split, which also record each dialogue's outcome."""
    rng = random.Random(seed)
    taken: set[str] = set()
    examples: dict[str, list[Example]] = {}
    for split, size in split_sizes(n_dialogues).items():
        examples[split] = [
            _unique_example(rng, scenario, held_out=split != "train", taken=taken)
            for scenario in _balanced_scenarios(rng, size)
        ]
    return examples


def generate_corpus(seed: int = 0, n_dialogues: int = 3600) -> dict[str, list[dict]]:
    """Generate the demo corpus: ``{"train": [...], "validation": [...], "test": [...]}``.

    Each row is ``{"id", "topic", "dialogue", "summary"}``, with ids ``{split}_{index}``.
    The same seed always gives the same corpus.
    """
    return {
        split: [
            {"id": f"{split}_{index}", "topic": example.topic, "dialogue": example.dialogue, "summary": example.summary}
            for index, example in enumerate(examples)
        ]
        for split, examples in generate_examples(seed, n_dialogues).items()
    }


def write_corpus(directory: Path, seed: int = 0, n_dialogues: int = 3600) -> Path:
    """Write ``train.jsonl``, ``validation.jsonl`` and ``test.jsonl`` into ``directory``, each atomically.

    Returns:
        ``directory``, which ``sumlab.data.load_split`` reads as a local source.
    """
    directory = Path(directory)
    for split, rows in generate_corpus(seed, n_dialogues).items():
        write_jsonl_atomic(directory / f"{split}.jsonl", rows)
    return directory


def render_example(rng: random.Random, scenario: Scenario, outcome: Outcome, *, held_out: bool) -> Example:
    """Render one dialogue of ``scenario`` ending in ``outcome``; ``held_out`` allows held-out slot values."""
    values = draw_slots(rng, scenario, held_out)
    turns: list[tuple[str, str]] = []
    notes: list[str] = []
    for step in _script_steps(rng, (*scenario.opening, *outcome.steps, *scenario.closing)):
        for role, text in parse_turns(rng.choice(step.options)):
            turns.append((role, _capitalised(text.format(**values))))
        if step.note:
            notes.append(step.note)
    turns = _merge_same_speaker(turns)
    first, second = turns[0][0], "A" if turns[0][0] == "C" else "C"
    tags = {first: SPEAKER_TAGS[0], second: SPEAKER_TAGS[1]}
    dialogue = "\n".join(f"{tags[role]}: {text}" for role, text in turns)
    sentences = [rng.choice(outcome.summaries), *notes[:1]]  # at most one side fact: summaries stay at 1-3 sentences
    summary = " ".join(_capitalised(sentence.format(**values, **tags)) for sentence in sentences)
    return Example(scenario.topic, outcome.name, dialogue, summary)


def parse_turns(option: str) -> list[tuple[str, str]]:
    """Split a step option into ``(role, text)`` turns; ``role`` is ``"C"`` (client) or ``"A"`` (agent).

    Raises:
        ValueError: for a turn that does not start with ``C:`` or ``A:``.
    """
    turns = []
    for line in option.split("|"):
        role, colon, text = line.partition(":")
        if role not in ("C", "A") or not colon or not text.strip():
            raise ValueError(f"a turn must look like 'C: text' or 'A: text', not {line!r} (in {option!r})")
        turns.append((role, text.strip()))
    return turns


def allowed_outcomes(scenario: Scenario, *, held_out: bool) -> tuple[Outcome, ...]:
    """The outcomes a split may use: train leaves out the combinations in ``HELD_OUT_OUTCOMES``."""
    if held_out:
        return scenario.outcomes
    return tuple(o for o in scenario.outcomes if (scenario.topic, o.name) not in HELD_OUT_OUTCOMES)


def draw_slots(rng: random.Random, scenario: Scenario, held_out: bool) -> dict[str, str]:
    """Fill every slot of ``scenario``, derived ones included; slots from the same pool get different values."""
    used: dict[int, list[SlotValue]] = {}
    values: dict[str, str] = {}
    for names, slot_pool in scenario.slots.items():
        value = _draw_value(rng, slot_pool, used.setdefault(id(slot_pool), []), held_out)
        if isinstance(names, tuple):
            values.update(zip(names, value, strict=True))
        else:
            values[names] = value
    if scenario.derive is not None:
        values.update(scenario.derive(values))
    return values


# ---------------------------------------------------------------- engine details


def _balanced_scenarios(rng: random.Random, size: int) -> list[Scenario]:
    """``size`` scenarios in random order, each topic appearing equally often (give or take one)."""
    order = [SCENARIOS[index % len(SCENARIOS)] for index in range(size)]
    rng.shuffle(order)
    return order


def _unique_example(rng: random.Random, scenario: Scenario, *, held_out: bool, taken: set[str]) -> Example:
    """A new example of ``scenario`` with ``TURN_RANGE`` turns, unlike every dialogue in ``taken``."""
    outcomes = allowed_outcomes(scenario, held_out=held_out)
    fewest, most = TURN_RANGE
    for _ in range(_MAX_TRIES):
        example = render_example(rng, scenario, rng.choice(outcomes), held_out=held_out)
        turns = example.dialogue.count("\n") + 1
        if fewest <= turns <= most and example.dialogue not in taken:
            taken.add(example.dialogue)
            return example
    raise RuntimeError(f"could not generate a new dialogue for {scenario.topic!r} in {_MAX_TRIES} tries")


def _draw_value(rng: random.Random, slot_pool: Pool, used: list[SlotValue], held_out: bool) -> SlotValue:
    """One value from ``slot_pool`` not in ``used``; a held-out one with ``HELD_OUT_VALUE_CHANCE`` if allowed."""
    unused_held_out = [value for value in slot_pool.held_out if value not in used] if held_out else []
    if unused_held_out and rng.random() < HELD_OUT_VALUE_CHANCE:
        value = rng.choice(unused_held_out)
    else:
        value = rng.choice([value for value in slot_pool.seen if value not in used])
    used.append(value)
    return value


def _script_steps(rng: random.Random, parts: tuple[Part, ...]) -> list[Step]:
    """The steps of one dialogue: ``AnyOrder`` groups shuffled, optional steps kept with their chance."""
    steps: list[Step] = []
    for part in parts:
        group = list(part.steps) if isinstance(part, AnyOrder) else [part]
        if isinstance(part, AnyOrder):
            rng.shuffle(group)
        steps.extend(step for step in group if step.chance >= 1.0 or rng.random() < step.chance)
    return steps


def _merge_same_speaker(turns: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Join consecutive turns of one speaker (left by dropped or reordered steps) into one turn."""
    merged: list[tuple[str, str]] = []
    for role, text in turns:
        if merged and merged[-1][0] == role:
            merged[-1] = (role, f"{merged[-1][1]} {text}")
        else:
            merged.append((role, text))
    return merged


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


DEMO_SOURCE = "sumlab-demo"  # the data source name that means "the bundled demo corpus"


def demo_corpus_dir(seed: int = 0) -> Path:
    """The demo corpus on disk, generated into the user's cache on first use.

    The directory name carries a fingerprint of the generator's code, so a changed generator
    never serves a stale corpus.
    """
    cache = Path(os.environ.get("SUMLAB_CACHE", Path.home() / ".cache" / "sumlab"))
    directory = cache / f"demo-corpus-{_generator_fingerprint()}-seed{seed}"
    if not all((directory / f"{split}.jsonl").is_file() for split in ("train", "validation", "test")):
        write_corpus(directory, seed=seed)
    return directory


def _generator_fingerprint() -> str:
    digest = hashlib.sha256()
    for source in sorted(Path(__file__).parent.glob("*.py")):
        if source.name != "build_base.py":
            digest.update(source.read_bytes())
    return digest.hexdigest()[:12]
