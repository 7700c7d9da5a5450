"""The ONNX model server: ``python -m models.serve --model-uri URI --port P``.

Self-contained on purpose: it imports only onnxruntime, numpy, prometheus-client, httptools
(llhttp) and orjson and uvloop (if installed; MLflow only when the model URI is ``models:/…``),
never the rest of the suite, so the container image needs nothing else. Modules: ``config``
(flags and ``SERVE_*`` environment), ``loader`` (path or MLflow registry), ``runtime`` (the ORT
session), ``inputs`` (request validation, ours and MLflow's formats), ``batcher`` (dynamic
micro-batching), ``metrics`` (Prometheus), ``wire`` (HTTP/1.1 parsing on llhttp), ``http`` (the
protocol: keep-alive, pipelining, limits), ``app`` (the handlers) and ``server`` (start,
signals, graceful drain).
"""
