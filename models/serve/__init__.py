"""The ONNX model server: ``python -m models.serve --model-uri URI --port P``.

Self-contained on purpose: it imports only onnxruntime, numpy, prometheus-client and orjson (if
installed; MLflow only when the model URI is ``models:/…``), never the rest of the suite, so the
container image needs nothing else. Modules: ``config`` (flags and ``SERVE_*`` environment),
``loader`` (path or MLflow registry), ``runtime`` (the ORT session), ``inputs`` (request
validation), ``batcher`` (dynamic micro-batching), ``metrics`` (Prometheus), ``http`` (a small
HTTP/1.1 server), ``app`` (the handlers) and ``server`` (start, signals, graceful drain).
"""
