"""``sumlab serve``: many summarizers on one base model, behind an HTTP API and a web page.

- ``launch``: what to serve and where (checked before anything loads), and the server's start and drain.
- ``registry``: load the base once, attach adapters (PEFT multi-adapter), load merged models.
- ``batcher``: micro-batching of concurrent requests, mixed-adapter batches where PEFT allows;
  a failed batch is retried item by item; the drain on shutdown.
- ``app``: the FastAPI app (``create_app``): /v1 API, web page, /health, /metrics.
- ``schemas``: request and response bodies (strict types, capped lists) and the server's limits.
- ``middleware``: request ids and the access log, Host allow-list, metrics, auth, body limit.
- ``hosts``: the Host names a server answers to.
- ``errors``: every error as a short JSON body.
- ``prometheus``: the server's metrics (``prometheus_client``, a registry per app).

``sumlab.cli.serve`` holds the command's options. Importing this package is cheap; torch and FastAPI
load only when a server is built.
"""
