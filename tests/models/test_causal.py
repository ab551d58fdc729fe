"""Decoder-only models (Llama, GPT-2 style): family detection, the completion-only loss mask, left-padded
generation, training, merging and serving, on tiny random-init models built offline.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from sumlab.config import GenerationSettings, ModelConfig, PeftSettings, TrainConfig
from sumlab.data.loading import DialogueExample
from sumlab.errors import SumlabError
from sumlab.generation.batching import generate_from_ids, summarize
from sumlab.models.adapters import attach_adapter, merge_adapter
from sumlab.models.family import model_family
from sumlab.models.loading import load_model, load_tokenizer
from sumlab.models.peft_methods import add_peft, build_peft_config
from sumlab.text.encoding import causal_prompt_text, prompt_ids, truncate_middle
from sumlab.text.features import LABEL_PAD, dynamic_padding_collator, tokenize_examples
from sumlab.text.prompts import TEMPLATES
from sumlab.training import trainer as training
from sumlab.training.run_dir import read_log

MAX_NEW = 10


@pytest.fixture(params=["llama", "gpt2"])
def causal_dir(request, tiny_llama_dir, tiny_gpt2_dir) -> Path:
    return {"llama": tiny_llama_dir, "gpt2": tiny_gpt2_dir}[request.param]


def load(model_dir: Path):
    config = ModelConfig(name_or_path=str(model_dir), dtype="float32")
    return load_model(config), load_tokenizer(config)


@pytest.fixture(scope="module")
def dialogues(dialogsum_dir) -> list[str]:
    """Eight real dialogues of quite different lengths, so that left padding matters."""
    with (dialogsum_dir / "validation.jsonl").open(encoding="utf-8") as handle:
        rows = [json.loads(next(handle)) for _ in range(40)]
    by_length = sorted((row["dialogue"] for row in rows), key=len)
    return [by_length[i] for i in (0, 39, 5, 30, 10, 20, 15, 25)]


# ---------------------------------------------------------------- the family


def test_family_is_read_from_the_config_and_can_be_overridden(tiny_llama_dir, tiny_gpt2_dir, tiny_model_dir):
    assert model_family(ModelConfig(name_or_path=str(tiny_llama_dir))) == "causal"
    assert model_family(ModelConfig(name_or_path=str(tiny_gpt2_dir))) == "causal"
    assert model_family(ModelConfig(name_or_path=str(tiny_model_dir))) == "seq2seq"
    assert model_family(ModelConfig(name_or_path="google/flan-t5-base", random_init=True)) == "seq2seq"
    assert model_family(ModelConfig(name_or_path=str(tiny_model_dir), family="causal")) == "causal"


def test_loaded_models_are_causal_and_tokenizers_get_a_pad_token(tiny_gpt2_dir, tmp_path):
    model, tokenizer = load(tiny_gpt2_dir)
    assert not model.config.is_encoder_decoder
    # a GPT-2 style tokenizer saved without a pad token pads with its EOS
    tokenizer.pad_token = None
    tokenizer.save_pretrained(tmp_path)
    assert load_tokenizer(ModelConfig(name_or_path=str(tmp_path))).pad_token == "</s>"


def test_forcing_the_wrong_family_is_a_clear_error(tiny_model_dir):
    with pytest.raises(SumlabError, match="could not load the model"):
        load_model(ModelConfig(name_or_path=str(tiny_model_dir), family="causal"))


# ---------------------------------------------------------------- the loss mask, by hand


class WordTokenizer:
    """One id per known word; <s> first when special tokens are added, as Llama's tokenizer does."""

    vocab = {
        "<pad>": 0,
        "</s>": 1,
        "<s>": 3,
        "Summarize:": 4,
        "A": 5,
        "B": 6,
        "C": 7,
        "Summary:": 8,
        "they": 9,
        "meet": 10,
        "at": 11,
        "noon.": 12,
    }
    eos_token_id, pad_token_id, chat_template = 1, 0, None

    def __call__(self, texts, add_special_tokens=True):
        prefix = [3] if add_special_tokens else []
        return {"input_ids": [prefix + [self.vocab[word] for word in text.split()] for text in texts]}


def test_the_completion_only_mask_is_exactly_right():
    example = DialogueExample(id="x", dialogue="A B C", summary="they meet at noon.")
    features, counts = tokenize_examples(
        [example], WordTokenizer(), "Summarize: {dialogue} Summary:", 100, 100, causal=True
    )
    # <s> Summarize: A B C Summary: | they meet at noon. </s>
    assert features[0]["input_ids"] == [3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 1]
    assert features[0]["labels"] == [LABEL_PAD] * 6 + [9, 10, 11, 12, 1]
    assert features[0]["attention_mask"] == [1] * 11
    assert (counts.sources, counts.targets) == (0, 0)


def test_long_prompts_lose_their_middle_and_long_summaries_keep_the_eos():
    example = DialogueExample(id="x", dialogue="A B C A B C", summary="they meet at noon.")
    features, counts = tokenize_examples(
        [example], WordTokenizer(), "Summarize: {dialogue} Summary:", 4, 3, causal=True
    )
    # prompt <s> Summarize: A B C A B C Summary: keeps 2 + 2 tokens; the summary keeps 2 words and </s>
    assert features[0]["input_ids"] == [3, 4, 7, 8, 9, 10, 1]
    assert features[0]["labels"] == [LABEL_PAD] * 4 + [9, 10, 1]
    assert (counts.sources, counts.targets) == (1, 1)
    assert truncate_middle([1, 2, 3, 4, 5], 3) == [1, 4, 5]


def test_a_chat_template_frames_the_prompt_and_is_masked_whole(causal_tokenizer):
    chat = copy.deepcopy(causal_tokenizer)  # the fixture is shared
    chat.chat_template = (
        "{% for m in messages %}<s>[user] {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}[assistant] {% endif %}"
    )
    text = causal_prompt_text(chat, TEMPLATES["lab"], "#Person1#: Hi.")
    assert text == "<s>[user] Summarize the following conversation.\n\n#Person1#: Hi.\n\nSummary: \n[assistant] "
    example = DialogueExample(id="x", dialogue="#Person1#: Hi.", summary="Person1 says hi.")
    features, _ = tokenize_examples([example], chat, TEMPLATES["lab"], 512, 64, causal=True)
    prompt = chat(text, add_special_tokens=False)["input_ids"]
    summary = chat("Person1 says hi.", add_special_tokens=False)["input_ids"]
    assert prompt.count(3) == 1  # one <s>, the template's: the tokenizer added no second one
    assert features[0]["input_ids"] == prompt + summary + [chat.eos_token_id]
    assert features[0]["labels"] == [LABEL_PAD] * len(prompt) + summary + [chat.eos_token_id]


def test_causal_batches_are_padded_on_the_right_with_masked_labels(tiny_llama_dir, dialogues):
    model, tokenizer = load(tiny_llama_dir)
    tokenizer.padding_side = "left"  # as for generation: training batches must still pad on the right
    examples = [DialogueExample(id=str(i), dialogue=d, summary="A short summary.") for i, d in enumerate(dialogues[:3])]
    features, _ = tokenize_examples(examples, tokenizer, TEMPLATES["lab"], 512, 64, causal=True)
    batch = dynamic_padding_collator(tokenizer, model)(features)
    assert "decoder_input_ids" not in batch
    for row, feature in zip(range(3), features):
        length = len(feature["input_ids"])
        assert batch["input_ids"][row, :length].tolist() == feature["input_ids"]
        assert batch["labels"][row, :length].tolist() == feature["labels"]
        assert (batch["labels"][row, length:] == LABEL_PAD).all()
        assert (batch["attention_mask"][row, length:] == 0).all()


# ---------------------------------------------------------------- generation


def test_batched_left_padded_generation_equals_one_at_a_time(causal_dir, dialogues):
    model, tokenizer = load(causal_dir)
    settings = GenerationSettings(max_new_tokens=MAX_NEW, batch_size=4, max_source_length=256)
    batched = summarize(model, tokenizer, dialogues, settings)
    alone = [
        summarize(model, tokenizer, [dialogue], settings.model_copy(update={"batch_size": 1}))[0]
        for dialogue in dialogues
    ]
    assert batched == alone
    assert any(batched) and not any("Summarize the following" in summary for summary in batched)  # no prompt echoed
    prompts = prompt_ids(tokenizer, TEMPLATES["lab"], dialogues, 256, causal=True)
    assert all(len(ids) <= 256 for ids in prompts)


class EosHead(torch.nn.Module):
    """An output layer that always predicts ``eos``."""

    def __init__(self, vocab_size: int, eos: int):
        super().__init__()
        self.vocab_size, self.eos = vocab_size, eos

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(*hidden.shape[:-1], self.vocab_size)
        logits[..., self.eos] = 1.0
        return logits


def test_generation_stops_at_the_eos(tiny_llama_dir, dialogues):
    model, tokenizer = load(tiny_llama_dir)
    model.lm_head = EosHead(model.config.vocab_size, tokenizer.eos_token_id)
    ids = prompt_ids(tokenizer, TEMPLATES["lab"], dialogues[:2], 512, causal=True)
    texts, counts = generate_from_ids(model, tokenizer, ids, GenerationSettings(max_new_tokens=MAX_NEW))
    assert texts == ["", ""]
    assert counts == [1, 1]  # the EOS, then nothing: generation stopped instead of running to max_new_tokens


# ---------------------------------------------------------------- PEFT targets


def test_lora_targets_default_to_the_attention_projections(tiny_llama_dir, tiny_gpt2_dir, tiny_model_dir):
    for directory, expected in (
        (tiny_llama_dir, {"q_proj", "v_proj"}),
        (tiny_gpt2_dir, {"c_attn"}),
        (tiny_model_dir, {"q", "v"}),
    ):
        model, _ = load(directory)
        assert set(build_peft_config(PeftSettings(method="lora"), model).target_modules) == expected


def test_wrong_lora_targets_are_a_clear_error(tiny_llama_dir):
    model, _ = load(tiny_llama_dir)
    with pytest.raises(SumlabError, match=r"target modules \['q'\] are not in the model") as raised:
        add_peft(model, PeftSettings(method="lora", targets=["q", "v_proj"]))
    assert "q_proj" in raised.value.hint


# ---------------------------------------------------------------- training, merging


def causal_config(tiny_train_config, model_dir: Path, method: str, **train) -> TrainConfig:
    """Three epochs of ``method`` on 32 DialogSum rows, 16 to validate (``tiny_train_config``: conftest's)."""
    sections = {
        "name": f"causal-{method}",
        "peft": {"method": method, "r": 8, "alpha": 16, "dropout": 0.0},
        "train": {
            "max_source_length": 192,
            "max_target_length": 48,
            "per_device_train_batch_size": 8,
            "per_device_eval_batch_size": 16,
            "logging_steps": 2,
            "tensorboard": False,
            "num_train_epochs": 3,
            "learning_rate": 3e-3,
            **train,
        },
        "generation": {"max_new_tokens": MAX_NEW},
    }
    return tiny_train_config(model_dir, (32, 16), sections)


@pytest.mark.parametrize("method", ["full", "lora"])
def test_training_lowers_the_validation_loss(tiny_train_config, causal_dir, tmp_path, method):
    config = causal_config(tiny_train_config, causal_dir, method, learning_rate=3e-3 if method == "full" else 1e-2)
    before = training.train(
        config.model_copy(update={"train": config.train.model_copy(update={"max_steps": 1, "learning_rate": 1e-12})}),
        out_dir=tmp_path / "untrained",
    )
    result = training.train(config, out_dir=tmp_path / "run")
    assert result.metrics["eval_loss"] < before.metrics["eval_loss"] - 0.2
    losses = [record["loss"] for record in read_log(result.run_dir / "log.jsonl") if "loss" in record]
    assert losses[-1] < losses[0]


def test_evaluation_rouge_during_training_is_refused_for_causal_models(tiny_train_config, tiny_llama_dir, tmp_path):
    config = causal_config(tiny_train_config, tiny_llama_dir, "lora", eval_rouge=True)
    with pytest.raises(SumlabError, match="eval_rouge=true is for seq2seq models"):
        training.train(config, out_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def llama_adapter(tiny_train_config, tiny_llama_dir, tmp_path_factory) -> Path:
    config = causal_config(tiny_train_config, tiny_llama_dir, "lora", max_steps=4)
    return training.train(config, out_dir=tmp_path_factory.mktemp("llama-lora") / "run").model_dir


def test_merge_equals_unmerged(tiny_llama_dir, llama_adapter, dialogues, tmp_path):
    report = merge_adapter(llama_adapter, tmp_path / "merged", base=str(tiny_llama_dir))
    assert report["max_abs_logit_difference"] < 1e-4
    settings = GenerationSettings(max_new_tokens=MAX_NEW)
    base, tokenizer = load(tiny_llama_dir)
    unmerged = summarize(attach_adapter(base, llama_adapter), tokenizer, dialogues[:4], settings)
    merged, _ = load(tmp_path / "merged")
    assert summarize(merged, tokenizer, dialogues[:4], settings) == unmerged
    assert not any("lora" in key for key in merged.state_dict())


def test_serving_a_causal_adapter_alongside_its_base(tiny_llama_dir, llama_adapter, dialogues):
    from fastapi.testclient import TestClient

    from sumlab.serve.app import create_app
    from sumlab.serve.registry import NamedPath, load_registry
    from sumlab.serve.schemas import ServeLimits

    registry = load_registry(
        ModelConfig(name_or_path=str(tiny_llama_dir), dtype="float32"), [NamedPath("tuned", llama_adapter)]
    )
    settings = GenerationSettings(max_new_tokens=MAX_NEW)  # neither summarize nor the server cuts a prompt
    base, tokenizer = load(tiny_llama_dir)
    expected_base = summarize(base, tokenizer, dialogues[:2], settings)
    expected_tuned = summarize(
        attach_adapter(load(tiny_llama_dir)[0], llama_adapter), tokenizer, dialogues[:2], settings
    )
    with TestClient(create_app(registry)) as client:
        response = client.post(
            "/v1/compare",
            json={"dialogue": dialogues[0], "models": ["base", "tuned"], "generation": {"max_new_tokens": MAX_NEW}},
        )
        assert response.status_code == 200, response.text
        answers = {item["model"]: item["summary"] for item in response.json()["results"]}
        assert answers == {"base": expected_base[0], "tuned": expected_tuned[0]}
        response = client.post(
            "/v1/summarize",
            json={"dialogue": dialogues[1], "model": "tuned", "generation": {"max_new_tokens": MAX_NEW}},
        )
        assert response.json()["summary"] == expected_tuned[1]
        assert response.json()["tokens"]["input"] == len(
            prompt_ids(tokenizer, TEMPLATES["lab"], dialogues[1:2], None, True)[0]
        )
        # the model's 1024 positions hold the prompt and the summary: a longer prompt is refused, not cut
        long = "\n".join(dialogues)
        assert len(prompt_ids(tokenizer, TEMPLATES["lab"], [long], None, True)[0]) > 1024 - MAX_NEW
        assert len(long) <= ServeLimits().max_dialogue_chars
        response = client.post("/v1/summarize", json={"dialogue": long, "generation": {"max_new_tokens": MAX_NEW}})
        assert response.status_code == 422, response.text
        error = response.json()
        assert (
            error["limit"] == 1024 - MAX_NEW
            and "its 1024 positions less generation.max_new_tokens=10" in error["error"]
        )
        assert client.get("/health").json()["status"] == "ok"


# ---------------------------------------------------------------- a mixed experiment


def test_a_mixed_t5_and_llama_experiment_runs_end_to_end(
    tiny_model_dir, tiny_llama_dir, tiny_experiment_config, tmp_path
):
    from sumlab.config import ModelEntry
    from sumlab.experiment.run import run_experiment

    llama = ModelConfig(name_or_path=str(tiny_llama_dir))
    lora = PeftSettings(method="lora", r=8, alpha=16, dropout=0.0)
    entries = [
        ModelEntry(name="t5", kind="zero_shot", label="T5 zero-shot"),
        ModelEntry(name="t5-lora", peft=lora, label="T5 LoRA"),
        ModelEntry(name="llama", kind="zero_shot", label="Llama zero-shot", model=llama),
        ModelEntry(name="llama-lora", peft=lora, label="Llama LoRA", model=llama),
    ]
    config = tiny_experiment_config(
        "mixed", entries, rows=(32, None, 6), train={"max_steps": 3, "learning_rate": 1e-2}, max_new_tokens=MAX_NEW
    )
    root, results = run_experiment(config, out_dir=tmp_path / "mixed")
    models = results.models
    assert list(models) == ["t5", "t5-lora", "llama", "llama-lora"]
    assert {models[name].base_model for name in ("t5", "t5-lora")} == {str(tiny_model_dir)}
    assert {models[name].base_model for name in ("llama", "llama-lora")} == {str(tiny_llama_dir)}
    adapter = json.loads((root / "runs" / "llama-lora" / "model" / "adapter_config.json").read_text())
    assert adapter["task_type"] == "CAUSAL_LM" and set(adapter["target_modules"]) == {"q_proj", "v_proj"}
    assert models["llama-lora"].cost.percent < 100 and models["t5-lora"].cost.percent < 100
    assert str(tiny_llama_dir) in results.setup.base_model and str(tiny_model_dir) in results.setup.base_model
    report = (root / "report.html").read_text(encoding="utf-8")
    for label in ("T5 LoRA", "Llama LoRA"):
        assert label in report
    assert f"Llama LoRA · {tiny_llama_dir.name}" in report and f"T5 LoRA · {tiny_model_dir.name}" in report


def test_the_bundled_qwen_architecture_has_the_checkpoints_parameter_count():
    from transformers import AutoModelForCausalLM

    from sumlab.models.parameters import count_parameters
    from sumlab.models.sources import architecture_config

    config = architecture_config("Qwen/Qwen2.5-0.5B-Instruct")
    assert model_family(ModelConfig(name_or_path="Qwen/Qwen2.5-0.5B-Instruct", random_init=True)) == "causal"
    with torch.device("meta"):  # the layout without allocating 2 GB
        model = AutoModelForCausalLM.from_config(config)
    assert count_parameters(model).total == 494_032_768  # Qwen2.5-0.5B: 0.49B, input and output embeddings tied


def test_sumlab_generate_and_inspect_take_a_causal_model(tiny_llama_dir, dialogsum_dir, tmp_path):
    from typer.testing import CliRunner

    from sumlab.cli.app import app

    out = tmp_path / "predictions.jsonl"
    result = CliRunner().invoke(
        app,
        [
            "generate",
            "--model",
            str(tiny_llama_dir),
            "--data",
            str(dialogsum_dir),
            "--split",
            "validation",
            "--limit",
            "3",
            "--max-new-tokens",
            "6",
            "--dtype",
            "float32",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 3 and all(set(row["predictions"]) == {tiny_llama_dir.name} for row in rows)
    model, tokenizer = load(tiny_llama_dir)
    expected = summarize(model, tokenizer, [row["dialogue"] for row in rows], GenerationSettings(max_new_tokens=6))
    assert [row["predictions"][tiny_llama_dir.name] for row in rows] == expected

    result = CliRunner().invoke(
        app, ["inspect", str(tiny_llama_dir), "--lora-r", "4", "--json", str(tmp_path / "p.json")]
    )
    assert result.exit_code == 0, result.output
    counts = json.loads((tmp_path / "p.json").read_text())
    assert counts["trainable"] == 2 * 2 * 4 * (32 + 32)  # 2 layers x (q_proj + v_proj) x r x (in + out)
