"""Load and fault test of ``sumlab serve`` on loopback: micro-batching against none, latency, memory, faults.

Run from the repository root (reads ../shared/data/dialogsum, writes benchmarks/results/serve_load.json):

    python benchmarks/serve_load.py --seconds 30        # the recorded run: 30 s per arm
    python benchmarks/serve_load.py --seconds 5 --fault-seconds 4 --out /tmp/serve_load.json   # a CI smoke

It builds a tiny T5 (random init, a BPE tokenizer trained on DialogSum validation text, as the tests
build it) and two LoRA adapters whose weights are moved by seeded noise, then starts the real server
(``sumlab.cli.serve.serve_command``, i.e. ``sumlab serve``) in a child process on 127.0.0.1 with one torch
thread, and drives it with ``--clients`` concurrent httpx clients, each asking for base, a or b in turn
(so the batches mix adapters) with real DialogSum dialogues:

1. ``batching``: the server's defaults with ``--max-batch-size 16``; ``no_batching``: ``--no-batching``.
   Each arm: a short warm-up, then ``--seconds`` of load. Recorded: errors (must be zero), latency
   p50/p95/p99 as the client sees it, throughput, the server's RSS each second, and its growth between
   the first and the last 10 s (must be under 10%; runs under 30 s compare their first and last
   third, and runs under 20 s judge neither it nor the ratio).
2. ``faults`` (the batching server, after its load test), three phases of ``--fault-seconds`` each with half the clients as
   normal clients: ``control`` (nothing else), ``leavers`` (a quarter more clients time out 50-300 ms
   into each request, so their connection closes mid-request), ``malformed`` (a burst of
   ``--malformed`` bad requests a third of the way in). The normal clients must see no error, the
   malformed requests only 4xx, and the server must still answer afterwards; the normal clients'
   latency against the control shows what each fault costs them (on a shared machine, mostly CPU).

Bounded: every phase has a time limit and the client count is fixed; nothing leaves the loopback.
The machine may be shared, so figures vary between runs; the ratio is measured on the same machine
within a minute. The exit code is 1 when a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
DIALOGSUM = REPO.parent / "shared" / "data" / "dialogsum"
MODELS = ("base", "a", "b")
WARMUP_SECONDS = 3.0
RSS_WINDOW_SECONDS = 10.0


# --- the models --------------------------------------------------------------------------------


def read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def build_models(root: Path, seed: int = 0) -> tuple[Path, dict[str, Path]]:
    """The tiny base (saved with its tokenizer) and two noisy LoRA adapters ``a`` and ``b``."""
    import torch

    from sumlab.config import ModelConfig, PeftSettings
    from sumlab.models.loading import load_model
    from sumlab.models.peft_methods import add_peft
    from sumlab.models.tiny import build_tiny_t5, train_tokenizer

    rows = read_jsonl(DIALOGSUM / "validation.jsonl")
    tokenizer = train_tokenizer([row["dialogue"] for row in rows] + [row["summary"] for row in rows], vocab_size=800)
    base_dir = root / "base"
    build_tiny_t5(len(tokenizer), d_model=32, d_ff=64, num_layers=2, num_heads=4, seed=seed).save_pretrained(base_dir)
    tokenizer.save_pretrained(base_dir)
    adapters = {}
    for offset, name in enumerate(("a", "b"), start=1):
        model = add_peft(
            load_model(ModelConfig(name_or_path=str(base_dir), dtype="float32")),
            PeftSettings(method="lora", r=4, alpha=4),
        )
        generator = torch.Generator().manual_seed(seed + offset)
        with torch.no_grad():
            for parameter in model.parameters():
                if parameter.requires_grad:
                    parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.3)
        model.save_pretrained(root / name)
        tokenizer.save_pretrained(root / name)
        adapters[name] = root / name
    return base_dir, adapters


def load_dialogues(count: int = 64, max_chars: int = 2000) -> list[str]:
    rows = read_jsonl(DIALOGSUM / "validation.jsonl")
    return [row["dialogue"] for row in rows if len(row["dialogue"]) <= max_chars][:count]


# --- the server --------------------------------------------------------------------------------


def serve_child(argv: list[str]) -> None:
    """Child process: ``sumlab serve`` as the CLI runs it (``serve-child BASE A B PORT BATCHING``)."""
    from sumlab.cli.serve import serve_command

    base, adapter_a, adapter_b, port, batching = argv
    serve_command(
        model=base,
        adapter=[f"a={adapter_a}", f"b={adapter_b}"],
        port=int(port),
        dtype="float32",
        max_batch_size=16,
        no_batching=batching == "off",
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ServerProcess:
    """The server in a child process with one torch thread; its RSS sampled every second."""

    def __init__(self, base: Path, adapters: dict[str, Path], batching: bool, log_path: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
        self.log = log_path.open("w", encoding="utf-8")
        self.process = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "serve-child",
                str(base),
                str(adapters["a"]),
                str(adapters["b"]),
                str(self.port),
                "on" if batching else "off",
            ],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
        self.samples: list[tuple[float, int]] = []
        self._sampling = threading.Event()

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the server exited with code {self.process.returncode}; see {self.log.name}")
            try:
                if httpx.get(self.url + "/health", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise SystemExit(f"the server did not start within {timeout:.0f} s; see {self.log.name}")

    def rss(self) -> int:
        """Resident memory of the server process, in bytes."""
        try:
            import psutil

            return psutil.Process(self.process.pid).memory_info().rss
        except ImportError:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
            raise

    def start_sampling(self) -> None:
        self.samples.clear()
        self._sampling.set()
        started = time.monotonic()

        def sample():
            while self._sampling.is_set():
                self.samples.append((round(time.monotonic() - started, 2), self.rss()))
                time.sleep(1.0)

        threading.Thread(target=sample, daemon=True).start()

    def stop_sampling(self) -> list[tuple[float, int]]:
        self._sampling.clear()
        return list(self.samples)

    def stop(self) -> None:
        self.process.terminate()  # uvicorn shuts down gracefully on SIGTERM
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


# --- the clients -------------------------------------------------------------------------------


async def client_loop(
    client: httpx.AsyncClient,
    url: str,
    index: int,
    dialogues: list[str],
    deadline: float,
    max_new_tokens: int,
    record: list,
) -> None:
    """One client: requests back to back until ``deadline``, cycling through the models."""
    rng = random.Random(index)
    turn = index
    while time.monotonic() < deadline:
        body = {
            "dialogue": rng.choice(dialogues),
            "model": MODELS[turn % len(MODELS)],
            "generation": {"max_new_tokens": max_new_tokens},
        }
        turn += 1
        started = time.perf_counter()
        try:
            response = await client.post(url + "/v1/summarize", json=body)
            ok = response.status_code == 200 and response.json()["model"] == body["model"]
            status = response.status_code
            batch = response.json().get("batch_size", 0) if ok else 0
        except httpx.HTTPError as exc:
            ok, status, batch = False, type(exc).__name__, 0
        record.append({"ok": ok, "status": status, "seconds": time.perf_counter() - started, "batch": batch})


async def run_clients(url: str, clients: int, seconds: float, dialogues: list[str], max_new_tokens: int) -> list[dict]:
    record: list[dict] = []
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=60.0, limits=limits) as client:
        await asyncio.gather(
            *(client_loop(client, url, i, dialogues, deadline, max_new_tokens, record) for i in range(clients))
        )
    return record


def latency_summary(record: list[dict], seconds: float) -> dict:
    ok = [entry["seconds"] * 1000 for entry in record if entry["ok"]]
    errors = [entry["status"] for entry in record if not entry["ok"]]
    percentiles = np.percentile(ok, [50, 95, 99]).tolist() if ok else [None] * 3
    batches = [entry["batch"] for entry in record if entry["ok"]]
    return {
        "requests": len(record),
        "errors": len(errors),
        "error_kinds": sorted({str(status) for status in errors}),
        "throughput_rps": round(len(ok) / seconds, 3),
        "latency_ms": {
            "p50": _round(percentiles[0]),
            "p95": _round(percentiles[1]),
            "p99": _round(percentiles[2]),
            "mean": _round(float(np.mean(ok)) if ok else None),
        },
        "mean_batch_size": _round(float(np.mean(batches)) if batches else None),
    }


def rss_summary(samples: list[tuple[float, int]], seconds: float) -> dict:
    """RSS growth between the first and last window (10 s, or a third of a shorter run)."""
    window = min(RSS_WINDOW_SECONDS, seconds / 3)
    first = [rss for at, rss in samples if at < window]
    last = [rss for at, rss in samples if at >= seconds - window]
    growth = (np.mean(last) - np.mean(first)) / np.mean(first) * 100 if first and last else None
    return {
        "window_seconds": round(window, 2),
        "first_window_mb": _round(np.mean(first) / 2**20 if first else None),
        "last_window_mb": _round(np.mean(last) / 2**20 if last else None),
        "growth_percent": _round(growth),
        "samples_mb": [[at, round(rss / 2**20, 2)] for at, rss in samples],
    }


def _round(value, digits: int = 2):
    return None if value is None else round(float(value), digits)


def measure_load(server: ServerProcess, args, dialogues: list[str]) -> dict:
    """Warm the server up, then load it with ``args.clients`` clients for ``args.seconds``."""
    warmup = min(WARMUP_SECONDS, args.seconds)
    asyncio.run(run_clients(server.url, args.clients, warmup, dialogues, args.max_new_tokens))
    server.start_sampling()
    record = asyncio.run(run_clients(server.url, args.clients, args.seconds, dialogues, args.max_new_tokens))
    samples = server.stop_sampling()
    metrics = httpx.get(server.url + "/metrics", timeout=5).text
    return {
        **latency_summary(record, args.seconds),
        "rss": rss_summary(samples, args.seconds),
        "server_5xx": count_5xx(metrics),
    }


# --- faults ------------------------------------------------------------------------------------


async def leaver_loop(
    client: httpx.AsyncClient, url: str, index: int, dialogues: list[str], deadline: float, record: list
) -> None:
    """A client that gives up 50-300 ms into each request; httpx then closes that connection mid-request."""
    rng = random.Random(1000 + index)
    while time.monotonic() < deadline:
        body = {"dialogue": rng.choice(dialogues), "model": rng.choice(MODELS), "generation": {"max_new_tokens": 64}}
        try:
            response = await client.post(url + "/v1/summarize", json=body, timeout=rng.uniform(0.05, 0.3))
            record.append(str(response.status_code))
        except httpx.TimeoutException:
            record.append("left")


def malformed_requests(dialogue: str) -> list[tuple[str, str, dict]]:
    """(method, path, httpx keyword arguments) of requests that must get a 4xx."""
    json_header = {"content-type": "application/json"}
    cases = [
        ("POST", "/v1/summarize", {"content": b'{"dialogue": "unterminated', "headers": json_header}),
        ("POST", "/v1/summarize", {"content": b"\xff\xfe not json at all", "headers": json_header}),
        ("POST", "/v1/summarize", {"json": {"dialogue": 42}}),
        ("POST", "/v1/summarize", {"json": {"dialogue": dialogue, "model": "../../etc/passwd"}}),
        ("POST", "/v1/summarize", {"json": {"dialogue": "x" * 9000}}),
        ("POST", "/v1/summarize", {"json": {"dialogue": dialogue, "generation": {"max_new_tokens": 100000}}}),
        ("POST", "/v1/summarize", {"json": {"dialogue": dialogue, "generation": {"num_beams": 64}}}),
        ("POST", "/v1/summarize", {"content": b"y" * 1_100_000, "headers": json_header}),
        ("POST", "/v1/compare", {"json": {"dialogue": dialogue, "models": []}}),
        ("POST", "/v1/summarize/batch", {"json": {"dialogues": [dialogue] * 500}}),
        ("GET", "/v1/summarize", {}),
        (
            "POST",
            "/v1/summarize",
            {"content": b"dialogue=hi", "headers": {"content-type": "application/x-www-form-urlencoded"}},
        ),
    ]
    return cases


async def malformed_burst(url: str, dialogue: str, count: int) -> dict[str, int]:
    cases = malformed_requests(dialogue)
    statuses: dict[str, int] = {}
    async with httpx.AsyncClient(timeout=30.0, limits=httpx.Limits(max_connections=32)) as client:

        async def one(index: int) -> None:
            method, path, kwargs = cases[index % len(cases)]
            try:
                status = str((await client.request(method, url + path, **kwargs)).status_code)
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            statuses[status] = statuses.get(status, 0) + 1

        await asyncio.gather(*(one(index) for index in range(count)))
    return dict(sorted(statuses.items()))


async def fault_phase(url: str, args, dialogues: list[str], fault: str) -> dict:
    """Half the clients run normally for ``--fault-seconds`` beside ``fault``: none, leavers or a malformed burst."""
    deadline = time.monotonic() + args.fault_seconds
    normal: list[dict] = []
    left: list[str] = []
    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    async with httpx.AsyncClient(timeout=60.0, limits=limits) as client, httpx.AsyncClient() as leaving:
        tasks = [
            client_loop(client, url, i, dialogues, deadline, args.max_new_tokens, normal)
            for i in range(args.clients // 2)
        ]
        if fault == "leavers":
            tasks += [leaver_loop(leaving, url, i, dialogues, deadline, left) for i in range(args.clients // 4)]

        async def burst_later():
            await asyncio.sleep(args.fault_seconds / 3)
            return await malformed_burst(url, dialogues[0], args.malformed)

        if fault == "malformed":
            tasks.append(burst_later())
        outcomes = await asyncio.gather(*tasks)
    result = {"normal_clients": latency_summary(normal, args.fault_seconds)}
    if fault == "leavers":
        result["leavers"] = {
            "requests": len(left),
            "left_mid_request": left.count("left"),
            "answered": {status: left.count(status) for status in sorted(set(left) - {"left"})},
        }
    if fault == "malformed":
        result["malformed_statuses"] = outcomes[-1]
    return result


def count_5xx(metrics_text: str) -> int:
    total = 0
    for line in metrics_text.splitlines():
        if line.startswith("sumlab_http_requests_total{") and 'status="5' in line:
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def metric_values(metrics_text: str, name: str) -> dict[str, float]:
    """The samples of a metric with one label, by label value, e.g. ``{'queued': 3.0}``."""
    values = {}
    for line in metrics_text.splitlines():
        if line.startswith(name + "{"):
            labels, value = line[len(name) :].rsplit(" ", 1)
            values[labels.split('"')[1]] = float(value)
    return values


def measure_faults(server: ServerProcess, args, dialogues: list[str]) -> dict:
    """The same normal clients alone (control), beside clients that leave, beside a malformed burst; then a check."""
    result = {
        fault: asyncio.run(fault_phase(server.url, args, dialogues, fault))
        for fault in ("control", "leavers", "malformed")
    }
    after = asyncio.run(run_clients(server.url, 4, 2.0, dialogues, args.max_new_tokens))
    health = httpx.get(server.url + "/health", timeout=5).json()
    metrics = httpx.get(server.url + "/metrics", timeout=5).text
    result["after"] = {"requests": len(after), "errors": sum(not entry["ok"] for entry in after), "health": health}
    result["server"] = {
        "5xx": count_5xx(metrics),
        "dropped_dialogues": metric_values(metrics, "sumlab_cancelled_total"),
    }
    return result


# --- main --------------------------------------------------------------------------------------


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "serve-child":
        serve_child(sys.argv[2:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="load per arm (default 30)")
    parser.add_argument("--fault-seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--malformed", type=int, default=240, help="requests in the malformed burst")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "serve_load.json")
    args = parser.parse_args()
    if not 1 <= args.seconds <= 120 or not 1 <= args.fault_seconds <= 60 or not 1 <= args.clients <= 64:
        parser.error("keep it bounded: --seconds 1-120, --fault-seconds 1-60, --clients 1-64")
    if not DIALOGSUM.is_dir():
        raise SystemExit(f"{DIALOGSUM} not found: this benchmark reads DialogSum validation dialogues from it")

    import tempfile

    import torch

    from sumlab.runtime.fileio import write_json_atomic

    started, load_at_start = time.time(), [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="serve-load-") as tmp:
        workdir = Path(tmp)
        base, adapters = build_models(workdir)
        dialogues = load_dialogues()
        arms, faults = {}, {}
        for name, batching in (("batching", True), ("no_batching", False)):
            server = ServerProcess(base, adapters, batching, workdir / f"server-{name}.log")
            try:
                server.wait_ready()
                print(f"{name}: {args.clients} clients for {args.seconds:.0f} s ...", flush=True)
                arms[name] = measure_load(server, args, dialogues)
                print(
                    f"  {arms[name]['throughput_rps']} req/s, p50 {arms[name]['latency_ms']['p50']} ms, "
                    f"{arms[name]['errors']} errors, RSS growth {arms[name]['rss']['growth_percent']}%",
                    flush=True,
                )
                if batching:  # the faults hit the batching server, after its load test
                    print(f"faults: 3 x {args.fault_seconds:.0f} s ...", flush=True)
                    faults = measure_faults(server, args, dialogues)
            finally:
                server.stop()

    ratio = arms["batching"]["throughput_rps"] / arms["no_batching"]["throughput_rps"]
    malformed_ok = all(status.startswith("4") for status in faults["malformed"]["malformed_statuses"])
    checks = {
        "zero_errors": all(arm["errors"] == 0 and arm["server_5xx"] == 0 for arm in arms.values()),
        # judged from 20 s on: shorter runs see the allocator settle in rather than a leak, and noise
        "rss_growth_under_10_percent": None
        if args.seconds < 20
        else all(
            arm["rss"]["growth_percent"] is not None and arm["rss"]["growth_percent"] < 10 for arm in arms.values()
        ),
        "faults_spare_other_clients": (
            faults["after"]["errors"] == 0
            and all(faults[phase]["normal_clients"]["errors"] == 0 for phase in ("control", "leavers", "malformed"))
        ),
        "malformed_get_only_4xx": malformed_ok and faults["server"]["5xx"] == 0,
        "batching_is_faster": None if args.seconds < 20 else ratio > 1.0,
    }
    result = {
        "benchmark": "serve_load",
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "wall_seconds": round(time.time() - started, 1),
        "setup": {
            "model": "tiny T5 (d_model 32, 2+2 layers, vocab 800, random init) + LoRA adapters a, b (r 4, noisy)",
            "server": "sumlab serve on 127.0.0.1, one torch thread, --max-batch-size 16, --batch-wait-ms 10",
            "clients": args.clients,
            "seconds_per_arm": args.seconds,
            "warmup_seconds": min(WARMUP_SECONDS, args.seconds),
            "max_new_tokens": args.max_new_tokens,
            "models_cycled": list(MODELS),
            "dialogues": len(dialogues),
        },
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_at_start": load_at_start,
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(),
            "torch": torch.__version__,
            "platform": platform.platform(),
        },
        "arms": arms,
        "throughput_ratio_batching_vs_none": round(ratio, 2),
        "faults": faults,
        "checks": checks,
    }
    write_json_atomic(args.out, result)
    print(json.dumps({"throughput_ratio": result["throughput_ratio_batching_vs_none"], "checks": checks}, indent=2))
    print(f"wrote {args.out}")
    return 0 if all(passed for passed in checks.values() if passed is not None) else 1


if __name__ == "__main__":
    sys.exit(main())
