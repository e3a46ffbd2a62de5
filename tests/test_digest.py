"""The canonical-JSON variants and hash helpers every pinned output goes through."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest

from mfrbench.digest import (
    ascii_json,
    jsonable,
    model_json,
    protocol_bytes,
    sha256_file,
    sha256_file_cached,
    sha256_text,
    utf8_json,
)

OBJ = {"b": [1, 2.5], "a": "Zoë", "c": {"y": None, "x": True}}


def test_variants_differ_only_where_documented() -> None:
    assert utf8_json(OBJ) == '{"a":"Zoë","b":[1,2.5],"c":{"x":true,"y":null}}'
    assert ascii_json(OBJ) == '{"a":"Zo\\u00eb","b":[1,2.5],"c":{"x":true,"y":null}}'
    assert model_json(OBJ) == ascii_json(OBJ)
    assert protocol_bytes(OBJ) == (utf8_json(OBJ) + "\n").encode()
    assert utf8_json({"v": math.nan}) == '{"v":NaN}' == ascii_json({"v": math.nan})


@pytest.mark.parametrize(
    "bad", [{"v": math.nan}, {"v": math.inf}, {1: "x"}, {"v": {1, 2}}, {"v": b"x"}]
)
def test_protocol_bytes_refuses_what_json_cannot_hold(bad) -> None:
    with pytest.raises(ValueError):
        protocol_bytes(bad)


def test_model_json_refuses_nan_and_converts_numpy() -> None:
    with pytest.raises(ValueError):
        model_json({"v": math.nan})
    assert model_json({"v": np.float32(0.5), "n": np.int64(3), "a": np.arange(2)}) == (
        '{"a":[0,1],"n":3,"v":0.5}'
    )


def test_jsonable_flags() -> None:
    value = {1: np.float64(math.nan), "t": (np.bool_(True), np.str_("s"))}
    assert jsonable(value, nonfinite="null") == {"1": None, "t": [True, "s"]}
    kept = jsonable(value)
    assert math.isnan(kept["1"]) and kept["t"] == [True, "s"]
    assert 1 in jsonable(value, str_keys=False)


def test_file_hashes(tmp_path) -> None:
    f = tmp_path / "x.bin"
    f.write_bytes(b"abc" * 1000)
    want = hashlib.sha256(b"abc" * 1000).hexdigest()
    assert sha256_file(f, chunk=7) == want == sha256_file_cached(f)
    assert sha256_text("Zoë") == hashlib.sha256("Zoë".encode()).hexdigest()
