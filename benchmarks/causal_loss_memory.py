"""Peak memory and step time of causal LoRA training: the LM head at every position against only the labelled ones.

    python benchmarks/causal_loss_memory.py --threads 1 --out benchmarks/results/causal_loss_memory.json

The Qwen2.5-0.5B architecture (random init from sumlab's bundled config, offline; vocabulary 151,936) with
LoRA as configs/qwen2.5-0.5b-lora.yaml has it (r=16, alpha 32, q_proj and v_proj), on batches of 4 DialogSum
training examples of 320 tokens: the lab prompt cut to 272 byte-level tokens (ByT5's, offline) and the summary to
48, so that about 15% of the tokens carry labels, as with Qwen's own tokenizer (a 191-token prompt against
a 33-token summary on average).

Three arms, each in its own subprocess so that its peak RSS (``ru_maxrss``) is its own, each one the Trainer's
``compute_loss`` as sumlab calls it:

- ``full_logits``: before, a Seq2SeqTrainer with ``compute_loss_func=token_mean_loss``: the head at every position,
  then the shifted slice of the logits and the cross-entropy over it;
- ``labelled_head``: now, ``TokenMeanLossTrainer``: the head only at the positions that predict a label;
- ``labelled_head_checkpointed``: the same with activation checkpointing, as ``train.gradient_checkpointing: true``
  sets it (non-reentrant; configs/qwen2.5-0.5b-lora.yaml turns it on): each layer's activations are recomputed
  in the backward pass instead of kept, for about a third more forward compute.

Each step is ``compute_loss``, backward and a step of the optimizer sumlab's training gets (the Trainer's default,
fused AdamW); one warm-up step, then ``--steps`` timed ones on the same batches in every arm.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from arch import trainer_optimizer  # benchmarks/arch.py (the script's own folder)
from machine import machine_info, run_arm_in_fresh_process  # benchmarks/machine.py

ARMS = ("full_logits", "labelled_head", "labelled_head_checkpointed")
ARCHITECTURE = "Qwen/Qwen2.5-0.5B-Instruct"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "dialogsum"))
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "causal_loss_memory.json"))
    parser.add_argument("--arm", choices=ARMS, help="run one arm in this process and print its figures as JSON")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=2, help="timed steps, after one warm-up step")
    parser.add_argument("--max-source-length", type=int, default=272)
    parser.add_argument("--max-target-length", type=int, default=48)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    return parser.parse_args()


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)


def current_rss_bytes() -> int:
    """The resident set size now (Linux), as opposed to the peak so far: building the model peaks above it."""
    import os

    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def build_trainer(arm: str, model, scratch: str):
    """The Trainer whose ``compute_loss`` the arm measures: before (full logits) or now (labelled head)."""
    import functools

    from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments

    from sumlab.training.loss import TokenMeanLossTrainer, token_mean_loss

    args = Seq2SeqTrainingArguments(output_dir=scratch, report_to="none", use_cpu=not torch.cuda.is_available())
    if arm == "full_logits":
        return Seq2SeqTrainer(model=model, args=args, compute_loss_func=functools.partial(token_mean_loss, causal=True))
    return TokenMeanLossTrainer(model=model, args=args, causal=True)


def run_arm(args: argparse.Namespace) -> dict:
    """Build the model, wrap it in LoRA and train a few steps through the arm's ``compute_loss``."""
    from sumlab.config import ModelConfig, PeftSettings
    from sumlab.data.loading import load_split
    from sumlab.models.loading import load_tokenizer
    from sumlab.models.parameters import count_parameters
    from sumlab.models.peft_methods import add_peft
    from sumlab.models.random_init import build_random_model
    from sumlab.text.features import LABEL_PAD, dynamic_padding_collator, tokenize_examples
    from sumlab.text.prompts import TEMPLATES

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    rss_start = peak_rss_bytes()
    tokenizer = load_tokenizer(ModelConfig(name_or_path=ARCHITECTURE, random_init=True))
    model = build_random_model(ARCHITECTURE)
    model = add_peft(model, PeftSettings(method="lora", r=16, alpha=32, dropout=0.05)).to(device).train()
    if args.arm == "labelled_head_checkpointed":  # what the Trainer does for train.gradient_checkpointing: true
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    counts = count_parameters(model)
    rss_model = current_rss_bytes()

    examples = load_split(args.data, "train", limit=args.batch_size * (args.steps + 1))
    features, _ = tokenize_examples(
        examples, tokenizer, TEMPLATES["lab"], args.max_source_length, args.max_target_length, causal=True
    )
    collate = dynamic_padding_collator(tokenizer, model)
    batches = [
        collate([dict(f) for f in features[i : i + args.batch_size]]) for i in range(0, len(features), args.batch_size)
    ]
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer, optimizer_line = trainer_optimizer(trainable, 2e-4, weight_decay=0.01)
    step_seconds, losses = [], []
    with tempfile.TemporaryDirectory() as scratch:
        trainer = build_trainer(args.arm, model, scratch)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        for batch in batches:
            batch = {key: value.to(device) for key, value in batch.items()}
            labelled = batch["labels"][:, 1:].ne(LABEL_PAD).sum()
            started = time.perf_counter()
            loss = trainer.compute_loss(model, dict(batch), num_items_in_batch=labelled)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))  # waits for the step to finish (a CUDA sync point)
            step_seconds.append(time.perf_counter() - started)

    timed = step_seconds[1:]
    shapes = [list(batch["input_ids"].shape) for batch in batches]
    labelled = [int(batch["labels"][:, 1:].ne(LABEL_PAD).sum()) for batch in batches]
    result = {
        "arm": args.arm,
        "parameters": counts.to_json(),
        "step_seconds": [round(s, 3) for s in timed],
        "step_seconds_median": round(statistics.median(timed), 3),
        "warmup_step_seconds": round(step_seconds[0], 3),
        "batch_shapes": shapes,
        "labelled_tokens": labelled,
        "labelled_fraction": round(sum(labelled) / sum(b * t for b, t in shapes), 4),
        "losses": [round(loss, 5) for loss in losses],
        "peak_rss_bytes": peak_rss_bytes(),
        "rss_before_model_bytes": rss_start,
        "rss_after_model_bytes": rss_model,
        "torch_threads": torch.get_num_threads(),
        "device": device.type,
        "optimizer": optimizer_line,
    }
    result["training_peak_above_model_bytes"] = result["peak_rss_bytes"] - rss_model
    if device.type == "cuda":
        result["cuda_peak_allocated_bytes"] = int(torch.cuda.max_memory_allocated())
    return result


def against(after: dict, before: dict) -> dict:
    """How an arm compares with ``full_logits`` (before): memory and step time ratios, and the same losses."""
    return {
        "peak_rss_ratio": round(after["peak_rss_bytes"] / before["peak_rss_bytes"], 3),
        "peak_rss_saved_bytes": before["peak_rss_bytes"] - after["peak_rss_bytes"],
        "training_peak_above_model_ratio": round(
            after["training_peak_above_model_bytes"] / before["training_peak_above_model_bytes"], 3
        ),
        "step_time_ratio": round(after["step_seconds_median"] / before["step_seconds_median"], 3),
        "same_losses": before["losses"] == after["losses"],
        "max_loss_difference": max(abs(a - b) for a, b in zip(before["losses"], after["losses"])),
    }


def main() -> None:
    args = parse_args()
    if args.arm:
        print(json.dumps(run_arm(args)))
        return
    from sumlab.runtime.fileio import write_json_atomic

    arms = {}
    for arm in ARMS:
        options = ["--data", args.data, "--batch-size", str(args.batch_size), "--steps", str(args.steps)]
        options += ["--threads", str(args.threads), "--max-source-length", str(args.max_source_length)]
        options += ["--max-target-length", str(args.max_target_length)]
        arms[arm] = run_arm_in_fresh_process(__file__, arm, options)

    before = arms["full_logits"]
    report = {
        "benchmark": "causal_loss_memory",
        "command": "python benchmarks/causal_loss_memory.py " + " ".join(sys.argv[1:]),
        "machine": machine_info(),
        "setup": {
            "model": f"{ARCHITECTURE} architecture (sumlab/models/architectures), random init, float32",
            "peft": "LoRA r=16, alpha 32, dropout 0.05, q_proj and v_proj (configs/qwen2.5-0.5b-lora.yaml)",
            "tokenizer": "ByT5 byte-level (random init offline)",
            "batch_size": args.batch_size,
            "max_source_length": args.max_source_length,
            "max_target_length": args.max_target_length,
            "timed_steps": args.steps,
            "warmup_steps": 1,
            "optimizer": before["optimizer"],
            "memory": "peak RSS (ru_maxrss) of each arm's own process; CUDA peak allocated on a GPU",
        },
        "arms": arms,
        **{f"{arm}_vs_full_logits": against(arms[arm], before) for arm in ARMS[1:]},
    }
    write_json_atomic(args.out, report)
    print(json.dumps({arm: report[f"{arm}_vs_full_logits"] for arm in ARMS[1:]}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
