"""Data-parallel training throughput on CPU: 1 process against 2 processes (DDP over gloo), same global batch.

    python benchmarks/ddp_throughput.py --data ../shared/data/dialogsum --out benchmarks/results/ddp_throughput.json

Each arm runs the real command line, ``sumlab train``, on the bundled tiny T5 (sumlab-tiny-t5: d_model 128,
2+2 layers, 1.7M parameters) with full fine-tuning, the same DialogSum training rows, the same global batch
and the same number of optimizer steps:

- ``1 process x 1 thread``: ``python -m sumlab train``, global batch B;
- ``1 process x 2 threads``: the same with OMP_NUM_THREADS=2, the fair single-process baseline on 2 cores;
- ``2 processes x 1 thread``: ``torchrun --nproc_per_node=2 -m sumlab train``, B/2 per process (DDP, gloo).

Throughput is the Trainer's own measure of the training loop (``train_samples_per_second``: global examples
per second, without process start-up, model loading and saving); tokens/s counts the non-padding source and
target tokens of the examples trained on. Scaling efficiency is the 2-process throughput divided by twice the
1-process x 1-thread one (1.0 = perfect), and the speed-up is also given against 1 process x 2 threads. The
arms alternate ``--repeats`` times and the median is reported; the load average at the start is recorded
because this machine is shared. No GPU was available: single-GPU figures were not measured.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import transformers
import yaml

from sumlab.config import ModelConfig, TrainConfig, build_config
from sumlab.data.loading import load_split
from sumlab.models.loading import load_tokenizer
from sumlab.runtime.fileio import write_json_atomic
from sumlab.text.prompts import TEMPLATES, render_prompt
from sumlab.training import trainer as training
from sumlab.training.run_dir import read_log

MODEL = "sumlab-tiny-t5"
ARMS = {  # name: (processes, threads per process)
    "1 process x 1 thread": (1, 1),
    "1 process x 2 threads": (1, 2),
    "2 processes x 1 thread": (2, 1),
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "dialogsum"))
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "ddp_throughput.json"))
    parser.add_argument("--examples", type=int, default=256, help="training rows (steps = examples / global batch)")
    parser.add_argument("--global-batch", type=int, default=16)
    parser.add_argument("--max-source-length", type=int, default=512)
    parser.add_argument("--max-target-length", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2)
    return parser.parse_args()


def write_config(path: Path, args: argparse.Namespace) -> TrainConfig:
    config = build_config(
        TrainConfig,
        {
            "name": "ddp-throughput",
            "model": {"name_or_path": MODEL, "dtype": "float32"},
            "data": {"source": args.data, "train": {"split": "train", "limit": args.examples}, "validation": None},
            "peft": {"method": "full"},
            "train": {
                "learning_rate": 1e-3,
                "num_train_epochs": 1,
                "per_device_train_batch_size": args.global_batch,
                "max_source_length": args.max_source_length,
                "max_target_length": args.max_target_length,
                "logging_steps": 1000,
                "save_steps": 100000,
                "save_total_limit": 1,
                "precision": "float32",
                "tensorboard": False,
            },
        },
    )
    path.write_text(yaml.safe_dump(config.model_dump(mode="json")), encoding="utf-8")
    return config


def tokens_trained(config: TrainConfig) -> int:
    """Non-padding source and target tokens of one epoch, truncated as training truncates them."""
    tokenizer = load_tokenizer(ModelConfig(name_or_path=MODEL))
    rows = load_split(config.data.source, "train")[: config.data.train.limit]
    sources = tokenizer(
        [render_prompt(TEMPLATES["lab"], row.dialogue) for row in rows],
        truncation=True,
        max_length=config.train.max_source_length,
    )["input_ids"]
    targets = tokenizer([row.summary for row in rows], truncation=True, max_length=config.train.max_target_length)[
        "input_ids"
    ]
    return sum(map(len, sources)) + sum(map(len, targets))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_arm(config_file: Path, out: Path, processes: int, threads: int, global_batch: int) -> dict:
    per_process = global_batch // processes
    launcher = (
        [sys.executable]
        if processes == 1
        else [
            sys.executable,
            "-m",
            "torch.distributed.run",
            f"--nproc_per_node={processes}",
            f"--master_port={free_port()}",
        ]
    )
    command = [
        *launcher,
        "-m",
        "sumlab",
        "train",
        str(config_file),
        "--out",
        str(out),
        "--overwrite",
        "--set",
        f"train.per_device_train_batch_size={per_process}",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    started = time.perf_counter()
    # run outside the source tree, so that `-m sumlab` is the installed package (as the user's command is)
    completed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800, cwd=out.parent)
    wall = time.perf_counter() - started
    if completed.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{(completed.stdout + completed.stderr)[-3000:]}")
    metrics = json.loads((out / "metrics.json").read_text())
    steps = read_log(out / "log.jsonl")[-1]["step"]
    expected = json.loads((out / "summary.json").read_text())["train_examples"] // global_batch
    if steps != expected:  # e.g. N processes that each trained alone instead of one DDP job
        raise SystemExit(
            f"{processes} processes took {steps} optimizer steps, not {expected}: not one data-parallel job"
        )
    return {
        "train_seconds": metrics["train_runtime"],
        "examples_per_second": metrics["train_samples_per_second"],
        "optimizer_steps": steps,
        "command_wall_seconds": round(wall, 2),
    }


def main() -> None:
    args = parse_args()
    if "use_cpu_backend" not in inspect.getsource(training):
        raise SystemExit("sumlab.training does not join CPU processes into one group yet (apply the training patch)")
    with tempfile.TemporaryDirectory(prefix="ddp-throughput-") as scratch:
        scratch = Path(scratch)
        config = write_config(scratch / "config.yaml", args)
        tokens = tokens_trained(config)
        load = os.getloadavg()
        runs: dict[str, list[dict]] = {name: [] for name in ARMS}
        for repeat in range(args.repeats):
            for name, (processes, threads) in ARMS.items():
                result = run_arm(scratch / "config.yaml", scratch / "run", processes, threads, args.global_batch)
                runs[name].append(result)
                print(f"repeat {repeat + 1}: {name}: {result['examples_per_second']:.2f} examples/s", flush=True)
    arms = {}
    for name, results in runs.items():
        seconds = statistics.median(r["train_seconds"] for r in results)
        arms[name] = {
            "processes": ARMS[name][0],
            "threads_per_process": ARMS[name][1],
            "per_process_batch": args.global_batch // ARMS[name][0],
            "examples_per_second": round(args.examples / seconds, 2),
            "tokens_per_second": round(tokens / seconds, 1),
            "train_seconds_median": round(seconds, 3),
            "runs": results,
        }
    one, two_threads, ddp = (arms[name]["examples_per_second"] for name in ARMS)
    write_json_atomic(
        args.out,
        {
            "benchmark": "ddp_throughput",
            "command": "python benchmarks/ddp_throughput.py --data ../shared/data/dialogsum --out benchmarks/results/ddp_throughput.json",
            "model": {"name": MODEL, "parameters": 1713920, "method": "full"},
            "data": {
                "examples": args.examples,
                "global_batch": args.global_batch,
                "tokens_per_epoch": tokens,
                "max_source_length": args.max_source_length,
                "max_target_length": args.max_target_length,
            },
            "arms": arms,
            "scaling": {
                "speedup_2_processes_vs_1_process_1_thread": round(ddp / one, 3),
                "scaling_efficiency": round(ddp / (2 * one), 3),
                "speedup_2_processes_vs_1_process_2_threads": round(ddp / two_threads, 3),
            },
            "notes": [
                "2 CPU cores shared with other jobs (see load_average_at_start): absolute figures are noisy",
                "1 process x 2 threads is slower than x 1 thread here: intra-op threads contend with the other jobs",
                "on CPU this measures the engine's overhead (gloo all-reduce of 1.7M fp32 gradients per step), not GPU scaling",
            ],
            "gpu": "not measured: no GPU in this session (the single-GPU flan-t5-base figures are still to be recorded)",
            "machine": {
                "platform": platform.platform(),
                "cpu_count": os.cpu_count(),
                "load_average_at_start": [round(x, 2) for x in load],
                "python": platform.python_version(),
                "torch": torch.__version__,
                "transformers": transformers.__version__,
                "backend": "gloo",
                "device": "cpu",
            },
            "repeats": args.repeats,
        },
    )
    print(json.dumps({"arms": {n: a["examples_per_second"] for n, a in arms.items()}}, indent=1))


if __name__ == "__main__":
    main()
