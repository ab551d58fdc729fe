"""The ``sumlab`` command line: thin commands that call the library.

A SumlabError becomes one line on stderr and exit code 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from sumlab.errors import SumlabError
from sumlab.serve import cli_command as serve_command

app = typer.Typer(
    help="Fine-tune, evaluate, compare and serve dialogue summarizers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Inspect datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")

console = Console()
_state = {"debug": False}

ModelOpt = Annotated[str, typer.Option("--model", "-m", help="hub id or local model directory")]
RandomInitOpt = Annotated[bool, typer.Option("--random-init", help="build the architecture with random weights (offline)")]
TokenizerOpt = Annotated[Optional[str], typer.Option("--tokenizer", help="tokenizer id or directory, if not the model's")]
DtypeOpt = Annotated[str, typer.Option("--dtype", help="auto, float32 or bfloat16 (float16 is refused for T5)")]
PickleOpt = Annotated[bool, typer.Option("--allow-pickle", help="allow pickle .bin weights (only for files you trust)")]
PromptOpt = Annotated[str, typer.Option("--prompt", help="a named prompt template (lab, t5, plain, brief)")]
TemplateOpt = Annotated[Optional[str], typer.Option("--template", help="your own template; must contain {dialogue}")]
MaxNewOpt = Annotated[int, typer.Option("--max-new-tokens", min=1)]
BeamsOpt = Annotated[int, typer.Option("--num-beams", min=1, help="1 is greedy")]
BatchOpt = Annotated[int, typer.Option("--batch-size", min=1)]


@app.callback()
def main_options(
    debug: Annotated[bool, typer.Option("--debug", help="show tracebacks")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log more")] = False,
) -> None:
    _state["debug"] = debug
    logging.basicConfig(level=logging.INFO if verbose or debug else logging.WARNING, format="%(message)s")
    if not (verbose or debug):
        _quiet_libraries()


def _quiet_libraries() -> None:
    """Keep the libraries' notices and weight-loading bars out of the output; --verbose shows them."""
    import warnings

    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)


def _model_config(model: str, random_init: bool, tokenizer: str | None, dtype: str, allow_pickle: bool):
    from sumlab.config import ModelConfig, build_config

    fields = {"name_or_path": model, "random_init": random_init, "tokenizer": tokenizer, "dtype": dtype,
              "allow_pickle": allow_pickle}
    return build_config(ModelConfig, fields, "options")


def _template(prompt: str, template: str | None) -> str:
    from sumlab.config import PromptConfig
    from sumlab.prompts import check_template, resolve_template

    if template is not None:
        return check_template(template)
    return resolve_template(PromptConfig(name=prompt))


def _generation(max_new_tokens: int, num_beams: int, batch_size: int):
    from sumlab.config import GenerationSettings

    return GenerationSettings(max_new_tokens=max_new_tokens, num_beams=num_beams, batch_size=batch_size)


def _refuse_overwrite(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise SumlabError(f"{path} already exists", "choose another --out, or pass --overwrite")


@app.command()
def summarize(
    file: Annotated[str, typer.Argument(help="a text file with one dialogue, or - for stdin")] = "-",
    model: ModelOpt = "google/flan-t5-base",
    random_init: RandomInitOpt = False,
    tokenizer: TokenizerOpt = None,
    dtype: DtypeOpt = "auto",
    allow_pickle: PickleOpt = False,
    prompt: PromptOpt = "lab",
    template: TemplateOpt = None,
    max_new_tokens: MaxNewOpt = 200,
    num_beams: BeamsOpt = 1,
) -> None:
    """Summarize one dialogue."""
    from sumlab.generation import summarize as summarize_dialogues
    from sumlab.modeling import load_model, load_tokenizer

    dialogue = _read_dialogue(file)
    text_template = _template(prompt, template)
    config = _model_config(model, random_init, tokenizer, dtype, allow_pickle)
    loaded_tokenizer, loaded_model = load_tokenizer(config), load_model(config)
    settings = _generation(max_new_tokens, num_beams, 1)
    print(summarize_dialogues(loaded_model, loaded_tokenizer, [dialogue], settings, text_template)[0])


def _read_dialogue(file: str) -> str:
    if file == "-":
        text = sys.stdin.read()
    else:
        path = Path(file)
        if not path.is_file():
            raise SumlabError(f"file not found: {path}", "give a text file with the dialogue, or - to read stdin")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise SumlabError(f"{path}: not UTF-8 (byte {exc.start})", "re-encode the file as UTF-8") from None
    if not text.strip():
        raise SumlabError("the dialogue is empty", "pass a file or pipe the dialogue on stdin")
    return text.strip()


@app.command()
def generate(
    data: Annotated[str, typer.Option("--data", help="hub id, or a local file or directory")] = "knkarthick/dialogsum",
    out: Annotated[Path, typer.Option("--out", help="predictions file to write (JSON Lines)")] = Path("predictions.jsonl"),
    model: ModelOpt = "google/flan-t5-base",
    name: Annotated[Optional[str], typer.Option("--name", help="model name in the file (default: from --model)")] = None,
    split: Annotated[str, typer.Option("--split")] = "test",
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="at most this many dialogues")] = None,
    every_nth: Annotated[int, typer.Option("--every-nth", min=1, help="keep every n-th dialogue")] = 1,
    random_init: RandomInitOpt = False,
    tokenizer: TokenizerOpt = None,
    dtype: DtypeOpt = "auto",
    allow_pickle: PickleOpt = False,
    prompt: PromptOpt = "lab",
    template: TemplateOpt = None,
    max_new_tokens: MaxNewOpt = 200,
    num_beams: BeamsOpt = 1,
    batch_size: BatchOpt = 16,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace an existing --out")] = False,
) -> None:
    """Summarize a dataset split and write a predictions file (one object per dialogue).

    Under torchrun or accelerate launch the dialogues are split across the processes; rank 0 writes the file.
    """
    from sumlab.config import validate_name
    from sumlab.data import group_references, load_split, select_groups
    from sumlab.distributed import is_main_process, run_on_main, summarize_distributed
    from sumlab.modeling import load_model, load_tokenizer
    from sumlab.predictions import PredictionSet, write_predictions

    run_on_main(_refuse_overwrite, out, overwrite)  # also joins the process group, before any model is loaded
    model_name = name or Path(model.rstrip("/")).name
    try:
        validate_name(model_name)
    except ValueError as exc:
        raise SumlabError(str(exc), "pass --name with a simple model name") from None
    groups = select_groups(group_references(load_split(data, split)), limit=limit, every_nth=every_nth)
    text_template = _template(prompt, template)
    config = _model_config(model, random_init, tokenizer, dtype, allow_pickle)
    loaded_tokenizer, loaded_model = load_tokenizer(config), load_model(config)
    settings = _generation(max_new_tokens, num_beams, batch_size)
    summaries = summarize_distributed(loaded_model, loaded_tokenizer, [g.dialogue for g in groups], settings, text_template)
    if not is_main_process():
        return
    result = PredictionSet(
        ids=[g.id for g in groups],
        references=[list(g.references) for g in groups],
        predictions={model_name: summaries},
        dialogues=[g.dialogue for g in groups],
    )
    write_predictions(out, result)
    console.print(f"wrote {len(groups)} predictions of {model_name} to {out}")


@app.command()
def evaluate(
    file: Annotated[Path, typer.Argument(help="a predictions file, or a CSV/JSONL table with --references/--predictions")],
    references: Annotated[Optional[str], typer.Option("--references", help="table column with the reference")] = None,
    predictions: Annotated[Optional[str], typer.Option("--predictions", help="table columns, comma-separated")] = None,
    aggregate: Annotated[str, typer.Option("--aggregate", help="multi-reference: max or mean")] = "max",
    json_out: Annotated[Optional[Path], typer.Option("--json", help="write the scores as JSON")] = None,
    seed: Annotated[int, typer.Option("--seed", help="bootstrap seed")] = 0,
) -> None:
    """Score summaries with ROUGE (95% CIs) and show each model's improvement over the first."""
    from sumlab.evaluation import score_prediction_set, scores_table, scores_to_json
    from sumlab.fileio import write_json_atomic
    from sumlab.predictions import read_predictions, read_table

    if aggregate not in ("max", "mean"):
        raise SumlabError(f"unknown --aggregate {aggregate!r}", "use max or mean")
    if (references is None) != (predictions is None):
        raise SumlabError("--references and --predictions go together", "give both for a table, neither for a predictions file")
    if references is not None:
        columns = [column.strip() for column in predictions.split(",") if column.strip()]
        prediction_set = read_table(file, references, columns)
    else:
        prediction_set = read_predictions(file)
    scores = score_prediction_set(prediction_set, aggregate=aggregate, seed=seed)
    console.print(scores_table(scores))
    if json_out is not None:
        write_json_atomic(json_out, scores_to_json(scores))
        console.print(f"wrote {json_out}")


@app.command()
def inspect(
    model: Annotated[str, typer.Argument(help="hub id or local model directory")] = "google/flan-t5-base",
    random_init: RandomInitOpt = False,
    allow_pickle: PickleOpt = False,
    lora_r: Annotated[Optional[int], typer.Option("--lora-r", min=1, help="add a LoRA adapter of this rank")] = None,
    lora_alpha: Annotated[int, typer.Option("--lora-alpha", min=1)] = 32,
    lora_targets: Annotated[
        Optional[str],
        typer.Option("--lora-targets", help="comma-separated module names (default: the architecture's q and v, as the lab)"),
    ] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="write the counts as JSON")] = None,
) -> None:
    """Print the lab's parameter counts for a model, or for it with a LoRA adapter added."""
    from sumlab.config import PeftSettings
    from sumlab.fileio import write_json_atomic
    from sumlab.modeling import add_peft, count_parameters, load_model

    config = _model_config(model, random_init, None, "float32", allow_pickle)
    loaded = load_model(config)
    if lora_r is not None:
        targets = [target.strip() for target in (lora_targets or "").split(",") if target.strip()] or None
        loaded = add_peft(loaded, PeftSettings(method="lora", r=lora_r, alpha=lora_alpha, targets=targets))
    counts = count_parameters(loaded)
    print(counts)
    if json_out is not None:
        write_json_atomic(json_out, counts.to_json())


@data_app.command("audit")
def data_audit(
    data: Annotated[str, typer.Option("--data", help="hub id, or a local file or directory")] = "knkarthick/dialogsum",
    model: Annotated[Optional[str], typer.Option("--model", help="tokenizer of this model (default: flan-t5-base's)")] = None,
    tokenizer: TokenizerOpt = None,
    splits: Annotated[str, typer.Option("--splits", help="comma-separated splits")] = "train,validation,test",
    prompt: PromptOpt = "lab",
    max_source_length: Annotated[int, typer.Option("--max-source-length", min=1)] = 512,
    max_target_length: Annotated[int, typer.Option("--max-target-length", min=1)] = 128,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="write the audit as JSON")] = None,
) -> None:
    """Row counts, token-length percentiles, truncation at the maximum lengths, and round-trip losses."""
    from sumlab.audit import audit_examples
    from sumlab.data import load_split
    from sumlab.fileio import write_json_atomic
    from sumlab.modeling import load_tokenizer

    config = _model_config(model or "google/flan-t5-base", False, tokenizer, "auto", False)
    loaded_tokenizer = load_tokenizer(config)
    template = _template(prompt, None)
    report = {}
    for split in [s.strip() for s in splits.split(",") if s.strip()]:
        examples = load_split(data, split)
        report[split] = audit_examples(examples, loaded_tokenizer, template, max_source_length, max_target_length)
    console.print_json(json.dumps(report))
    if json_out is not None:
        write_json_atomic(json_out, report)


ConfigArg = Annotated[Path, typer.Argument(help="YAML config (see configs/)")]
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", help="override a config value: key.path=value (repeatable)")]


@app.command()
def train(
    config: ConfigArg,
    overrides: SetOpt = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="run directory (default: runs/<name>)")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="continue from the last complete checkpoint")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace an existing run directory")] = False,
) -> None:
    """Fine-tune a model (full or PEFT) as the config says, into a run directory."""
    from sumlab.config import TrainConfig, load_config

    train_config = load_config(TrainConfig, config, overrides or [])  # fail fast, before torch is imported
    from sumlab.training import train as train_model

    result = train_model(train_config, out_dir=out, resume=resume, overwrite=overwrite)
    if result.summary:
        parameters = result.summary["parameters"]
        console.print(
            f"trained {train_config.peft.method}: {parameters['trainable']:,} of {parameters['total']:,} "
            f"parameters ({parameters['percent']:.2f}%) in {result.summary['wall_seconds']:.1f}s"
        )
        console.print(f"run directory: {result.run_dir}")


@app.command()
def merge(
    adapter: Annotated[str, typer.Option("--adapter", help="a run directory or an adapter directory")],
    out: Annotated[Path, typer.Option("--out", help="directory for the merged model")],
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="base model (default: the adapter's)")] = None,
    allow_pickle: PickleOpt = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace an existing --out")] = False,
) -> None:
    """Merge a LoRA adapter into its base and save a standalone model, checking outputs are unchanged."""
    from sumlab.adapters import merge_adapter

    _refuse_overwrite(out, overwrite)
    report = merge_adapter(adapter, out, base=model, allow_pickle=allow_pickle)
    console.print(f"merged into {out} (max logit difference {report['max_abs_logit_difference']:.2e})")


@app.command()
def run(
    config: ConfigArg,
    overrides: SetOpt = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="experiment directory (default: experiments/<name>)")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="start again, replacing --out")] = False,
) -> None:
    """Run the lab's experiment (zero-shot vs full vs LoRA...), with statistics and a report; reruns continue."""
    from sumlab.config import ExperimentConfig, load_config
    from sumlab.experiment import run_experiment

    experiment = load_config(ExperimentConfig, config, overrides or [])
    root, results = run_experiment(experiment, out_dir=out, overwrite=overwrite)
    _print_results(root, results)


def _print_results(root: Path, results: dict) -> None:
    from sumlab.distributed import is_main_process
    from sumlab.report import headline

    if not is_main_process():
        return
    console.print(headline(results))
    console.print(f"report: {root / 'report.html'}")


@app.command()
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
    from sumlab.compare import compare as compare_inputs, experiment_eval_settings
    from sumlab.config import EvalSettings

    _refuse_overwrite(out, overwrite)
    settings = experiment_eval_settings(inputs) or EvalSettings()
    if aggregate is not None:
        settings = _checked_aggregate(settings, aggregate)
    results = compare_inputs(inputs, out, settings, name=name)
    _print_results(out, results)


def _checked_aggregate(settings, aggregate: str):
    from sumlab.config import EvalSettings, build_config

    return build_config(EvalSettings, {**settings.model_dump(), "aggregate": aggregate}, "options")


@app.command()
def demo(
    data: Annotated[Optional[str], typer.Option("--data", help="run on this dataset instead of the bundled corpus")] = None,
    out: Annotated[Path, typer.Option("--out", help="experiment directory")] = Path("sumlab-demo"),
    overrides: SetOpt = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="start again, replacing --out")] = False,
) -> None:
    """The whole experiment offline, in minutes: zero-shot vs full fine-tuning vs LoRA on a tiny pretrained T5."""
    from importlib import resources

    from sumlab.config import ExperimentConfig, load_config
    from sumlab.experiment import run_experiment

    config_path = Path(str(resources.files("sumlab") / "demo" / "demo.yaml"))
    settings = [*(overrides or []), *([f"data.source={data}"] if data else [])]
    experiment = load_config(ExperimentConfig, config_path, settings)
    root, results = run_experiment(experiment, out_dir=out, overwrite=overwrite)
    _print_results(root, results)


app.command("serve")(serve_command)


def main() -> None:
    """Entry point: run the app, turning SumlabError into one line and exit code 2."""
    try:
        app()
    except SumlabError as exc:
        if _state["debug"]:
            raise
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except RuntimeError as exc:  # under torchrun: a peer died or hung (torch raises RuntimeError subclasses)
        from sumlab.distributed import as_peer_failure

        failure = as_peer_failure(exc)
        if failure is None or _state["debug"]:
            raise
        print(f"error: {failure}", file=sys.stderr, flush=True)
        sys.stdout.flush()
        # the process group is broken: a normal exit runs its C++ destructors, which abort (SIGABRT)
        os._exit(2)

