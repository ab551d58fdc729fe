"""Realistic, made-up results for previewing the report and for its tests.

The numbers are shaped like the lab's (zero-shot FLAN-T5-base ~0.23 ROUGE-1, full fine-tuning ~0.42,
LoRA ~0.41) but are invented; dialogues deliberately contain markup and ampersands to exercise escaping.
"""

from __future__ import annotations

import random

from sumlab.evaluation.schema import Results

NAMES = ["Tom", "Ann", "Mr. Smith", "Dr. Lee", "Mary", "Jack"]
TOPICS = [
    "a job interview",
    "booking a hotel room",
    "a late train",
    "a birthday party",
    "a broken laptop",
    "weekend plans",
    "a doctor's visit",
    "paying the rent",
]
TRICKY_LINES = [
    "#Person1#: Type <script>alert(1)</script> in the box & see what happens.",
    '#Person2#: "Fish & chips" costs <5 dollars> at Joe\'s.',
    "#Person1#: Use </pre> or <!-- x -->?",
]
MODELS = {  # key: (kind, method, label, mean ROUGE-1, trainable share in %)
    "original": ("zero_shot", None, "zero-shot base", 0.233, None),
    "full": ("train", "full", "full fine-tuning", 0.421, 100.0),
    "lora": ("train", "lora", "LoRA", 0.408, 1.41),
}
METRIC_OFFSETS = {"rouge1": 0.0, "rouge2": -0.12, "rougeL": -0.05, "rougeLsum": -0.05}


def _dialogue(rng: random.Random, index: int) -> tuple[str, str]:
    person, topic = rng.choice(NAMES), rng.choice(TOPICS)
    lines = [f"#Person1#: Hi {person}, can we talk about {topic}?", "#Person2#: Sure, what's wrong?"]
    lines += [
        f"#Person{1 + turn % 2}#: "
        + " ".join(
            rng.choice(
                ["well", "I", "think", "we", "should", "maybe", "call", "them", "today", "tomorrow", "it", "is", "fine"]
            )
            for _ in range(rng.randint(4, 14))
        )
        + "."
        for turn in range(rng.randint(2, 8))
    ]
    if index % 7 == 3:
        lines.insert(1, TRICKY_LINES[index % len(TRICKY_LINES)])
    return "\n".join(lines), f"#Person1# and {person} talk about {topic}."


def _summary(rng: random.Random, reference: str, quality: float) -> str:
    words = reference.split()
    kept = [word for word in words if rng.random() < quality] or words[:2]
    return " ".join(kept + ["and", "more"] * rng.randint(0, 3 - int(quality * 3)))


def _example(rng: random.Random, index: int) -> dict:
    dialogue, reference = _dialogue(rng, index)
    references = [reference, reference.replace("talk about", "discuss"), f"They chat about {reference.split()[-2]}."]
    predictions, scores = {}, {}
    for key, (_, _, _, mean, _) in MODELS.items():
        predictions[key] = _summary(rng, reference, min(1.0, mean * 2))
        rouge1 = min(1.0, max(0.0, rng.gauss(mean, 0.12)))
        scores[key] = {metric: round(max(0.0, rouge1 + offset), 4) for metric, offset in METRIC_OFFSETS.items()}
    return {
        "id": f"test_{index * 10}",
        "dialogue": dialogue,
        "references": references,
        "predictions": predictions,
        "scores": scores,
    }


def _log(rng: random.Random, steps: int, start: float, floor: float) -> list[dict]:
    log = []
    for step in range(10, steps + 1, 10):
        loss = floor + (start - floor) * (0.93 ** (step / 10)) + rng.uniform(-0.05, 0.05)
        log.append({"step": step, "loss": round(loss, 4), "learning_rate": 1e-5})
        if step % 50 == 0:
            log.append({"step": step, "eval_loss": round(loss + 0.08, 4)})
    return log


def _model(rng: random.Random, key: str) -> dict:
    kind, method, label, mean, share = MODELS[key]
    scores = {
        metric: {
            "mean": round(mean + offset, 4),
            "ci95": [round(mean + offset - 0.011, 4), round(mean + offset + 0.012, 4)],
        }
        for metric, offset in METRIC_OFFSETS.items()
    }
    improvement = {metric: round((mean - MODELS["original"][3]) * 100, 2) for metric in METRIC_OFFSETS}
    cost = (
        None
        if share is None
        else {
            "trainable": int(247_577_856 * share / 100),
            "total": 247_577_856 + (0 if method == "full" else 3_538_944),
            "percent": share,
            "saved_bytes": 990_000_000 if method == "full" else 14_200_000,
            "full_model_bytes": 990_000_000,
            "train_seconds": 600.0 if method == "full" else 410.0,
            "peak_memory_bytes": 4_000_000_000 if method == "full" else 2_300_000_000,
        }
    )
    log = [] if cost is None else _log(rng, 200, 3.2 if method == "full" else 3.4, 1.1 if method == "full" else 1.25)
    return {
        "kind": kind,
        "method": method,
        "label": label,
        "scores": scores,
        "improvement": improvement,
        "cost": cost,
        "log": log,
    }


def _significance() -> list[dict]:
    tests = []
    for a, b in (("full", "original"), ("lora", "original"), ("full", "lora")):
        for metric, offset in METRIC_OFFSETS.items():
            delta = MODELS[a][3] - MODELS[b][3]
            tests.append(
                {
                    "a": a,
                    "b": b,
                    "metric": metric,
                    "method": "paired_bootstrap",
                    "delta": round(delta, 4),
                    "ci95": [round(delta - 0.008, 4), round(delta + 0.008, 4)],
                    "p_value": 0.0001 if a != "full" or b != "lora" else 0.0123,
                }
            )
    return tests


def sample_results(examples: int = 30, seed: int = 0) -> Results:
    """Invented three-model results (zero-shot, full, LoRA) with ``examples`` examples."""
    rng = random.Random(seed)
    example_rows = [_example(rng, index) for index in range(examples)]
    return Results.model_validate(
        {
            "name": "lab",
            "created": "2026-11-25T22:00:00Z",
            "setup": {
                "base_model": "google/flan-t5-base",
                "dataset": "knkarthick/dialogsum",
                "splits": {"train": 12460, "validation": 500, "test": 1500},
                "eval": {"split": "test", "dialogues": examples, "references_per_dialogue": 3.0, "aggregate": "max"},
                "prompt": "Summarize the following conversation.\n\n{dialogue}\n\nSummary: ",
                "generation": {"max_new_tokens": 200, "num_beams": 1, "do_sample": False},
                "versions": {"sumlab": "0.1.0", "torch": "2.9.0", "transformers": "5.0.0", "peft": "0.17.1"},
                "hardware": {"device": "cpu", "cpu_count": 2, "gpu": None},
                "wall_seconds": 812.3,
            },
            "baseline": "original",
            "models": {key: _model(rng, key) for key in MODELS},
            "significance": _significance(),
            "examples": example_rows,
            "highlight": [example_rows[min(20, examples - 1)]["id"]] if example_rows else [],
            "lab_csv": "lab_results.csv",
        }
    )
