"""MLflow tracking (train.mlflow=true): what a run logs, read back from the store with mlflow's own client.

Skipped without mlflow (``pip install mlflow-skinny`` is enough: the stores here are local file stores).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

mlflow = pytest.importorskip("mlflow")
from mlflow import MlflowClient  # noqa: E402

from sumlab.config import TrainConfig  # noqa: E402
from sumlab.training import trainer as training  # noqa: E402
from sumlab.training.run_dir import read_log  # noqa: E402

MLFLOW_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_ALLOW_FILE_STORE", "MLFLOW_RUN_ID")
STEPS, LOGGING_STEPS = 6, 2


@pytest.fixture(autouse=True)
def clean_mlflow():
    """No MLflow settings from the environment or an earlier test; nothing left behind."""
    saved = {name: os.environ.pop(name, None) for name in MLFLOW_ENV}
    mlflow.set_tracking_uri(None)
    yield
    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri(None)
    for name, value in saved.items():
        os.environ.pop(name, None)
        if value is not None:
            os.environ[name] = value


@pytest.fixture(scope="module")
def mlflow_config(tiny_train_config, tiny_model_dir):
    """A few LoRA steps (one epoch) of the tiny model on 48 real DialogSum rows, with MLflow tracking on.

    ``mlflow_config(name, validation=False, **train)``: with ``validation``, 8 rows to validate on.
    """

    def build(name: str, validation: bool = False, **train: object) -> TrainConfig:
        sections = {
            "name": name,
            "peft": {"method": "lora"},
            "train": {
                "learning_rate": 3e-3,
                "max_steps": STEPS,
                "logging_steps": LOGGING_STEPS,
                "per_device_train_batch_size": 8,
                "max_source_length": 128,
                "max_target_length": 64,
                "tensorboard": False,
                "mlflow": True,
                **train,
            },
        }
        return tiny_train_config(tiny_model_dir, (48, 8 if validation else None), sections)

    return build


def read_back(store_uri: str, experiment_name: str):
    """The store's client and its only run in ``experiment_name``.

    The stores are MLflow file stores, which MLflow 3 opens only with MLFLOW_ALLOW_FILE_STORE; it is set
    here, for reading, and not before training: a run must work without the user setting it.
    """
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"  # clean_mlflow removes it again
    client = MlflowClient(tracking_uri=store_uri)
    experiment = client.get_experiment_by_name(experiment_name)
    assert experiment is not None, f"no experiment {experiment_name!r} in {store_uri}"
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1, [run.info.run_id for run in runs]
    return client, runs[0]


def check_run(client: MlflowClient, run, run_dir: Path) -> None:
    """The run finished, with the config's training parameters and one loss per logging step."""
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert float(params["learning_rate"]) == 3e-3
    assert params["max_steps"] == str(STEPS)
    assert params["logging_steps"] == str(LOGGING_STEPS)
    assert params["per_device_train_batch_size"] == "8"
    assert params["weight_decay"] == "0.01"
    assert params["seed"] == "42"
    assert params["d_model"] == "32" and params["model_type"] == "t5"  # the model's config is logged too

    history = client.get_metric_history(run.info.run_id, "loss")
    assert [metric.step for metric in sorted(history, key=lambda m: m.step)] == list(
        range(LOGGING_STEPS, STEPS + 1, LOGGING_STEPS)
    )
    logged = {record["step"]: record["loss"] for record in read_log(run_dir / "log.jsonl") if "loss" in record}
    assert {metric.step: metric.value for metric in history} == pytest.approx(logged)
    assert [metric.step for metric in client.get_metric_history(run.info.run_id, "train_loss")] == [STEPS]


def test_mlflow_default_store_is_local_under_the_run_dir(mlflow_config, tmp_path):
    run_dir = tmp_path / "run"
    config = mlflow_config("mlflow-default", validation=True)
    result = training.train(config, out_dir=run_dir)

    store = run_dir / "mlruns"
    assert store.is_dir()
    client, run = read_back(store.resolve().as_uri(), "mlflow-default")
    check_run(client, run, result.run_dir)
    # the end-of-epoch evaluation, once: train() reuses it for metrics.json rather than evaluating again
    evaluations = client.get_metric_history(run.info.run_id, "eval_loss")
    assert [metric.step for metric in evaluations] == [STEPS]
    assert evaluations[-1].value == pytest.approx(result.metrics["eval_loss"])
    mlflow.set_tracking_uri(store.resolve().as_uri())  # the fluent API too (clean_mlflow unsets it)
    frame = mlflow.search_runs(experiment_names=["mlflow-default"])
    assert list(frame["run_id"]) == [run.info.run_id]
    assert frame["metrics.train_loss"].notna().all()


def test_mlflow_explicit_tracking_uri(mlflow_config, tmp_path):
    store_uri = (tmp_path / "elsewhere" / "mlruns").as_uri()
    run_dir = tmp_path / "run"
    process_uri = (tmp_path / "process-store").as_uri()
    mlflow.set_tracking_uri(process_uri)  # set earlier in the process (a notebook): the config's URI still wins
    config = mlflow_config("mlflow-explicit", mlflow_tracking_uri=store_uri)
    result = training.train(config, out_dir=run_dir)

    assert mlflow.get_tracking_uri() == process_uri  # and is put back afterwards
    assert not (run_dir / "mlruns").exists() and not (tmp_path / "process-store").exists()
    client, run = read_back(store_uri, "mlflow-explicit")
    check_run(client, run, result.run_dir)


def test_mlflow_runs_in_one_process_keep_their_own_store(mlflow_config, tmp_path):
    """A second run (another name, another run directory) logs to its own store, not to the first run's."""
    before = {name: os.environ.get(name) for name in MLFLOW_ENV}
    first = training.train(mlflow_config("first", max_steps=2), out_dir=tmp_path / "a")
    assert {name: os.environ.get(name) for name in MLFLOW_ENV} == before  # the run's settings are undone
    second = training.train(mlflow_config("second", max_steps=2), out_dir=tmp_path / "b")

    for result, name, other in ((first, "first", "second"), (second, "second", "first")):
        client, _ = read_back((result.run_dir / "mlruns").resolve().as_uri(), name)
        assert client.get_experiment_by_name(other) is None


def test_mlflow_logs_into_a_run_the_caller_opened(mlflow_config, tmp_path):
    """In a notebook, inside ``with mlflow.start_run():``, the run logs into the caller's run and leaves it open."""
    store_uri = (tmp_path / "store").as_uri()
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"  # the caller's own file store; clean_mlflow removes it again
    mlflow.set_tracking_uri(store_uri)
    mlflow.set_experiment("notebook")
    config = mlflow_config("in-notebook", validation=True, mlflow_tracking_uri=store_uri)
    with mlflow.start_run() as outer:
        result = training.train(config, out_dir=tmp_path / "run")
        assert mlflow.active_run().info.run_id == outer.info.run_id  # still open: the caller ends it

    client, run = read_back(store_uri, "notebook")
    assert run.info.run_id == outer.info.run_id
    check_run(client, run, result.run_dir)
    assert [metric.step for metric in client.get_metric_history(run.info.run_id, "eval_loss")] == [STEPS]  # once


def test_a_resumed_run_logs_to_the_same_mlflow_run(mlflow_config, tmp_path):
    """A crash after checkpoint-4 (simulated: its later files removed), then --resume: still one MLflow run."""
    import shutil

    run_dir = tmp_path / "run"
    config = mlflow_config("mlflow-resume", save_steps=2, save_total_limit=3)
    training.train(config, out_dir=run_dir)
    first_id = (run_dir / "mlflow_run_id").read_text(encoding="utf-8")
    shutil.rmtree(run_dir / "checkpoints" / f"checkpoint-{STEPS}")
    shutil.rmtree(run_dir / "model")
    training.train(config, out_dir=run_dir, resume=True)

    client, run = read_back((run_dir / "mlruns").resolve().as_uri(), "mlflow-resume")
    assert run.info.run_id == first_id == (run_dir / "mlflow_run_id").read_text(encoding="utf-8")
    assert run.info.status == "FINISHED"
    steps = [metric.step for metric in client.get_metric_history(run.info.run_id, "loss")]
    assert sorted(steps) == [2, 4, 6, 6]  # step 6 logged by the first go and again after resuming from 4
