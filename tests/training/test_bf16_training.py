"""Training under bf16 autocast on a CPU: it runs, keeps float32 weights, and follows the float32 loss curve."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from sumlab.training import trainer as training
from sumlab.training.run_dir import read_log

STEPS = 12
# bf16 keeps 8 significant bits: one rounding is at most 2^-8 = 0.4% of a value. Autocast rounds the matmul inputs
# only; the weights, the optimizer, the softmax and the loss stay float32, so the losses differ by a few such
# roundings, not a drift (0.07% at most over 24 steps of this model when measured). 1% leaves room for that
# while a run that ignored bf16 (equal losses) or diverged (a difference of whole percents) fails.
RELATIVE_TOLERANCE = 1e-2


@pytest.fixture(scope="module")
def loss_curves(tiny_train_config, tiny_model_dir, tmp_path_factory) -> dict[str, list[float]]:
    """The per-step training losses of the same 12 steps of full fine-tuning, in float32 and in bfloat16."""
    curves = {}
    for precision in ("float32", "bfloat16"):
        train = {"precision": precision, "max_steps": STEPS, "logging_steps": 1, "learning_rate": 3e-3}
        config = tiny_train_config(
            tiny_model_dir, (96, None), {"name": precision, "train": {**train, "tensorboard": False}}
        )
        result = training.train(config, out_dir=tmp_path_factory.mktemp(precision) / "run")
        curves[precision] = [record["loss"] for record in read_log(result.run_dir / "log.jsonl") if "loss" in record]
        weights = load_file(result.model_dir / "model.safetensors")
        assert {tensor.dtype for tensor in weights.values()} == {torch.float32}  # autocast: the weights stay fp32
    return curves


def test_bf16_training_follows_the_float32_loss_curve(loss_curves):
    float32, bfloat16 = loss_curves["float32"], loss_curves["bfloat16"]
    assert len(float32) == len(bfloat16) == STEPS
    assert bfloat16 != float32  # the bf16 run did compute in bf16
    for step, (exact, half) in enumerate(zip(float32, bfloat16), start=1):
        assert half == pytest.approx(exact, rel=RELATIVE_TOLERANCE), f"step {step}"
    assert bfloat16[-1] < bfloat16[0] - 1.0  # and it learns
