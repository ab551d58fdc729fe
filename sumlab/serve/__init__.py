"""``sumlab serve``: many summarizers on one base model, behind an HTTP API and a web page.

- ``launch``: what to serve (checked before anything loads), and the server's start.
- ``registry``: load the base once, attach adapters (PEFT multi-adapter), load merged models.
- ``batcher``: micro-batching of concurrent requests, mixed-adapter batches where PEFT allows.
- ``app``: the FastAPI app (``create_app``): /v1 API, web page, /health, /metrics, limits and auth.
- ``prometheus``: the server's metrics in Prometheus' text format.

``sumlab.cli.serve`` holds the command's options. Importing this package is cheap; torch and FastAPI
load only when a server is built.
"""
