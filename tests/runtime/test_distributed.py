"""Several processes: the process group, generation split across ranks, checkpoint rules, real runs on CPU (gloo).

The slow tests start 2 processes with torchrun or accelerate launch on the tiny model, and check what the
issue asks: 2-process DDP training ends with the weights of 1 process with the same global batch; 2-process
generation writes exactly the predictions of 1 process; a rank that dies ends the whole job with a message
(and a hung one within SUMLAB_DDP_TIMEOUT), and ``--resume`` then finishes the run.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pytest
import torch
import yaml
from safetensors.torch import load_file

from sumlab.config import GenerationSettings, TrainConfig, TrainSettings, load_config
from sumlab.data.loading import load_split
from sumlab.errors import SumlabError
from sumlab.generation import batching, sharded
from sumlab.generation.batching import generation_batches, summarize
from sumlab.runtime import distributed
from sumlab.text.encoding import prompt_ids
from sumlab.text.prompts import TEMPLATES
from sumlab.training import checkpoints
from sumlab.training import trainer as training
from sumlab.training.run_dir import read_log

REPO = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("distributed_driver.py")
PRESETS = sorted((REPO / "configs" / "accelerate").glob("*.yaml"))
TIMEOUT = 240  # seconds for any one launch; a hang fails the test instead of blocking CI


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch_env(**extra: str) -> dict[str, str]:
    # one thread per process (2 processes share 2 cores); a short collective timeout so a bug can't hang CI
    return {**os.environ, "OMP_NUM_THREADS": "1", distributed.TIMEOUT_ENV: "60", **extra}


def torchrun(*args: str, nproc: int = 2) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc_per_node={nproc}",
        f"--master_port={free_port()}",
        *args,
    ]


def run(command: list[str], timeout: float = TIMEOUT, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=launch_env(**env), cwd=REPO)


def check_ok(completed: subprocess.CompletedProcess) -> str:
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output[-4000:]
    return output


@pytest.fixture(scope="session")
def write_config(tiny_train_config, tiny_model_dir):
    """Writes a training config for the tiny T5 to ``path``: ``write_config(path, peft=None, validation=None, **train)``.

    64 DialogSum rows, 8 steps (one epoch at a global batch of 8), checkpoints at 4 and 8. Dropout is 0 (the tiny
    model's, and LoRA's when given), so that the two runs compute the same function.
    """

    def write(path: Path, *, peft: dict | None = None, validation: int | None = None, **train: object) -> Path:
        sections = {
            "name": "tiny-ddp",
            "peft": peft or {"method": "full"},
            "train": {
                "max_source_length": 128,
                "max_target_length": 32,
                "per_device_train_batch_size": 8,
                "logging_steps": 2,
                "max_steps": 8,
                "save_steps": 4,
                "tensorboard": False,
                **train,
            },
            "generation": {"max_new_tokens": 8},
        }
        config = tiny_train_config(tiny_model_dir, (64, validation), sections)
        path.write_text(yaml.safe_dump(config.model_dump(mode="json")), encoding="utf-8")
        return path

    return write


def half_batch_train(config_file: Path, out: Path) -> list[str]:
    """The arguments of ``sumlab train`` for the config's run on 2 processes: half its batch on each."""
    return ["train", str(config_file), "--out", str(out), "--set", "train.per_device_train_batch_size=4"]


def assert_same_weights(actual_file: Path, expected_file: Path) -> None:
    actual, expected = load_file(actual_file), load_file(expected_file)
    assert actual.keys() == expected.keys()
    for name in expected:
        # fp32 sums in another order (gloo's all-reduce of two half-batch gradients): ~1e-5 after 8 Adam steps;
        # a wrong loss scale (the per-batch-mean bug) or another data order differs by >1e-2
        torch.testing.assert_close(actual[name], expected[name], atol=1e-4, rtol=1e-4, msg=name)


# ---------------------------------------------------------------- generation: the split, in-process


@pytest.mark.parametrize("world_size, count", [(2, 11), (3, 11), (5, 3)])
def test_each_rank_generates_its_share_of_the_single_process_batches(
    world_size, count, tiny_model, dialogsum_dir, monkeypatch
):
    """Each rank, in turn in this process, generates every N-th batch; together exactly one process's summaries."""
    model, tokenizer = tiny_model
    dialogues = [example.dialogue for example in load_split(str(dialogsum_dir), "validation")[:count]]
    settings = GenerationSettings(max_new_tokens=6, batch_size=2)
    single = summarize(model, tokenizer, dialogues, settings)
    encoded = prompt_ids(tokenizer, TEMPLATES["lab"], dialogues, settings.max_source_length, causal=False)
    batches = generation_batches([len(ids) for ids in encoded], settings)
    generated: dict[int, str] = {}
    for rank in range(world_size):
        state = SimpleNamespace(process_index=rank, num_processes=world_size, is_main_process=rank == 0)
        local: list[tuple[int, str]] = []

        def gather(pairs, local=local):  # the collective: this rank's pairs, and the others' (from one process)
            local.extend(pairs)
            mine = {index for index, _ in pairs}
            return [*pairs, *[(i, single[i]) for i in range(count) if i not in mine]]

        monkeypatch.setattr(batching, "distributed_state", lambda state=state: state)
        monkeypatch.setattr(sharded, "gather_object", gather)
        assert summarize(model, tokenizer, dialogues, settings) == single  # every rank gets the whole list
        assert [index for index, _ in local] == [i for batch in batches[rank::world_size] for i in batch]
        assert not generated.keys() & dict(local).keys()
        generated.update(local)
    assert generated == dict(enumerate(single))  # each dialogue by one rank, as one process summarizes it


def test_gathered_summaries_are_checked_for_duplicates_and_losses():
    assert sharded.gather_in_input_order([(1, "b"), (0, "a"), (2, "c")], 3) == ["a", "b", "c"]
    with pytest.raises(RuntimeError, match="twice"):
        sharded.gather_in_input_order([(0, "a"), (0, "a")], 1)
    with pytest.raises(RuntimeError, match="not summarized"):
        sharded.gather_in_input_order([(0, "a")], 2)


def test_one_process_makes_no_collective_call(tiny_model, dialogsum_dir, monkeypatch):
    model, tokenizer = tiny_model
    dialogues = [example.dialogue for example in load_split(str(dialogsum_dir), "validation")[:6]]
    monkeypatch.setattr(sharded, "gather_object", lambda pairs: pytest.fail("gathered with one process"))
    summaries = summarize(model, tokenizer, dialogues, GenerationSettings(max_new_tokens=6, batch_size=4))
    assert len(summaries) == 6 and all(isinstance(text, str) for text in summaries)
    assert summarize(model, tokenizer, [], GenerationSettings()) == []


# ---------------------------------------------------------------- the small pieces


def refuse(message: str) -> None:
    raise SumlabError(message, "a hint")


def test_run_on_main_with_one_process_just_calls():
    assert distributed.run_on_main(lambda a, b=0: a + b, 1, b=2) == 3
    with pytest.raises(SumlabError, match=r"^boom \(a hint\)$"):
        distributed.run_on_main(refuse, "boom")
    assert distributed.is_main_process()


def test_checkpoint_world_size_and_the_resume_check(tmp_path):
    one, two, none = tmp_path / "one", tmp_path / "two", tmp_path / "none"
    for directory in (one, two, none):
        directory.mkdir()
    (one / "rng_state.pth").write_bytes(b"")
    (two / "rng_state_0.pth").write_bytes(b"")
    (two / "rng_state_1.pth").write_bytes(b"")
    assert [checkpoints.checkpoint_world_size(d) for d in (one, two, none)] == [1, 2, None]
    checkpoints.check_resume_world_size(two, 2)
    checkpoints.check_resume_world_size(none, 3)  # save_only_model checkpoints say nothing: allowed
    with pytest.raises(SumlabError, match=r"written by 2 processes; this run has 1.*nproc_per_node=2"):
        checkpoints.check_resume_world_size(two, 1)
    with pytest.raises(SumlabError, match="written by 1 process; this run has 4"):
        checkpoints.check_resume_world_size(one, 4)


def test_timeout_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(distributed.TIMEOUT_ENV, raising=False)
    assert distributed.timeout_seconds() == distributed.DEFAULT_TIMEOUT_SECONDS
    monkeypatch.setenv(distributed.TIMEOUT_ENV, "90")
    assert distributed.timeout_seconds() == 90
    monkeypatch.setenv(distributed.TIMEOUT_ENV, "soon")
    with pytest.raises(SumlabError, match="SUMLAB_DDP_TIMEOUT"):
        distributed.timeout_seconds()


def test_cpu_backend_only_for_several_processes_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not distributed.use_cpu_backend()  # one plain process: unchanged
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert distributed.use_cpu_backend()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert not distributed.use_cpu_backend()


def test_peer_failures_become_one_line_errors(monkeypatch):
    gloo = RuntimeError(
        "[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:553] Connection closed by peer "
        "[127.0.0.1]:60608. This is typically caused by a remote worker crashing."
    )
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed.as_peer_failure(gloo) is None  # one process: not a peer's fault
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    error = distributed.as_peer_failure(gloo)
    assert str(error).startswith("rank 0 lost contact with the other processes of the job: Connection closed by peer")
    assert "--resume" in str(error) and "\n" not in str(error) and "pair.cc" not in str(error)
    assert distributed.as_peer_failure(RuntimeError("CUDA out of memory")) is None
    assert distributed.as_peer_failure(ValueError("timed out")) is None


@pytest.mark.parametrize(
    "environment, refused",
    [
        ({"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": "3"}, "DeepSpeed ZeRO-3"),
        ({"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": "2"}, None),
        ({"ACCELERATE_USE_FSDP": "true"}, "FSDP"),
        ({}, None),
    ],
)
def test_generation_inside_evaluation_is_refused_where_parameters_are_sharded(environment, refused, monkeypatch):
    for name in (
        "ACCELERATE_USE_DEEPSPEED",
        "ACCELERATE_DEEPSPEED_ZERO_STAGE",
        "ACCELERATE_USE_FSDP",
        "ACCELERATE_DEEPSPEED_CONFIG_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    checkpoints.check_sharded_evaluation(TrainSettings(eval_rouge=False))  # the evaluation loss is always fine
    if refused is None:
        checkpoints.check_sharded_evaluation(TrainSettings(eval_rouge=True))
    else:
        with pytest.raises(SumlabError, match=f"eval_rouge=true is refused under {refused}.*eval_rouge=false"):
            checkpoints.check_sharded_evaluation(TrainSettings(eval_rouge=True))


def test_zero_stage_is_read_from_a_deepspeed_config_file(tmp_path, monkeypatch):
    config_file = tmp_path / "ds.json"
    config_file.write_text(json.dumps({"zero_optimization": {"stage": 3}}))
    monkeypatch.delenv("ACCELERATE_DEEPSPEED_ZERO_STAGE", raising=False)
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_CONFIG_FILE", str(config_file))
    assert checkpoints.parameter_sharding() == "DeepSpeed ZeRO-3"


# ---------------------------------------------------------------- accelerate presets


def validate_preset(path: Path) -> dict[str, str]:
    """Load ``path`` as accelerate launch does and build the plugin the Trainer would; return the launch env.

    Raises on anything accelerate would reject, and on keys it would silently ignore (a typo in fsdp_config).
    """
    from accelerate.commands.config.config_args import (
        ClusterConfig,
        load_config_from_file,
    )
    from accelerate.commands.launch import (
        _validate_launch_command,
        launch_command_parser,
    )
    from accelerate.utils import DeepSpeedPlugin, FullyShardedDataParallelPlugin
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

    config = load_config_from_file(str(path))  # unknown top-level keys: TypeError
    assert isinstance(config, ClusterConfig)
    parser = launch_command_parser()
    options = {action.dest for action in parser._actions}
    for section in ("fsdp_config", "deepspeed_config"):
        unknown = set(getattr(config, section)) - options
        assert not unknown, f"{section}: accelerate launch has no option {sorted(unknown)}"
    args, defaults, _ = _validate_launch_command(parser.parse_args(["--config_file", str(path), "train.py"]))
    if args.use_deepspeed:
        args.deepspeed_fields_from_accelerate_config = ",".join(defaults.deepspeed_config)  # as launch_command does
        _, env = prepare_deepspeed_cmd_env(args)
    else:
        env = prepare_multi_gpu_env(args)
    with mock.patch.dict(os.environ, env):
        if args.use_fsdp:
            FullyShardedDataParallelPlugin()  # checks sharding, wrap policy, state dict type, version
        if args.use_deepspeed:
            DeepSpeedPlugin()
    return env


def test_there_is_a_preset_for_each_engine():
    assert {path.name for path in PRESETS} >= {"ddp.yaml", "fsdp.yaml", "deepspeed-zero2.yaml", "deepspeed-zero3.yaml"}


@pytest.mark.parametrize("path", PRESETS, ids=[path.name for path in PRESETS])
def test_every_accelerate_preset_loads_and_validates(path):
    text = path.read_text(encoding="utf-8")
    header = "".join(line for line in text.splitlines(keepends=True) if line.startswith("#"))
    assert f"accelerate launch --config_file configs/accelerate/{path.name} -m sumlab train" in header
    data = yaml.safe_load(text)
    # precision comes from sumlab's train.precision; a preset's bf16 would override train.precision=float32
    assert data["mixed_precision"] == "no"
    env = validate_preset(path)
    if data["distributed_type"] == "FSDP":
        from transformers.models.t5 import modeling_t5

        assert hasattr(modeling_t5, data["fsdp_config"]["fsdp_transformer_layer_cls_to_wrap"])
        assert env["FSDP_STATE_DICT_TYPE"] == "FULL_STATE_DICT"  # model/ loads without FSDP
        with mock.patch.dict(os.environ, env):
            assert checkpoints.parameter_sharding() == "FSDP"
    if data.get("deepspeed_config", {}).get("zero_stage") == 3:
        assert data["deepspeed_config"]["zero3_save_16bit_model"] is True
        assert "eval_rouge" in header
        with mock.patch.dict(os.environ, env):
            assert checkpoints.parameter_sharding() == "DeepSpeed ZeRO-3"


@pytest.mark.parametrize(
    "preset, breakage",
    [
        ("ddp.yaml", ("distributed_type: MULTI_GPU", "distributed_type: MULTI_GPUS")),
        ("ddp.yaml", ("use_cpu: false", "use_cpu: false\nnum_proceses: 2")),
        ("ddp.yaml", ("mixed_precision: 'no'", "mixed_precision: bf17")),
        (
            "fsdp.yaml",
            (
                "fsdp_transformer_layer_cls_to_wrap: T5Block",
                "fsdp_transformer_layer_cls_to_wrap: T5Block\n  fsdp_sharding_stratgy: FULL_SHARD",
            ),
        ),
        ("fsdp.yaml", ("fsdp_state_dict_type: FULL_STATE_DICT", "fsdp_state_dict_type: WHOLE_STATE_DICT")),
        ("fsdp.yaml", ("fsdp_auto_wrap_policy: TRANSFORMER_BASED_WRAP", "fsdp_auto_wrap_policy: TRANSFORMER_WRAP")),
    ],
)
def test_a_broken_preset_fails_validation(preset, breakage, tmp_path):
    broken = tmp_path / preset
    broken.write_text((REPO / "configs" / "accelerate" / preset).read_text().replace(*breakage))
    with pytest.raises(Exception):
        validate_preset(broken)


# ---------------------------------------------------------------- several real processes (gloo, CPU)


@pytest.fixture(scope="module")
def full_reference(write_config, tmp_path_factory):
    """Full fine-tuning, 1 process, batch 8, with an evaluation at the end: the in-process reference."""
    root = tmp_path_factory.mktemp("full-1proc")
    config_file = write_config(root / "config.yaml", validation=16, learning_rate=3e-3)
    result = training.train(load_config(TrainConfig, config_file), out_dir=root / "run")
    return config_file, result


@pytest.mark.slow
@pytest.mark.timeout(4 * TIMEOUT)  # a reference run and up to two launches of TIMEOUT each
def test_two_process_ddp_gives_the_weights_of_one_process(full_reference, tmp_path):
    """accelerate launch with the ddp.yaml preset, 2 processes x batch 4, against 1 process x batch 8."""
    config_file, reference = full_reference
    out = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        "configs/accelerate/ddp.yaml",
        "--num_processes",
        "2",
        "--main_process_port",
        str(free_port()),
        "-m",
        "sumlab",
        *half_batch_train(config_file, out),
        "--set",
        "train.tensorboard=true",
    ]
    output = check_ok(run(command))
    assert output.count("run directory:") == 1, output[-3000:]  # rank 0 alone reports

    assert_same_weights(out / "model" / "model.safetensors", reference.model_dir / "model.safetensors")
    metrics = json.loads((out / "metrics.json").read_text())
    # the Trainer averages per-process batch means (8 + 8 rows) where one process takes one batch of 16
    assert metrics["eval_loss"] == pytest.approx(reference.metrics["eval_loss"], rel=0.05)
    # rank 0 alone writes: each log record once, TensorBoard events from one process; each rank saved its RNG state
    steps = [record["step"] for record in read_log(out / "log.jsonl") if "loss" in record]
    assert steps == [2, 4, 6, 8]
    writers = {path.name.split(".")[-2] for path in (out / "tensorboard").glob("events.out.tfevents*")}  # ...<pid>.<n>
    assert len(writers) == 1, writers
    assert {p.name for p in (out / "checkpoints" / "checkpoint-8").glob("rng_state*")} == {
        "rng_state_0.pth",
        "rng_state_1.pth",
    }
    assert json.loads((out / "summary.json").read_text())["train_examples"] == 64


@pytest.mark.slow
@pytest.mark.timeout(4 * TIMEOUT)
def test_killed_rank_fails_the_job_and_resume_finishes_with_the_single_process_weights(write_config, tmp_path):
    """LoRA, 2 processes x batch 4 under torchrun; rank 1 is SIGKILLed after step 6 (checkpoint at 4)."""
    lora = {"method": "lora", "r": 8, "alpha": 16, "dropout": 0.0}
    config_file = write_config(tmp_path / "config.yaml", learning_rate=1e-2, peft=lora)
    reference = training.train(load_config(TrainConfig, config_file), out_dir=tmp_path / "one-process")
    train_args = half_batch_train(config_file, tmp_path / "run")
    started = time.monotonic()
    killed = run(torchrun(str(DRIVER), "signal", "1", "6", "SIGKILL", "--", *train_args))
    output = killed.stdout + killed.stderr
    assert killed.returncode != 0, output[-3000:]
    assert "rank 1: sending myself SIGKILL after step 6" in output
    # torchrun names the dead rank; rank 0, if it saw the closed connection first, says so in one line
    assert "exitcode  : -9" in output and "rank      : 1" in output, output[-3000:]
    assert "[rank0]: Traceback" not in output, output[-3000:]
    assert time.monotonic() - started < TIMEOUT
    assert not (tmp_path / "run" / "model").exists()

    check_ok(run(torchrun("-m", "sumlab", *train_args, "--resume")))
    assert_same_weights(
        tmp_path / "run" / "model" / "adapter_model.safetensors", reference.model_dir / "adapter_model.safetensors"
    )
    steps = [record["step"] for record in read_log(tmp_path / "run" / "log.jsonl") if "loss" in record]
    assert steps == [2, 4, 6, 8]  # resumed from checkpoint-4: each step logged once


@pytest.mark.slow
@pytest.mark.timeout(4 * TIMEOUT)
def test_a_hung_rank_fails_the_job_within_the_timeout(write_config, tmp_path):
    """Rank 1 stops (SIGSTOP) but lives: no launcher notices; rank 0's collective times out and it exits.

    The processes are started by hand, as a scheduler (srun, mpirun) or another node's agent would: nothing
    but the collective timeout can end this job.
    """
    config_file = write_config(tmp_path / "config.yaml", learning_rate=3e-3)
    port, processes = free_port(), []
    for rank in (0, 1):
        # 20 s: long enough for the two processes' start-up skew on a busy machine, short for a test
        env = launch_env(
            **{
                distributed.TIMEOUT_ENV: "20",
                "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": str(port),
                "WORLD_SIZE": "2",
                "RANK": str(rank),
                "LOCAL_RANK": str(rank),
                "LOCAL_WORLD_SIZE": "2",
            }
        )
        command = [
            sys.executable,
            str(DRIVER),
            "signal",
            "1",
            "3",
            "SIGSTOP",
            "--",
            *half_batch_train(config_file, tmp_path / "run"),
        ]
        processes.append(
            subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO)
        )
    try:
        output, _ = processes[0].communicate(timeout=TIMEOUT)
    finally:
        for process in processes:
            process.kill()
            process.communicate()
    assert processes[0].returncode == 2, output[-3000:]
    last = output.strip().splitlines()[-1]
    assert last.startswith("error: rank 0 lost contact with the other processes of the job: Timed out"), output[-3000:]
    assert f"{distributed.TIMEOUT_ENV}=20s" in last


@pytest.mark.slow
@pytest.mark.timeout(4 * TIMEOUT)
def test_sumlab_generate_on_two_processes_writes_the_same_file(tiny_model_dir, dialogsum_dir, tmp_path):
    arguments = [
        "generate",
        "--data",
        str(dialogsum_dir),
        "--split",
        "validation",
        "--limit",
        "37",
        "--model",
        str(tiny_model_dir),
        "--dtype",
        "float32",
        "--batch-size",
        "4",
        "--max-new-tokens",
        "12",
    ]
    one = subprocess.Popen(
        [sys.executable, "-m", "sumlab", *arguments, "--out", str(tmp_path / "one.jsonl")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=launch_env(),
        cwd=REPO,
    )
    two = run(torchrun("-m", "sumlab", *arguments, "--out", str(tmp_path / "two.jsonl")))
    one_output, _ = one.communicate(timeout=TIMEOUT)
    assert one.returncode == 0, one_output[-3000:]
    assert check_ok(two).count("wrote 37 predictions") == 1  # rank 0 alone writes and reports
    assert (tmp_path / "two.jsonl").read_bytes() == (tmp_path / "one.jsonl").read_bytes()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["one.jsonl", "two.jsonl"]  # no stray temp files
