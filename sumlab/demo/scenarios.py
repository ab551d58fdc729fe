"""Building blocks of the demo corpus: slot pools, script steps, outcomes and scenarios.

A scenario is data: the slots it fills, the steps of its script and the outcomes it can end
with. Each step offers alternative phrasings; one option is one or more turns, written as
``"C: ..."`` (the client: customer, patient, candidate, tenant) or ``"A: ..."`` (the agent:
staff, doctor, interviewer, landlord), joined by ``|``. Turns hold ``{slot}`` fields.
Summaries name the speakers ``{C}`` and ``{A}``; the engine (``sumlab.demo.corpus``) turns them
into ``#Person1#`` / ``#Person2#`` depending on who speaks first.

The shared pools below split their values into ``seen`` and ``held_out``: held-out values never
appear in the train split, only in validation and test.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

SlotValue = str | tuple[str, ...]


@dataclass(frozen=True)
class Pool:
    """The values one kind of slot takes; ``held_out`` values appear only outside the train split.

    A value may be a tuple, filling several slots at once (e.g. how a summary words a problem
    and how a speaker says it); the scenario names them with a tuple key.
    """

    seen: tuple[SlotValue, ...]
    held_out: tuple[SlotValue, ...] = ()


@dataclass(frozen=True)
class Step:
    """One exchange of a script: alternative phrasings of the same content.

    Args:
        options: each option is one or more ``C:``/``A:`` turns joined by ``|``.
        chance: the probability that the step appears at all.
        note: a summary sentence added when the step appears (facts only this step brings in).
    """

    options: tuple[str, ...]
    chance: float = 1.0
    note: str = ""


@dataclass(frozen=True)
class AnyOrder:
    """Steps that appear in a random order."""

    steps: tuple[Step, ...]


Part = Step | AnyOrder


@dataclass(frozen=True)
class Outcome:
    """How a dialogue ends: the steps that lead there and summary templates for it."""

    name: str
    steps: tuple[Part, ...]
    summaries: tuple[str, ...]


@dataclass(frozen=True)
class Scenario:
    """An everyday situation: its topic, slots, opening steps, possible outcomes and closing."""

    topic: str
    slots: Mapping[str | tuple[str, ...], Pool]
    opening: tuple[Part, ...]
    outcomes: tuple[Outcome, ...]
    closing: tuple[Part, ...] = ()
    derive: Callable[[dict[str, str]], dict[str, str]] | None = field(default=None, compare=False)


def step(*options: str, chance: float = 1.0, note: str = "") -> Step:
    """A step with the given alternative phrasings."""
    return Step(tuple(options), chance, note)


def any_order(*steps: Step) -> AnyOrder:
    """Steps that appear in a random order."""
    return AnyOrder(tuple(steps))


def outcome(name: str, steps: tuple[Part, ...] | list[Part], summaries: tuple[str, ...] | list[str]) -> Outcome:
    """An outcome with its steps and summary templates."""
    return Outcome(name, tuple(steps), tuple(summaries))


def pool(seen: str, held_out: str = "") -> Pool:
    """A pool of plain values written as ``;``-separated strings (easier to read than long tuples)."""
    return Pool(_split(seen), _split(held_out))


def _split(values: str) -> tuple[str, ...]:
    return tuple(value.strip() for value in values.split(";") if value.strip())


# ---------------------------------------------------------------- shared pools

FIRST_NAMES = pool(
    "Anna; Ben; Carlos; Diana; Emma; Frank; Grace; Henry; Irene; Jack; Kate; Leo; Lucy; Mark; Nina; "
    "Oliver; Paula; Peter; Rachel; Sam; Sophie; Tom; Linda; Victor; Wendy; Daniel; Helen; James; Maria; Steve",
    "Ingrid; Tomasz; Priya; Kenji; Amara; Mateo; Freya; Oskar",
)
SURNAMES = pool(
    "Smith; Brown; Johnson; Miller; Wilson; Taylor; Clark; Lewis; Walker; Young; King; Wright; Green; Baker; "
    "Adams; Nelson; Carter; Mitchell; Roberts; Turner; Phillips; Campbell; Parker; Evans; Edwards; Collins; "
    "Stewart; Morris; Cooper; Reed",
    "Novak; Okafor; Lindqvist; Haddad; Moreau; Tanaka; Castillo; Brennan",
)
CITIES = pool(
    "London; Paris; Berlin; Madrid; Rome; Boston; Chicago; Toronto; Sydney; Dublin; Vienna; Prague; Amsterdam; "
    "Seattle; Denver; Athens; Warsaw; Brussels; Munich; Milan",
    "Lisbon; Oslo; Nairobi; Montreal; Kyoto; Helsinki",
)
WEEKDAYS = pool("Monday; Tuesday; Wednesday; Thursday; Friday; Saturday; Sunday")
MONTHS = ("March", "April", "May", "June", "July", "August", "September", "October")
DATES = Pool(tuple(f"{month} {day}" for month in MONTHS for day in range(1, 29, 3)))
EVENING_TIMES = pool("6 pm; 6:30 pm; 7 pm; 7:30 pm; 8 pm; 8:30 pm; 9 pm; 9:30 pm")
DAY_TIMES = pool("9 am; 9:30 am; 10 am; 10:30 am; 11 am; 11:30 am; 1 pm; 2 pm; 2:30 pm; 3 pm; 4 pm; 4:30 pm; 5 pm")
PHONES = Pool(tuple(f"555-{number:04d}" for number in range(1203, 9800, 173)))
PRICES = Pool(tuple(f"${amount}" for amount in range(15, 200, 5)))
BIG_PRICES = Pool(tuple(f"${amount}" for amount in range(250, 2000, 50)))
SMALL_COUNTS = pool("two; three; four; five; six")

# ---------------------------------------------------------------- shared steps

SMALL_TALK = step(
    "C: It's really busy today, isn't it?|A: Yes, it's been like this all day.",
    "A: Terrible weather today, isn't it?|C: Awful. It hasn't stopped raining since the morning.",
    "A: Have you been here before?|C: No, this is my first time.",
    "C: Sorry, I'm a little late.|A: Don't worry, you're fine.",
    chance=0.25,
)
PHONE_SMALL_TALK = step(
    "A: Sorry, the line is bad. Could you speak up a little?|C: Of course. Is this better?|A: Much better, thanks.",
    "C: By the way, I was on hold for quite a while.|A: I apologize for the wait. It's a busy day.",
    chance=0.2,
)
GOODBYE = step(
    "C: Thank you so much for your help.|A: You're welcome. Have a nice day.",
    "A: Is there anything else I can help you with?|C: No, that's everything. Thanks.",
    "C: Great, thanks. Bye.|A: Goodbye.",
    "A: Anything else?|C: No, that's all for today. Thank you.",
    "C: I appreciate it.|A: My pleasure. Bye now.",
    "C: OK, I think that's everything. Thanks again.|A: You're welcome. Goodbye.",
    chance=0.85,
)
