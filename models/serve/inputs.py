"""Turn a request body into a float32 batch, or refuse it with a 4xx naming the problem.

Accepted: ``{"inputs": [[x, ...], ...]}`` — a non-empty list of rows, each of the model's feature
shape, numbers only, finite in float32. Pure function of the body and the limits.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from models.serve import jsonio
from models.serve.errors import BadInput

EXAMPLE = '{"inputs": [[0, 1, 2, ...], ...]}'


def _shape(feature_shape: tuple[int, ...]) -> str:
    return "(n, " + ", ".join(map(str, feature_shape)) + ")"


def _non_number(values: Any) -> str:
    """Type name of the first element that is not a JSON number."""
    stack = [values]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        elif isinstance(item, bool) or not isinstance(item, int | float):
            return "boolean" if isinstance(item, bool) else (
                "null" if item is None else type(item).__name__)
    return ""


#: what the fast path takes as a number (``bool`` is a subclass of ``int``, not one of these)
_NUMBER_TYPES = frozenset((float, int))
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _fast_batch(inputs: list[Any], feature_shape: tuple[int, ...]) -> np.ndarray | None:
    """The common case in a few C calls: rows that are flat lists of JSON numbers of the model's
    width, finite in float32. Anything else (None) goes to :func:`_batch`, which names the
    problem; both accept exactly the same bodies, this one only costs less (no dtype inference,
    no text scan, no error-state context)."""
    if len(feature_shape) != 1:
        return None
    width = feature_shape[0]
    numbers = _NUMBER_TYPES.issuperset
    for row in inputs:
        if type(row) is not list or len(row) != width or not numbers(map(type, row)):
            return None
    try:
        arr = np.array(inputs, dtype=np.float64)
    except (OverflowError, ValueError, TypeError):  # an integer beyond a double: precise path
        return None
    if not (-_FLOAT32_MAX <= arr.min() and arr.max() <= _FLOAT32_MAX):  # NaN fails too
        return None
    return arr.astype(np.float32)


def _decode(body: bytes) -> Any:
    try:
        return jsonio.loads(body)
    except UnicodeDecodeError as exc:
        raise BadInput(400, "malformed_json", f"body is not UTF-8 (JSON is sent as UTF-8): "
                       f"{exc}") from exc
    except RecursionError as exc:
        raise BadInput(400, "malformed_json", "body nests arrays or objects too deeply "
                       f"(expected {EXAMPLE}: two levels)") from exc
    except ValueError as exc:  # also an integer of more than 4300 digits
        hint = " (it holds NUL bytes: UTF-16 or UTF-32? JSON is sent as UTF-8)" \
            if b"\x00" in body else ""
        raise BadInput(400, "malformed_json", f"body is not valid JSON: {exc}{hint}") from exc


def parse_body(body: bytes, feature_shape: tuple[int, ...], max_rows: int) -> np.ndarray:
    data = _decode(body)
    if not isinstance(data, dict) or "inputs" not in data:
        raise BadInput(422, "missing_inputs",
                       f"body must be a JSON object with key 'inputs', e.g. {EXAMPLE}")
    return _batch(data["inputs"], body, feature_shape, max_rows)


#: the tensor formats of MLflow's scoring protocol (``mlflow models serve``, POST /invocations)
MLFLOW_KEYS = ("inputs", "instances", "dataframe_split")


def parse_mlflow_body(body: bytes, input_name: str, feature_shape: tuple[int, ...],
                      max_rows: int) -> np.ndarray:
    """MLflow's tensor input: ``{"inputs": rows | {name: rows}}``, ``{"instances": rows |
    [{name: row}, ...]}`` or ``{"dataframe_split": {"data": rows}}``."""
    data = _decode(body)
    keys = [k for k in MLFLOW_KEYS if isinstance(data, dict) and k in data]
    if len(keys) != 1:
        raise BadInput(422, "missing_inputs", "body must be a JSON object with exactly one of "
                       f"{', '.join(MLFLOW_KEYS)}, e.g. {{\"inputs\": {{\"{input_name}\": "
                       "[[0, 1, ...]]}}")
    key = keys[0]
    value = data[key]
    if key == "dataframe_split":
        if not isinstance(value, dict) or "data" not in value:
            raise BadInput(422, "missing_inputs", "'dataframe_split' must be an object with "
                           "'data' (a list of rows)")
        value = value["data"]
    elif isinstance(value, dict):
        if set(value) != {input_name}:
            raise BadInput(422, "wrong_input_name", f"'{key}' names {sorted(value)[:5]} (the "
                           f"model has one input, {input_name!r})")
        value = value[input_name]
    elif key == "instances" and isinstance(value, list) and value and \
            all(isinstance(v, dict) for v in value):
        if any(set(v) != {input_name} for v in value):
            raise BadInput(422, "wrong_input_name", f"each of 'instances' must name only the "
                           f"model's input {input_name!r}")
        value = [v[input_name] for v in value]
    return _batch(value, body, feature_shape, max_rows)


def _batch(inputs: Any, body: bytes, feature_shape: tuple[int, ...], max_rows: int
           ) -> np.ndarray:
    if not isinstance(inputs, list):
        raise BadInput(422, "wrong_shape", f"'inputs' is a {type(inputs).__name__} "
                       f"(expected a list of rows of shape {_shape(feature_shape)})")
    if not inputs:
        raise BadInput(422, "empty_batch", "'inputs' is an empty list (expected at least 1 row)")
    if len(inputs) > max_rows:
        raise BadInput(413, "too_many_rows",
                       f"'inputs' has {len(inputs)} rows (at most {max_rows} per request)")
    fast = _fast_batch(inputs, feature_shape)
    if fast is not None:
        return fast
    try:
        arr = np.asarray(inputs)
        if arr.dtype == object and not _non_number(inputs):  # integers beyond int64
            arr = np.asarray(inputs, dtype=np.float64)
    except OverflowError as exc:
        raise BadInput(422, "non_finite", f"'inputs' holds a number too large for float32: "
                       f"{exc}") from exc
    except RecursionError as exc:
        raise BadInput(422, "wrong_shape", f"'inputs' nests lists too deeply (expected shape "
                       f"{_shape(feature_shape)})") from exc
    except (ValueError, TypeError) as exc:
        raise BadInput(422, "wrong_shape", f"'inputs' is ragged or not rectangular "
                       f"(expected shape {_shape(feature_shape)}): {exc}") from exc
    if arr.dtype.kind not in "iuf" or (
            (b"true" in body or b"false" in body) and _non_number(inputs)):
        found = _non_number(inputs) or str(arr.dtype)
        raise BadInput(422, "wrong_dtype",
                       f"'inputs' must contain only numbers (found {found})")
    if arr.shape[1:] != feature_shape or arr.ndim != len(feature_shape) + 1:
        raise BadInput(422, "wrong_shape", f"'inputs' has shape {tuple(arr.shape)} "
                       f"(expected {_shape(feature_shape)})")
    with np.errstate(over="ignore", invalid="ignore"):
        x = arr.astype(np.float32)
    finite = np.isfinite(x)
    if not finite.all():
        row = int(np.argwhere(~finite)[0][0])
        raise BadInput(422, "non_finite", f"'inputs' row {row} holds NaN or infinity "
                       "(or a number too large for float32)")
    return np.ascontiguousarray(x)
