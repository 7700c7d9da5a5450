"""The ONNX model server: ``python -m models.serve --model-uri URI --port P``.

Self-contained on purpose: it imports only onnxruntime, numpy, aiohttp and prometheus-client
(MLflow only when the model URI is ``models:/…``), never the rest of the suite, so the container
image needs nothing else. Modules: ``config`` (flags and ``SERVE_*`` environment), ``loader``
(path or MLflow registry), ``runtime`` (the ORT session), ``inputs`` (request validation),
``batcher`` (dynamic micro-batching), ``metrics`` (Prometheus), ``app`` (HTTP handlers) and
``server`` (start, signals, graceful drain).
"""
