"""A peer of the model server for bench/model_server_peers.py: a plain ASGI app on uvicorn with
httptools and uvloop, doing the same ONNX Runtime call through the same micro-batcher, with
orjson. What a careful engineer would write on a standard stack; it shows what the server's own
protocol layer is worth on top of the parser they share.

Run: PEER_MODEL=model.onnx uvicorn bench.asgi_peer:app --http httptools --loop uvloop
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from models.serve.batcher import MicroBatcher
from models.serve.runtime import OnnxModel

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_model = OnnxModel(Path(os.environ["PEER_MODEL"]), 1)
_batcher: MicroBatcher | None = None


async def _lifespan(receive: Receive, send: Send) -> None:
    global _batcher
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            _batcher = MicroBatcher(_model.run, max_batch_size=32, max_wait_ms=2.0)
            _batcher.start()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if _batcher is not None:
                await _batcher.stop()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _answer(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode())]  # else uvicorn sends chunked
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def app(scope: Message, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["path"] == "/readyz":
        await _answer(send, 200, b'{"status": "ready"}')
        return
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    assert _batcher is not None
    try:
        x = np.asarray(orjson.loads(body)["inputs"], dtype=np.float32)
    except (ValueError, KeyError, TypeError) as exc:
        await _answer(send, 400, orjson.dumps({"error": "bad_input", "detail": str(exc)}))
        return
    outputs = await _batcher.submit(x)
    await _answer(send, 200, orjson.dumps({"outputs": outputs},
                                          option=orjson.OPT_SERIALIZE_NUMPY))
