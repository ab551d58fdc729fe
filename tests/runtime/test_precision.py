"""Native bf16 detection, what ``auto`` resolves to, and the autocast generation runs under."""

from __future__ import annotations

import logging

import pytest
import torch

from sumlab.config import GenerationSettings
from sumlab.errors import SumlabError
from sumlab.generation.batching import generate_from_ids
from sumlab.models.loading import resolve_dtype
from sumlab.runtime import precision
from sumlab.runtime.precision import (
    autocast_dtype,
    compute_precision,
    cpu_has_native_bf16,
    cpu_model_and_flags,
    has_native_bf16,
    uses_bf16,
)

CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9R14
flags\t\t: fpu vme sse2 avx2 avx512f avx512bw {extra}
bogomips\t: 5200.00

processor\t: 1
model name\t: AMD EPYC 9R14
flags\t\t: fpu vme sse2 avx2 avx512f avx512bw {extra}
"""


@pytest.fixture
def cpu(monkeypatch, tmp_path):
    """``cpu(flags)``: pretend to be a Linux machine whose /proc/cpuinfo lists ``flags`` besides AVX-512."""

    def pretend(extra: str = "", platform: str = "linux") -> None:
        cpuinfo = tmp_path / "cpuinfo"
        cpuinfo.write_text(CPUINFO.format(extra=extra))
        monkeypatch.setattr(precision, "CPUINFO", cpuinfo)
        monkeypatch.setattr(precision.sys, "platform", platform)
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
        monkeypatch.delenv("SUMLAB_CPU_BF16", raising=False)  # conftest's; here the flags decide
        cpu_has_native_bf16.cache_clear()

    yield pretend
    cpu_has_native_bf16.cache_clear()  # the next test reads the real CPU again


# ---------------------------------------------------------------- detection


@pytest.mark.parametrize(
    ("extra", "native"),
    [("avx512_bf16", True), ("amx_bf16 amx_tile", True), ("", False), ("avx512_fp16", False)],
    ids=["avx512-bf16", "amx", "avx512-without-bf16", "fp16-is-not-bf16"],
)
def test_native_bf16_is_read_from_the_cpu_flags(cpu, extra, native):
    cpu(extra)
    assert cpu_has_native_bf16() is native
    assert has_native_bf16("cpu") is native
    assert has_native_bf16() is native  # no CUDA: the default device is the CPU


def test_other_systems_are_conservatively_without_native_bf16(cpu):
    cpu("avx512_bf16", platform="darwin")
    assert cpu_has_native_bf16() is False


@pytest.mark.parametrize(("override", "native"), [("1", True), ("0", False)])
def test_the_environment_overrides_the_flags(cpu, monkeypatch, override, native):
    cpu("" if native else "avx512_bf16")
    monkeypatch.setenv("SUMLAB_CPU_BF16", override)
    assert cpu_has_native_bf16() is native


def test_a_bad_override_is_a_clear_error(cpu, monkeypatch):
    cpu("avx512_bf16")
    monkeypatch.setenv("SUMLAB_CPU_BF16", "yes")
    with pytest.raises(SumlabError, match="SUMLAB_CPU_BF16='yes' is not 0 or 1"):
        cpu_has_native_bf16()


def test_the_cpu_model_is_read_and_a_missing_cpuinfo_is_no_flags(cpu, tmp_path):
    cpu("avx512_bf16")
    name, flags = cpu_model_and_flags(precision.CPUINFO)
    assert name == "AMD EPYC 9R14" and {"avx512f", "avx512_bf16"} <= flags
    assert cpu_model_and_flags(tmp_path / "missing") == (None, set())


@pytest.mark.parametrize("supported", [True, False])
def test_cuda_asks_torch(monkeypatch, supported):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: supported)
    assert has_native_bf16("cuda") is supported
    assert has_native_bf16("mps") is False


# ---------------------------------------------------------------- what precisions resolve to


@pytest.mark.parametrize(("extra", "dtype"), [("avx512_bf16", torch.bfloat16), ("", None)], ids=["native", "emulated"])
def test_auto_is_bf16_on_a_native_bf16_cpu_and_float32_otherwise(cpu, extra, dtype):
    cpu(extra)
    assert autocast_dtype("auto", "cpu") is dtype
    assert uses_bf16("auto") is (dtype is not None)
    assert autocast_dtype("float32", "cpu") is None


def test_auto_keeps_float32_weights_on_a_cpu(cpu):
    cpu("avx512_bf16")
    assert resolve_dtype("auto", "t5") is torch.float32  # bf16 comes from autocast; the weights stay exact


def test_bfloat16_runs_on_any_cpu_with_a_warning_where_it_is_emulated(cpu, caplog):
    cpu("")
    with caplog.at_level(logging.WARNING, logger="sumlab.runtime.precision"):
        assert autocast_dtype("bfloat16", "cpu") is torch.bfloat16
        assert resolve_dtype("bfloat16", "t5") is torch.bfloat16
    assert len(caplog.records) == 2 and all("slower than float32" in r.getMessage() for r in caplog.records)
    caplog.clear()
    cpu("avx512_bf16")
    with caplog.at_level(logging.WARNING, logger="sumlab.runtime.precision"):
        assert autocast_dtype("bfloat16", "cpu") is torch.bfloat16
    assert not caplog.records


def test_training_arguments_autocast_bf16_on_a_native_cpu(cpu, tiny_train_config, tiny_model_dir, tmp_path):
    from sumlab.training.run_dir import RunPaths
    from sumlab.training.trainer import training_arguments

    paths = RunPaths(tmp_path / "run")
    for extra, precision_setting, bf16 in [("avx512_bf16", "auto", True), ("", "auto", False), ("", "bfloat16", True)]:
        cpu(extra)
        config = tiny_train_config(tiny_model_dir, (8, None), {"train": {"precision": precision_setting}})
        args = training_arguments(config, paths, has_eval=False, tokenizer=None)
        assert (args.bf16, args.use_cpu) == (bf16, bf16), (extra, precision_setting)
        assert args.device.type == "cpu"


# ---------------------------------------------------------------- generation


def autocast_seen_by_generate(model, tokenizer, settings: GenerationSettings) -> torch.dtype | None:
    """Run ``generate_from_ids`` and return the dtype ``generate`` ran under autocast with (None: no autocast)."""
    seen = []
    generate = model.generate

    def spy(*args, **kwargs):
        seen.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None)
        return generate(*args, **kwargs)

    model.generate = spy
    try:
        texts, _ = generate_from_ids(model, tokenizer, [tokenizer("Hello there.")["input_ids"]], settings)
    finally:
        del model.generate
    assert len(texts) == 1
    return seen[0]


@pytest.mark.parametrize(
    ("extra", "setting", "expected"),
    [
        ("avx512_bf16", "auto", torch.bfloat16),
        ("", "auto", None),
        ("avx512_bf16", "float32", None),
        ("", "bfloat16", torch.bfloat16),
    ],
    ids=["auto-native", "auto-emulated", "float32", "bfloat16-emulated"],
)
def test_generation_runs_under_the_resolved_autocast(cpu, tiny_model, extra, setting, expected):
    cpu(extra)
    model, tokenizer = tiny_model
    settings = GenerationSettings(max_new_tokens=4, precision=setting)
    assert autocast_seen_by_generate(model, tokenizer, settings) is expected
    assert not torch.is_autocast_enabled("cpu")  # and is left afterwards


def test_weights_already_in_bf16_need_no_autocast(cpu, tiny_model):
    cpu("avx512_bf16")
    model, tokenizer = tiny_model
    model.to(torch.bfloat16)
    assert autocast_seen_by_generate(model, tokenizer, GenerationSettings(max_new_tokens=4)) is None


def test_float16_generation_is_refused_for_t5(tiny_model):
    model, _ = tiny_model
    with pytest.raises(SumlabError, match="overflow"):
        compute_precision(model, "float16")


# ---------------------------------------------------------------- the command line

DIALOGUE = "#Person1#: Could you help me with my homework?\n#Person2#: Sure, what is it about?\n#Person1#: Maths."


def test_summarize_takes_the_precision(tiny_model_dir, tiny_model):
    from typer.testing import CliRunner

    from sumlab.cli.app import app
    from sumlab.generation.batching import summarize

    model, tokenizer = tiny_model
    options = ["--model", str(tiny_model_dir), "--dtype", "float32", "--max-new-tokens", "8"]
    settings = GenerationSettings(max_new_tokens=8, batch_size=1, precision="bfloat16")
    result = CliRunner().invoke(app, ["summarize", "-", *options, "--precision", "bfloat16"], input=DIALOGUE)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == summarize(model, tokenizer, [DIALOGUE], settings)[0]

    refused = CliRunner().invoke(app, ["summarize", "-", *options, "--precision", "half"], input=DIALOGUE)
    assert isinstance(refused.exception, SumlabError)
    assert "precision" in str(refused.exception) and "bfloat16" in str(refused.exception)
