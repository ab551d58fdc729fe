"""Fault suite of ``sumlab serve``: bad requests and bad launches.

A bad request gets a 4xx whose body is JSON with a short message (never a traceback, never more than
a short prefix of what was sent) and the request id, and the server stays healthy. A bad launch is
refused before any server starts: exit code 2 and one line on stderr.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402
from refusals import assert_says, refused_line  # noqa: E402

from sumlab.config import ModelConfig, PeftSettings  # noqa: E402
from sumlab.models.loading import load_model  # noqa: E402
from sumlab.models.peft_methods import add_peft  # noqa: E402
from sumlab.models.tiny import build_tiny_t5  # noqa: E402
from sumlab.serve import launch  # noqa: E402
from sumlab.serve.app import create_app  # noqa: E402
from sumlab.serve.hosts import allowed_hosts  # noqa: E402
from sumlab.serve.registry import load_registry  # noqa: E402
from sumlab.serve.schemas import ServeLimits  # noqa: E402

TOKEN = "fault-token-0123456789abcdef"
LIMITS = ServeLimits(
    max_dialogue_chars=2000, max_new_tokens_cap=32, max_beams_cap=3, default_max_new_tokens=4, max_source_tokens=256
)
LONG_DIALOGUE = "#Person1#: " + "Could we meet at the station at seven tomorrow? " * 30  # ~1,500 characters
SURROGATE = "hi \ud800 there"  # valid JSON ("\ud800"), but no UTF-8 text
LARGE_NAME = "m" * 500_000
MAX_ERROR_BYTES = 2048  # an error body stays small, whatever the request held


@pytest.fixture(scope="module")
def registry(tiny_model_dir):
    return load_registry(ModelConfig(name_or_path=str(tiny_model_dir), dtype="float32"))


@pytest.fixture(scope="module")
def client(registry):
    """The app as ``sumlab serve`` builds it on loopback, with a token."""
    app = create_app(registry, LIMITS, api_token=TOKEN, allowed_hosts=allowed_hosts())
    with TestClient(app, base_url="http://127.0.0.1:8000", headers={"Authorization": f"Bearer {TOKEN}"}) as test:
        yield test


def raw(text: str) -> bytes:
    """A JSON body as a client sends it (``json.dumps`` escapes a lone surrogate as ``\\ud800``)."""
    return text.encode("utf-8")


SUMMARIZE = "/v1/summarize"
# name: (method, path, body (dict, or bytes sent as is), extra headers, status, words in the error)
REQUEST_CASES = {
    "lone-surrogate-in-dialogue": ("POST", SUMMARIZE, {"dialogue": SURROGATE}, {}, 422, ["not valid Unicode"]),
    "lone-surrogate-in-model-name": (
        "POST",
        SUMMARIZE,
        {"dialogue": "hi", "model": "a\udfff"},
        {},
        422,
        ["model", "not valid Unicode"],
    ),
    "lone-surrogate-in-one-batch-item": (
        "POST",
        "/v1/summarize/batch",
        {"items": [{"dialogue": "fine"}, {"dialogue": SURROGATE}]},
        {},
        422,
        ["items.1.dialogue"],
    ),
    "60k-models-to-compare": (
        "POST",
        "/v1/compare",
        {"dialogue": "hi", "models": [f"m{i}" for i in range(60_000)]},
        {},
        422,
        ["models", "at most 16"],
    ),
    "a-model-twice-in-compare": ("POST", "/v1/compare", {"dialogue": "hi", "models": ["base", "base"]}, {}, 422, []),
    "2000-dialogues-in-a-batch": (
        "POST",
        "/v1/summarize/batch",
        {"dialogues": ["hi"] * 2000},
        {},
        422,
        ["dialogues", "at most 1024"],
    ),
    "max-new-tokens-as-a-string": (
        "POST",
        SUMMARIZE,
        {"dialogue": "hi", "generation": {"max_new_tokens": "4"}},
        {},
        422,
        ["generation.max_new_tokens", "valid integer"],
    ),
    "max-new-tokens-as-true": (
        "POST",
        SUMMARIZE,
        {"dialogue": "hi", "generation": {"max_new_tokens": True}},
        {},
        422,
        ["generation.max_new_tokens"],
    ),
    "num-beams-as-a-float": ("POST", SUMMARIZE, {"dialogue": "hi", "generation": {"num_beams": 2.0}}, {}, 422, []),
    "length-penalty-as-a-string": (
        "POST",
        SUMMARIZE,
        {"dialogue": "hi", "generation": {"length_penalty": "1.0"}},
        {},
        422,
        ["generation.length_penalty"],
    ),
    "generation-as-a-string": ("POST", SUMMARIZE, {"dialogue": "hi", "generation": "fast"}, {}, 422, []),
    "500kb-model-name": (
        "POST",
        SUMMARIZE,
        {"dialogue": "hi", "model": LARGE_NAME},
        {},
        422,
        ["at most 64 characters"],
    ),
    "unknown-model": ("POST", SUMMARIZE, {"dialogue": "hi", "model": "nope"}, {}, 404, ["unknown model 'nope'"]),
    "500kb-unknown-key": ("POST", SUMMARIZE, {"dialogue": "hi", LARGE_NAME: 1}, {}, 422, ["not permitted", "..."]),
    "dialogue-over-the-limit": ("POST", SUMMARIZE, {"dialogue": "x" * 2001}, {}, 422, ["max_dialogue_chars"]),
    "prompt-over-the-token-limit": (
        "POST",
        SUMMARIZE,
        {"dialogue": LONG_DIALOGUE},
        {},
        422,
        ["dialogue gives a prompt of", "limit of 256", "--max-source-tokens", "does not cut"],
    ),
    "one-batch-prompt-over-the-token-limit": (
        "POST",
        "/v1/summarize/batch",
        {"dialogues": ["#Person1#: Hi.", LONG_DIALOGUE]},
        {},
        422,
        ["dialogues[1]", "limit of 256"],
    ),
    "blank-dialogue": ("POST", SUMMARIZE, {"dialogue": " \n "}, {}, 422, ["the dialogue is empty"]),
    "malformed-json": ("POST", SUMMARIZE, b'{"dialogue": "hi",', {}, 422, ["malformed JSON"]),
    "bytes-that-are-not-utf-8": ("POST", SUMMARIZE, b'{"dialogue": "\xff\xfe"}', {}, 400, ["parsing the body"]),
    "json-nested-100k-deep": ("POST", SUMMARIZE, b"[" * 100_000 + b"]" * 100_000, {}, 400, ["parsing the body"]),
    "body-over-the-limit": ("POST", SUMMARIZE, b"x" * (LIMITS.max_body_bytes + 1), {}, 413, ["max_body_bytes"]),
    "foreign-host": ("GET", "/v1/models", None, {"Host": "rebound.example.com"}, 400, ["invalid host", "rebound"]),
    "empty-host": ("GET", "/v1/models", None, {"Host": ""}, 400, ["invalid host"]),
    "wrong-bearer-token": ("GET", "/v1/models", None, {"Authorization": "Bearer wrong"}, 401, ["invalid bearer"]),
    "wrong-method": ("GET", SUMMARIZE, None, {}, 405, ["Method Not Allowed"]),
    "unknown-path": ("GET", "/v1/" + "x" * 5000, None, {}, 404, ["Not Found"]),
}


@pytest.mark.parametrize("name", list(REQUEST_CASES))
def test_bad_request_is_a_short_json_4xx_and_the_server_stays_healthy(client, name):
    method, path, body, headers, status, words = REQUEST_CASES[name]
    if isinstance(body, dict):
        body = raw(json.dumps(body))
    headers = {**headers, "X-Request-ID": f"fault-{name}"}
    if body is not None:
        headers.setdefault("Content-Type", "application/json")
    response = client.request(method, path, content=body, headers=headers)
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"].startswith("application/json")
    assert len(response.content) <= MAX_ERROR_BYTES, f"{len(response.content)} bytes: input echoed back?"
    assert "Traceback" not in response.text and 'File "' not in response.text
    error = response.json()
    assert isinstance(error["error"], str) and "\n" not in error["error"] and len(error["error"]) <= 500
    for word in words:
        assert word in error["error"], error
    assert response.headers["x-request-id"] == f"fault-{name}" == error["request_id"]
    health = client.get("/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"


# --- bad launches: refused before anything listens --------------------------------------------------


@pytest.fixture()
def no_listening(monkeypatch):
    """Fail the test if a launch gets as far as starting uvicorn."""

    def refuse(*args, **kwargs):
        raise AssertionError("the server was started")

    monkeypatch.setattr(launch, "draining_server", refuse)


@pytest.fixture(scope="module")
def adapter_of_other_shapes(tiny_model_dir, tmp_path_factory) -> Path:
    """A LoRA adapter of a wider tiny T5 (d_model 48), that records the tiny model as its base."""
    root = tmp_path_factory.mktemp("other-shapes")
    vocab = load_model(ModelConfig(name_or_path=str(tiny_model_dir))).config.vocab_size
    build_tiny_t5(vocab, d_model=48, d_ff=64, num_layers=2, num_heads=4, seed=0).save_pretrained(root / "wide")
    wide = add_peft(load_model(ModelConfig(name_or_path=str(root / "wide"))), PeftSettings(method="lora", r=4, alpha=4))
    wide.save_pretrained(root / "adapter")
    config_path = root / "adapter" / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = str(tiny_model_dir)  # it claims the served base, but has other shapes
    config_path.write_text(json.dumps(config))
    return root / "adapter"


@pytest.fixture(scope="module")
def prefix_adapter(tiny_model_dir, tmp_path_factory) -> Path:
    """A prefix tuning adapter of the tiny model: virtual tokens, nothing CTranslate2 can merge."""
    out = tmp_path_factory.mktemp("prefix") / "adapter"
    base = load_model(ModelConfig(name_or_path=str(tiny_model_dir), dtype="float32"))
    add_peft(base, PeftSettings(method="prefix", num_virtual_tokens=4)).save_pretrained(out)
    return out


def launch_cases(
    tiny_model_dir: Path, other_shapes: Path | None, prefix: Path | None
) -> dict[str, tuple[list[str], dict, list[str]]]:
    """name: (arguments after ``sumlab serve``, environment, words the error line holds)."""
    model = ["--model", str(tiny_model_dir)]
    fast = [*model, "--engine", "ctranslate2"]
    return {
        "all-interfaces-without-token": (
            [*model, "--host", "0.0.0.0"],
            {},
            ["--host 0.0.0.0", "--api-key-env", "--insecure-no-auth"],
        ),
        "public-address-without-token": ([*model, "--host", "192.0.2.7"], {}, ["beyond loopback", "--api-key-env"]),
        "allowed-host-with-scheme": ([*model, "--allowed-host", "http://example.org"], {}, ["--allowed-host"]),
        "allowed-host-with-port": ([*model, "--allowed-host", "example.org:8000"], {}, ["without port"]),
        "allowed-host-with-space": ([*model, "--allowed-host", "a b"], {}, ["not a host name"]),
        "negative-drain-timeout": ([*model, "--drain-timeout", "-1"], {}, ["--drain-timeout", "0 or more"]),
        "nan-drain-timeout": ([*model, "--drain-timeout", "nan"], {}, ["--drain-timeout"]),
        "token-variable-unset": ([*model, "--api-key-env", "SUMLAB_FAULT_UNSET"], {}, ["SUMLAB_FAULT_UNSET"]),
        "token-variable-empty": ([*model, "--api-key-env", "SUMLAB_FAULT_EMPTY"], {"SUMLAB_FAULT_EMPTY": " "}, []),
        "adapter-name-unsafe": ([*model, "--adapter", "../x=/tmp"], {}, ["invalid name"]),
        "merged-path-missing": ([*model, "--merged", "m=/no/such/model"], {}, ["path not found"]),
        "base-is-an-adapter": (
            ["--model", str(prefix)],
            {},
            ["is an adapter, and serving starts from a full model", "--adapter NAME=PATH"],
        ),
        "adapter-of-other-shapes": (
            [*model, "--adapter", f"wide={other_shapes}"],
            {},
            ["does not fit", "size mismatch", "torch.Size([4, 48])", "torch.Size([4, 32])"],
        ),
        "unknown-engine": ([*model, "--engine", "onnx"], {}, ["--engine 'onnx' is not one of", "ctranslate2"]),
        "compute-type-without-ctranslate2": (
            [*model, "--compute-type", "int8"],
            {},
            ["--compute-type int8 is for --engine ctranslate2", "--dtype"],
        ),
        "unknown-compute-type": ([*fast, "--compute-type", "fp8"], {}, ["--compute-type 'fp8' is not one of"]),
        "float16-on-a-cpu": ([*fast, "--compute-type", "float16"], {}, ["float16 needs a CUDA GPU", "int8"]),
        "prefix-adapter-with-ctranslate2": (
            [*fast, "--adapter", f"p={prefix}"],
            {},
            ["prefix tuning", "virtual tokens", "use --engine torch"],
        ),
    }


LAUNCH_CASES = list(launch_cases(Path("m"), None, None))
NEEDS_CTRANSLATE2 = {"unknown-compute-type", "float16-on-a-cpu", "prefix-adapter-with-ctranslate2"}


def skip_without_ctranslate2(name: str) -> None:
    """Skip a case that needs the optional package, or a CPU-only machine, where it has neither."""
    if name not in NEEDS_CTRANSLATE2:
        return
    ctranslate2 = pytest.importorskip("ctranslate2")
    if name == "float16-on-a-cpu" and ctranslate2.get_cuda_device_count():
        pytest.skip("this machine has a CUDA GPU")


@pytest.mark.parametrize("name", LAUNCH_CASES)
def test_bad_launch_is_one_line_and_exit_code_2(
    name, tiny_model_dir, adapter_of_other_shapes, prefix_adapter, no_listening, tmp_path, monkeypatch, capsys
):
    skip_without_ctranslate2(name)
    arguments, environment, words = launch_cases(tiny_model_dir, adapter_of_other_shapes, prefix_adapter)[name]
    cache = tmp_path / "cache"
    monkeypatch.setenv("SUMLAB_CACHE", str(cache))
    monkeypatch.delenv("SUMLAB_FAULT_UNSET", raising=False)
    for variable, value in environment.items():
        monkeypatch.setenv(variable, value)
    assert_says(refused_line(["serve", *arguments], monkeypatch, capsys), *words)
    assert not cache.exists() or not any((cache / "ctranslate2").iterdir()), "refused before converting anything"
