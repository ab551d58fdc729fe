"""The loss curve of a short tiny-T5 run in float32 and under bf16 autocast on the CPU: do they agree?

    python benchmarks/bf16_loss_curve.py --threads 1 --out benchmarks/results/bf16_loss_curve.json

The demo's setting, shortened: the bundled sumlab-tiny-t5 fully fine-tuned on the demo corpus (lr 2e-3, batches
of 16, 256 source and 64 target tokens), ``--steps`` steps through ``sumlab.train`` itself, once with
``train.precision=float32`` and once with ``bfloat16`` (the same seed, data order and dropout masks). Every step's
loss is logged. Then the float32-trained model summarizes ``--dialogues`` demo test dialogues with
``generation.precision`` float32 and bfloat16, to count how many summaries bf16 changes and what that does to
ROUGE. Wall times are recorded too, but a model this small is dominated by overhead, not by matmuls: they say
nothing about bf16's speed on a real model (see flan_t5_base_step.py and train_throughput.py for that).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from machine import machine_info  # benchmarks/machine.py (the script's own folder)

PRECISIONS = ("float32", "bfloat16")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "bf16_loss_curve.json"))
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--dialogues", type=int, default=64, help="test dialogues to summarize in both precisions")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    return parser.parse_args()


def train_config(precision: str, args: argparse.Namespace):
    from sumlab.config import TrainConfig, build_config

    return build_config(
        TrainConfig,
        {
            "name": f"bf16-curve-{precision}",
            "model": {"name_or_path": "sumlab-tiny-t5"},
            "data": {
                "source": "sumlab-demo",
                "train": {"split": "train", "limit": args.steps * args.batch_size},
                "validation": None,
            },
            "train": {
                "precision": precision,
                "learning_rate": 2e-3,
                "max_steps": args.steps,
                "per_device_train_batch_size": args.batch_size,
                "logging_steps": 1,
                "max_source_length": 256,
                "max_target_length": 64,
                "tensorboard": False,
                "save_total_limit": 1,
            },
        },
    )


def train_arm(precision: str, args: argparse.Namespace, scratch: Path) -> tuple[dict, Path]:
    """Train one arm; its per-step losses and seconds, and where its model is."""
    from sumlab.training.run_dir import read_log
    from sumlab.training.trainer import train

    started = time.perf_counter()
    result = train(train_config(precision, args), out_dir=scratch / precision)
    seconds = time.perf_counter() - started
    losses = [record["loss"] for record in read_log(result.run_dir / "log.jsonl") if "loss" in record]
    return {
        "losses": losses,
        "train_seconds": round(result.summary["wall_seconds"], 2),
        "wall_seconds": round(seconds, 2),
    }, result.model_dir


def compare_curves(exact: list[float], half: list[float]) -> dict:
    relative = [abs(b - a) / abs(a) for a, b in zip(exact, half)]
    return {
        "steps": len(relative),
        "max_abs_difference": round(max(abs(b - a) for a, b in zip(exact, half)), 5),
        "max_relative_difference": round(max(relative), 6),
        "mean_relative_difference": round(statistics.mean(relative), 6),
        "relative_difference_last_10_steps": round(statistics.mean(relative[-10:]), 6),
        "first_and_last_loss": {"float32": [exact[0], exact[-1]], "bfloat16": [half[0], half[-1]]},
    }


def compare_generation(model_dir: Path, args: argparse.Namespace) -> dict:
    """The float32-trained model's summaries of demo test dialogues in float32 and in bf16 autocast."""
    from sumlab.config import GenerationSettings, ModelConfig
    from sumlab.data.loading import load_split
    from sumlab.evaluation.rouge import ROUGE_KEYS, rouge_per_example
    from sumlab.generation.batching import summarize
    from sumlab.models.loading import load_model, load_tokenizer

    config = ModelConfig(name_or_path=str(model_dir), dtype="float32")
    model, tokenizer = load_model(config, device=torch.device("cpu")), load_tokenizer(config)
    examples = load_split("sumlab-demo", "test", limit=args.dialogues)
    dialogues, references = [e.dialogue for e in examples], [e.summary for e in examples]
    result = {"dialogues": len(dialogues)}
    summaries = {}
    for precision in PRECISIONS:
        settings = GenerationSettings(max_new_tokens=64, no_repeat_ngram_size=3, batch_size=32, precision=precision)
        started = time.perf_counter()
        summaries[precision] = summarize(model, tokenizer, dialogues, settings, progress=False)
        seconds = time.perf_counter() - started
        scores = rouge_per_example(summaries[precision], references)
        result[precision] = {
            "seconds": round(seconds, 2),
            "rouge": {key: round(float(scores[key].mean()) * 100, 2) for key in ROUGE_KEYS},
        }
    result["identical_summaries"] = sum(a == b for a, b in zip(*summaries.values()))
    return result


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from sumlab.runtime.fileio import write_json_atomic

    arms = {}
    with tempfile.TemporaryDirectory() as scratch:
        for precision in PRECISIONS:
            arms[precision], model_dir = train_arm(precision, args, Path(scratch))
            print(f"{precision}: losses {arms[precision]['losses'][0]:.4f} -> {arms[precision]['losses'][-1]:.4f}")
            if precision == "float32":
                generation = compare_generation(model_dir, args)
    report = {
        "benchmark": "bf16_loss_curve",
        "command": "python benchmarks/bf16_loss_curve.py " + " ".join(sys.argv[1:]),
        "machine": machine_info(torch_threads=torch.get_num_threads()),
        "setup": {
            "model": "sumlab-tiny-t5 (bundled, 1.7M parameters), full fine-tuning through sumlab.train",
            "data": "sumlab-demo train split, in order of the seeded sampler; no validation",
            "steps": args.steps,
            "batch_size": args.batch_size,
            "learning_rate": 2e-3,
            "max_source_length": 256,
            "max_target_length": 64,
            "bf16": "torch.autocast on the CPU (accelerate's mixed_precision=bf16); weights and AdamW stay float32",
            "generation": "the float32 run's model, greedy, 64 new tokens, no_repeat_ngram_size 3, batches of 32",
        },
        "arms": arms,
        "agreement": compare_curves(arms["float32"]["losses"], arms["bfloat16"]["losses"]),
        "generation": generation,
    }
    write_json_atomic(args.out, report)
    print({key: report["agreement"][key] for key in ("max_relative_difference", "mean_relative_difference")})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
