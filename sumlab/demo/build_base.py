"""Build the demo's tiny pretrained base model, ``sumlab-tiny-t5``, reproducibly.

    python -m sumlab.demo.build_base [--out sumlab/demo/sumlab-tiny-t5] [--steps 800] [--seed 0]

1. Generate the demo corpus and keep the *dialogues* of its train split (never a summary).
2. Train a byte-level BPE tokenizer on them, with T5's special tokens and sentinel tokens.
3. Pretrain a small T5 v1.1 from random init on two self-supervised objectives, half the batches
   each: T5's span corruption (about 15% of the tokens, in spans of about 3, are replaced by
   sentinels and the model learns to fill them in), and prefix language modelling (the model
   reads the start of a dialogue and writes how it goes on, which teaches its decoder to write).

Like FLAN-T5 before instruction tuning on summaries, the result knows the language of the
dialogues but has never seen a summary, so it summarizes poorly zero-shot.
"""

from __future__ import annotations

import argparse
import itertools
import random
import time
from pathlib import Path

import torch

from sumlab.models.tiny import build_tiny_t5, train_tokenizer
from sumlab.runtime.fileio import write_json_atomic

DEFAULT_OUT = Path(__file__).resolve().parent / "sumlab-tiny-t5"
SENTINELS = [f"<extra_id_{i}>" for i in range(32)]
ARCHITECTURE = {"d_model": 128, "d_ff": 512, "num_layers": 2, "num_heads": 4}
VOCAB_SIZE = 2048
MAX_TOKENS = 160
NOISE_DENSITY = 0.15
MEAN_SPAN = 3.0
MAX_CONTINUATION = 64


def corrupt_spans(
    ids: list[int], sentinel_ids: list[int], eos_id: int, rng: random.Random
) -> tuple[list[int], list[int]]:
    """T5 span corruption of one sequence: (input with sentinels, target of sentinel + dropped span ...)."""
    length = len(ids)
    n_noise = max(1, round(length * NOISE_DENSITY))
    n_spans = max(1, min(len(sentinel_ids) - 1, round(n_noise / MEAN_SPAN)))
    starts = sorted(rng.sample(range(length), n_spans))
    noise = [False] * length
    for start in starts:
        for position in range(start, min(length, start + max(1, round(rng.expovariate(1 / MEAN_SPAN))))):
            noise[position] = True
    source, target, sentinel = [], [], 0
    for position, token in enumerate(ids):
        opens_span = noise[position] and (position == 0 or not noise[position - 1])
        if opens_span:
            source.append(sentinel_ids[sentinel])
            target.append(sentinel_ids[sentinel])
            sentinel += 1
        (target if noise[position] else source).append(token)
    return source + [eos_id], target + [sentinel_ids[sentinel], eos_id]


def continue_text(ids: list[int], eos_id: int, rng: random.Random) -> tuple[list[int], list[int]]:
    """Prefix language modelling on one sequence: (its first 30-70%, the next tokens up to MAX_CONTINUATION)."""
    cut = rng.randint(int(len(ids) * 0.3), int(len(ids) * 0.7))
    return ids[:cut] + [eos_id], ids[cut : cut + MAX_CONTINUATION] + [eos_id]


def pretraining_batches(token_lists: list[list[int]], tokenizer, batch_size: int, rng: random.Random):
    """Endless batches, alternating span corruption and prefix LM, padded per batch (labels with -100)."""
    sentinel_ids = tokenizer.convert_tokens_to_ids(SENTINELS)
    eos_id = tokenizer.eos_token_id
    for step in itertools.count():
        chosen = rng.sample(token_lists, batch_size)
        if step % 2 == 0:
            pairs = [corrupt_spans(ids, sentinel_ids, eos_id, rng) for ids in chosen]
        else:
            pairs = [continue_text(ids, eos_id, rng) for ids in chosen]
        yield _pad([s for s, _ in pairs], tokenizer.pad_token_id), _pad([t for _, t in pairs], -100)


def _pad(rows: list[list[int]], value: int) -> torch.Tensor:
    width = max(len(row) for row in rows)
    return torch.tensor([row + [value] * (width - len(row)) for row in rows])


def pretrain(
    model, tokenizer, dialogues: list[str], *, steps: int, batch_size: int, lr: float, seed: int
) -> list[dict]:
    """Span-corruption pretraining with AdamW and a linear decay; returns the loss log."""
    rng = random.Random(seed)
    token_lists = [
        ids[:MAX_TOKENS] for ids in tokenizer(dialogues, add_special_tokens=False)["input_ids"] if len(ids) > 8
    ]
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / 100) * (1 - step / steps)
    )
    model.train()
    history = []
    batches = pretraining_batches(token_lists, tokenizer, batch_size, rng)
    for step in range(1, steps + 1):
        inputs, labels = next(batches)
        loss = model(input_ids=inputs, attention_mask=(inputs != tokenizer.pad_token_id).long(), labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        if step % 50 == 0 or step == steps:
            history.append({"step": step, "loss": round(loss.item(), 4)})
            print(f"step {step}/{steps} loss {loss.item():.3f}", flush=True)
    model.eval()
    return history


def build_base(out: Path, *, steps: int, batch_size: int, lr: float, seed: int) -> Path:
    """Generate the corpus, train the tokenizer, pretrain the model and save them to ``out``."""
    from sumlab.demo.corpus import generate_corpus
    from sumlab.models.adapters import save_model_dir

    started = time.perf_counter()
    torch.manual_seed(seed)
    dialogues = [row["dialogue"] for row in generate_corpus(seed=seed)["train"]]
    tokenizer = train_tokenizer(dialogues, vocab_size=VOCAB_SIZE)
    tokenizer.add_special_tokens({"additional_special_tokens": SENTINELS})
    model = build_tiny_t5(len(tokenizer), seed=seed, **ARCHITECTURE)
    history = pretrain(model, tokenizer, dialogues, steps=steps, batch_size=batch_size, lr=lr, seed=seed)
    model.config.dropout_rate = 0.1  # pretrained without dropout for speed; fine-tuning uses T5's usual 0.1
    save_model_dir(model, tokenizer, out)
    write_json_atomic(
        out / "build_info.json",
        {
            "command": f"python -m sumlab.demo.build_base --steps {steps} --batch-size {batch_size} --lr {lr} --seed {seed}",
            "objective": "T5 span corruption (15% noise, mean span 3) and prefix LM, on demo-corpus dialogues only",
            "dialogues": len(dialogues),
            "vocab_size": len(tokenizer),
            "architecture": ARCHITECTURE,
            "parameters": sum(p.numel() for p in model.parameters()),
            "seconds": round(time.perf_counter() - started, 1),
            "loss": history,
        },
    )
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    out = build_base(args.out, steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed)
    print(f"saved {out}")


if __name__ == "__main__":
    main()
