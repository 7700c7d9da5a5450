from __future__ import annotations

import json

import numpy as np
import pytest

from models.serve import inputs as inputs_mod
from models.serve.errors import BadInput
from models.serve.inputs import parse_body

SHAPE = (4,)
ROW = [0.0, 1.0, 2.0, 16.0]


def body(inputs: object) -> bytes:
    return json.dumps({"inputs": inputs}).encode()


@pytest.mark.parametrize(("raw", "status", "code"), [
    (b"{not json", 400, "malformed_json"),
    (b"\xff\xfe", 400, "malformed_json"),
    (b"", 400, "malformed_json"),
    (b"[1, 2]", 422, "missing_inputs"),
    (b'{"instances": [[1, 2, 3, 4]]}', 422, "missing_inputs"),
    (body([]), 422, "empty_batch"),
    (body(5), 422, "wrong_shape"),
    (body([[1, 2, 3]]), 422, "wrong_shape"),
    (body([ROW, [1, 2]]), 422, "wrong_shape"),
    (body(ROW), 422, "wrong_shape"),
    (body([[ROW]]), 422, "wrong_shape"),
    (body([[1, 2, 3, "4"]]), 422, "wrong_dtype"),
    (body([[1, 2, 3, None]]), 422, "wrong_dtype"),
    (body([[1, 2, 3, True]]), 422, "wrong_dtype"),
    (body([[1.5, 2, 3, False]]), 422, "wrong_dtype"),
    (body([[1, 2, 3, {"a": 1}]]), 422, "wrong_dtype"),
    (b'{"inputs": [[1, 2, 3, NaN]]}', 422, "non_finite"),
    (b'{"inputs": [[1, 2, 3, Infinity]]}', 422, "non_finite"),
    (b'{"inputs": [[1, 2, 3, 1e999]]}', 422, "non_finite"),
    (body([[1, 2, 3, 1e39]]), 422, "non_finite"),  # finite in JSON, not in float32
    (body([ROW] * 11), 413, "too_many_rows"),
])
def test_bad_input_is_refused_with_4xx_and_code(raw: bytes, status: int, code: str) -> None:
    with pytest.raises(BadInput) as info:
        parse_body(raw, SHAPE, max_rows=10)
    assert (info.value.status, info.value.code) == (status, code)
    assert 400 <= info.value.status < 500 and info.value.detail


#: bodies an attacker sends to turn a parse into a 5xx (a RecursionError used to read as 503)
HOSTILE = [
    pytest.param(b"[" * 100_000 + b"]" * 100_000, 400, "malformed_json", "too deeply",
                 id="nested-arrays-100k"),
    pytest.param(b'{"a":' * 50_000 + b"1" + b"}" * 50_000, 400, "malformed_json",
                 "too deeply", id="nested-objects-50k"),
    pytest.param(b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400,
                 "malformed_json", "too deeply", id="nested-inputs-100k"),
    pytest.param(body([[[[[[[[[[[ROW]]]]]]]]]]]), 422, "wrong_shape", "shape",
                 id="nested-inputs-12-levels"),
    pytest.param(b'{"inputs": [[1, 2, 3, ' + b"9" * 5000 + b"]]}", 400, "malformed_json",
                 "4300 digits", id="integer-of-5000-digits"),
    pytest.param(b'{"inputs": [[1, 2, 3, ' + b"9" * 400 + b"]]}", 422, "non_finite",
                 "too large", id="integer-of-400-digits"),
    pytest.param(b'{"inputs": [[1, 2, 3, ' + b"9" * 40 + b"]]}", 422, "non_finite",
                 "too large", id="integer-beyond-float32"),
    pytest.param(b'{"inputs": [[1, 2, 3, 1e99999999999]]}', 422, "non_finite", "infinity",
                 id="huge-exponent"),
    pytest.param('{"inputs": [[1, 2, 3, 4]]}'.encode("utf-16"), 400, "malformed_json",
                 "UTF-8", id="utf-16-with-bom"),
    pytest.param('{"inputs": [[1, 2, 3, 4]]}'.encode("utf-32-le"), 400, "malformed_json",
                 "UTF-8", id="utf-32-without-bom"),
    pytest.param(b"\xef\xbb\xbf" + body([ROW]), 400, "malformed_json", "BOM",
                 id="utf-8-bom"),
    pytest.param(b'{"inputs": [[1, 2, 3, 4]], "x": "\xc0\xaf"}', 400, "malformed_json",
                 "UTF-8", id="overlong-utf-8"),
    pytest.param(b'{"inputs": [[1, 2, 3, "\\ud800"]]}', 422, "wrong_dtype", "str",
                 id="lone-surrogate"),
    pytest.param(b'{"inputs": [[1, 2, 3, 4]]}\x00', 400, "malformed_json", "JSON",
                 id="trailing-nul"),
]


@pytest.mark.parametrize(("raw", "status", "code", "named"), HOSTILE)
def test_hostile_body_is_4xx_naming_the_problem(raw: bytes, status: int, code: str,
                                                named: str) -> None:
    with pytest.raises(BadInput) as info:
        parse_body(raw, SHAPE, max_rows=10)
    assert (info.value.status, info.value.code) == (status, code), info.value.detail
    assert named in info.value.detail

def test_good_input_becomes_contiguous_float32() -> None:
    x = parse_body(body([ROW, [1, 2, 3, 4]]), SHAPE, max_rows=10)
    assert x.dtype == np.float32 and x.shape == (2, 4) and x.flags.c_contiguous
    np.testing.assert_array_equal(x[0], ROW)


def test_boolean_text_elsewhere_in_body_is_fine() -> None:
    raw = json.dumps({"inputs": [ROW], "note": "true or false"}).encode()
    assert parse_body(raw, SHAPE, max_rows=10).shape == (1, 4)


def test_messages_name_the_problem() -> None:
    with pytest.raises(BadInput, match=r"shape \(1, 3\) \(expected \(n, 4\)\)"):
        parse_body(body([[1, 2, 3]]), SHAPE, max_rows=10)
    with pytest.raises(BadInput, match="found boolean"):
        parse_body(body([[1, 2, 3, True]]), SHAPE, max_rows=10)


@pytest.mark.parametrize("accelerated", [True, False])
def test_json_io_with_and_without_orjson(
    accelerated: bool, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from models.serve import jsonio

    if not accelerated:
        monkeypatch.setattr(jsonio, "orjson", None)
    assert jsonio.loads(b'{"inputs": [[1, 2.5]]}') == {"inputs": [[1, 2.5]]}
    assert np.isnan(jsonio.loads(b"[NaN]")[0])  # orjson refuses it; the stdlib reads it
    with pytest.raises(ValueError):
        jsonio.loads(b"{nope")
    out = jsonio.dumps({"v": "1", "outputs": {"label": np.array([3]),
                                              "p": np.array([[0.5, 0.25]], dtype=np.float32)}})
    assert json.loads(out) == {"v": "1", "outputs": {"label": [3], "p": [[0.5, 0.25]]}}


@pytest.mark.parametrize("raw", [
    body([ROW]), body([ROW, [4, 5, 6, 7]]), body([[1, 2.5, -3, 1e-5]]), body([[True, 1, 2, 3]]),
    body([[None, 1, 2, 3]]), body([["1.5", 1, 2, 3]]), body([[1e39, 1, 2, 3]]),
    body([[-3.4e38, 3.4e38, 0, 0]]), body([[10**30, 1, 2, 3]]), b'{"inputs": [[1e400, 1, 2, 3]]}',
    body([[1, 2, 3]]), body([ROW, [1, 2]]), body([[ROW, ROW, ROW, ROW]]), body([{"a": 1}]),
])
def test_fast_path_accepts_and_refuses_exactly_what_the_precise_path_does(
        raw: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """The one-pass fast path only costs less: for every body the answer (array or refusal) is
    the precise path's."""
    def outcome() -> object:
        try:
            x = parse_body(raw, SHAPE, 16)
        except BadInput as exc:
            return (exc.status, exc.code, exc.detail)
        assert x.dtype == np.float32 and x.flags.c_contiguous
        return x.tolist()

    fast = outcome()
    monkeypatch.setattr(inputs_mod, "_fast_batch", lambda rows, shape: None)
    assert fast == outcome()
