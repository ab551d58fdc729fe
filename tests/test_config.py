"""Tests for sumlab.config: strict YAML loading, --set overrides, clear errors, safe names."""

from __future__ import annotations

from pathlib import Path

import pytest

from sumlab.config import (
    ExperimentConfig,
    GenerationSettings,
    PeftSettings,
    TrainConfig,
    apply_overrides,
    build_config,
    load_config,
    parse_override,
    to_yaml,
    validate_name,
)
from sumlab.errors import SumlabError


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def error_of(call, *args, **kwargs) -> str:
    with pytest.raises(SumlabError) as info:
        call(*args, **kwargs)
    return str(info.value)


# ---------------------------------------------------------------- loading


def test_defaults_without_a_file_are_the_labs():
    config = load_config(TrainConfig, None)
    assert config.model.name_or_path == "google/flan-t5-base"
    assert (config.peft.r, config.peft.alpha, config.peft.targets) == (32, 32, None)
    assert config.peft.method == "full"
    # no targets: the architecture's query and value projections, which on T5 are the lab's q and v
    from sumlab.models.peft_methods import build_peft_config
    from sumlab.models.random_init import build_random_model

    lora = config.peft.model_copy(update={"method": "lora"})
    assert set(build_peft_config(lora, build_random_model("google/flan-t5-small")).target_modules) == {"q", "v"}


def test_yaml_values_reach_the_typed_config(tmp_path):
    path = write(
        tmp_path / "run.yaml",
        "name: lora-r8\npeft:\n  method: lora\n  r: 8\ntrain:\n  learning_rate: 1e-4\n  max_steps: 5\n",
    )
    config = load_config(TrainConfig, path)
    assert config.name == "lora-r8"
    assert (config.peft.method, config.peft.r) == ("lora", 8)
    assert config.train.learning_rate == pytest.approx(1e-4)  # YAML 1.1 reads 1e-4 as a string; pydantic converts
    assert isinstance(config.train.learning_rate, float)
    assert config.train.max_steps == 5


def test_resolved_config_round_trips_through_yaml(tmp_path):
    config = load_config(
        TrainConfig, None, ["name=x1", "peft.method=dora", "peft.targets=[q,k,v]", "train.max_steps=3"]
    )
    reloaded = load_config(TrainConfig, write(tmp_path / "resolved.yaml", to_yaml(config)))
    assert reloaded == config


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("lerning_rate: 1\n", "lerning_rate"),
        ("train:\n  lerning_rate: 0.1\n", "train.lerning_rate"),
        ("peft:\n  rank: 8\n", "peft.rank"),
    ],
)
def test_unknown_key_is_named_with_the_file(tmp_path, text, key):
    path = write(tmp_path / "bad.yaml", text)
    message = error_of(load_config, TrainConfig, path)
    assert f"unknown key '{key}'" in message
    assert str(path) in message


@pytest.mark.parametrize(
    ("override", "key", "words"),
    [
        ("train.max_steps=ten", "train.max_steps", "integer"),
        ("train.learning_rate=-0.001", "train.learning_rate", "greater than 0"),
        ("train.learning_rate=0", "train.learning_rate", "greater than 0"),
        ("peft.r=0", "peft.r", "greater than 0"),
        ("peft.r=-4", "peft.r", "greater than 0"),
        ("peft.method=loraa", "peft.method", "lora"),
        ("peft.targets=[]", "peft.targets", "at least 1"),
        ("train=3", "train", "dictionary"),
    ],
)
def test_bad_values_name_the_key_and_the_problem(override, key, words):
    message = error_of(load_config, TrainConfig, None, [override])
    assert message.startswith(f"config: {key}: ")
    assert words in message


def test_wrong_type_in_a_file(tmp_path):
    path = write(tmp_path / "bad.yaml", "generation:\n  num_beams: many\n")
    message = error_of(load_config, TrainConfig, path)
    assert f"{path}: generation.num_beams:" in message


def test_several_problems_are_counted():
    message = error_of(load_config, TrainConfig, None, ["peft.r=0", "peft.alpha=0"])
    assert "and 1 more problem" in message


def test_invalid_yaml_gives_file_and_line(tmp_path):
    path = write(tmp_path / "broken.yaml", "name: x\npeft:\n  r: 8\n  targets: [q, v\ntrain:\n  max_steps: 1\n")
    message = error_of(load_config, TrainConfig, path)
    assert message.startswith(f"{path}:5: invalid YAML")  # where the unclosed list is noticed
    path = write(tmp_path / "tabs.yaml", "name: x\n\tpeft: 1\n")
    assert error_of(load_config, TrainConfig, path).startswith(f"{path}:2: invalid YAML")


def test_yaml_that_is_not_a_mapping_is_refused(tmp_path):
    assert "mapping" in error_of(load_config, TrainConfig, write(tmp_path / "list.yaml", "- a\n- b\n"))


def test_empty_yaml_means_defaults(tmp_path):
    assert load_config(TrainConfig, write(tmp_path / "empty.yaml", "")) == load_config(TrainConfig, None)


def test_missing_config_file(tmp_path):
    message = error_of(load_config, TrainConfig, tmp_path / "nope.yaml")
    assert "config file not found" in message
    assert "nope.yaml" in message


# ---------------------------------------------------------------- overrides


@pytest.mark.parametrize(
    ("item", "path", "value"),
    [
        ("train.max_steps=10", ["train", "max_steps"], 10),
        ("train.learning_rate=0.0003", ["train", "learning_rate"], 0.0003),
        ("train.mlflow=true", ["train", "mlflow"], True),
        ("train.tensorboard=false", ["train", "tensorboard"], False),
        ("peft.targets=[q, k, v]", ["peft", "targets"], ["q", "k", "v"]),
        ("train.eval_steps=null", ["train", "eval_steps"], None),
        ("name=lora-r32", ["name"], "lora-r32"),
        ("model.name_or_path=a=b", ["model", "name_or_path"], "a=b"),  # split at the first '=' only
        ('prompt.template="Summary: {dialogue}"', ["prompt", "template"], "Summary: {dialogue}"),
    ],
)
def test_override_values_are_yaml_typed(item, path, value):
    assert parse_override(item) == (path, value)


def test_overrides_reach_the_config_with_their_types():
    config = load_config(
        TrainConfig,
        None,
        [
            "train.max_steps=10",
            "train.learning_rate=3e-4",
            "train.mlflow=true",
            "peft.targets=[q,k,v]",
            "peft.dropout=0.1",
        ],
    )
    assert config.train.max_steps == 10
    assert config.train.learning_rate == pytest.approx(3e-4)
    assert config.train.mlflow is True
    assert config.peft.targets == ["q", "k", "v"]
    assert config.peft.dropout == pytest.approx(0.1)


def test_overrides_win_over_the_file_and_leave_the_input_alone(tmp_path):
    path = write(tmp_path / "run.yaml", "peft:\n  r: 8\n  alpha: 16\n")
    config = load_config(TrainConfig, path, ["peft.r=4"])
    assert (config.peft.r, config.peft.alpha) == (4, 16)
    data = {"peft": {"r": 8}}
    assert apply_overrides(data, ["peft.r=4"]) == {"peft": {"r": 4}}
    assert data == {"peft": {"r": 8}}


def test_override_of_a_template_with_a_colon_keeps_the_text():
    config = load_config(TrainConfig, None, ["prompt.template=Summary: {dialogue}"])
    assert config.prompt.template == "Summary: {dialogue}"
    assert load_config(TrainConfig, None, ["prompt.template={dialogue}"]).prompt.template == "{dialogue}"


@pytest.mark.parametrize("item", ["train.max_steps", "=3", " =3", ""])
def test_bad_override_syntax(item):
    assert "bad override" in error_of(parse_override, item)


def test_override_through_a_value_is_refused():
    assert "not a section" in error_of(apply_overrides, {"name": "x"}, ["name.sub=1"])


def test_setting_models_validate_on_their_own():
    assert GenerationSettings(num_beams=4).num_beams == 4
    with pytest.raises(ValueError):
        PeftSettings(r=0)
    with pytest.raises(ValueError):
        GenerationSettings(max_new_tokens=0)


# ---------------------------------------------------------------- names


@pytest.mark.parametrize("name", ["../x", "a/b", "a\\b", ".hidden", "", "..", "x" * 65, "sp ace", "tab\t"])
def test_validate_name_rejects_unsafe_names(name):
    with pytest.raises(ValueError):
        validate_name(name)


@pytest.mark.parametrize("name", ["lora-r32", "full_ft", "flan-t5-base", "run.2", "x" * 64])
def test_validate_name_accepts_simple_names(name):
    assert validate_name(name) == name


def test_config_name_is_validated():
    assert "invalid name" in error_of(load_config, TrainConfig, None, ["name=../escape"])


# ---------------------------------------------------------------- an experiment is validated whole at load

LAB_MODELS = """\
models:
  - {name: original, kind: zero_shot}
  - name: full
    peft: {method: full}
    train: {TRAIN}
  - {name: lora, peft: {method: lora}}
"""


def experiment_file(tmp_path: Path, train: str = "{}", head: str = "") -> Path:
    return write(tmp_path / "experiment.yaml", head + LAB_MODELS.replace("{TRAIN}", train))


def one_line_error(call, *args) -> str:
    message = error_of(call, *args)
    assert len(message.splitlines()) == 1, message
    return message


def test_a_typo_in_the_second_models_train_section_is_refused_at_load(tmp_path):
    path = experiment_file(tmp_path, "{learning_rat: 0.001}")
    message = one_line_error(load_config, ExperimentConfig, path)
    assert message.startswith(f"{path}: models[1] (full): unknown key 'train.learning_rat'")
    assert "check the spelling" in message


@pytest.mark.parametrize(
    ("train", "key", "words"),
    [
        ("{learning_rate: -1}", "train.learning_rate", "greater than 0"),
        ("{max_steps: ten}", "train.max_steps", "integer"),
        ("{metric_for_best_model: eval_rouge1}", "train", "needs eval_rouge=true"),  # a check across fields
    ],
)
def test_a_bad_value_in_the_second_models_train_section_is_refused_at_load(tmp_path, train, key, words):
    path = experiment_file(tmp_path, train)
    message = one_line_error(load_config, ExperimentConfig, path)
    assert message.startswith(f"{path}: models[1] (full): {key}: ")
    assert words in message


def test_an_entrys_train_section_is_checked_merged_with_the_experiments(tmp_path):
    """As the stage builds it: the experiment's train settings, then the entry's overrides."""
    rouge_metric = "{metric_for_best_model: eval_rouge1}"
    config = load_config(ExperimentConfig, experiment_file(tmp_path, rouge_metric, "train: {eval_rouge: true}\n"))
    assert config.train_config(config.models[1]).train.metric_for_best_model == "eval_rouge1"
    assert config.train_config(config.models[2]).train.metric_for_best_model == "eval_loss"


def test_other_problems_in_an_entry_name_it_too():
    message = one_line_error(load_config, ExperimentConfig, None, ["models=[{name: mine, peft: {r: 0}}]"])
    assert message.startswith("config: models[0] (mine): peft.r: ")


@pytest.mark.parametrize(
    ("setting", "words"),
    [
        ("prompt.template={dialogue} and {topic}", "slot other than {dialogue}: {topic}"),
        ("prompt.template=Summarize: {{dialogue}}", "no {dialogue} slot"),
        ("prompt.name=nope", "unknown prompt name 'nope'"),
    ],
)
@pytest.mark.parametrize("config_type", [ExperimentConfig, TrainConfig])
def test_the_prompt_is_refused_at_load_as_it_would_be_when_used(config_type, setting, words):
    message = one_line_error(load_config, config_type, None, [setting])
    assert message.startswith(f"config: prompt.{setting.split('=')[0].split('.')[1]}: ")
    assert words in message


def test_local_paths_are_checked_before_the_experiment_runs(tmp_path):
    assert ExperimentConfig().check_paths() is None  # hub ids are not looked up
    missing = tmp_path / "no-such-run"
    entries = [{"name": "original", "kind": "zero_shot"}, {"name": "mine", "kind": "pretrained", "path": str(missing)}]
    config = build_config(ExperimentConfig, {"models": entries})  # loads: comparing a finished experiment needs that
    message = one_line_error(config.check_paths)
    assert message.startswith(f"models[1] (mine): path: model path not found: {missing}")

    (tmp_path / "empty").mkdir()
    entries[1]["path"] = str(tmp_path / "empty")
    message = one_line_error(build_config(ExperimentConfig, {"models": entries}).check_paths)
    found = f"{tmp_path / 'empty'}: no config.json, adapter_config.json or model/ found"
    assert message.startswith(f"models[1] (mine): path: {found}")

    own_model = {"name": "qwen", "kind": "zero_shot", "model": {"name_or_path": str(tmp_path / "no-model")}}
    config = build_config(ExperimentConfig, {"models": [entries[0], own_model]})
    assert one_line_error(config.check_paths).startswith("models[1] (qwen): model.name_or_path: path not found")

    config = build_config(ExperimentConfig, {"models": [entries[0]], "model": {"name_or_path": "./no-model"}})
    assert one_line_error(config.check_paths).startswith("model.name_or_path: path not found")
    config = build_config(ExperimentConfig, {"models": [entries[0]], "data": {"source": str(tmp_path / "x.jsonl")}})
    assert one_line_error(config.check_paths).startswith("data.source: path not found")
