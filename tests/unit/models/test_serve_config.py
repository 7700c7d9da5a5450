from __future__ import annotations

import asyncio

import pytest

from models.serve.app import ServerState, build_server
from models.serve.config import ServeConfig, load
from models.serve.errors import ConfigInvalid
from models.serve.http import Limits


def test_defaults_have_fault_injection_off() -> None:
    config = load(["--model-uri", "m.onnx"], {})
    assert config.fault_latency_ms == 0 and config.fault_error_ratio == 0
    assert not config.faults_enabled


def test_environment_then_flags() -> None:
    env = {"SERVE_MODEL_URI": "env.onnx", "SERVE_FAULT_LATENCY_MS": "50",
           "SERVE_FAULT_ERROR_RATIO": "0.25", "SERVE_MAX_WAIT_MS": "4",
           "MLFLOW_TRACKING_URI": "http://127.0.0.1:5001"}
    config = load(["--max-wait-ms", "1", "--offload-inference"], env)
    assert config.model_uri == "env.onnx"
    assert config.max_wait_ms == 1.0  # the flag wins
    assert (config.fault_latency_ms, config.fault_error_ratio) == (50.0, 0.25)
    assert config.faults_enabled and config.offload_inference
    assert config.tracking_uri == "http://127.0.0.1:5001"


@pytest.mark.parametrize(("argv", "env", "message"), [
    ([], {}, "no model given"),
    (["--model-uri", "m", "--port", "http"], {}, "--port / SERVE_PORT is 'http'"),
    (["--model-uri", "m"], {"SERVE_FAULT_ERROR_RATIO": "1.5"},
     r"SERVE_FAULT_ERROR_RATIO is 1.5 \(expected a number in \[0, 1\]\)"),
    (["--model-uri", "m", "--max-batch-size", "0"], {}, "--max-batch-size"),
    (["--model-uri", "m", "--fault-latency-ms", "nan"], {}, "--fault-latency-ms"),
    (["--model-uri", "m"], {"SERVE_OFFLOAD_INFERENCE": "perhaps"}, "expected 1/0"),
    (["--model-uri", "m", "--log-level", "loud"], {}, "--log-level"),
    (["--model-uri", "m"], {"SERVE_MAX_CONNECTIONS": "0"}, "SERVE_MAX_CONNECTIONS is 0"),
    (["--model-uri", "m", "--head-timeout-s", "0"], {}, "--head-timeout-s"),
])
def test_bad_settings_name_flag_and_variable(
    argv: list[str], env: dict[str, str], message: str,
) -> None:
    with pytest.raises(ConfigInvalid, match=message):
        load(argv, env)


def test_config_validates_when_built_directly() -> None:
    with pytest.raises(ConfigInvalid, match="model URI is empty"):
        ServeConfig(model_uri="")


def test_connection_limits_reach_the_listener() -> None:
    config = load(["--model-uri", "m.onnx", "--head-timeout-s", "3"],
                  {"SERVE_MAX_CONNECTIONS": "64", "SERVE_KEEPALIVE_TIMEOUT_S": "20"})

    async def limits() -> Limits:
        return build_server(ServerState(config)).limits

    assert asyncio.run(limits()) == Limits(max_body_bytes=config.max_body_bytes,
                                           max_connections=64, keepalive_timeout_s=20.0,
                                           head_timeout_s=3.0)
