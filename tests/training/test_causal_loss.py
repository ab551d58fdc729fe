"""The training loss: a causal model's head runs only at the labelled positions, and the loss and its gradients
are those of the full-logits loss (plain, LoRA, prefix and prompt tuning); seq2seq models keep their path.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import Seq2SeqTrainingArguments

from sumlab.config import ModelConfig, PeftSettings
from sumlab.data.loading import DialogueExample
from sumlab.models.loading import load_model, load_tokenizer
from sumlab.models.peft_methods import add_peft
from sumlab.text.features import LABEL_PAD, dynamic_padding_collator, tokenize_examples
from sumlab.text.prompts import TEMPLATES
from sumlab.training.loss import (
    TokenMeanLossTrainer,
    head_at_labelled_positions,
    output_head,
    scored_positions,
    token_mean_loss,
)

PEFT = {"r": 4, "alpha": 8, "dropout": 0.0, "num_virtual_tokens": 5}


def load(model_dir: Path, method: str = "full"):
    config = ModelConfig(name_or_path=str(model_dir), dtype="float32")
    torch.manual_seed(0)
    model = add_peft(load_model(config, device=torch.device("cpu")), PeftSettings(method=method, **PEFT))
    if method == "lora":
        # PEFT starts LoRA's B at zero, so the adapters would get no gradient below their B: give them some
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                torch.nn.init.normal_(parameter, std=0.1)
    return model, load_tokenizer(config)


@pytest.fixture(scope="module")
def examples(dialogsum_dir) -> list[DialogueExample]:
    """Four real DialogSum rows of different lengths, so that the labelled positions differ from row to row."""
    with (dialogsum_dir / "validation.jsonl").open(encoding="utf-8") as handle:
        rows = [json.loads(next(handle)) for _ in range(4)]
    return [DialogueExample(id=str(i), dialogue=row["dialogue"], summary=row["summary"]) for i, row in enumerate(rows)]


def causal_batch(model, tokenizer, examples) -> dict:
    features, _ = tokenize_examples(examples, tokenizer, TEMPLATES["lab"], 160, 40, causal=True)
    return dict(dynamic_padding_collator(tokenizer, model)(features))


def make_trainer(model, tmp_path, causal: bool) -> TokenMeanLossTrainer:
    args = Seq2SeqTrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True)
    return TokenMeanLossTrainer(model=model, args=args, causal=causal)


def full_logits_loss(model, batch: dict, num_items_in_batch=None) -> torch.Tensor:
    """The loss before this change: the head at every position, then the shifted full-logits cross-entropy."""
    inputs = {key: value for key, value in batch.items() if key != "labels"}
    return token_mean_loss(model(**inputs), batch["labels"], num_items_in_batch, causal=True)


def loss_and_gradients(model, compute) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad()
    loss = compute()
    loss.backward()
    gradients = {name: p.grad.clone() for name, p in model.named_parameters() if p.requires_grad}
    return loss.detach(), gradients


def test_scored_positions_are_those_followed_by_a_label():
    labels = torch.tensor([[LABEL_PAD, LABEL_PAD, 5, 6, LABEL_PAD], [LABEL_PAD, 7, 8, 9, 1]])
    assert scored_positions(labels).tolist() == [
        [False, True, True, False, False],
        [True, True, True, True, False],
    ]


@pytest.mark.parametrize(
    ("architecture", "method"),
    [
        ("llama", "full"),
        ("llama", "lora"),
        ("llama", "prefix"),
        ("llama", "prompt"),
        ("gpt2", "full"),
        ("gpt2", "lora"),
    ],
)
def test_labelled_head_gives_the_full_logits_loss_and_gradients(
    tiny_llama_dir, tiny_gpt2_dir, examples, tmp_path, architecture, method
):
    model, tokenizer = load({"llama": tiny_llama_dir, "gpt2": tiny_gpt2_dir}[architecture], method)
    batch = causal_batch(model, tokenizer, examples)
    trainer = make_trainer(model, tmp_path, causal=True)
    counted = 97  # tokens of a whole accumulated step, as the Trainer passes them
    head_rows = []
    hook = output_head(model).register_forward_hook(lambda module, args, output: head_rows.append(output.shape[0]))
    new_loss, new_grads = loss_and_gradients(model, lambda: trainer.compute_loss(model, dict(batch), False, counted))
    hook.remove()
    old_loss, old_grads = loss_and_gradients(model, lambda: full_logits_loss(model, batch, counted))

    labelled = int(batch["labels"][:, 1:].ne(LABEL_PAD).sum())
    assert head_rows == [labelled]  # the head ran once, on the labelled tokens alone
    assert labelled < batch["labels"].numel() / 3  # most of each sequence is prompt
    torch.testing.assert_close(new_loss, old_loss, rtol=1e-5, atol=1e-6)
    assert new_grads.keys() == old_grads.keys() and new_grads
    for name, gradient in new_grads.items():
        torch.testing.assert_close(gradient, old_grads[name], rtol=1e-4, atol=1e-6, msg=name)
    assert any(gradient.abs().sum() > 0 for gradient in new_grads.values())


@pytest.mark.parametrize("method", ["full", "prompt"])
def test_the_token_mean_is_the_models_own_mean_loss(tiny_llama_dir, examples, tmp_path, method):
    """Without a token count (evaluation) the loss is the models' own label loss; PEFT's prompt tuning included,
    whose virtual tokens come first and carry no label."""
    model, tokenizer = load(tiny_llama_dir, method)
    batch = causal_batch(model, tokenizer, examples)
    with torch.no_grad():
        ours = make_trainer(model, tmp_path, causal=True).compute_loss(model, dict(batch))
        own = model(**batch).loss
    torch.testing.assert_close(ours, own, rtol=1e-5, atol=1e-6)


def test_a_head_called_otherwise_keeps_the_full_path(tiny_llama_dir, examples):
    model, tokenizer = load(tiny_llama_dir)
    batch = causal_batch(model, tokenizer, examples)
    hidden = torch.randn(2, 3, model.config.hidden_size)  # another batch: not the labels' shape
    with head_at_labelled_positions(output_head(model), batch["labels"]):
        assert output_head(model)(hidden).shape == (2, 3, model.config.vocab_size)
    rows = int(batch["labels"][:, 1:].ne(LABEL_PAD).sum())
    with head_at_labelled_positions(output_head(model), batch["labels"]):
        inside = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    outside = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert inside.shape == (rows, model.config.vocab_size)
    assert outside.shape == (*batch["input_ids"].shape, model.config.vocab_size)  # the hook is gone


def test_seq2seq_models_keep_the_whole_head(tiny_model, examples, tmp_path):
    model, tokenizer = tiny_model
    features, _ = tokenize_examples(examples, tokenizer, TEMPLATES["lab"], 256, 64)
    batch = dict(dynamic_padding_collator(tokenizer, model)(features))
    trainer = make_trainer(model, tmp_path, causal=False)
    assert trainer.causal_head is None
    with torch.no_grad():
        loss, outputs = trainer.compute_loss(model, dict(batch), return_outputs=True)
        own = model(**batch).loss
    assert outputs.logits.shape == (*batch["labels"].shape, model.config.vocab_size)
    torch.testing.assert_close(loss, own, rtol=1e-5, atol=1e-6)


def test_activation_checkpointing_keeps_the_labelled_head_loss_and_gradients(tiny_llama_dir, examples, tmp_path):
    """train.gradient_checkpointing (the Qwen LoRA preset's) recomputes each layer in backward, same results."""
    model, tokenizer = load(tiny_llama_dir, "lora")
    model.train()
    batch = causal_batch(model, tokenizer, examples)
    trainer = make_trainer(model, tmp_path, causal=True)
    layer = model.get_base_model().model.layers[0]
    calls = []
    hook = layer.mlp.register_forward_pre_hook(lambda *_: calls.append(1))
    plain_loss, plain_grads = loss_and_gradients(model, lambda: trainer.compute_loss(model, dict(batch), False, 97))
    plain_calls = len(calls)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    loss, gradients = loss_and_gradients(model, lambda: trainer.compute_loss(model, dict(batch), False, 97))
    hook.remove()

    assert (plain_calls, len(calls) - plain_calls) == (1, 2)  # checkpointed: run again in the backward pass
    torch.testing.assert_close(loss, plain_loss, rtol=1e-6, atol=1e-7)
    assert gradients.keys() == plain_grads.keys() and gradients
    for name, gradient in gradients.items():
        torch.testing.assert_close(gradient, plain_grads[name], rtol=1e-4, atol=1e-6, msg=name)
