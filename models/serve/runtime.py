"""The ONNX Runtime session and what the server needs to know about the model's interface."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from models.serve.errors import LoadError

#: metadata key written by the suite's exporter (models/onnx_contract.py)
META_MODEL_NAME = "suite.model_name"


class OnnxModel:
    """One float32 input ``[batch, *features]`` with a dynamic batch axis; any outputs."""

    def __init__(self, path: Path, threads: int = 1) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        try:
            self.session = ort.InferenceSession(str(path), options,
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own untyped errors for unreadable models
            raise LoadError(f"ONNX Runtime cannot open {path}: {exc}") from exc
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise LoadError(f"{path} has {len(inputs)} inputs (the server supports exactly one)")
        self.input_name: str = inputs[0].name
        if inputs[0].type != "tensor(float)":
            raise LoadError(f"{path} input {self.input_name!r} is {inputs[0].type} "
                            "(the server supports tensor(float))")
        shape = list(inputs[0].shape)
        if len(shape) < 2 or (isinstance(shape[0], int) and shape[0] > 0):
            raise LoadError(f"{path} input shape {shape} has no dynamic batch axis first")
        if not all(isinstance(d, int) and d > 0 for d in shape[1:]):
            raise LoadError(f"{path} input shape {shape}: only the batch axis may be dynamic")
        self.feature_shape: tuple[int, ...] = tuple(int(d) for d in shape[1:])
        self.output_names: list[str] = [o.name for o in self.session.get_outputs()]
        self.metadata: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)

    def run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        results = self.session.run(self.output_names, {self.input_name: x})
        return {name: np.asarray(value) for name, value in zip(self.output_names, results,
                                                               strict=True)}

    def describe(self) -> dict[str, object]:
        return {
            "input": {"name": self.input_name, "dtype": "float32",
                      "shape": ["batch", *self.feature_shape]},
            "outputs": [
                {"name": o.name, "type": o.type, "shape": list(o.shape)}
                for o in self.session.get_outputs()
            ],
        }
