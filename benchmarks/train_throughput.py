"""Training throughput: sumlab's batching against the lab's preprocessing, same model, data and steps.

    python benchmarks/train_throughput.py --data ../shared/data/dialogsum --out benchmarks/results/train_throughput.json

Within a setting, every arm trains a fresh copy of the same model (the same initial weights) on the same
256 DialogSum training examples with batch size 8, AdamW and the same number of optimizer steps, in a
plain torch loop. Only the features differ:

- ``lab``: ``lab_features`` (every source and label padded to 512, pad ids left in the labels, so the
  loss averages over pad positions too);
- ``sumlab``: ``tokenize_examples`` + ``dynamic_padding_collator`` (each batch padded to its longest
  sequence, label padding -100 so the loss ignores it), in the same random order as ``lab``;
- ``sumlab_grouped``: the same, in transformers' length-grouped order (``train.group_by_length``).

All truncate at 512 tokens on both sides, so all see exactly the same real tokens. The settings:

- ``sumlab-tiny-t5``: the project's bundled tiny pretrained model (d_model 128, its own tokenizer of
  vocab 2080 and its own weights, as ``sumlab.models.loading.load_model`` / ``load_tokenizer`` load it);
- ``vocab_800`` and ``vocab_8000``: a random-init tiny T5 (d_model 64) with a byte-level BPE tokenizer
  trained on DialogSum validation text, of vocab 800 (the tests', as tests/conftest.py builds it; long
  sequences) and 8000 (lengths near FLAN-T5's sentencepiece on DialogSum).

The arms run alternately ``--repeats`` times and the median is reported. Tiny models gain nothing from
extra threads and a busy machine makes them fight, so one thread is the default. These tiny settings
measure Python and padding overhead only ("overhead" figures); the real architectures are below.

Real architectures (issue #14), one result file each, ``results/train_throughput_<name>.json``:

    python benchmarks/train_throughput.py --arch google/flan-t5-base
    python benchmarks/train_throughput.py --arch Qwen/Qwen2.5-0.5B

The architecture is built offline at random init from sumlab's bundled config (``benchmarks/arch.py``, with
``sumlab.models.random_init.build_random_model``; ``Qwen/Qwen2.5-0.5B`` uses the bundled
``Qwen2.5-0.5B-Instruct`` config, the same architecture). Its real tokenizer is not available offline,
so a byte-level BPE tokenizer is trained on DialogSum training text with the architecture's vocabulary
size (as many tokens as BPE finds: all 32,128 for T5, about 37k of Qwen's 151,936); it gives DialogSum
lengths near FLAN-T5's (a dialogue about 197 tokens, a summary 34), and the model keeps its full
vocabulary, so every step computes the full-size embedding and output head. Four arms, each a fresh
model from the same seed, one warm-up step on its own batch, then ``--steps`` timed AdamW steps on the
same ``--batch-size`` x ``--steps`` training examples:

- batching ``lab``: sources and labels padded to 512, pad ids left in the labels (a decoder-only model:
  prompt and summary, each cut at 512, padded to 1024, pad ids in the labels), random order;
- batching ``sumlab``: dynamic padding, -100 label padding, transformers' length-grouped order;
- each in ``float32`` and under ``torch.autocast("cpu", dtype=torch.bfloat16)``.

Per arm: seconds per step, examples/s, real tokens/s and MFU (``benchmarks/flops.py``: model FLOPs of the
real tokens / seconds / the matmul peak of the arm's dtype, measured in the same run before and after the
arms, the best of the two), and the ratios sumlab/lab (same precision) and bf16/fp32 (same batching).
``--layers N`` keeps N layers per stack, for a quick smoke run only; ``--batchings`` and ``--precisions``
pick arms. Memory: Qwen's ``lab`` arm (4 x 1024 positions, a 151,936-token head, full AdamW) needs more
than 20 GB in float32; ``--batch-size 2`` halves its activations.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import statistics
import sys
import time
from pathlib import Path

import torch
from arch import (  # benchmarks/arch.py
    build_arch_model,
    build_arch_tokenizer,
    resolve_architecture,
    trainer_optimizer,
)
from flops import ModelShape, matmul_peak, model_shape, training_flops  # benchmarks/flops.py
from machine import machine_info  # benchmarks/machine.py (the script's own folder)
from transformers import default_data_collator
from transformers.trainer_pt_utils import get_length_grouped_indices

from sumlab.config import ModelConfig
from sumlab.data.loading import load_split
from sumlab.models.family import is_causal
from sumlab.models.loading import load_model, load_tokenizer
from sumlab.models.tiny import build_tiny_t5, train_tokenizer
from sumlab.runtime.fileio import write_json_atomic
from sumlab.text.features import (
    LABEL_PAD,
    dynamic_padding_collator,
    lab_features,
    tokenize_examples,
)
from sumlab.text.prompts import TEMPLATES

LAB_LENGTH = 512
ARCH_BATCHINGS = ("lab", "sumlab")
ARCH_PRECISIONS = ("float32", "bfloat16")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "dialogsum"),
        help="DialogSum directory (train.jsonl, validation.jsonl)",
    )
    parser.add_argument(
        "--out",
        default=None,
        help="result file (default: results/train_throughput.json, or train_throughput_<arch name>.json with --arch)",
    )
    parser.add_argument(
        "--arch",
        default=None,
        help="a real architecture at random init (google/flan-t5-base, Qwen/Qwen2.5-0.5B): the lab's batches "
        "against sumlab's, in float32 and bf16 autocast; without it, the tiny overhead settings",
    )
    parser.add_argument("--steps", type=int, default=3, help="--arch: timed optimizer steps per arm, after 1 warm-up")
    parser.add_argument("--layers", type=int, default=None, help="--arch: keep only N layers per stack (smoke runs)")
    parser.add_argument("--precisions", nargs="*", default=list(ARCH_PRECISIONS), choices=ARCH_PRECISIONS)
    parser.add_argument("--batchings", nargs="*", default=list(ARCH_BATCHINGS), choices=ARCH_BATCHINGS)
    parser.add_argument("--examples", type=int, default=256, help="tiny settings only (--arch: batch x (steps + 1))")
    parser.add_argument("--batch-size", type=int, default=None, help="default 8 (tiny settings), 4 (--arch)")
    parser.add_argument("--epochs", type=int, default=1, help="passes over the examples (steps = epochs * batches)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument(
        "--pretrained",
        nargs="*",
        default=["sumlab-tiny-t5"],
        help="pretrained models to try, each with its own tokenizer and weights (default: the bundled one)",
    )
    parser.add_argument(
        "--vocab-sizes",
        type=int,
        nargs="*",
        default=[800, 8000],
        help="random-init tiny T5s to try, by tokenizer: 800 is the tests' (long sequences), "
        "8000 gives lengths near FLAN-T5's",
    )
    parser.add_argument("--learning-rate", type=float, default=None, help="default 1e-3 (tiny), 1e-5 (--arch)")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads: default 1 (tiny settings), 2 (--arch)"
    )
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def build_tiny(data: Path, vocab_size: int, d_model: int, seed: int):
    """The tokenizer (trained on DialogSum validation text), a fresh-model factory with fixed weights, and both described."""
    rows = [json.loads(line) for line in (data / "validation.jsonl").read_text(encoding="utf-8").splitlines()]
    tokenizer = train_tokenizer([r["dialogue"] for r in rows] + [r["summary"] for r in rows], vocab_size=vocab_size)
    initial = build_tiny_t5(len(tokenizer), d_model=d_model, d_ff=2 * d_model, num_layers=2, num_heads=4, seed=seed)
    state = {name: tensor.clone() for name, tensor in initial.state_dict().items()}

    def fresh_model():
        model = build_tiny_t5(len(tokenizer), d_model=d_model, d_ff=2 * d_model, num_layers=2, num_heads=4, seed=seed)
        model.load_state_dict(state)
        return model.train()

    description = {
        "model": f"tiny T5 v1.1 (d_model {d_model}, d_ff {2 * d_model}, 2+2 layers, 4 heads, dropout 0), "
        f"random init, seed {seed}, {_parameters(initial)} parameters",
        "tokenizer": f"byte-level BPE, vocab {len(tokenizer)}, trained on DialogSum validation text",
    }
    return tokenizer, fresh_model, description


def build_pretrained(name: str):
    """A pretrained model's own tokenizer, a fresh-model factory (its own weights, in float32), and both described."""
    config = ModelConfig(name_or_path=name, dtype="float32")
    tokenizer = load_tokenizer(config)
    initial = load_model(config, device=torch.device("cpu"))
    state = {key: tensor.clone() for key, tensor in initial.state_dict().items()}

    def fresh_model():
        model = load_model(config, device=torch.device("cpu"))
        model.load_state_dict(state)
        return model.train()

    hf = initial.config
    description = {
        "model": f"{name}: pretrained T5 (d_model {hf.d_model}, d_ff {hf.d_ff}, {hf.num_layers}+{hf.num_decoder_layers} "
        f"layers, {hf.num_heads} heads, dropout {hf.dropout_rate}), its own weights, "
        f"{_parameters(initial)} parameters",
        "tokenizer": f"{name}'s own ({_tokenizer_kind(tokenizer)}, vocab {len(tokenizer)})",
    }
    return tokenizer, fresh_model, description


def _tokenizer_kind(tokenizer) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    return type(backend.model).__name__ if backend is not None else type(tokenizer).__name__


def _parameters(model) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


def make_batches(features: list[dict], collate, batch_size: int, order: list[int]) -> list[dict]:
    """Collate the features in ``order`` into batches (done before timing: both arms pay it once, outside the loop)."""
    ordered = [dict(features[i]) for i in order]
    return [collate(ordered[start : start + batch_size]) for start in range(0, len(ordered), batch_size)]


def token_counts(batches: list[dict], pad_id: int) -> dict:
    """Real (non-pad) tokens and all positions processed, sources and labels together."""
    real = padded = 0
    for batch in batches:
        real += int(batch["attention_mask"].sum())
        # pad id 0 is never a real token
        real += int(((batch["labels"] != LABEL_PAD) & (batch["labels"] != pad_id)).sum())
        padded += batch["input_ids"].numel() + batch["labels"].numel()
    return {"real": real, "padded": padded}


def train_steps(model, batches: list[dict], learning_rate: float) -> tuple[float, list[float]]:
    """One optimizer step per batch; returns the seconds for all but the first (warm-up) step, and the losses."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    losses, started = [], None
    for index, batch in enumerate(batches):
        if index == 1:
            started = time.perf_counter()
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))  # a sync point, the same in every arm
    return time.perf_counter() - started, losses


@torch.no_grad()
def masked_loss(model, batches: list[dict]) -> float:
    """Mean loss over real label tokens only (pad ignored), the honest quality measure for either arm."""
    model.eval()
    total, count = 0.0, 0
    for batch in batches:
        logits = model(**batch).logits
        losses = torch.nn.functional.cross_entropy(
            logits.transpose(1, 2), batch["labels"], reduction="none", ignore_index=LABEL_PAD
        )
        total += float(losses.sum())
        count += int((batch["labels"] != LABEL_PAD).sum())
    model.train()
    return total / count


def run_setting(args: argparse.Namespace, data: Path, label: str, tokenizer, fresh_model, description: dict) -> dict:
    """Every arm on one model and tokenizer: the same examples, batch size and number of optimizer steps."""
    template = TEMPLATES["lab"]
    examples = load_split(str(data), "train", limit=args.examples)
    held_out = load_split(str(data), "validation", limit=64)

    generator = torch.Generator().manual_seed(args.seed)
    order = [int(i) for _ in range(args.epochs) for i in torch.randperm(len(examples), generator=generator)]
    collate_dynamic = dynamic_padding_collator(tokenizer, fresh_model())
    ours, truncation = tokenize_examples(examples, tokenizer, template, LAB_LENGTH, LAB_LENGTH)
    lengths = [len(feature["input_ids"]) for feature in ours]
    grouped = [
        int(i)
        for _ in range(args.epochs)
        for i in get_length_grouped_indices(
            lengths, args.batch_size, generator=torch.Generator().manual_seed(args.seed)
        )
    ]
    arms = {
        "lab": make_batches(
            lab_features(examples, tokenizer, template, LAB_LENGTH), _lab_collate, args.batch_size, order
        ),
        "sumlab": make_batches(ours, collate_dynamic, args.batch_size, order),
        "sumlab_grouped": make_batches(ours, collate_dynamic, args.batch_size, grouped),
    }
    held_out_features, _ = tokenize_examples(held_out, tokenizer, template, LAB_LENGTH, LAB_LENGTH)
    held_out_batches = make_batches(held_out_features, collate_dynamic, args.batch_size, list(range(len(held_out))))

    counts = {name: token_counts(batches, tokenizer.pad_token_id) for name, batches in arms.items()}
    assert len({count["real"] for count in counts.values()}) == 1, counts  # the same real tokens in every arm
    seconds = {name: [] for name in arms}
    trained = {}
    for repeat in range(args.repeats):
        names = list(arms) if repeat % 2 == 0 else list(reversed(arms))  # alternate which arm goes first
        for name in names:
            model = fresh_model()
            elapsed, losses = train_steps(model, arms[name], args.learning_rate)
            seconds[name].append(elapsed)
            trained[name] = (model, losses)
            print(f"{label} repeat {repeat} {name}: {elapsed:.2f}s for {len(arms[name]) - 1} timed steps", flush=True)

    timed_examples = (len(order) // args.batch_size - 1) * args.batch_size
    results = {}
    for name, batches in arms.items():
        median = statistics.median(seconds[name])
        timed = token_counts(batches[1:], tokenizer.pad_token_id)
        model, losses = trained[name]
        results[name] = {
            "seconds_median": round(median, 3),
            "seconds_all": [round(s, 3) for s in seconds[name]],
            "examples_per_second": round(timed_examples / median, 2),
            "real_tokens_per_second": round(timed["real"] / median, 1),
            "padded_tokens_per_second": round(timed["padded"] / median, 1),
            "real_tokens": counts[name]["real"],
            "padded_tokens": counts[name]["padded"],
            "padding_fraction": round(1 - counts[name]["real"] / counts[name]["padded"], 4),
            "mean_batch_width": {
                "source": round(statistics.mean(b["input_ids"].shape[1] for b in batches), 1),
                "labels": round(statistics.mean(b["labels"].shape[1] for b in batches), 1),
            },
            "first_loss": round(losses[0], 4),
            "last_loss": round(losses[-1], 4),
            "held_out_masked_loss_after": round(masked_loss(model, held_out_batches), 4),
        }

    first_lab = arms["lab"][0]
    initial = fresh_model().eval()
    with torch.no_grad():
        lab_loss = float(initial(**first_lab).loss)
        masked = {
            **first_lab,
            "labels": first_lab["labels"].masked_fill(first_lab["labels"] == tokenizer.pad_token_id, LABEL_PAD),
        }
        real_token_loss = float(initial(**masked).loss)
    lab_speed = results["lab"]["examples_per_second"]
    return {
        **description,
        "mean_tokens": {
            "source": round(statistics.mean(lengths), 1),
            "labels": round(statistics.mean(len(f["labels"]) for f in ours), 1),
        },
        "truncated_at_512": {"sources": truncation.sources, "labels": truncation.targets},
        "arms": results,
        "speedup_over_lab": {
            name: round(results[name]["examples_per_second"] / lab_speed, 2) for name in ("sumlab", "sumlab_grouped")
        },
        "loss_semantics": {
            "lab_label_pad_fraction_first_batch": round(
                float((first_lab["labels"] == tokenizer.pad_token_id).float().mean()), 4
            ),
            "initial_model_first_lab_batch": {
                "lab_loss_with_pad": round(lab_loss, 4),
                "loss_on_real_tokens_only": round(real_token_loss, 4),
            },
        },
    }


# Real architectures (--arch): the lab's batches against sumlab's, in float32 and bf16 autocast.


def lab_arch_features(examples, tokenizer, causal: bool) -> list[dict]:
    """The lab's features: padded to 512 on both sides, pad ids in the labels.

    A decoder-only model has no lab recipe; the same idea: sumlab's prompt + summary sequence (each cut at
    512) padded to 1024, pad ids left in the labels (the compute depends only on the width).
    """
    if not causal:
        return lab_features(examples, tokenizer, TEMPLATES["lab"], LAB_LENGTH)
    features, _ = tokenize_examples(examples, tokenizer, TEMPLATES["lab"], LAB_LENGTH, LAB_LENGTH, causal=True)
    return [_pad_to(feature, 2 * LAB_LENGTH, tokenizer.pad_token_id) for feature in features]


def _pad_to(feature: dict, length: int, pad_id: int) -> dict:
    pad = length - len(feature["input_ids"])
    return {
        "input_ids": feature["input_ids"] + [pad_id] * pad,
        "attention_mask": feature["attention_mask"] + [0] * pad,
        "labels": feature["labels"] + [pad_id] * pad,
    }


def arch_batches(batching: str, examples, tokenizer, model, batch_size: int, seed: int) -> tuple[dict, list[dict]]:
    """The warm-up batch (the first ``batch_size`` examples) and the timed batches (the rest), collated.

    ``lab``: the examples' (random) order; ``sumlab``: the timed examples in length-grouped order.
    """
    causal = is_causal(model)
    if batching == "lab":
        features = lab_arch_features(examples, tokenizer, causal)
        return _lab_collate(features[:batch_size]), make_batches(
            features[batch_size:], _lab_collate, batch_size, list(range(len(features) - batch_size))
        )
    features, _ = tokenize_examples(examples, tokenizer, TEMPLATES["lab"], LAB_LENGTH, LAB_LENGTH, causal=causal)
    collate = dynamic_padding_collator(tokenizer, model)
    timed = features[batch_size:]
    lengths = [len(feature["input_ids"]) for feature in timed]
    grouped = get_length_grouped_indices(lengths, batch_size, generator=torch.Generator().manual_seed(seed))
    warmup = collate([dict(feature) for feature in features[:batch_size]])
    return warmup, make_batches(timed, collate, batch_size, [int(i) for i in grouped])


def sequence_lengths(batch: dict, causal: bool, pad_id: int) -> tuple[list[tuple[int, int]], tuple[int, int]]:
    """Each row's real (source, target) tokens, and the batch's padded (source, target) widths.

    A decoder-only row is all target (source 0): the prompt and the summary are one sequence.
    """
    sources = [int(n) for n in batch["attention_mask"].sum(dim=1)]
    if causal:
        return [(0, n) for n in sources], (0, batch["input_ids"].shape[1])
    labels = batch["labels"]
    targets = [int(n) for n in ((labels != LABEL_PAD) & (labels != pad_id)).sum(dim=1)]
    return list(zip(sources, targets)), (batch["input_ids"].shape[1], labels.shape[1])


def batches_work(shape: ModelShape, batches: list[dict], causal: bool, pad_id: int) -> dict:
    """Real tokens, training FLOPs of the real tokens, and of every position processed (padding included)."""
    real_tokens, real_flops, padded_flops = 0, 0.0, 0.0
    for batch in batches:
        rows, (source_width, target_width) = sequence_lengths(batch, causal, pad_id)
        real_tokens += sum(source + target for source, target in rows)
        real_flops += sum(training_flops(shape, source, target) for source, target in rows)
        padded_flops += len(rows) * training_flops(shape, source_width, target_width)
    return {"real_tokens": real_tokens, "model_flops": real_flops, "padded_flops": padded_flops}


def timed_training(model, warmup: dict, batches: list[dict], bf16: bool, learning_rate: float):
    """An untimed warm-up step, then one timed step per batch with the optimizer sumlab's training gets
    (``trainer_optimizer``): the timed steps' seconds, all losses, and which optimizer it was.
    """
    optimizer, optimizer_line = trainer_optimizer(model.parameters(), learning_rate, weight_decay=0.01)
    seconds, losses = [], []
    for batch in [warmup, *batches]:
        started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(**batch).loss
        loss.backward()  # outside autocast, as torch recommends; the weights and AdamW stay float32
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        seconds.append(time.perf_counter() - started)
    return seconds[1:], losses, optimizer_line


def arch_arm(seconds: list[float], work: dict, batches: list[dict], losses: list[float], peak: float) -> dict:
    """One arm's figures: per step, per second, and as a fraction of the matmul peak of its dtype."""
    total = sum(seconds)
    examples = sum(batch["input_ids"].shape[0] for batch in batches)
    return {
        "seconds_per_step": round(total / len(seconds), 3),
        "step_seconds": [round(s, 3) for s in seconds],
        "examples_per_second": round(examples / total, 4),
        "real_tokens_per_second": round(work["real_tokens"] / total, 1),
        "model_gflop_per_second": round(work["model_flops"] / total / 1e9, 2),
        "mfu": round(work["model_flops"] / total / peak, 4),
        "padded_flops_utilisation": round(work["padded_flops"] / total / peak, 4),
        "real_tokens": work["real_tokens"],
        "model_tflop": round(work["model_flops"] / 1e12, 4),
        "padded_tflop": round(work["padded_flops"] / 1e12, 4),
        "mean_batch_width": {
            "source": round(statistics.mean(b["input_ids"].shape[1] for b in batches), 1),
            "labels": round(statistics.mean(b["labels"].shape[1] for b in batches), 1),
        },
        "losses": [round(loss, 4) for loss in losses],
    }


def measure_peaks(precisions: list[str], threads: int) -> dict:
    """The matmul peak FLOP/s of each precision's dtype at ``threads`` threads."""
    return {precision: matmul_peak(getattr(torch, precision), threads) for precision in precisions}


def run_arch(args: argparse.Namespace) -> dict:
    """Every batching in every precision on one real architecture: the same examples, steps and initial weights."""
    architecture = resolve_architecture(args.arch)
    data = Path(args.data)
    learning_rate = args.learning_rate or 1e-5
    peaks_before = measure_peaks(args.precisions, args.threads)
    probe = build_arch_model(architecture, args.seed, args.layers)
    causal, shape, parameters = is_causal(probe), model_shape(probe), _parameters(probe)
    hf = probe.config
    del probe
    tokenizer = build_arch_tokenizer(data, hf.vocab_size, causal)
    examples = load_split(str(data), "train", shuffle=True, seed=args.seed, limit=args.batch_size * (args.steps + 1))
    features, truncation = tokenize_examples(
        examples[args.batch_size :], tokenizer, TEMPLATES["lab"], LAB_LENGTH, LAB_LENGTH, causal=causal
    )

    runs = {}
    for precision in args.precisions:
        for batching in args.batchings:
            name = f"{batching}_{precision}"
            model = build_arch_model(architecture, args.seed, args.layers)
            warmup, batches = arch_batches(batching, examples, tokenizer, model, args.batch_size, args.seed)
            seconds, losses, optimizer_line = timed_training(
                model, warmup, batches, precision == "bfloat16", learning_rate
            )
            runs[name] = (precision, batches, seconds, losses)
            del model, warmup
            gc.collect()
            print(f"{name}: {sum(seconds) / len(seconds):.2f} s/step ({len(seconds)} timed steps)", flush=True)
    peaks_after = measure_peaks(args.precisions, args.threads)
    peaks = {precision: max(peaks_before[precision], peaks_after[precision]) for precision in args.precisions}

    arms = {}
    for name, (precision, batches, seconds, losses) in runs.items():
        work = batches_work(shape, batches, causal, tokenizer.pad_token_id)
        arms[name] = arch_arm(seconds, work, batches, losses, peaks[precision])
    real_tokens = {arm["real_tokens"] for arm in arms.values()}
    assert len(real_tokens) == 1, real_tokens  # every arm trains on the same real tokens

    return {
        "benchmark": "train_throughput",
        "command": "python benchmarks/train_throughput.py " + " ".join(sys.argv[1:]),
        "machine": machine_info(torch_threads=args.threads, device="cpu"),
        "setup": {
            "architecture": args.arch
            + (f" (bundled config {architecture}: the same architecture)" if architecture != args.arch else ""),
            "model": f"random init (seed {args.seed}, sumlab.models.random_init.build_random_model, offline), "
            f"{parameters} parameters, float32 weights; a fresh model in every arm"
            + (
                f"; REDUCED to {args.layers} layers per stack (smoke run, not a benchmark figure)"
                if args.layers
                else ""
            ),
            "matmul_parameters": {"encoder": shape.encoder_parameters, "decoder": shape.decoder_parameters},
            "tokenizer": f"byte-level BPE trained on DialogSum train text, vocab {len(tokenizer)} (asked "
            f"{hf.vocab_size}, the architecture's; the real tokenizer is not available offline). The model keeps "
            f"its {hf.vocab_size}-token embedding and output head",
            "examples": "DialogSum train, shuffled (seed {}): {} for the warm-up step, {} timed".format(
                args.seed, args.batch_size, args.batch_size * args.steps
            ),
            "mean_tokens_timed": {
                "source" if not causal else "prompt_and_summary": round(
                    statistics.mean(len(f["input_ids"]) for f in features), 1
                ),
                "summary": round(
                    statistics.mean(sum(label != LABEL_PAD for label in f["labels"]) for f in features), 1
                ),
            },
            "truncated_at_512": {"sources": truncation.sources, "summaries": truncation.targets},
            "batch_size": args.batch_size,
            "timed_steps": args.steps,
            "warmup_steps": 1,
            "optimizer": optimizer_line,
            "torch_threads": args.threads,
            "arms": {
                "lab": "sources and labels padded to 512, pad ids left in the labels"
                + (" (decoder-only: prompt + summary padded to 1024)" if causal else "")
                + ", random order",
                "sumlab": "tokenize_examples + dynamic_padding_collator (-100 label padding), length-grouped order",
                "float32": "float32 throughout",
                "bfloat16": 'forward under torch.autocast("cpu", dtype=torch.bfloat16); float32 weights and AdamW',
            },
            "flops": "benchmarks/flops.py: training FLOPs = 3x forward = 6 x matmul parameters x tokens "
            "(encoder x source, decoder x target for T5) + attention (PaLM's MFU); model FLOPs count real "
            "tokens, padded FLOPs every position processed",
        },
        "matmul_peak_gflop_per_second": {
            precision: {
                "before": round(peaks_before[precision] / 1e9, 1),
                "after": round(peaks_after[precision] / 1e9, 1),
                "used": round(peaks[precision] / 1e9, 1),
            }
            for precision in args.precisions
        },
        "target": "issue #14: bf16 autocast at least 2x float32 on a bf16-capable CPU (flan-t5-base architecture)",
        "arms": arms,
        "ratios": arch_ratios(arms, args.batchings, args.precisions),
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "note": "figures vary a lot between machines and with load: compare only within one run",
    }


def arch_ratios(arms: dict, batchings: list[str], precisions: list[str]) -> dict:
    """examples/s ratios: sumlab over lab in each precision, bf16 over float32 in each batching, and overall."""

    def speed(batching: str, precision: str) -> float | None:
        arm = arms.get(f"{batching}_{precision}")
        return arm["examples_per_second"] if arm else None

    def ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 3) if a and b else None

    return {
        "sumlab_vs_lab": {p: ratio(speed("sumlab", p), speed("lab", p)) for p in precisions},
        "bf16_vs_fp32": {b: ratio(speed(b, "bfloat16"), speed(b, "float32")) for b in batchings},
        "sumlab_bf16_vs_lab_fp32": ratio(speed("sumlab", "bfloat16"), speed("lab", "float32")),
    }


def main() -> None:
    args = parse_args()
    results = Path(__file__).resolve().parent / "results"
    if args.arch:
        args.batch_size = args.batch_size or 4
        args.threads = args.threads or 2
        args.out = args.out or str(results / f"train_throughput_{args.arch.split('/')[-1]}.json")
        torch.set_num_threads(args.threads)
        report = run_arch(args)
        write_json_atomic(args.out, report)
        print(json.dumps(report["ratios"], indent=2))
        print(f"wrote {args.out}")
        return
    args.batch_size = args.batch_size or 8
    args.threads = args.threads or 1
    args.learning_rate = args.learning_rate or 1e-3
    args.out = args.out or str(results / "train_throughput.json")
    torch.set_num_threads(args.threads)
    data = Path(args.data)
    models = {name: (lambda name=name: build_pretrained(name)) for name in args.pretrained}
    models.update(
        {
            f"vocab_{size}": (lambda size=size: build_tiny(data, size, args.d_model, args.seed))
            for size in args.vocab_sizes
        }
    )
    settings = {label: run_setting(args, data, label, *build()) for label, build in models.items()}
    report = {
        "benchmark": "train_throughput",
        "command": "python benchmarks/train_throughput.py " + " ".join(sys.argv[1:]),
        "machine": machine_info(torch_threads=args.threads, device="cpu"),
        "setup": {
            "model": "the same model, from the same initial weights, in every arm of a setting; "
            "each setting's model and tokenizer are in settings.<name>.model / .tokenizer",
            "examples": args.examples,
            "batch_size": args.batch_size,
            "optimizer_steps": args.epochs * args.examples // args.batch_size,
            "timed_steps": args.epochs * args.examples // args.batch_size - 1,
            "optimizer": f"AdamW lr {args.learning_rate}",
            "truncation": f"{LAB_LENGTH} source and {LAB_LENGTH} label tokens in every arm (the same real tokens)",
            "repeats": args.repeats,
            "loop": "plain torch loop, batches collated before timing, first step untimed (warm-up), median of repeats",
            "arms": {
                "lab": "lab_features: sources and labels padded to 512, pad ids left in the labels, random order",
                "sumlab": "tokenize_examples + dynamic_padding_collator (-100 label padding), the same random order",
                "sumlab_grouped": "as sumlab, in transformers' length-grouped order (train.group_by_length=true)",
            },
        },
        "target": "issue #3: sumlab's batching at least 4x the lab's examples/s with the tiny model "
        "(sumlab-tiny-t5) on CPU",
        "settings": settings,
        "loss_semantics": (
            "The lab's labels keep pad id 0, so its loss is the mean over all 512 label positions, most of them "
            "padding that the model learns to predict; sumlab's -100 padding averages over real summary tokens "
            "only. The arms' training losses are therefore not comparable; held_out_masked_loss_after scores "
            "every trained model the same way (64 validation rows, real tokens only)."
        ),
    }
    write_json_atomic(args.out, report)
    print(json.dumps({name: setting["speedup_over_lab"] for name, setting in settings.items()}, indent=2))
    print(f"wrote {args.out}")


def _lab_collate(features: list[dict]) -> dict:
    """The lab's batches: already padded to 512, so just stacked (transformers' default collator)."""
    return default_data_collator(features)


if __name__ == "__main__":
    main()
