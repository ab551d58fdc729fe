"""The ``sumlab`` command line: thin commands that call the library.

A SumlabError becomes one line on stderr and exit code 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Annotated

import typer

from sumlab.cli import data, evaluate, experiment, generate, models, serve, train
from sumlab.errors import SumlabError

app = typer.Typer(
    help="Fine-tune, evaluate, compare and serve dialogue summarizers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Inspect datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")

_state = {"debug": False}


@app.callback()
def main_options(
    ctx: typer.Context,
    debug: Annotated[bool, typer.Option("--debug", help="show tracebacks")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log more (also the Trainer's log dicts)")] = False,
) -> None:
    from sumlab.runtime.progress import configure_progress, reset_progress

    _state["debug"] = debug
    configure_progress(sys.stderr.isatty(), trainer_logs=verbose)  # bars on a terminal only: none in CI logs or pipes
    ctx.call_on_close(reset_progress)  # a command run in-process (tests) leaves the library quiet again
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


for command in (
    generate.summarize,
    generate.generate,
    evaluate.evaluate,
    models.inspect,
    train.train,
    models.merge,
    models.export,
    experiment.run,
    experiment.compare,
    experiment.demo,
):
    app.command()(command)
data_app.command("audit")(data.data_audit)
app.command("serve")(serve.serve_command)


def main() -> None:
    """Entry point: run the app, turning SumlabError into one line and exit code 2."""
    from sumlab.runtime.distributed import close_process_group

    click_errors = click_exceptions()
    try:
        code = app(standalone_mode=False)  # click's usage errors come back here, to be shown in one line
    except SystemExit:
        close_process_group()
        raise
    except click_errors.NoArgsIsHelpError as exc:  # `sumlab` or a group alone: the help, as click shows it
        exc.show()
        sys.exit(exc.exit_code)
    except click_errors.ClickException as exc:  # a bad option or argument value, an unknown option or command
        print(f"error: {usage_error_line(exc)}", file=sys.stderr)
        close_process_group()
        sys.exit(exc.exit_code)
    except typer.Abort:
        print("aborted", file=sys.stderr)
        sys.exit(1)
    except SumlabError as exc:
        if _state["debug"]:
            raise
        print(f"error: {exc}", file=sys.stderr)
        close_process_group()  # every rank refuses together (run_on_main): the group itself is sound
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except RuntimeError as exc:  # under torchrun: a peer died or hung (torch raises RuntimeError subclasses)
        from sumlab.runtime.distributed import as_peer_failure

        failure = as_peer_failure(exc)
        if failure is None or _state["debug"]:
            raise
        print(f"error: {failure}", file=sys.stderr, flush=True)
        sys.stdout.flush()
        # the process group is broken: a normal exit runs its C++ destructors, which abort (SIGABRT)
        os._exit(2)
    close_process_group()
    sys.exit(code if isinstance(code, int) else 0)  # typer.Exit(n) and --help come back as their exit code


def click_exceptions():
    """click's exceptions module: typer's own copy of click (newer typer vendors it), else click's."""
    try:
        from typer._click import exceptions
    except ImportError:
        from click import exceptions
    return exceptions


def usage_error_line(exc) -> str:
    """A click usage error as one line with a hint: ``Invalid value for '--limit': ... (see sumlab ... --help)``."""
    message = " ".join(exc.format_message().split())
    context = getattr(exc, "ctx", None)
    command = context.command_path if context is not None else "sumlab"
    return f"{message} (see `{command} --help`)"
