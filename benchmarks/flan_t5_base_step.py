"""Step time and peak memory of google/flan-t5-base (random init): full fine-tuning against LoRA (r=32, q and v).

    python benchmarks/flan_t5_base_step.py --data ../shared/data/dialogsum --threads 1 --out benchmarks/results/flan_t5_base_step.json

(``--threads 1`` because the recording machine, 2 cores shared with other jobs, ran 2 threads 2x slower.)

Each arm runs in its own subprocess (``--arm full`` / ``--arm lora``), so its peak RSS
(``ru_maxrss``) is its own: the model is built at random init from sumlab's bundled architecture
config (offline), wrapped as ``sumlab train`` would wrap it (``add_peft``), and trained with AdamW on
batches of 4 DialogSum training examples (the lab prompt, truncated to 256 source and 128 label
tokens, byte-level ByT5 tokenizer since no FLAN-T5 tokenizer is available offline), dynamic padding
and -100 label padding. One warm-up step, then ``--steps`` timed ones (the same batches in both arms).
On a CUDA machine the figures are CUDA time and ``max_memory_allocated`` as well.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

import torch
from machine import machine_info, run_arm_in_fresh_process  # benchmarks/machine.py (the script's own folder)

ARMS = ("full", "lora")
LEARNING_RATES = {"full": 1e-5, "lora": 1e-3}  # the lab's


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "dialogsum"))
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "flan_t5_base_step.json"))
    parser.add_argument("--arm", choices=ARMS, help="run one arm in this process and print its figures as JSON")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3, help="timed steps, after one warm-up step")
    parser.add_argument("--max-source-length", type=int, default=256)
    parser.add_argument("--max-target-length", type=int, default=128)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    return parser.parse_args()


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)


def run_arm(args: argparse.Namespace) -> dict:
    """Build, wrap and train one arm; return its step times and memory."""
    from sumlab.config import ModelConfig, PeftSettings
    from sumlab.data.loading import load_split
    from sumlab.models.loading import load_tokenizer
    from sumlab.models.parameters import count_parameters
    from sumlab.models.peft_methods import add_peft
    from sumlab.models.random_init import build_random_model
    from sumlab.text.features import dynamic_padding_collator, tokenize_examples
    from sumlab.text.prompts import TEMPLATES

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    rss_start = peak_rss_bytes()
    tokenizer = load_tokenizer(ModelConfig(name_or_path="google/flan-t5-base", random_init=True))
    model = build_random_model("google/flan-t5-base")
    settings = PeftSettings(method="lora", r=32, alpha=32, targets=["q", "v"]) if args.arm == "lora" else PeftSettings()
    model = add_peft(model, settings).to(device).train()
    counts = count_parameters(model)
    rss_model = peak_rss_bytes()

    examples = load_split(args.data, "train", limit=args.batch_size * (args.steps + 1))
    features, truncation = tokenize_examples(
        examples, tokenizer, TEMPLATES["lab"], args.max_source_length, args.max_target_length
    )
    collate = dynamic_padding_collator(tokenizer, model)
    batches = [
        collate([dict(f) for f in features[i : i + args.batch_size]]) for i in range(0, len(features), args.batch_size)
    ]
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=LEARNING_RATES[args.arm], weight_decay=0.01
    )
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()

    step_seconds, losses = [], []
    for batch in batches:
        batch = {key: value.to(device) for key, value in batch.items()}
        started = time.perf_counter()
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))  # waits for the step to finish (a CUDA sync point)
        step_seconds.append(time.perf_counter() - started)

    timed = step_seconds[1:]
    result = {
        "arm": args.arm,
        "parameters": counts.to_json(),
        "step_seconds": [round(s, 3) for s in timed],
        "step_seconds_median": round(statistics.median(timed), 3),
        "warmup_step_seconds": round(step_seconds[0], 3),
        "examples_per_second": round(args.batch_size / statistics.median(timed), 3),
        "batch_shapes": {"input_ids": list(batches[1]["input_ids"].shape), "labels": list(batches[1]["labels"].shape)},
        "sources_truncated": f"{truncation.sources} of {truncation.examples}",
        "losses": [round(loss, 4) for loss in losses],
        "peak_rss_bytes": peak_rss_bytes(),
        "rss_before_model_bytes": rss_start,
        "peak_rss_after_model_bytes": rss_model,
        "torch_threads": torch.get_num_threads(),
        "device": device.type,
    }
    if device.type == "cuda":
        result["cuda_peak_allocated_bytes"] = int(torch.cuda.max_memory_allocated())
    return result


def main() -> None:
    args = parse_args()
    if args.arm:
        print(json.dumps(run_arm(args)))
        return
    from sumlab.runtime.fileio import write_json_atomic

    arms = {}
    for arm in ARMS:
        options = ["--data", args.data, "--batch-size", str(args.batch_size), "--steps", str(args.steps)]
        options += ["--max-source-length", str(args.max_source_length)]
        options += ["--max-target-length", str(args.max_target_length), "--threads", str(args.threads)]
        arms[arm] = run_arm_in_fresh_process(__file__, arm, options)

    full, lora = arms["full"], arms["lora"]
    report = {
        "benchmark": "flan_t5_base_step",
        "command": "python benchmarks/flan_t5_base_step.py " + " ".join(sys.argv[1:]),
        "machine": machine_info(),
        "setup": {
            "model": "google/flan-t5-base architecture (sumlab/models/architectures), random init, float32",
            "tokenizer": "ByT5 byte-level (random init offline)",
            "batch_size": args.batch_size,
            "max_source_length": args.max_source_length,
            "max_target_length": args.max_target_length,
            "timed_steps": args.steps,
            "warmup_steps": 1,
            "optimizer": "AdamW, weight decay 0.01, lr 1e-5 (full) / 1e-3 (LoRA)",
            "lora": "r=32, alpha=32, targets q and v, dropout 0.05",
            "memory": "peak RSS (ru_maxrss) of each arm's own process; CUDA peak allocated on a GPU",
        },
        "arms": arms,
        "lora_vs_full": {
            "step_time_ratio": round(lora["step_seconds_median"] / full["step_seconds_median"], 3),
            "peak_rss_ratio": round(lora["peak_rss_bytes"] / full["peak_rss_bytes"], 3),
            "peak_rss_saved_bytes": full["peak_rss_bytes"] - lora["peak_rss_bytes"],
            "trainable_parameter_ratio": round(lora["parameters"]["trainable"] / full["parameters"]["trainable"], 5),
        },
    }
    write_json_atomic(args.out, report)
    print(json.dumps(report["lora_vs_full"], indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
