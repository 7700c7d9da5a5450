"""The ONNX interface every exported model follows, and the check that an exported file keeps it.

One input ``input`` float32 ``[batch, 64]`` (raw pixel intensities 0..16) and two outputs,
``label`` int64 ``[batch]`` and ``probabilities`` float32 ``[batch, 10]``; the batch axis is
dynamic and the file is self-contained (no external data), so the model server, the registry and
a container image can all take the one file as it is.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import onnx

from suite.errors import ConfigError

N_FEATURES = 64
N_CLASSES = 10
INPUT_NAME = "input"
LABEL_OUTPUT = "label"
PROBA_OUTPUT = "probabilities"
OUTPUT_NAMES = (LABEL_OUTPUT, PROBA_OUTPUT)

#: metadata_props written into every exported model (the server reads them for its labels)
META_KIND = "suite.kind"
META_DATA_DIGEST = "suite.data_digest"
META_MODEL_NAME = "suite.model_name"


@dataclass(frozen=True)
class OnnxInfo:
    path: Path
    sha256: str
    size_bytes: int
    opset: int
    n_features: int
    n_classes: int


def _dims(value: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
            for d in value.type.tensor_type.shape.dim]


def sha256_file(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def check_file(path: Path) -> OnnxInfo:
    """Raise ConfigError naming the first broken part of the contract; else describe the file."""
    model = onnx.load(str(path), load_external_data=False)
    onnx.checker.check_model(model)
    external = [t.name for t in model.graph.initializer
                if t.data_location == onnx.TensorProto.EXTERNAL]
    if external:
        raise ConfigError(
            f"{path} keeps {len(external)} tensors in external data (e.g. {external[0]!r}); "
            "export with external_data=False so the model is one file"
        )
    inputs = [i for i in model.graph.input
              if i.name not in {init.name for init in model.graph.initializer}]
    if [i.name for i in inputs] != [INPUT_NAME]:
        raise ConfigError(f"{path} has inputs {[i.name for i in inputs]} "
                          f"(expected exactly [{INPUT_NAME!r}])")
    in_dims = _dims(inputs[0])
    if len(in_dims) != 2 or isinstance(in_dims[0], int) or in_dims[1] != N_FEATURES:
        raise ConfigError(f"{path} input shape is {in_dims} "
                          f"(expected [batch, {N_FEATURES}] with a dynamic batch axis)")
    outputs = {o.name: _dims(o) for o in model.graph.output}
    missing = [name for name in OUTPUT_NAMES if name not in outputs]
    if missing:
        raise ConfigError(f"{path} lacks outputs {missing} (has {sorted(outputs)})")
    proba_dims = outputs[PROBA_OUTPUT]
    if len(proba_dims) != 2 or (isinstance(proba_dims[1], int) and proba_dims[1] != N_CLASSES):
        raise ConfigError(f"{path} output {PROBA_OUTPUT!r} shape is {outputs[PROBA_OUTPUT]} "
                          f"(expected [batch, {N_CLASSES}])")
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    return OnnxInfo(path=path, sha256=sha256_file(path), size_bytes=path.stat().st_size,
                    opset=opset, n_features=N_FEATURES, n_classes=N_CLASSES)


def set_metadata(path: Path, props: dict[str, str], doc: str = "") -> None:
    """Record where the model came from inside the file itself (kept in one file)."""
    model = onnx.load(str(path))
    existing = {p.key: p for p in model.metadata_props}
    for key, value in props.items():
        if key in existing:
            existing[key].value = value
        else:
            model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
    if doc:
        model.doc_string = doc
    onnx.save_model(model, str(path), save_as_external_data=False)
