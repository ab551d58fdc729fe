"""The training loss: a token mean over the step, with a causal model's head applied only where it is scored.

A causal model's prompt takes most of each sequence (DialogSum: about 191 prompt tokens against 33 summary tokens),
and only the summary is scored. Its full-vocabulary head at every position, the prompt included, would compute
logits that are thrown away, and they are the largest tensor of a training step (batch x length x vocabulary:
4 x 320 x 151,936 floats is 0.8 GB for Qwen2.5, and again for their gradient and the softmax). So while the
Trainer computes the loss, a hook hands the head only the hidden states that predict a labelled token.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn
from transformers import Seq2SeqTrainer

from sumlab.text.features import LABEL_PAD


def token_mean_loss(outputs, labels, num_items_in_batch=None, *, causal: bool = False) -> torch.Tensor:
    """Cross-entropy summed over a batch's target tokens and divided by the target tokens of the whole step.

    The Trainer counts the tokens of the whole optimizer step (every accumulation micro-batch on every
    process) and then multiplies the loss by the number of processes, undoing DDP's gradient averaging. So
    the gradient is that of the mean over every token of the step, whether it is 1 process x 8 examples,
    1 x 4 x 2 accumulation steps or 2 processes x 4. T5's own loss, a per-batch mean, ignores that count
    while the Trainer still applies the rest: with 2 accumulation steps or 2 processes it doubled the loss
    and the gradients. Without a count (evaluation) it is the plain token mean, as T5's.

    A causal model's logits at position t predict token t + 1, so its labels are shifted by one first. Its
    logits come either as (labelled tokens, vocabulary), when the head ran only at the labelled positions
    (``head_at_labelled_positions``), in the order of the labels, or whole, (batch, positions, vocabulary); whole
    logits longer than the labels start with PEFT prompt tuning's virtual tokens, which carry no label.
    """
    logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
    labels = labels.to(logits.device)
    if causal:
        labels = labels[:, 1:]
        if logits.dim() == 2:
            labels = labels[labels.ne(LABEL_PAD)]
        else:
            logits = logits[:, -labels.size(1) - 1 : -1]
    total = torch.nn.functional.cross_entropy(
        logits.float().reshape(-1, logits.size(-1)), labels.reshape(-1), ignore_index=LABEL_PAD, reduction="sum"
    )
    if num_items_in_batch is None:
        num_items_in_batch = labels.ne(LABEL_PAD).sum().clamp(min=1)
    return total / num_items_in_batch


def scored_positions(labels: torch.Tensor) -> torch.Tensor:
    """A causal model's positions whose prediction is scored: those followed by a labelled token (batch, length)."""
    scored = torch.zeros_like(labels, dtype=torch.bool)
    scored[:, :-1] = labels[:, 1:].ne(LABEL_PAD)
    return scored


def output_head(model) -> nn.Module | None:
    """The module that turns a (plain or PEFT-wrapped) model's hidden states into logits, if it has one."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.get_output_embeddings()


@contextmanager
def head_at_labelled_positions(head: nn.Module | None, labels: torch.Tensor | None) -> Iterator[None]:
    """While inside, ``head`` sees only the hidden states at the positions that predict a labelled token.

    The model's forward pass runs as always (under the Trainer's autocast, DDP and FSDP wrappers), and its logits
    come out as (labelled tokens, vocabulary) in the order of the labels. Hidden states with more positions than
    the labels have PEFT prompt tuning's virtual tokens in front, which are skipped. Where the head is called with
    anything else, the hook leaves it alone and the loss gets whole logits: today's path, just as exact.
    """
    if head is None or labels is None:
        yield
        return
    scored = scored_positions(labels)

    def gather(module: nn.Module, args: tuple) -> tuple | None:
        hidden = args[0] if args else None
        batch, length = scored.shape
        if not isinstance(hidden, torch.Tensor) or hidden.dim() != 3 or hidden.shape[0] != batch:
            return None
        if hidden.shape[1] < length:
            return None
        return (hidden[:, hidden.shape[1] - length :][scored.to(hidden.device)], *args[1:])

    handle = head.register_forward_pre_hook(gather)
    try:
        yield
    finally:
        handle.remove()


class TokenMeanLossTrainer(Seq2SeqTrainer):
    """A Seq2SeqTrainer whose loss is ``token_mean_loss``; a causal model's head runs at the labelled positions only.

    Gathering inside the head keeps the forward pass the Trainer's own: ``compute_loss_func`` alone could not, as the
    Trainer pops the labels before the forward pass. Evaluation takes the same path: a causal model is evaluated
    on its loss alone (``train.eval_rouge`` is refused for it), so its logits are never kept as predictions.
    """

    def __init__(self, *args, causal: bool = False, **kwargs):
        super().__init__(*args, compute_loss_func=functools.partial(token_mean_loss, causal=causal), **kwargs)
        self.causal_head = output_head(self.model) if causal else None

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """The Trainer's ``compute_loss``, with a causal model's head limited to the labelled positions."""
        with head_at_labelled_positions(self.causal_head, inputs.get("labels")):
            return super().compute_loss(
                model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
            )
