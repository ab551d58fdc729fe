"""``sumlab serve``: many summarizers on one base model, behind an HTTP API and a web page.

- ``registry``: load the base once, attach adapters (PEFT multi-adapter), load merged models.
- ``batcher``: micro-batching of concurrent requests, mixed-adapter batches where PEFT allows.
- ``app``: the FastAPI app (``create_app``): /v1 API, web page, /health, /metrics, limits and auth.
- ``command``: ``cli_command``, the typer command that ``sumlab serve`` runs.

Importing this package is cheap; torch and FastAPI load only when a server is built.
"""

from sumlab.serve.command import cli_command

__all__ = ["cli_command"]
