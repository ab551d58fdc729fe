"""Fault suite, configs: missing files, bad YAML, unknown keys, bad values, bad prompt templates, bad --set
overrides and paths an experiment names. ``sumlab train`` and ``sumlab run`` refuse each in one line naming the
file and key, exit code 2, before any run or experiment directory is written."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from refusals import assert_says, run_refused

TRAIN = "name: tiny\nmodel: {name_or_path: sumlab-tiny-t5}\ndata: {source: sumlab-demo}\n"


@dataclass(frozen=True)
class Case:
    yaml: bytes | None  # written as config.yaml; None: no file
    says: tuple[str, ...]
    command: str = "train"  # or run: an experiment config
    overrides: tuple[str, ...] = ()
    files: tuple[tuple[str, bytes], ...] = ()  # (path, bytes) written beside the config


def config(text: str) -> bytes:
    return text.encode("utf-8")


CASES = {
    "config-file-missing": Case(None, ("config file not found: config.yaml", "configs/")),
    "yaml-syntax-error": Case(config(TRAIN + "train: {max_steps: 3\npeft: {}\n"), ("config.yaml:", "invalid YAML")),
    "yaml-tab-indentation": Case(config(TRAIN + "train:\n\tmax_steps: 3\n"), ("config.yaml:5: invalid YAML",)),
    "yaml-not-a-mapping": Case(config("- name: tiny\n- model: x\n"), ("the config must be a mapping of sections",)),
    "yaml-not-utf-8": Case("# r\xe9sum\xe9 of the run\n".encode("latin-1") + config(TRAIN), ("not UTF-8 text",)),
    "unknown-section": Case(config(TRAIN + "trian: {max_steps: 3}\n"), ("unknown key 'trian'", "check the spelling")),
    "unknown-key": Case(config(TRAIN + "train: {learning_rat: 0.1}\n"), ("unknown key 'train.learning_rat'",)),
    "value-of-the-wrong-type": Case(config(TRAIN + "train: {max_steps: many}\n"), ("train.max_steps:",)),
    "value-out-of-range": Case(config(TRAIN + "train: {learning_rate: -0.1}\n"), ("train.learning_rate:",)),
    "unknown-peft-method": Case(config(TRAIN + "peft: {method: lora2}\n"), ("peft.method:",)),
    "rouge-metric-without-rouge": Case(
        config(TRAIN + "train: {metric_for_best_model: rougeL}\n"), ("needs eval_rouge=true",)
    ),
    "bad-run-name": Case(config(TRAIN.replace("name: tiny", "name: ../escape")), ("name: invalid name '../escape'",)),
    "template-without-dialogue-slot": Case(
        config(TRAIN + "prompt: {template: 'Summarize the conversation.'}\n"), ("prompt.template:", "{dialogue}")
    ),
    "template-with-an-unknown-slot": Case(
        config(TRAIN + "prompt: {template: 'Topic {topic}: {dialogue}'}\n"), ("prompt.template:", "{topic}")
    ),
    "unknown-prompt-name": Case(config(TRAIN + "prompt: {name: fancy}\n"), ("unknown prompt name 'fancy'",)),
    "override-without-equals": Case(config(TRAIN), ("bad override 'train.max_steps'",), overrides=("train.max_steps",)),
    "override-below-a-value": Case(config(TRAIN), ("name is not a section",), overrides=("name.first=x",)),
    "override-of-an-unknown-key": Case(
        config(TRAIN), ("unknown key 'train.max_step'",), overrides=("train.max_step=3",)
    ),
    "experiment-duplicate-model-names": Case(
        config(TRAIN + "models:\n  - {name: a, kind: zero_shot}\n  - {name: a, kind: zero_shot}\n"),
        ("model names must be unique; repeated: a",),
        command="run",
    ),
    "experiment-entry-train-typo": Case(
        config(TRAIN + "models:\n  - {name: lora, peft: {method: lora}, train: {learning_rat: 0.001}}\n"),
        ("models[0] (lora): unknown key 'train.learning_rat'",),
        command="run",
    ),
    "experiment-pretrained-path-holds-no-model": Case(
        config(TRAIN + "models:\n  - {name: mine, kind: pretrained, path: ./empty}\n"),
        ("models[0] (mine): path: empty: no config.json, adapter_config.json or model/ found", "expected a model"),
        command="run",
    ),
    "experiment-data-source-missing": Case(
        config(TRAIN.replace("sumlab-demo", "./no-such-data") + "models:\n  - {name: base, kind: zero_shot}\n"),
        ("data.source: path not found: no-such-data",),
        command="run",
    ),
    "experiment-test-file-malformed": Case(
        config(TRAIN.replace("sumlab-demo", "./bad-data") + "models:\n  - {name: base, kind: zero_shot}\n"),
        ("bad-data/test.jsonl:2: invalid JSON",),
        command="run",
        files=(("bad-data/test.jsonl", b'{"dialogue": "#Person1#: Hi.", "summary": "A greeting."}\n{not json\n'),),
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_a_bad_config_is_refused_in_one_line(name, tmp_path, monkeypatch, capsys):
    case = CASES[name]
    if case.yaml is not None:
        (tmp_path / "config.yaml").write_bytes(case.yaml)
    (tmp_path / "empty").mkdir()
    for path, data in case.files:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(data)
    args = [case.command, "config.yaml", *[item for override in case.overrides for item in ("--set", override)]]
    line = run_refused(args, tmp_path, monkeypatch, capsys)
    assert_says(line, *case.says)


def test_a_config_with_a_byte_order_mark_loads_as_without(tmp_path):
    from sumlab.config import ExperimentConfig, TrainConfig, load_config

    (tmp_path / "plain.yaml").write_text(TRAIN, encoding="utf-8")
    (tmp_path / "bom.yaml").write_bytes(b"\xef\xbb\xbf" + config(TRAIN))
    assert load_config(TrainConfig, tmp_path / "bom.yaml") == load_config(TrainConfig, tmp_path / "plain.yaml")
    assert load_config(ExperimentConfig, tmp_path / "bom.yaml").name == "tiny"
