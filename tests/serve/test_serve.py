"""Tests for sumlab.serve: the API contract, mixed-adapter batches, limits, auth, errors, metrics, the command.

The adapters are not trained: each is a fresh PEFT adapter on the tiny base with its weights moved
by seeded noise, so that the models differ from the base and from each other in seconds.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

import typer  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from sumlab.cli.serve import serve_command  # noqa: E402
from sumlab.config import GenerationSettings, ModelConfig, PeftSettings  # noqa: E402
from sumlab.errors import SumlabError  # noqa: E402
from sumlab.generation.batching import summarize  # noqa: E402
from sumlab.models.adapters import attach_adapter, merge_adapter  # noqa: E402
from sumlab.models.loading import load_model, load_tokenizer  # noqa: E402
from sumlab.models.peft_methods import add_peft
from sumlab.serve import launch  # noqa: E402
from sumlab.serve.app import create_app  # noqa: E402
from sumlab.serve.hosts import allowed_hosts, host_of  # noqa: E402
from sumlab.serve.launch import plan_listener, plan_server, read_token  # noqa: E402
from sumlab.serve.registry import NamedPath, load_registry, parse_named_path  # noqa: E402
from sumlab.serve.schemas import ServeLimits  # noqa: E402
from sumlab.text.encoding import prompt_ids  # noqa: E402
from sumlab.text.prompts import TEMPLATES, render_prompt  # noqa: E402

TOKEN = "test-token-0123456789abcdef"
MAX_NEW = 12
LIMITS = ServeLimits(
    max_batch_size=16,
    batch_wait_ms=20,
    max_dialogue_chars=2000,
    max_body_bytes=16_384,
    max_new_tokens_cap=32,
    max_beams_cap=3,
    max_batch_items=16,
    default_max_new_tokens=MAX_NEW,
)


def base_config(model_dir: Path) -> ModelConfig:
    return ModelConfig(name_or_path=str(model_dir), dtype="float32")


def save_noisy_adapter(model_dir: Path, out: Path, settings: PeftSettings, seed: int, scale: float = 0.3) -> Path:
    """A fresh PEFT adapter on the tiny base, its trainable weights moved by seeded noise, saved to ``out``."""
    config = base_config(model_dir)
    model = add_peft(load_model(config), settings)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(torch.randn(parameter.shape, generator=generator) * scale)
    model.save_pretrained(out)
    load_tokenizer(config).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def adapters(tiny_model_dir, tmp_path_factory) -> dict[str, Path]:
    """Two LoRA adapters: ``a`` as an adapter directory, ``b`` as a run directory that recorded its prompt."""
    root = tmp_path_factory.mktemp("serve-adapters")
    lora = PeftSettings(method="lora", r=4, alpha=4)
    a = save_noisy_adapter(tiny_model_dir, root / "a", lora, seed=1)
    run_b = root / "b-run"
    save_noisy_adapter(tiny_model_dir, run_b / "model", lora, seed=2)
    (run_b / "prompt.txt").write_text(TEMPLATES["brief"], encoding="utf-8")
    return {"a": a, "b": run_b}


@pytest.fixture(scope="module")
def registry(tiny_model_dir, adapters):
    entries = [NamedPath(name, path) for name, path in adapters.items()]
    return load_registry(base_config(tiny_model_dir), entries)


@pytest.fixture(scope="module")
def dialogues(dialogsum_dir) -> list[str]:
    """Real DialogSum dialogues of different lengths (so batches are padded)."""
    with (dialogsum_dir / "validation.jsonl").open(encoding="utf-8") as handle:
        rows = [json.loads(next(handle)) for _ in range(40)]
    chosen = sorted((row["dialogue"] for row in rows if len(row["dialogue"]) < 1500), key=len)
    return [chosen[0], chosen[len(chosen) // 2], chosen[-1]]


@pytest.fixture()
def client(registry):
    with TestClient(create_app(registry, LIMITS)) as test_client:
        yield test_client


@pytest.fixture()
def auth_client(registry):
    with TestClient(create_app(registry, LIMITS, api_token=TOKEN)) as test_client:
        yield test_client


def alone(model_dir: Path, adapter: Path | None, dialogues: list[str], template: str, num_beams: int = 1) -> list[str]:
    """Each dialogue summarized on its own by a fresh base with only ``adapter`` attached."""
    config = base_config(model_dir)
    model = load_model(config)
    if adapter is not None:
        model = attach_adapter(model, adapter, "only")
    settings = GenerationSettings(max_new_tokens=MAX_NEW, num_beams=num_beams)  # neither cuts a prompt
    return [summarize(model, load_tokenizer(config), [dialogue], settings, template)[0] for dialogue in dialogues]


def assert_error(response, status: int, *needles: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body["error"], str) and body["error"]
    assert "Traceback" not in response.text
    for needle in needles:
        assert needle in body["error"], body
    return body


# --- the API contract ----------------------------------------------------------------------------


def test_models_lists_the_base_and_each_adapter_with_the_limits(client):
    body = client.get("/v1/models").json()
    assert [model["name"] for model in body["models"]] == ["base", "a", "b"]
    torch_float32 = {"engine": "torch", "compute_type": "float32"}
    assert body["models"][0] == {
        "name": "base",
        "kind": "base",
        "method": None,
        "mixed_batching": True,
        **torch_float32,
    }
    assert body["models"][1] == {
        "name": "a",
        "kind": "adapter",
        "method": "lora",
        "mixed_batching": True,
        **torch_float32,
    }
    assert body["default"] == "base"
    assert body["limits"]["max_dialogue_chars"] == 2000 and body["limits"]["max_new_tokens_cap"] == 32
    assert body["limits"]["max_source_tokens"] == LIMITS.max_source_tokens


def test_health_is_open_and_reports_the_server(auth_client):
    response = auth_client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "models": 3, "queue_depth": 0, "auth": True}


def test_summarize_returns_summary_model_latency_and_tokens(client, dialogues):
    response = client.post("/v1/summarize", json={"dialogue": dialogues[0], "model": "a"})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"summary", "model", "latency_ms", "tokens", "batch_size"}
    assert body["model"] == "a" and isinstance(body["summary"], str) and body["summary"]
    assert body["latency_ms"] > 0 and body["batch_size"] >= 1
    assert 0 < body["tokens"]["output"] <= MAX_NEW and body["tokens"]["input"] > 10


def test_summarize_defaults_to_the_base_model(client, dialogues):
    assert client.post("/v1/summarize", json={"dialogue": dialogues[0]}).json()["model"] == "base"


def test_batch_takes_items_or_dialogues_and_keeps_their_order(client, dialogues):
    items = [
        {"dialogue": dialogues[0], "model": "b"},
        {"dialogue": dialogues[1]},
        {"dialogue": dialogues[2], "model": "a"},
    ]
    by_items = client.post("/v1/summarize/batch", json={"items": items, "model": "base"}).json()
    assert [result["model"] for result in by_items["results"]] == ["b", "base", "a"]
    by_dialogues = client.post("/v1/summarize/batch", json={"dialogues": dialogues, "model": "a"}).json()
    assert [result["model"] for result in by_dialogues["results"]] == ["a", "a", "a"]
    assert by_dialogues["results"][2]["summary"] == by_items["results"][2]["summary"]
    assert by_dialogues["latency_ms"] > 0


def test_compare_answers_side_by_side_in_the_order_asked(client, dialogues):
    response = client.post("/v1/compare", json={"dialogue": dialogues[1], "models": ["b", "base", "a"]})
    assert response.status_code == 200
    body = response.json()
    assert body["dialogue_chars"] == len(dialogues[1])
    assert [result["model"] for result in body["results"]] == ["b", "base", "a"]
    assert len({result["summary"] for result in body["results"]}) == 3, "the adapters should change the summary"
    assert all(result["batch_size"] == 3 for result in body["results"]), "one generate call for all three"


def test_openapi_documents_every_endpoint(client):
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/v1/summarize", "/v1/summarize/batch", "/v1/compare", "/v1/models", "/health", "/metrics"):
        assert path in paths


def test_web_page_is_self_contained_with_a_strict_policy(client):
    response = client.get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'sha256-" in policy and "unsafe-inline" not in policy
    assert "#Person1#" in response.text and "/v1/compare" in response.text
    assert not re.search(r"""(src|href)=["']?https?://""", response.text), "no resources from elsewhere"
    assert ".innerHTML" not in response.text, "output is set with textContent"


# --- mixed-adapter batches equal each model alone ------------------------------------------------


@pytest.mark.parametrize("num_beams", [1, 3])
def test_mixed_adapter_batch_equals_each_model_alone(client, tiny_model_dir, adapters, dialogues, num_beams):
    models = ["base", "a", "b"]
    items = [{"dialogue": dialogue, "model": model} for dialogue in dialogues for model in models]
    response = client.post(
        "/v1/summarize/batch", json={"items": items, "generation": {"max_new_tokens": MAX_NEW, "num_beams": num_beams}}
    )
    assert response.status_code == 200
    results = response.json()["results"]
    assert {result["batch_size"] for result in results} == {len(items)}, "all nine in one generate call"
    expected = {
        "base": alone(tiny_model_dir, None, dialogues, TEMPLATES["lab"], num_beams),
        "a": alone(tiny_model_dir, adapters["a"], dialogues, TEMPLATES["lab"], num_beams),
        "b": alone(tiny_model_dir, adapters["b"], dialogues, TEMPLATES["brief"], num_beams),  # its run's prompt
    }
    served = {(item["model"], item["dialogue"]): result["summary"] for item, result in zip(items, results)}
    for model in models:
        assert [served[(model, dialogue)] for dialogue in dialogues] == expected[model], model


def test_every_kind_of_model_equals_itself_alone(tiny_model_dir, adapters, dialogues, tmp_path):
    """DoRA (one adapter at a time), IA3 (a base copy of its own) and a merged model, batched with LoRA."""
    dora = save_noisy_adapter(tiny_model_dir, tmp_path / "dora", PeftSettings(method="dora", r=4, alpha=4), seed=3)
    ia3 = save_noisy_adapter(tiny_model_dir, tmp_path / "ia3", PeftSettings(method="ia3"), seed=4)
    merged = tmp_path / "merged"
    merge_adapter(adapters["a"], merged, base=str(tiny_model_dir))
    registry = load_registry(
        base_config(tiny_model_dir),
        [NamedPath("a", adapters["a"]), NamedPath("d", dora), NamedPath("i", ia3)],
        [NamedPath("m", merged)],
    )
    info = {model.name: model.info() for model in registry}
    assert info["d"]["method"] == "dora" and not info["d"]["mixed_batching"]
    assert info["i"]["method"] == "ia3" and not info["i"]["mixed_batching"]
    assert info["m"]["kind"] == "merged"
    names = ["base", "a", "d", "i", "m"]
    with TestClient(create_app(registry, LIMITS)) as test_client:  # all ten dialogues in one round
        items = [{"dialogue": dialogue, "model": name} for dialogue in dialogues[:2] for name in names]
        results = test_client.post("/v1/summarize/batch", json={"items": items}).json()["results"]
    sizes = {result["model"]: result["batch_size"] for result in results}
    assert sizes == {"base": 4, "a": 4, "d": 2, "i": 2, "m": 2}, "base and LoRA mix; the others group by model"
    served = {(item["model"], item["dialogue"]): result["summary"] for item, result in zip(items, results)}
    sources = {"base": None, "a": adapters["a"], "d": dora, "i": ia3}
    for name, adapter in sources.items():
        assert [served[(name, d)] for d in dialogues[:2]] == alone(
            tiny_model_dir, adapter, dialogues[:2], TEMPLATES["lab"]
        )
    merged_alone = load_model(base_config(merged))
    tokenizer = load_tokenizer(base_config(merged))
    settings = GenerationSettings(max_new_tokens=MAX_NEW)
    assert [served[("m", d)] for d in dialogues[:2]] == [
        summarize(merged_alone, tokenizer, [d], settings)[0] for d in dialogues[:2]
    ]


def test_concurrent_requests_all_succeed_and_share_batches(client, dialogues):
    bodies = [{"dialogue": dialogues[i % 3], "model": ["base", "a", "b"][i % 3]} for i in range(16)]
    malformed = [b"{", b'{"dialogue": 5}', b"[]", b'{"dialogue": "hi", "model": "nope"}'] * 2

    def post(body):
        return client.post("/v1/summarize", json=body)

    def post_malformed(raw):
        return client.post("/v1/summarize", content=raw, headers={"content-type": "application/json"})

    with ThreadPoolExecutor(max_workers=8) as pool:
        good = list(pool.map(post, bodies))
        bad = list(pool.map(post_malformed, malformed))
    assert [response.status_code for response in good] == [200] * len(bodies)
    assert all(400 <= response.status_code < 500 for response in bad)
    assert max(response.json()["batch_size"] for response in good) > 1, "concurrent requests were batched"
    expected = client.post("/v1/summarize", json=bodies[4]).json()["summary"]
    assert good[4].json()["summary"] == expected, "batching doesn't change a summary"


# --- prompt length: never cut; over the limit is a 422 -------------------------------------------


@pytest.fixture(scope="module")
def long_dialogue(dialogsum_dir, registry) -> str:
    """A real dialogue under 2,000 characters whose prompt has over 600 tokens (the server once cut them at 512)."""
    runner = registry.get("base").runner
    with (dialogsum_dir / "validation.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            dialogue = json.loads(line)["dialogue"]
            if len(dialogue) < 2000 and len(runner.encode(render_prompt(TEMPLATES["lab"], dialogue))) > 600:
                return dialogue
    raise AssertionError("no such dialogue in the validation split")


def test_a_long_prompt_is_served_whole_and_its_input_tokens_count_all_of_it(client, tiny_model_dir, long_dialogue):
    tokenizer = load_tokenizer(base_config(tiny_model_dir))
    whole = prompt_ids(tokenizer, TEMPLATES["lab"], [long_dialogue], None, causal=False)[0]
    response = client.post("/v1/summarize", json={"dialogue": long_dialogue})
    assert response.status_code == 200, response.text
    assert response.json()["tokens"]["input"] == len(whole) > 600
    assert response.json()["summary"] == alone(tiny_model_dir, None, [long_dialogue], TEMPLATES["lab"])[0]


def test_a_prompt_over_the_token_limit_is_a_422_naming_it_and_nothing_is_queued(registry, long_dialogue, dialogues):
    app = create_app(registry, dataclasses.replace(LIMITS, max_source_tokens=512))
    metrics = app.state.server.metrics
    with TestClient(app) as test_client:
        response = test_client.post("/v1/summarize", json={"dialogue": long_dialogue, "model": "a"})
        body = assert_error(
            response, 422, "dialogue gives a prompt of", "model a", "limit of 512", "--max-source-tokens"
        )
        assert body["field"] == "dialogue" and body["limit"] == 512 and body["tokens"] > 600
        batch = {"dialogues": [dialogues[0], long_dialogue, dialogues[1]]}
        assert_error(test_client.post("/v1/summarize/batch", json=batch), 422, "dialogues[1] gives", "limit of 512")
        compare = {"dialogue": long_dialogue, "models": ["base", "b"]}
        assert_error(test_client.post("/v1/compare", json=compare), 422, "model base", "limit of 512")
        assert sum(metrics.value("sumlab_summaries_total", model=name) for name in ("base", "a", "b")) == 0
        assert test_client.get("/health").json()["queue_depth"] == 0
        assert test_client.post("/v1/summarize", json={"dialogue": dialogues[0]}).status_code == 200


# --- --engine ctranslate2: each model an engine of its own, the torch summaries --------------------


@pytest.fixture(scope="module")
def engine_registry(tiny_model_dir, adapters, tmp_path_factory):
    """The tiny base and both adapters as CTranslate2 float32 engines, converted into a temporary cache."""
    pytest.importorskip("ctranslate2")
    cache = tmp_path_factory.mktemp("ctranslate2-cache")
    entries = [NamedPath(name, path) for name, path in adapters.items()]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SUMLAB_CACHE", str(cache))
        registry = load_registry(base_config(tiny_model_dir), entries, engine="ctranslate2", compute_type="float32")
    return registry, cache


@pytest.mark.parametrize("num_beams", [1, 3])
def test_ctranslate2_serves_the_base_and_each_lora_adapter_as_torch_does(client, engine_registry, dialogues, num_beams):
    registry, cache = engine_registry
    items = [{"dialogue": dialogue, "model": model} for dialogue in dialogues for model in ("base", "a", "b")]
    body = {"items": items, "generation": {"max_new_tokens": MAX_NEW, "num_beams": num_beams}}
    with TestClient(create_app(registry, LIMITS)) as engine_client:
        models = engine_client.get("/v1/models").json()["models"]
        response = engine_client.post("/v1/summarize/batch", json=body)
    assert response.status_code == 200, response.text
    served = response.json()["results"]
    expected = client.post("/v1/summarize/batch", json=body).json()["results"]
    assert [result["summary"] for result in served] == [result["summary"] for result in expected]
    assert [result["tokens"] for result in served] == [result["tokens"] for result in expected]
    assert {result["batch_size"] for result in served} == {3}, "each engine runs its own dialogues"
    assert [(model["name"], model["engine"], model["compute_type"], model["mixed_batching"]) for model in models] == [
        ("base", "ctranslate2", "float32", False),
        ("a", "ctranslate2", "float32", False),
        ("b", "ctranslate2", "float32", False),
    ]
    assert len(list((cache / "ctranslate2").iterdir())) == 3, "the base, and each adapter merged and converted"


def test_serve_hands_the_engine_options_and_the_token_limit_on(registry, tiny_model_dir, monkeypatch):
    pytest.importorskip("ctranslate2")
    loaded, started = [], []

    class NotStarted:
        def __init__(self, config, begin_shutdown):
            started.append(config)

        def run(self):
            pass

    monkeypatch.setattr("sumlab.serve.registry.load_registry", lambda *args: loaded.append(args) or registry)
    monkeypatch.setattr(launch, "draining_server", NotStarted)
    serve_command(model=str(tiny_model_dir), engine="ctranslate2", compute_type="float32", max_source_tokens=300)
    assert loaded[0][-2:] == ("ctranslate2", "float32")
    assert started[0].app.state.server.limits.max_source_tokens == 300


# --- bad input: right status, JSON message, never a traceback -------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "status", "needles"),
    [
        ("/v1/summarize", {"dialogue": "x" * 2001}, 422, ["2001 characters", "limit of 2000", "max_dialogue_chars"]),
        (
            "/v1/summarize",
            {"dialogue": "hi", "generation": {"max_new_tokens": 33}},
            422,
            ["max_new_tokens=33", "limit of 32", "max_new_tokens_cap"],
        ),
        ("/v1/summarize", {"dialogue": "hi", "generation": {"num_beams": 4}}, 422, ["num_beams=4", "limit of 3"]),
        ("/v1/summarize", {"dialogue": "hi", "model": "nope"}, 404, ["unknown model 'nope'", "base, a, b"]),
        ("/v1/compare", {"dialogue": "hi", "models": ["a", "../x"]}, 404, ["unknown model '../x'"]),
        ("/v1/summarize/batch", {"items": [{"dialogue": "hi", "model": "zz"}]}, 404, ["unknown model 'zz'"]),
        ("/v1/summarize/batch", {"dialogues": ["hi"] * 17}, 422, ["17 dialogues", "limit of 16", "max_batch_items"]),
        ("/v1/summarize/batch", {"dialogues": ["hi", "y" * 2001]}, 422, ["dialogues[1]", "limit of 2000"]),
        (
            "/v1/summarize/batch",
            {"dialogues": ["hi"], "items": [{"dialogue": "hi"}]},
            422,
            ["either items or dialogues"],
        ),
        ("/v1/compare", {"dialogue": "hi", "models": ["a", "a"]}, 422, ["repeated: a"]),
        ("/v1/compare", {"dialogue": "hi", "models": []}, 422, ["models"]),
        ("/v1/summarize", {"dialogue": "   "}, 422, ["the dialogue is empty"]),
        ("/v1/summarize", {"model": "a"}, 422, ["dialogue: Field required"]),
        ("/v1/summarize", {"dialogue": 5}, 422, ["dialogue"]),
        ("/v1/summarize", {"dialogue": "hi", "temperature": 2}, 422, ["temperature"]),
        ("/v1/summarize", {"dialogue": "hi", "generation": {"max_new_tokens": 0}}, 422, ["max_new_tokens"]),
        ("/v1/summarize", [], 422, ["invalid request"]),
    ],
)
def test_bad_input_gets_the_right_status_and_message(client, path, body, status, needles):
    body = assert_error(client.post(path, json=body), status, *needles)
    if status == 404:
        assert body["available"] == ["base", "a", "b"]
    if "limit of" in body["error"]:
        assert isinstance(body["limit"], int), "the limit comes back as a field too"


def test_malformed_json_is_a_json_422(client):
    response = client.post("/v1/summarize", content=b'{"dialogue": "hi",', headers={"content-type": "application/json"})
    assert_error(response, 422, "malformed JSON")


def test_body_over_the_limit_is_413_by_content_length_and_by_actual_size(client):
    assert_error(client.post("/v1/summarize", content=b"x" * 16_385), 413, "16384 bytes", "max_body_bytes")

    def chunks():  # no Content-Length: the server must count what arrives
        for _ in range(20):
            yield b"y" * 1024

    assert_error(client.post("/v1/summarize", content=chunks()), 413, "16384 bytes")


def test_unknown_path_and_wrong_method_are_json(client):
    assert_error(client.get("/v1/nothing"), 404, "Not Found")
    assert_error(client.get("/v1/summarize"), 405, "Method Not Allowed")


def test_unexpected_error_is_a_json_500_without_details(registry, monkeypatch, dialogues):
    runner = registry.get("a").runner

    def broken(*args, **kwargs):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(runner, "generate", broken)
    with TestClient(create_app(registry, LIMITS), raise_server_exceptions=False) as test_client:
        response = test_client.post("/v1/summarize", json={"dialogue": dialogues[0], "model": "a"})
        assert "secret" not in response.text
        assert_error(response, 500, "internal server error")
        monkeypatch.undo()
        assert test_client.post("/v1/summarize", json={"dialogue": dialogues[0]}).status_code == 200, "still serving"


def gate_runner(monkeypatch, runner) -> tuple[threading.Event, threading.Event]:
    """Make ``runner.generate`` wait for the returned ``release`` event; ``entered`` is set once it's called."""
    entered, release = threading.Event(), threading.Event()
    generate = runner.generate

    def gated(*args, **kwargs):
        entered.set()
        release.wait(10)
        return generate(*args, **kwargs)

    monkeypatch.setattr(runner, "generate", gated)
    return entered, release


def wait_until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_full_queue_is_a_503_and_the_server_recovers(registry, monkeypatch, dialogues):
    limits = ServeLimits(max_batch_size=1, batch_wait_ms=0, max_queue=1, default_max_new_tokens=4)
    app = create_app(registry, limits)
    entered, release = gate_runner(monkeypatch, registry.get("base").runner)
    body = {"dialogue": dialogues[0]}
    with TestClient(app) as test_client, ThreadPoolExecutor(max_workers=2) as pool:
        running = pool.submit(test_client.post, "/v1/summarize", json=body)
        assert entered.wait(5)
        queued = pool.submit(test_client.post, "/v1/summarize", json=body)
        wait_until(lambda: app.state.server.batcher.depth == 1)
        response = test_client.post("/v1/summarize", json=body)
        assert_error(response, 503, "busy", "max_queue")
        assert response.headers["retry-after"] == "1"
        release.set()
        assert running.result().status_code == 200 and queued.result().status_code == 200
        assert test_client.post("/v1/summarize", json=body).status_code == 200


async def request_then_leave(app, body: dict, leave_when) -> list[dict]:
    """POST ``body`` to /v1/summarize straight through ASGI; the client disconnects once ``leave_when()``."""
    raw = json.dumps(body).encode()
    incoming = [{"type": "http.request", "body": raw, "more_body": False}]

    async def receive():
        if incoming:
            return incoming.pop(0)
        await asyncio.to_thread(wait_until, leave_when)
        return {"type": "http.disconnect"}

    sent = []

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/summarize",
        "raw_path": b"/v1/summarize",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    await app(scope, receive, send)
    return sent


def test_client_that_leaves_is_dropped_from_the_queue_and_others_go_on(registry, monkeypatch, dialogues):
    app = create_app(registry, ServeLimits(max_batch_size=1, batch_wait_ms=0, default_max_new_tokens=4))
    entered, release = gate_runner(monkeypatch, registry.get("base").runner)
    batcher, metrics = app.state.server.batcher, app.state.server.metrics
    with TestClient(app) as test_client, ThreadPoolExecutor(max_workers=1) as pool:
        running = pool.submit(test_client.post, "/v1/summarize", json={"dialogue": dialogues[1]})
        assert entered.wait(5)
        # queued behind the gated request, then the client leaves
        sent = asyncio.run(request_then_leave(app, {"dialogue": dialogues[0]}, lambda: batcher.depth == 1))
        assert sent[0]["status"] == 499
        release.set()
        assert running.result().status_code == 200
        wait_until(lambda: metrics.value("sumlab_cancelled_total", stage="queued") == 1)
        assert test_client.post("/v1/summarize", json={"dialogue": dialogues[2]}).status_code == 200
        assert metrics.value("sumlab_summaries_total", model="base") == 2, "the dropped request was never generated"


def test_generation_stops_early_when_its_clients_have_left(registry, monkeypatch, dialogues):
    app = create_app(registry, LIMITS)
    runner = registry.get("a").runner
    entered, release, outputs = threading.Event(), threading.Event(), []
    generate = runner.generate

    def gated(*args, **kwargs):
        entered.set()
        release.wait(10)
        outputs.extend(generate(*args, **kwargs))
        return outputs

    monkeypatch.setattr(runner, "generate", gated)
    metrics = app.state.server.metrics
    with TestClient(app) as test_client:
        body = {"dialogue": dialogues[0], "model": "a", "generation": {"max_new_tokens": 32}}
        sent = asyncio.run(request_then_leave(app, body, entered.is_set))
        assert sent[0]["status"] == 499
        release.set()
        wait_until(lambda: metrics.value("sumlab_cancelled_total", stage="generating") == 1)
        assert [generated.output_tokens for generated in outputs] == [1], "stopped after the first token"
        monkeypatch.undo()
        response = test_client.post("/v1/summarize", json=body)
        assert response.status_code == 200 and response.json()["tokens"]["output"] > 1


def test_one_lone_surrogate_among_seven_concurrent_requests_fails_alone(client, dialogues):
    bodies = [json.dumps({"dialogue": dialogues[i % 3], "model": ["base", "a", "b"][i % 3]}) for i in range(6)]
    bodies.insert(3, '{"dialogue": "hi \\ud800 there"}')  # valid JSON, but no text UTF-8 can encode

    def post(raw):
        return client.post("/v1/summarize", content=raw.encode(), headers={"content-type": "application/json"})

    with ThreadPoolExecutor(max_workers=7) as pool:
        responses = list(pool.map(post, bodies))
    assert [response.status_code for response in responses] == [200, 200, 200, 422, 200, 200, 200]
    assert_error(responses[3], 422, "dialogue", "not valid Unicode")


def test_a_failing_batch_is_retried_one_by_one_and_fails_only_its_bad_request(registry, monkeypatch, dialogues):
    runner = registry.get("base").runner  # base, a and b share it: one generate call for all three
    generate, sizes = runner.generate, []
    entered, release = threading.Event(), threading.Event()

    def breaks_on_poison(prompts, *args, **kwargs):
        sizes.append(len(prompts))
        if len(sizes) == 1:  # hold the first call, so that the next requests queue up into one batch
            entered.set()
            release.wait(10)
        if any("POISON" in runner.tokenizer.decode(ids) for ids in prompts):
            raise RuntimeError("this dialogue breaks the model")
        return generate(prompts, *args, **kwargs)

    monkeypatch.setattr(runner, "generate", breaks_on_poison)
    app = create_app(registry, LIMITS)
    bodies = [{"dialogue": dialogues[i % 3], "model": ["base", "a", "b"][i % 3]} for i in range(6)]
    bodies.insert(2, {"dialogue": dialogues[1] + " POISON", "model": "a"})
    with TestClient(app, raise_server_exceptions=False) as test_client, ThreadPoolExecutor(max_workers=8) as pool:
        first = pool.submit(test_client.post, "/v1/summarize", json={"dialogue": dialogues[0]})
        assert entered.wait(5)
        pending = [pool.submit(test_client.post, "/v1/summarize", json=body) for body in bodies]
        wait_until(lambda: app.state.server.batcher.depth == len(bodies))
        release.set()
        responses = [future.result() for future in pending]
        assert first.result().status_code == 200
    assert [response.status_code for response in responses] == [200, 200, 500, 200, 200, 200, 200]
    assert_error(responses[2], 500, "internal server error")
    assert sizes == [1, 7, 1, 1, 1, 1, 1, 1, 1], "the batch of seven failed, then each ran alone"
    assert app.state.server.metrics.value("sumlab_generate_failures_total") == 1


def test_shutdown_drains_queued_work_within_the_drain_timeout(registry, monkeypatch, dialogues):
    app = create_app(registry, ServeLimits(max_batch_size=1, batch_wait_ms=0, default_max_new_tokens=4))
    entered, release = gate_runner(monkeypatch, registry.get("base").runner)
    body = {"dialogue": dialogues[0]}
    with TestClient(app) as test_client, ThreadPoolExecutor(max_workers=2) as pool:
        running = pool.submit(test_client.post, "/v1/summarize", json=body)
        assert entered.wait(5)
        queued = pool.submit(test_client.post, "/v1/summarize", json=body)
        wait_until(lambda: app.state.server.batcher.depth == 1)
        app.state.server.begin_shutdown()  # what SIGTERM does (launch.draining_server)
        assert_error(test_client.post("/v1/summarize", json=body), 503, "shutting down")
        release.set()
        assert running.result().status_code == 200 and queued.result().status_code == 200
        assert test_client.get("/health").status_code == 200


def test_work_left_at_the_drain_timeout_gets_a_clean_503(registry, monkeypatch, dialogues):
    limits = ServeLimits(max_batch_size=1, batch_wait_ms=0, default_max_new_tokens=4, drain_timeout_s=0.01)
    app = create_app(registry, limits)
    entered, release = gate_runner(monkeypatch, registry.get("base").runner)
    body = {"dialogue": dialogues[0]}
    with TestClient(app) as test_client, ThreadPoolExecutor(max_workers=2) as pool:
        running = pool.submit(test_client.post, "/v1/summarize", json=body, headers={"X-Request-ID": "running"})
        assert entered.wait(5)
        queued = pool.submit(test_client.post, "/v1/summarize", json=body, headers={"X-Request-ID": "queued"})
        wait_until(lambda: app.state.server.batcher.depth == 1)
        app.state.server.begin_shutdown()
        assert assert_error(queued.result(), 503, "shutting down")["request_id"] == "queued"
        release.set()  # the running call stops at its next token: the time is up
        assert assert_error(running.result(), 503, "shutting down")["request_id"] == "running"


# --- hosts, request ids, the access log ----------------------------------------------------------


def test_host_header_must_name_an_allowed_host(registry):
    app = create_app(registry, LIMITS, allowed_hosts=allowed_hosts(["Summaries.Example.org"]))
    with TestClient(app) as test_client:
        for host in ("127.0.0.1", "127.0.0.1:8000", "localhost:8000", "LOCALHOST", "[::1]:8000", "::1"):
            assert test_client.get("/v1/models", headers={"Host": host}).status_code == 200, host
        assert test_client.get("/v1/models", headers={"Host": "summaries.example.org:443"}).status_code == 200
        for host in ("testserver", "127.0.0.1.rebind.example", "summaries.example.org.evil", "localhost:x", "[::1"):
            assert_error(test_client.get("/v1/models", headers={"Host": host}), 400, "invalid host")
        # probes reach a container by its address: /health answers whatever the Host
        assert test_client.get("/health", headers={"Host": "10.1.2.3:8000"}).status_code == 200


def test_host_header_parsing():
    assert host_of("[::1]:8000") == host_of("::1") == "::1"
    assert host_of("LocalHost:80") == "localhost"
    assert host_of("") is None and host_of("a:b") is None and host_of("[::1]x") is None
    assert allowed_hosts() == {"127.0.0.1", "localhost", "::1"}


def test_binding_beyond_loopback_adds_no_host_name(caplog):
    caplog.set_level(logging.WARNING)
    assert plan_listener("0.0.0.0", 8000, [], False).allowed_hosts == allowed_hosts()
    assert "--allowed-host" in caplog.text
    listener = plan_listener("0.0.0.0", 8000, ["Summaries.Example.org", "[2001:db8::1]"], True)
    assert listener.allowed_hosts == allowed_hosts() | {"summaries.example.org", "2001:db8::1"}
    assert listener.trust_proxy_headers


def test_request_id_is_taken_when_plain_else_made_and_always_returned(client):
    assert client.get("/health", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == "abc-123"
    made = client.get("/health").headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    for bad in ("x" * 65, "has space", "semi;colon", "é"):
        answered = client.get("/health", headers={"X-Request-ID": bad.encode()}).headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", answered), bad
    response = client.post("/v1/summarize", json={"dialogue": "hi", "model": "nope"}, headers={"X-Request-ID": "r-1"})
    assert assert_error(response, 404, "unknown model")["request_id"] == "r-1"
    assert response.headers["x-request-id"] == "r-1"


def test_access_log_has_no_query_string_nor_forwarded_address(client, caplog):
    caplog.set_level(logging.INFO, logger="sumlab.serve.access")
    headers = {"X-Request-ID": "log-1", "X-Forwarded-For": "203.0.113.9"}
    client.get("/v1/models?token=SECRET-123&x=1", headers=headers)
    client.get("/v1/%0Aforged-line", headers={"X-Request-ID": "log-2"})
    lines = {record.getMessage() for record in caplog.records if record.name == "sumlab.serve.access"}
    [line] = [line for line in lines if "id=log-1" in line]
    assert "SECRET" not in line and "token" not in line and "?" not in line
    assert "203.0.113.9" not in line and line.startswith("testclient:")  # the socket's peer
    assert '"GET /v1/models" 200 ' in line
    [forged] = [line for line in lines if "id=log-2" in line]
    assert "\n" not in forged and '"GET /v1/\\nforged-line" 404' in forged, "a newline can't start a log line"


def test_head_health_is_200_without_a_body(client, auth_client):
    for test_client in (client, auth_client):
        response = test_client.head("/health")
        assert response.status_code == 200 and response.content == b""


def test_a_huge_compare_list_is_refused_while_health_answers(registry):
    body = {"dialogue": "hi", "models": [f"m{index}" for index in range(60_000)]}  # 660 KB
    with TestClient(create_app(registry)) as test_client, ThreadPoolExecutor(max_workers=3) as pool:
        refusals = [pool.submit(test_client.post, "/v1/compare", json=body) for _ in range(3)]
        health = [test_client.get("/health").status_code for _ in range(5)]
        errors = [assert_error(future.result(), 422, "at most 16") for future in refusals]
    assert health == [200] * 5
    assert all(detail["type"] == "too_long" for error in errors for detail in error["details"]), "refused by length"


def test_serve_runs_uvicorn_with_the_hardened_options(registry, tiny_model_dir, monkeypatch, caplog):
    started = {}

    class Started:
        def __init__(self, config, begin_shutdown):
            started.update(config=config, begin_shutdown=begin_shutdown)

        def run(self):
            started["ran"] = True

    monkeypatch.setattr("sumlab.serve.registry.load_registry", lambda *args: registry)
    monkeypatch.setattr(launch, "draining_server", Started)
    caplog.set_level(logging.WARNING)
    serve_command(
        model=str(tiny_model_dir),
        host="0.0.0.0",
        insecure_no_auth=True,
        allowed_host=["summaries.example.org"],
        drain_timeout=2.5,
    )
    config = started["config"]
    assert started["ran"] and "--insecure-no-auth" in caplog.text
    assert config.access_log is False and config.proxy_headers is False, "no uvicorn access log, no X-Forwarded-For"
    assert config.timeout_graceful_shutdown == 3 + launch.SHUTDOWN_GRACE_S
    assert "sumlab.serve.access" in config.log_config["loggers"]
    app = config.app
    assert app.state.server.limits.drain_timeout_s == 2.5
    assert started["begin_shutdown"] == app.state.server.begin_shutdown
    with TestClient(app, base_url="http://summaries.example.org") as test_client:
        assert test_client.get("/v1/models").status_code == 200
        assert_error(test_client.get("/v1/models", headers={"Host": "evil.example"}), 400, "invalid host")
    serve_command(model=str(tiny_model_dir), trust_proxy_headers=True)
    assert started["config"].proxy_headers is True


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_uvicorn_shutdown_refuses_new_work_and_answers_what_is_left_with_503(registry, monkeypatch, dialogues):
    """A real uvicorn in a thread: its shutdown (as on SIGTERM) drains, then queued work gets a JSON 503."""
    import httpx
    import uvicorn

    limits = ServeLimits(max_batch_size=1, batch_wait_ms=0, default_max_new_tokens=4, drain_timeout_s=0.01)
    app = create_app(registry, limits, allowed_hosts=allowed_hosts())
    entered, release = gate_runner(monkeypatch, registry.get("base").runner)
    config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning", timeout_graceful_shutdown=20)
    server = launch.draining_server(config, app.state.server.begin_shutdown)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, timeout=30)
    url, body = f"http://127.0.0.1:{config.port}/v1/summarize", {"dialogue": dialogues[0]}
    with ThreadPoolExecutor(max_workers=2) as pool:
        running = pool.submit(httpx.post, url, json=body, timeout=30)
        assert entered.wait(10)
        queued = pool.submit(httpx.post, url, json=body, timeout=30)
        wait_until(lambda: app.state.server.batcher.depth == 1)
        server.should_exit = True  # what uvicorn's SIGTERM handler does
        assert_error(queued.result(), 503, "shutting down")
        release.set()
        assert_error(running.result(), 503, "shutting down")
    thread.join(30)
    assert not thread.is_alive()


# --- auth ----------------------------------------------------------------------------------------


def test_auth_on_requires_the_bearer_token(auth_client, dialogues):
    assert_error(auth_client.get("/v1/models"), 401, "missing bearer token")
    response = auth_client.get("/v1/models", headers={"Authorization": "Bearer wrong"})
    assert_error(response, 401, "invalid bearer token")
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert_error(auth_client.get("/v1/models", headers={"Authorization": TOKEN}), 401)  # no scheme
    assert_error(auth_client.post("/v1/summarize", content=b"{not json"), 401)  # before the body is read
    assert_error(auth_client.get("/metrics"), 401)
    good = {"Authorization": f"Bearer {TOKEN}"}
    assert auth_client.get("/v1/models", headers=good).status_code == 200
    assert auth_client.post("/v1/summarize", json={"dialogue": dialogues[0]}, headers=good).status_code == 200
    assert auth_client.get("/metrics", headers=good).status_code == 200


def test_auth_on_leaves_the_page_health_and_docs_open(auth_client):
    for path in ("/", "/health", "/docs", "/openapi.json"):
        assert auth_client.get(path).status_code == 200, path
    schemes = auth_client.get("/openapi.json").json()["components"]["securitySchemes"]
    assert any(scheme["scheme"] == "bearer" for scheme in schemes.values())


def test_auth_off_needs_no_token(client):
    assert client.get("/v1/models").status_code == 200
    assert client.get("/health").json()["auth"] is False


# --- metrics -------------------------------------------------------------------------------------


def test_metrics_are_prometheus_text_with_the_expected_names(client, dialogues):
    client.post("/v1/summarize", json={"dialogue": dialogues[0], "model": "a"})
    client.post("/v1/summarize", json={"dialogue": dialogues[0], "model": "nope"})
    response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    for name in (
        "sumlab_http_requests_total",
        "sumlab_http_request_duration_seconds_bucket",
        "sumlab_queue_depth",
        "sumlab_batch_size_bucket",
        "sumlab_generate_duration_seconds_count",
        "sumlab_summaries_total",
        "sumlab_cancelled_total",
    ):
        assert f"\n{name}" in text, name
    assert 'sumlab_http_requests_total{endpoint="/v1/summarize",status="200"} 1.0' in text
    assert 'sumlab_http_requests_total{endpoint="/v1/summarize",status="404"} 1.0' in text
    assert 'sumlab_summaries_total{model="a"} 1.0' in text
    assert 'sumlab_cancelled_total{stage="queued"} 0.0' in text, "the stages show before anything is dropped"
    for line in text.splitlines():  # no phantom unlabelled series of a labelled counter
        for labelled in ("sumlab_http_requests_total", "sumlab_summaries_total", "sumlab_cancelled_total"):
            assert not line.startswith(labelled + " "), line
    sample = re.compile(r'^[a-z_]+(\{([a-z_]+="[^"]*",?)+\})? [0-9.e+-]+$|^[a-z_]+\{[^}]*le="\+Inf"[^}]*\} [0-9.]+$')
    for line in text.splitlines():
        assert line.startswith("# HELP ") or line.startswith("# TYPE ") or sample.match(line), line


# --- the command: operator input -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("item", "needle"),
    [
        ("../x=/tmp", "invalid name '../x'"),
        ("a/b=/tmp", "invalid name"),
        ("=/tmp", "invalid name ''"),
        ("base=/tmp", "reserved"),
        ("no-equals-sign", "write --adapter NAME=PATH"),
        ("x=", "the path is empty"),
        ("x=/no/such/adapter", "path not found"),
    ],
)
def test_bad_adapter_option_is_a_sumlab_error(item, needle):
    with pytest.raises(SumlabError, match=re.escape(needle)):
        parse_named_path(item, "--adapter")


def test_plan_checks_paths_names_and_token_before_loading(adapters, tiny_model_dir, tmp_path, monkeypatch):
    with pytest.raises(SumlabError, match="no adapter_config.json"):
        plan_server(None, [f"x={tmp_path}"], [], None)
    with pytest.raises(SumlabError, match="repeated: a"):
        plan_server(None, [f"a={adapters['a']}"], [f"a={tiny_model_dir}"], None)
    with pytest.raises(SumlabError, match="holds an adapter"):
        plan_server(None, [], [f"m={adapters['a']}"], None)
    monkeypatch.delenv("SUMLAB_TEST_TOKEN", raising=False)
    with pytest.raises(SumlabError, match="SUMLAB_TEST_TOKEN: the environment variable is not set"):
        read_token("SUMLAB_TEST_TOKEN")
    monkeypatch.setenv("SUMLAB_TEST_TOKEN", "  ")
    with pytest.raises(SumlabError, match="not set or is empty"):
        read_token("SUMLAB_TEST_TOKEN")
    monkeypatch.setenv("SUMLAB_TEST_TOKEN", TOKEN)
    plan = plan_server(None, [f"a={adapters['a']}", f"b={adapters['b']}"], [], "SUMLAB_TEST_TOKEN")
    assert plan.token == TOKEN and [entry.name for entry in plan.adapters] == ["a", "b"]
    assert plan.model == str(tiny_model_dir), "the base the adapters were trained on"


def test_command_registers_with_typer_and_reports_bad_input_as_sumlab_error():
    app = typer.Typer()
    app.command("serve")(serve_command)
    app.command("other")(lambda: None)
    runner = CliRunner()
    help_text = runner.invoke(app, ["serve", "--help"], terminal_width=200).output
    for option in ("--adapter", "--merged", "--api-key-env", "--max-body-bytes", "--no-batching", "127.0.0.1"):
        assert option in help_text, option
    result = runner.invoke(app, ["serve", "--adapter", "../x=/tmp"])
    assert isinstance(result.exception, SumlabError) and "invalid name" in str(result.exception)
    result = runner.invoke(app, ["serve", "--api-key-env", "SUMLAB_SURELY_UNSET_VARIABLE"])
    assert isinstance(result.exception, SumlabError)


# --- the load test, as a short smoke -------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_load_benchmark_smoke(tmp_path, dialogsum_dir):
    """benchmarks/serve_load.py end to end, briefly: real server processes, zero errors, faults spare others."""
    import subprocess
    import sys

    out = tmp_path / "serve_load.json"
    command = [
        sys.executable,
        "benchmarks/serve_load.py",
        "--seconds",
        "2",
        "--fault-seconds",
        "2",
        "--clients",
        "8",
        "--malformed",
        "12",
        "--out",
        str(out),
    ]
    finished = subprocess.run(
        command, cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=300
    )
    assert finished.returncode == 0, finished.stdout[-2000:] + finished.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["checks"]["zero_errors"] and result["checks"]["faults_spare_other_clients"]
    assert result["checks"]["malformed_get_only_4xx"] and result["checks"]["rss_growth_under_10_percent"] is None
    assert result["arms"]["batching"]["requests"] > 0 and result["faults"]["leavers"]["leavers"]["requests"] > 0
