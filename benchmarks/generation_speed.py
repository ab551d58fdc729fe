"""Generation speed: the lab's one-at-a-time loop against sumlab's generation paths, on the same dialogues.

Run from the repository root (reads ../shared/data/dialogsum, writes under benchmarks/results/).

Overhead (no ``--arch``; writes generation_speed.json): a tiny T5, where the time is mostly Python overhead,
so these figures say how much overhead batching removes, not how fast a real model runs:

    python benchmarks/generation_speed.py --dialogues 100 --max-new-tokens 64 --batch-size 16

By default torch uses every core, as it does for a user (``--threads 1`` measures one core). Both paths run
the same tiny T5 (random init, fixed seed, a BPE tokenizer trained on DialogSum validation text, as the tests
build it) on the same distinct test dialogues with the lab's prompt, greedy, the same max_new_tokens and no
truncation. A random model rarely emits EOS, so both run to max_new_tokens. The outputs are compared string
by string. Each path is timed ``--repeats`` times in this one process, alternating, and the ratio uses the
best time of each (the least disturbed by other work on the machine). The CPU time of each path and the
machine's load average are recorded too: on a busy machine the wall-clock ratio swings, the CPU-time ratio
much less.

Real architectures (issue #14; writes generation_speed_<name>.json, e.g. generation_speed_flan-t5-base.json):

    python benchmarks/generation_speed.py --arch google/flan-t5-base
    python benchmarks/generation_speed.py --arch Qwen/Qwen2.5-0.5B

The model is the architecture at random init, built offline, with a byte-level BPE tokenizer trained on
DialogSum train text at the architecture's vocabulary size (``benchmarks/arch.py``, as train_throughput.py
builds them). A random model rarely emits EOS, so every arm runs to max_new_tokens: the same work in every
arm. Every arm gets the same distinct DialogSum test dialogues (the first N, in file order) in the lab's
prompt, greedy, the same max_new_tokens and no truncation. The arms (``--arms`` picks some):

- ``lab``: the lab's loop, plain ``model.generate`` one dialogue at a time, float32 (a decoder-only model has
  no lab recipe: the same loop on the prompt ids sumlab gives it, with sumlab's end tokens);
- ``torch``: sumlab's ``summarize`` with its default batching (up to 16 prompts and 16 x 512 padded prompt
  tokens a batch, longest first), ``precision: float32`` (sumlab's ``auto`` is bf16 on a CPU with native bf16);
- ``torch_bf16``: the same with ``precision: bfloat16`` (bf16 autocast, ``sumlab.runtime.precision``; float32
  weights);
- ``ct2_float32``, ``ct2_int8``: ``summarize`` with sumlab's CTranslate2 engine (``load_engine``) at that
  compute type, with the same batches. The model is saved to a temporary directory and converted into a
  temporary cache (``SUMLAB_CACHE``); the conversion is a one-off cost, timed apart from the arm.

The grid is every ``--dialogues`` x ``--new-tokens`` pair (default 48 and 200 dialogues, 24 and 64 new
tokens), each arm once by default (``--repeats``; the best is reported), after one untimed warm-up run of
each arm on two dialogues. ``--threads`` (default 2) sets torch's threads and the engine's. Per cell and arm:
seconds, the speedup over the lab's loop, dialogues/s, generated tokens/s (counted, up to and including the
end token), and model-FLOP utilisation: the model FLOPs of the prompts read and the tokens written
(``benchmarks/flops.py``, ``generation_flops``: no padding counted) / seconds / the matmul peak of the arm's
dtype, measured in the same run before and after the grid (the best of the two). float32 and int8 arms are
measured against the float32 peak (int8 has no matching matmul measure here, so its "MFU" says how it
compares with float32 matmuls at full speed); the bf16 arm against the bf16 peak. Each arm also records how
many of its summaries are the lab's exactly. The result file is rewritten after each cell (``complete``
says whether the whole grid ran). ``--layers N`` keeps N layers per stack, for a quick smoke run only (it
writes ..._layersN.json unless ``--out`` is given).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch
from arch import build_arch_model, build_arch_tokenizer, resolve_architecture  # benchmarks/arch.py
from flops import ModelShape, generation_flops, matmul_peak, model_shape  # benchmarks/flops.py
from machine import machine_info  # benchmarks/machine.py (the script's own folder)

import sumlab.generation.batching as batching
from sumlab.config import GenerationSettings, ModelConfig
from sumlab.errors import SumlabError
from sumlab.generation.batching import stop_token_ids, summarize
from sumlab.models.adapters import save_model_dir
from sumlab.models.family import is_causal
from sumlab.models.tiny import build_tiny_t5, train_tokenizer
from sumlab.runtime.fileio import write_json_atomic
from sumlab.text.encoding import causal_prompt_ids, encode_prompts
from sumlab.text.prompts import TEMPLATES, render_prompt

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
DIALOGSUM = REPO.parent / "shared" / "data" / "dialogsum"

ARMS = ("lab", "torch", "torch_bf16", "ct2_float32", "ct2_int8")
CT2_COMPUTE_TYPES = {"ct2_float32": "float32", "ct2_int8": "int8"}
PEAK_DTYPE = {"torch_bf16": "bfloat16"}  # every other arm is measured against the float32 peak
WARMUP_DIALOGUES = 2
ARCH_DEFAULTS = {"dialogues": [48, 200], "new_tokens": [24, 64], "repeats": 1, "threads": 2}
TARGET = (
    "issue #14, flan-t5-base architecture, CPU, 2 threads, 48 dialogues, 24 new tokens: at least 8x the lab's "
    "loop with the fastest engine, and at least 3x with CTranslate2 float32"
)


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


def lab_generate(model, tokenizer, dialogue: str, max_new_tokens: int) -> tuple[str, int, int]:
    """The lab's step for one dialogue, tokenize -> generate -> decode: the summary, its prompt and new tokens.

    A decoder-only model has no lab recipe: the same plain ``generate`` on the prompt ids sumlab gives it (BOS
    first), with sumlab's pad and end tokens, and only the continuation decoded. The new tokens are counted as
    sumlab counts them: the generated ids that are not padding, the end token included.
    """
    prompt = render_prompt(TEMPLATES["lab"], dialogue)
    if is_causal(model):
        input_ids = torch.tensor([causal_prompt_ids(tokenizer, TEMPLATES["lab"], [dialogue])[0]])
        output = model.generate(
            input_ids,
            attention_mask=torch.ones_like(input_ids),
            max_new_tokens=max_new_tokens,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=stop_token_ids(model, tokenizer),
        )
        generated = output[0, input_ids.shape[1] :]
    else:
        input_ids = tokenizer(prompt, return_tensors="pt").input_ids
        output = model.generate(input_ids, max_new_tokens=max_new_tokens)
        generated = output[0, 1:]  # after the decoder's start token
    new_tokens = int((generated != tokenizer.pad_token_id).sum())
    return tokenizer.decode(generated, skip_special_tokens=True).strip(), input_ids.shape[1], new_tokens


def lab_loop(model, tokenizer, dialogues: list[str], max_new_tokens: int) -> list[str]:
    """The lab's loop: one dialogue at a time, tokenize -> generate -> decode."""
    return [lab_generate(model, tokenizer, dialogue, max_new_tokens)[0] for dialogue in dialogues]


def timed(run) -> tuple[float, float, object]:
    """Wall seconds, CPU seconds of this process, and the result of ``run()``.

    On a shared machine the wall time also counts other programs' turns on the cores; with one torch
    thread the CPU time is this path's own work, so its ratio is the steadier of the two.
    """
    wall, cpu = time.perf_counter(), time.process_time()
    result = run()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces this run, every setting spelled out (lists as space-separated values)."""
    parts = []
    for key, value in vars(args).items():
        if key == "out" or value is None:
            continue
        shown = " ".join(map(str, value)) if isinstance(value, list) else str(value)
        parts.append(f"--{key.replace('_', '-')} {shown}")
    return "python benchmarks/generation_speed.py " + " ".join(parts)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--arch",
        default=None,
        help="a real architecture at random init (google/flan-t5-base, Qwen/Qwen2.5-0.5B): the lab's loop against "
        "torch, torch bf16 and CTranslate2 float32 and int8; without it, the tiny overhead setting",
    )
    parser.add_argument(
        "--dialogues", type=int, nargs="+", default=None, help="default 100 (tiny: one value), 48 200 (--arch)"
    )
    parser.add_argument(
        "--new-tokens",
        "--max-new-tokens",
        dest="new_tokens",
        type=int,
        nargs="+",
        default=None,
        help="max_new_tokens: default 64 (tiny: one value), 24 64 (--arch)",
    )
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS, help="--arch: the arms to run")
    parser.add_argument(
        "--batch-size", type=int, default=None, help="most prompts a batch: default 16 (tiny), sumlab's (--arch)"
    )
    parser.add_argument(
        "--max-batch-tokens", type=int, default=None, help="--arch: most padded prompt tokens a batch (sumlab's)"
    )
    parser.add_argument("--layers", type=int, default=None, help="--arch: keep only N layers per stack (smoke runs)")
    parser.add_argument("--d-model", type=int, default=64, help="tiny setting: the model's width")
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed runs of each path: default 2 (tiny), 1 (--arch)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (and the engine's): default torch's own, every core (tiny), 2 (--arch); "
        "on a shared machine more threads can add contention",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.arch is None:
        args.dialogues = args.dialogues or [100]
        args.new_tokens = args.new_tokens or [64]
        if len(args.dialogues) > 1 or len(args.new_tokens) > 1:
            parser.error("the tiny setting takes one --dialogues and one --new-tokens (lists are for --arch)")
        args.batch_size = args.batch_size or 16
        args.repeats = args.repeats or 2
        args.threads = args.threads or torch.get_num_threads()
        args.out = args.out or RESULTS / "generation_speed.json"
        args.arms = args.max_batch_tokens = args.layers = None  # not used by the tiny setting
        return args
    for key, value in ARCH_DEFAULTS.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.d_model = None  # not used with --arch
    suffix = f"_layers{args.layers}" if args.layers else ""
    args.out = args.out or RESULTS / f"generation_speed_{args.arch.split('/')[-1]}{suffix}.json"
    return args


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    if args.arch:
        try:
            run_arch(args)
        except SumlabError as error:
            sys.exit(f"error: {error}")
    else:
        run_tiny(args)


def run_tiny(args: argparse.Namespace) -> None:
    """The overhead figure: sumlab's batched ``summarize`` against the lab's loop on a tiny T5."""
    max_new_tokens = args.new_tokens[0]
    tokenizer, model = build_model(args.d_model, args.seed)
    dialogues = distinct_test_dialogues(args.dialogues[0])
    prompt_lengths = [len(tokenizer(render_prompt(TEMPLATES["lab"], d)).input_ids) for d in dialogues]
    # No truncation on either side: the lab's loop never truncates, so sumlab gets room for the longest prompt.
    settings = GenerationSettings(
        max_new_tokens=max_new_tokens,
        batch_size=args.batch_size,
        num_beams=1,
        max_source_length=max(prompt_lengths),
        precision="float32",  # as the lab's loop; sumlab's "auto" would be bf16 on a CPU with native bf16
    )

    def run_lab(texts: list[str]) -> list[str]:
        return lab_loop(model, tokenizer, texts, max_new_tokens)

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
        "figure": "overhead: a tiny model, whose time is mostly Python overhead, not a real model's speed",
        "command": command_line(args),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(torch_threads=torch.get_num_threads(), device="cpu"),
        "settings": {
            "dialogues": len(dialogues),
            "source": "distinct dialogues of ../shared/data/dialogsum/test.jsonl, in file order",
            "prompt": "lab",
            "prompt_tokens": {
                "min": min(prompt_lengths),
                "max": max(prompt_lengths),
                "mean": round(sum(prompt_lengths) / len(prompt_lengths), 1),
            },
            "max_new_tokens": max_new_tokens,
            "decoding": "greedy",
            "batch_size": args.batch_size,
            "truncation": "none",
            "precision": "float32",
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


# Real architectures (--arch): the lab's loop against torch, torch bf16 and CTranslate2 float32 and int8.


@dataclass
class Work:
    """What one run generated: the prompt tokens read, the tokens written and their model FLOPs (no padding)."""

    shape: ModelShape
    dialogues: int = 0
    prompt_tokens: int = 0
    new_tokens: int = 0
    model_flops: float = 0.0

    def add(self, prompt_tokens: int, new_tokens: int) -> None:
        self.dialogues += 1
        self.prompt_tokens += prompt_tokens
        self.new_tokens += new_tokens
        self.model_flops += generation_flops(self.shape, prompt_tokens, new_tokens)


@dataclass
class ArmRuns:
    """One arm's timed runs in one cell: seconds (wall and CPU), and the summaries and work of a run."""

    seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)
    summaries: list[str] = field(default_factory=list)
    work: Work | None = None


Runner = Callable[[list[str], int], tuple[list[str], Work]]


@contextmanager
def counting_work(work: Work) -> Iterator[None]:
    """Count into ``work`` the prompt and generated tokens of every batch that ``summarize`` generates.

    ``summarize`` takes each batch's summaries and token counts from ``sumlab.generation.batching.batch_results``,
    for a torch model and an engine alike; the counts are each row's generated tokens (up to and including the
    end token, padding left out). It is wrapped for the block, and restored after.
    """
    original = batching.batch_results

    def counted(model, tokenizer, batches, settings):
        for batch, (texts, counts) in zip(batches, original(model, tokenizer, batches, settings)):
            for ids, new_tokens in zip(batch, counts):
                work.add(len(ids), int(new_tokens))
            yield texts, counts

    batching.batch_results = counted
    try:
        yield
    finally:
        batching.batch_results = original


def lab_runner(model, tokenizer, shape: ModelShape) -> Runner:
    """The ``lab`` arm: plain ``generate``, one dialogue at a time."""

    def run(dialogues: list[str], max_new_tokens: int) -> tuple[list[str], Work]:
        work, summaries = Work(shape), []
        for dialogue in dialogues:
            summary, prompt_tokens, new_tokens = lab_generate(model, tokenizer, dialogue, max_new_tokens)
            summaries.append(summary)
            work.add(prompt_tokens, new_tokens)
        return summaries, work

    return run


def summarize_runner(model, tokenizer, shape: ModelShape, settings: GenerationSettings) -> Runner:
    """A ``summarize`` arm: a torch model (in ``settings.precision``) or a CTranslate2 engine."""

    def run(dialogues: list[str], max_new_tokens: int) -> tuple[list[str], Work]:
        work = Work(shape)
        cell_settings = settings.model_copy(update={"max_new_tokens": max_new_tokens})
        with counting_work(work):
            summaries = summarize(model, tokenizer, dialogues, cell_settings, TEMPLATES["lab"], progress=False)
        return summaries, work

    return run


def load_ct2_engine(model_dir: Path, compute_type: str):
    """The engine and its tokenizer for the model saved in ``model_dir``, and the one-off seconds it took.

    ``conversion_seconds``: converting into the (empty, temporary) cache; ``load_seconds``: ``load_engine``
    then finds the entry (hashing the saved weights) and loads it.
    """
    from sumlab.generation.conversion import converted_model
    from sumlab.generation.ctranslate2_engine import load_engine

    config = ModelConfig(name_or_path=str(model_dir))
    seconds, _, _ = timed(lambda: converted_model(config, compute_type))
    load_seconds, _, (engine, tokenizer) = timed(lambda: load_engine(config, compute_type))
    return engine, tokenizer, {"conversion_seconds": round(seconds, 2), "load_seconds": round(load_seconds, 2)}


def measure_peaks(dtypes: list[str], threads: int) -> dict[str, float]:
    """The matmul peak FLOP/s of each dtype at ``threads`` threads (benchmarks/flops.py)."""
    return {dtype: matmul_peak(getattr(torch, dtype), threads) for dtype in dtypes}


def token_stats(lengths: list[int]) -> dict:
    return {
        "total": sum(lengths),
        "min": min(lengths),
        "max": max(lengths),
        "mean": round(sum(lengths) / len(lengths), 1),
    }


def arm_figures(runs: ArmRuns, peak: float, lab: ArmRuns | None) -> dict:
    """One arm's figures in one cell: its best time, rates, MFU and how many summaries are the lab's."""
    best, work = min(runs.seconds), runs.work
    figures = {
        "seconds": round(best, 3),
        "all_seconds": [round(s, 3) for s in runs.seconds],
        "cpu_seconds": round(min(runs.cpu_seconds), 3),
        "speedup_vs_lab": round(min(lab.seconds) / best, 2) if lab else None,
        "dialogues_per_second": round(work.dialogues / best, 3),
        "generated_tokens": work.new_tokens,
        "generated_tokens_per_second": round(work.new_tokens / best, 1),
        "prompt_tokens": work.prompt_tokens,
        "model_gflop": round(work.model_flops / 1e9, 1),
        "model_gflop_per_second": round(work.model_flops / best / 1e9, 2),
        "mfu": round(work.model_flops / best / peak, 4),
    }
    if lab:
        same = sum(ours == theirs for ours, theirs in zip(runs.summaries, lab.summaries))
        figures["identical_to_lab"] = same
        figures["identical_to_lab_fraction"] = round(same / len(lab.summaries), 4)
    return figures


def run_arch(args: argparse.Namespace) -> None:
    """Every arm in every cell of the grid on one real architecture; the result file is rewritten after each cell."""
    architecture = resolve_architecture(args.arch)
    arms = [arm for arm in ARMS if arm in args.arms]  # in the canonical order
    peak_dtypes = sorted({PEAK_DTYPE.get(arm, "float32") for arm in arms})
    started = time.perf_counter()
    peaks_before = measure_peaks(peak_dtypes, args.threads)
    one_off: dict = {"matmul_peaks_seconds": round(time.perf_counter() - started, 2)}

    build_seconds, _, model = timed(lambda: build_arch_model(architecture, args.seed, args.layers).eval())
    causal, shape, hf = is_causal(model), model_shape(model), model.config
    tokenizer_seconds, _, tokenizer = timed(lambda: build_arch_tokenizer(DIALOGSUM, hf.vocab_size, causal))
    one_off.update(build_model_seconds=round(build_seconds, 2), train_tokenizer_seconds=round(tokenizer_seconds, 2))

    dialogues = distinct_test_dialogues(max(args.dialogues))
    prompt_lengths = encode_prompts(tokenizer, TEMPLATES["lab"], dialogues, None, causal).full_lengths
    # float32 unless an arm says otherwise: sumlab's precision "auto" would be bf16 on a CPU with native bf16
    settings = GenerationSettings(num_beams=1, max_source_length=None, precision="float32")
    settings = settings.model_copy(
        update={key: getattr(args, key) for key in ("batch_size", "max_batch_tokens") if getattr(args, key)}
    )

    runners: dict[str, Runner] = {}
    if "lab" in arms:
        runners["lab"] = lab_runner(model, tokenizer, shape)
    if "torch" in arms:
        runners["torch"] = summarize_runner(model, tokenizer, shape, settings)
    if "torch_bf16" in arms:
        bf16 = settings.model_copy(update={"precision": "bfloat16"})
        runners["torch_bf16"] = summarize_runner(model, tokenizer, shape, bf16)

    saved_cache = os.environ.get("SUMLAB_CACHE")
    with tempfile.TemporaryDirectory(prefix="sumlab-generation-speed-") as scratch:
        os.environ["SUMLAB_CACHE"] = str(Path(scratch) / "cache")  # conversions go here, not the user's cache
        try:
            if any(arm in CT2_COMPUTE_TYPES for arm in arms):
                model_dir = Path(scratch) / "model"
                seconds, _, _ = timed(lambda: save_model_dir(model, tokenizer, model_dir))
                one_off["save_model_seconds"] = round(seconds, 2)
            for arm in arms:
                if arm in CT2_COMPUTE_TYPES:
                    engine, engine_tokenizer, costs = load_ct2_engine(model_dir, CT2_COMPUTE_TYPES[arm])
                    one_off[arm] = costs
                    runners[arm] = summarize_runner(engine, engine_tokenizer, shape, settings)
                    print(f"{arm}: converted in {costs['conversion_seconds']} s", flush=True)

            for arm in arms:  # warm-up: the first calls allocate and pick kernels
                runners[arm](dialogues[:WARMUP_DIALOGUES], min(args.new_tokens))

            context = {
                "args": args,
                "architecture": architecture,
                "arms": arms,
                "shape": shape,
                "hf": hf,
                "parameters": sum(p.numel() for p in model.parameters()),
                "tokenizer": tokenizer,
                "prompt_lengths": prompt_lengths,
                "settings": settings,
                "one_off": one_off,
            }
            cells = []
            for count in args.dialogues:
                for new_tokens in args.new_tokens:
                    cells.append(run_cell(runners, arms, dialogues[:count], new_tokens, args.repeats))
                    peaks = {"before": peaks_before}
                    write_json_atomic(args.out, arch_report(context, cells, peaks, complete=False))
        finally:
            if saved_cache is None:
                os.environ.pop("SUMLAB_CACHE", None)
            else:
                os.environ["SUMLAB_CACHE"] = saved_cache

    peaks = {"before": peaks_before, "after": measure_peaks(peak_dtypes, args.threads)}
    report = arch_report(context, cells, peaks, complete=True)
    write_json_atomic(args.out, report)
    print(json.dumps(report["speedups_vs_lab"], indent=2))
    print(f"wrote {args.out}")


def run_cell(runners: dict[str, Runner], arms: list[str], dialogues: list[str], new_tokens: int, repeats: int):
    """Every arm on ``dialogues`` with ``new_tokens``, ``repeats`` times, alternating which arm goes first."""
    runs = {arm: ArmRuns() for arm in arms}
    for repeat in range(repeats):
        for arm in arms if repeat % 2 == 0 else list(reversed(arms)):
            seconds, cpu, (summaries, work) = timed(lambda arm=arm: runners[arm](dialogues, new_tokens))
            runs[arm].seconds.append(seconds)
            runs[arm].cpu_seconds.append(cpu)
            runs[arm].summaries, runs[arm].work = summaries, work
            print(f"{len(dialogues)} dialogues x {new_tokens} new tokens, {arm}: {seconds:.2f} s", flush=True)
    return {"dialogues": len(dialogues), "new_tokens": new_tokens, "runs": runs}


def arch_report(context: dict, cells: list[dict], peaks: dict, complete: bool) -> dict:
    """The result file: the setup, the one-off costs, the matmul peaks and every cell's figures."""
    args, arms, hf = context["args"], context["arms"], context["hf"]
    shape, settings, tokenizer = context["shape"], context["settings"], context["tokenizer"]
    used = {dtype: max(measured[dtype] for measured in peaks.values()) for dtype in peaks["before"]}
    cell_reports = []
    for cell in cells:
        runs, lab = cell["runs"], cell["runs"].get("lab")
        cell_reports.append(
            {
                "dialogues": cell["dialogues"],
                "new_tokens": cell["new_tokens"],
                "prompt_tokens": token_stats(context["prompt_lengths"][: cell["dialogues"]]),
                "arms": {
                    arm: arm_figures(runs[arm], used[PEAK_DTYPE.get(arm, "float32")], lab if arm != "lab" else None)
                    for arm in arms
                },
            }
        )
    speedups = {
        f"{cell['dialogues']} dialogues x {cell['new_tokens']} new tokens": {
            arm: figures["speedup_vs_lab"] for arm, figures in cell["arms"].items() if arm != "lab"
        }
        for cell in cell_reports
        if "lab" in cell["arms"]
    }
    layers = f"; REDUCED to {args.layers} layers per stack (smoke run, not a benchmark figure)" if args.layers else ""
    return {
        "benchmark": "generation_speed",
        "command": command_line(args),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "complete": complete,
        "machine": machine_info(torch_threads=args.threads, ctranslate2_threads=args.threads, device="cpu"),
        "setup": {
            "architecture": args.arch
            + (
                f" (bundled config {context['architecture']}: the same architecture)"
                if context["architecture"] != args.arch
                else ""
            ),
            "model": f"random init (seed {args.seed}, benchmarks/arch.py, offline), {context['parameters']} "
            f"parameters, float32 weights{layers}",
            "matmul_parameters": {"encoder": shape.encoder_parameters, "decoder": shape.decoder_parameters},
            "tokenizer": f"byte-level BPE trained on DialogSum train text, vocab {len(tokenizer)} (asked "
            f"{hf.vocab_size}, the architecture's; the real tokenizer is not available offline). The model keeps "
            f"its {hf.vocab_size}-token embedding and output head",
            "dialogues": "distinct dialogues of ../shared/data/dialogsum/test.jsonl, the first N in file order",
            "prompt": "lab",
            "decoding": "greedy; a random model rarely emits EOS, so every arm runs to about max_new_tokens",
            "truncation": "none",
            "batching": {
                "batch_size": settings.batch_size,
                "max_batch_tokens": batching.batch_token_budget(settings),
                "order": "length-sorted, longest first (sumlab.generation.batching)",
                "sumlab_default": args.batch_size is None and args.max_batch_tokens is None,
            },
            "threads": {
                "torch": args.threads,
                "ctranslate2": f"{args.threads} single-threaded workers (inter_threads {args.threads}, intra_threads 1):"
                " each batch split between them, every batch queued before the first result is awaited",
            },
            "repeats": args.repeats,
            "warmup": f"each arm once on {WARMUP_DIALOGUES} dialogues with {min(args.new_tokens)} new tokens, untimed",
            "arms": {
                "lab": "plain model.generate, one dialogue at a time, float32 (the lab's loop)",
                "torch": "sumlab summarize, default batching, float32",
                "torch_bf16": "sumlab summarize with precision bfloat16 (bf16 autocast, sumlab.runtime.precision), "
                "float32 weights",
                "ct2_float32": "sumlab summarize with the CTranslate2 engine (load_engine), compute type float32",
                "ct2_int8": "sumlab summarize with the CTranslate2 engine (load_engine), compute type int8",
            },
            "seconds": "the best of the timed runs of an arm in a cell; conversions are one-off costs, not in it",
            "flops": "benchmarks/flops.py generation_flops: each dialogue's real prompt tokens read once and its "
            "generated tokens written with a KV cache (2 x matmul parameters per token + attention); padding not "
            "counted",
            "mfu": "model FLOPs / seconds / the matmul peak of the arm's dtype measured in this run (best of before "
            "and after the grid): float32 for lab, torch, ct2_float32 and ct2_int8 (int8 has no matching matmul "
            "measure here), bfloat16 for torch_bf16",
        },
        "one_off_seconds": context["one_off"],
        "matmul_peak_gflop_per_second": {
            dtype: {
                **{when: round(measured[dtype] / 1e9, 1) for when, measured in peaks.items()},
                "used": round(used[dtype] / 1e9, 1),
            }
            for dtype in used
        },
        "target": TARGET,
        "speedups_vs_lab": speedups,
        "cells": cell_reports,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "note": "figures vary a lot between machines and with load: compare only within one run",
    }


if __name__ == "__main__":
    main()
