"""Programs that tests/runtime/test_distributed.py runs under torchrun (one copy per process).

python -m torch.distributed.run --nproc_per_node=2 tests/runtime/distributed_driver.py signal RANK STEP SIGNAL -- SUMLAB ARGS...
    ``sumlab SUMLAB ARGS`` (e.g. ``train config.yaml --out run``), where process RANK sends itself SIGNAL
    at the end of training step STEP: SIGKILL is a peer that dies without a word (as after an OOM kill),
    SIGSTOP one that hangs (as in a deadlock or on a stuck GPU) while its process lives on.
"""

from __future__ import annotations

import os
import signal
import sys


def signal_main(rank: str, step: str, signal_name: str, sumlab_args: list[str]) -> None:
    from transformers import TrainerCallback

    from sumlab.cli import main
    from sumlab.training import trainer as training

    class SignalAtStep(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == int(step) and os.environ.get("RANK") == rank:
                print(f"rank {rank}: sending myself {signal_name} after step {step}", file=sys.stderr, flush=True)
                os.kill(os.getpid(), getattr(signal, signal_name))

    build_trainer = training.build_trainer

    def build_trainer_that_dies(*args, **kwargs):
        trainer = build_trainer(*args, **kwargs)
        trainer.add_callback(SignalAtStep())
        return trainer

    training.build_trainer = build_trainer_that_dies
    sys.argv = ["sumlab", *sumlab_args]
    main()


if __name__ == "__main__":
    command, *arguments = sys.argv[1:]
    if command == "signal":
        separator = arguments.index("--")
        signal_main(*arguments[:separator], arguments[separator + 1 :])
    else:
        raise SystemExit(f"unknown command {command!r}")
