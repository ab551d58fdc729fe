"""Optional MLflow tracking of a training run (``train.mlflow``), through transformers' MLflowCallback."""

from __future__ import annotations

from sumlab.config import TrainConfig
from sumlab.errors import SumlabError
from sumlab.runtime.fileio import write_text_atomic
from sumlab.training.run_dir import RunPaths


def mlflow_callback(config: TrainConfig, paths: RunPaths):
    """transformers' MLflowCallback, logging this run to its own store and experiment.

    The store is ``train.mlflow_tracking_uri``, else ``$MLFLOW_TRACKING_URI``, else a local file store in the
    run directory (``mlruns/``); the experiment is ``$MLFLOW_EXPERIMENT_NAME`` or the run's name. transformers
    reads these from the environment and logs through MLflow's process-wide tracking URI, so the callback sets
    them only while each of its events runs and then puts back what was there: a second run in the same
    process (a notebook, the tests) logs to its own store, and the config's URI wins over one set earlier with
    ``mlflow.set_tracking_uri``. MLflow 3 opens a file store only with ``MLFLOW_ALLOW_FILE_STORE=true``
    (mlflow-skinny has no database store), which a file store gets unless the environment says otherwise.
    The run ends with training; the final evaluation that ``train`` runs afterwards is logged to the same run.
    Its id is kept in the run directory (``mlflow_run_id``), so that ``--resume`` logs to the same MLflow run.
    """
    import contextlib
    import os
    from urllib.parse import urlparse

    try:
        import mlflow
        from transformers.integrations import MLflowCallback
    except ImportError:
        raise SumlabError(
            "train.mlflow=true needs the mlflow package", "pip install mlflow-skinny, or set train.mlflow=false"
        ) from None
    uri = (
        config.train.mlflow_tracking_uri
        or os.environ.get("MLFLOW_TRACKING_URI")
        or (paths.root / "mlruns").resolve().as_uri()
    )
    settings = {
        "MLFLOW_TRACKING_URI": uri,
        "MLFLOW_EXPERIMENT_NAME": os.environ.get("MLFLOW_EXPERIMENT_NAME") or config.name,
    }
    if urlparse(uri).scheme in ("", "file"):
        settings["MLFLOW_ALLOW_FILE_STORE"] = os.environ.get("MLFLOW_ALLOW_FILE_STORE") or "true"
    run_id_file = paths.root / "mlflow_run_id"
    if "MLFLOW_RUN_ID" not in os.environ and run_id_file.is_file():  # a resumed run: back to its MLflow run
        settings["MLFLOW_RUN_ID"] = run_id_file.read_text(encoding="utf-8").strip()

    def uri_set_in_process() -> str | None:
        """The URI given to ``mlflow.set_tracking_uri`` in this process (None if none): MLflow's own API only."""
        from_env = os.environ.pop("MLFLOW_TRACKING_URI", None)
        try:
            return mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
        finally:
            if from_env is not None:
                os.environ["MLFLOW_TRACKING_URI"] = from_env

    @contextlib.contextmanager
    def run_settings():
        saved_env, saved_uri = {name: os.environ.get(name) for name in settings}, uri_set_in_process()
        os.environ.update(settings)
        mlflow.set_tracking_uri(uri)
        try:
            yield
        finally:
            mlflow.set_tracking_uri(saved_uri)
            for name, value in saved_env.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    class RunMLflowCallback(MLflowCallback):
        run_id: str | None = None
        ended = False

        def setup(self, args, state, model):
            with run_settings():
                super().setup(args, state, model)
                if state.is_world_process_zero and mlflow.active_run() is not None:
                    self.run_id = mlflow.active_run().info.run_id
                    write_text_atomic(run_id_file, self.run_id)

        def on_log(self, args, state, control, logs, model=None, **kwargs):
            if not self._initialized:
                self.setup(args, state, model)
            with run_settings():
                if self.ended and self.run_id and state.is_world_process_zero and mlflow.active_run() is None:
                    with mlflow.start_run(run_id=self.run_id):  # evaluation after training: back to the run
                        super().on_log(args, state, control, logs, model=model, **kwargs)
                else:
                    super().on_log(args, state, control, logs, model=model, **kwargs)

        def on_train_end(self, args, state, control, **kwargs):
            with run_settings():
                super().on_train_end(args, state, control, **kwargs)
            self.ended = True

        def on_save(self, args, state, control, **kwargs):
            with run_settings():
                super().on_save(args, state, control, **kwargs)

    return RunMLflowCallback()
