"""``sumlab run``, ``sumlab compare`` and ``sumlab demo``: the staged experiment and its report."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from sumlab.cli.options import ConfigArg, SetOpt, console, refuse_overwrite

if TYPE_CHECKING:
    from sumlab.evaluation.schema import Results


def run(
    config: ConfigArg,
    overrides: SetOpt = None,
    out: Annotated[
        Optional[Path], typer.Option("--out", help="experiment directory (default: experiments/<name>)")
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="start again, replacing --out")] = False,
) -> None:
    """Run the lab's experiment (zero-shot vs full vs LoRA...), with statistics and a report; reruns continue."""
    from sumlab.config import ExperimentConfig, load_config
    from sumlab.experiment.run import run_experiment

    experiment = load_config(ExperimentConfig, config, overrides or [])
    root, results = run_experiment(experiment, out_dir=out, overwrite=overwrite)
    _print_results(root, results)


def _print_results(root: Path, results: Results) -> None:
    from sumlab.report import headline
    from sumlab.runtime.distributed import is_main_process

    if not is_main_process():
        return
    console.print(headline(results))
    console.print(f"report: {root / 'report.html'}")


def compare(
    inputs: Annotated[list[Path], typer.Argument(help="experiment directories or predictions files")],
    out: Annotated[Path, typer.Option("--out", help="directory for the report")],
    name: Annotated[str, typer.Option("--name", help="title of the comparison")] = "comparison",
    aggregate: Annotated[
        Optional[str],
        typer.Option("--aggregate", help="multi-reference: max or mean (default: the first experiment's, else max)"),
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace an existing --out")] = False,
) -> None:
    """Build the experiment's report from existing runs or prediction files."""
    from sumlab.config import EvalSettings
    from sumlab.experiment.compare import compare as compare_inputs
    from sumlab.experiment.compare import experiment_eval_settings

    refuse_overwrite(out, overwrite)
    settings = experiment_eval_settings(inputs) or EvalSettings()
    if aggregate is not None:
        settings = _checked_aggregate(settings, aggregate)
    results = compare_inputs(inputs, out, settings, name=name)
    _print_results(out, results)


def _checked_aggregate(settings, aggregate: str):
    from sumlab.config import EvalSettings, build_config

    return build_config(EvalSettings, {**settings.model_dump(), "aggregate": aggregate}, "options")


def demo(
    data: Annotated[
        Optional[str], typer.Option("--data", help="run on this dataset instead of the bundled corpus")
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="experiment directory")] = Path("sumlab-demo"),
    overrides: SetOpt = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="start again, replacing --out")] = False,
) -> None:
    """The whole experiment offline, in minutes: zero-shot vs full fine-tuning vs LoRA on a tiny pretrained T5."""
    from importlib import resources

    from sumlab.config import ExperimentConfig, load_config
    from sumlab.experiment.run import run_experiment

    config_path = Path(str(resources.files("sumlab") / "demo" / "demo.yaml"))
    settings = [*(overrides or []), *([f"data.source={data}"] if data else [])]
    experiment = load_config(ExperimentConfig, config_path, settings)
    root, results = run_experiment(experiment, out_dir=out, overwrite=overwrite)
    _print_results(root, results)
