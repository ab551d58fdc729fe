"""Generation speed: sumlab's batched, length-sorted ``summarize`` against the lab's one-at-a-time loop.

Run from the repository root (reads ../shared/data/dialogsum, writes benchmarks/results/generation_speed.json):

    python benchmarks/generation_speed.py --dialogues 100 --max-new-tokens 64 --batch-size 16

By default torch uses every core, as it does for a user (``--threads 1`` measures one core).

Both paths run the same tiny T5 (random init, fixed seed, a BPE tokenizer trained on DialogSum validation
text, as the tests build it) on the same distinct test dialogues with the lab's prompt, greedy, the same
max_new_tokens and no truncation. A random model rarely emits EOS, so both run to max_new_tokens. The
outputs are compared string by string. Each path is timed ``--repeats`` times in this one process,
alternating, and the ratio uses the best time of each (the least disturbed by other work on the machine).
The CPU time of each path and the machine's load average are recorded too: on a busy machine the
wall-clock ratio swings, the CPU-time ratio much less.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
import transformers

from sumlab.config import GenerationSettings
from sumlab.generation.batching import summarize
from sumlab.models.tiny import build_tiny_t5, train_tokenizer
from sumlab.runtime.fileio import write_json_atomic
from sumlab.text.prompts import TEMPLATES, render_prompt

REPO = Path(__file__).resolve().parents[1]
DIALOGSUM = REPO.parent / "shared" / "data" / "dialogsum"


def read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def build_model(d_model: int, seed: int):
    """The tiny tokenizer and model, built the way tests/conftest.py builds them (a little wider)."""
    rows = read_jsonl(DIALOGSUM / "validation.jsonl")
    tokenizer = train_tokenizer([row["dialogue"] for row in rows] + [row["summary"] for row in rows], vocab_size=800)
    model = build_tiny_t5(len(tokenizer), d_model=d_model, d_ff=2 * d_model, num_layers=2, num_heads=4, seed=seed)
    return tokenizer, model.eval()


def distinct_test_dialogues(count: int) -> list[str]:
    dialogues = list(dict.fromkeys(row["dialogue"] for row in read_jsonl(DIALOGSUM / "test.jsonl")))
    if len(dialogues) < count:
        raise SystemExit(f"only {len(dialogues)} distinct test dialogues, asked for {count}")
    return dialogues[:count]


def lab_loop(model, tokenizer, dialogues: list[str], max_new_tokens: int) -> list[str]:
    """The lab's loop: one dialogue at a time, tokenize -> generate -> decode."""
    summaries = []
    for dialogue in dialogues:
        prompt = render_prompt(TEMPLATES["lab"], dialogue)
        input_ids = tokenizer(prompt, return_tensors="pt").input_ids
        output = model.generate(input_ids, max_new_tokens=max_new_tokens)
        summaries.append(tokenizer.decode(output[0], skip_special_tokens=True).strip())
    return summaries


def timed(run) -> tuple[float, float, list[str]]:
    """Wall seconds, CPU seconds of this process, and the result of ``run()``.

    On a shared machine the wall time also counts other programs' turns on the cores; with one torch
    thread the CPU time is this path's own work, so its ratio is the steadier of the two.
    """
    wall, cpu = time.perf_counter(), time.process_time()
    result = run()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dialogues", type=int, default=100)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2, help="timed runs of each path")
    parser.add_argument(
        "--threads",
        type=int,
        default=torch.get_num_threads(),
        help="torch threads (default: torch's own, every core); on a shared machine more threads can add contention",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "generation_speed.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    tokenizer, model = build_model(args.d_model, args.seed)
    dialogues = distinct_test_dialogues(args.dialogues)
    prompt_lengths = [len(tokenizer(render_prompt(TEMPLATES["lab"], d)).input_ids) for d in dialogues]
    # No truncation on either side: the lab's loop never truncates, so sumlab gets room for the longest prompt.
    settings = GenerationSettings(
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        num_beams=1,
        max_source_length=max(prompt_lengths),
    )

    def run_lab(texts: list[str]) -> list[str]:
        return lab_loop(model, tokenizer, texts, args.max_new_tokens)

    def run_sumlab(texts: list[str]) -> list[str]:
        return summarize(model, tokenizer, texts, settings, TEMPLATES["lab"], progress=False)

    run_lab(dialogues[:2])  # warm-up: the first calls allocate and pick kernels
    run_sumlab(dialogues[:2])
    lab_times, sumlab_times, lab_cpu, sumlab_cpu = [], [], [], []
    lab_outputs = sumlab_outputs = []
    for _ in range(args.repeats):
        seconds, cpu, lab_outputs = timed(lambda: run_lab(dialogues))
        lab_times.append(seconds)
        lab_cpu.append(cpu)
        seconds, cpu, sumlab_outputs = timed(lambda: run_sumlab(dialogues))
        sumlab_times.append(seconds)
        sumlab_cpu.append(cpu)

    mismatches = [i for i, (a, b) in enumerate(zip(lab_outputs, sumlab_outputs)) if a != b]
    lab_best, sumlab_best = min(lab_times), min(sumlab_times)
    result = {
        "benchmark": "generation_speed",
        "command": "python benchmarks/generation_speed.py "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "out"),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "cpu_count": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "torch_threads": torch.get_num_threads(),
            "device": "cpu",
        },
        "settings": {
            "dialogues": len(dialogues),
            "source": "distinct dialogues of ../shared/data/dialogsum/test.jsonl, in file order",
            "prompt": "lab",
            "prompt_tokens": {
                "min": min(prompt_lengths),
                "max": max(prompt_lengths),
                "mean": round(sum(prompt_lengths) / len(prompt_lengths), 1),
            },
            "max_new_tokens": args.max_new_tokens,
            "decoding": "greedy",
            "batch_size": args.batch_size,
            "truncation": "none",
            "model": {
                "d_model": args.d_model,
                "d_ff": 2 * args.d_model,
                "num_layers": 2,
                "num_heads": 4,
                "vocab_size": len(tokenizer),
                "parameters": sum(p.numel() for p in model.parameters()),
                "seed": args.seed,
            },
            "repeats": args.repeats,
        },
        "lab_loop": {
            "seconds": round(lab_best, 3),
            "all_seconds": [round(t, 3) for t in lab_times],
            "cpu_seconds": round(min(lab_cpu), 3),
            "dialogues_per_second": round(len(dialogues) / lab_best, 2),
        },
        "sumlab": {
            "seconds": round(sumlab_best, 3),
            "all_seconds": [round(t, 3) for t in sumlab_times],
            "cpu_seconds": round(min(sumlab_cpu), 3),
            "dialogues_per_second": round(len(dialogues) / sumlab_best, 2),
        },
        "speedup": round(lab_best / sumlab_best, 2),
        "speedup_cpu_time": round(min(lab_cpu) / min(sumlab_cpu), 2),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "identical_outputs": len(dialogues) - len(mismatches),
        "mismatched_indices": mismatches,
    }
    write_json_atomic(args.out, result)
    shown = ("lab_loop", "sumlab", "speedup", "speedup_cpu_time", "identical_outputs", "load_average_1min")
    print(json.dumps({key: result[key] for key in shown}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
