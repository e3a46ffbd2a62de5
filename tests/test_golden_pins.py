"""What a refactor must not move: digests, ids, keys and bytes of small real inputs, pinned.

Every value below is an output users cite or cache by (a protocol id in a paper, a model id in
a results folder, an embedding-cache key on disk, a manifest's bytes). A change to any of them
is a behaviour change, never a clean-up: if one of these fails, the change needs a new schema or
version, and the pin is updated in the same commit with the reason.

Inputs avoid detector numerics that vary across CPUs and torch builds (MTCNN's float boxes, see
protocols/README.md): the protocol is built from frozen faces, and the manifest comes from the
Haar detector (integer boxes) with PNG output.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_evaluate import _images

from mfrbench.evaluate.prepare import content_key, prepare
from mfrbench.evaluate.runner import model_id_of
from mfrbench.manifest import canonical_json, read_metadata
from mfrbench.models.registry import create_model
from mfrbench.pairs import lfw_folds
from mfrbench.protocol import freeze, protocol_id, render_image

PROTOCOL_DIGEST = "79fb98f2eda016dd5358fb9be39ec7765146ff36627dc33cab3501f1c4220a80"
DLIB_MODEL_ID = "dlib-resnet@556b3a202413"
DLIB_CACHE_KEY = "556b3a202413a56bb3689ac5e3b3e85eed132c5e92d09d4b28f2c7055879ec21"
MASKED_IMAGE = "mask-black:Al_Gore/Al_Gore_0001.jpg"
MASKED_CONTENT_KEY = "d302308bdf46f01343d3dfbf097c9b9435362f1bb9f4b53b16d16e3e9ff2d945"
MASKED_RENDER_SHA = "83c267da91a548d8ac8c906ed48503b86953443d7d07de9431aadae2f72b44e5"
MASKED_CHIP_SHA = "5744c2e2d34ff8b5e938c1650b1420d51c9ef16c6ae76a43aacb0922bf1d6c0a"
MANIFEST_SHA = "569c893fae592739520f1499734b3feb47e9db0f260dd21be1b3528f8d4a05b5"
MANIFEST_PYARROW = "26.0.1"  # the file bytes name the writer's version; the rows do not
MANIFEST_ROWS_SHA = "934816d6c47f465180c23118a4d7324186367a6a9c05058dbf73c77ea5337dd6"


def _sha(x: np.ndarray | bytes) -> str:
    data = x if isinstance(x, bytes) else np.ascontiguousarray(x).tobytes()
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def pinned(lfw_mini: Path) -> dict[str, Any]:
    refs = _images(lfw_mini, n_ids=8, per_id=3)
    pairset = lfw_folds(
        refs, n_folds=2, per_fold=4, pair_types=["masked-unmasked", "unmasked-unmasked"], seed=0
    )
    return {"protocol": freeze(pairset, name="pins", dataset="lfw-mini"), "root": lfw_mini}


def test_protocol_digest(pinned: dict[str, Any]) -> None:
    proto = pinned["protocol"]
    assert proto["digest"] == PROTOCOL_DIGEST
    assert protocol_id(proto) == f"pins@{PROTOCOL_DIGEST[:12]}"


def test_model_id_and_cache_key() -> None:
    model = create_model("plugin:dlib-resnet", {})
    assert model_id_of(model, "euclidean") == DLIB_MODEL_ID
    assert model.cache_key() == DLIB_CACHE_KEY


def test_content_key_and_prepared_pixels(pinned: dict[str, Any]) -> None:
    images = {img["id"]: img for img in pinned["protocol"]["images"]}
    img = images[MASKED_IMAGE]
    model = create_model("plugin:dlib-resnet", {})
    assert content_key(img, model.preprocess) == MASKED_CONTENT_KEY
    assert _sha(render_image(img, pinned["root"])) == MASKED_RENDER_SHA
    assert _sha(prepare(img, pinned["root"], model.preprocess)[0]) == MASKED_CHIP_SHA


def test_manifest_bytes(lfw_mini: Path, tmp_path: Path) -> None:
    from mfrbench.synth import SynthConfig, run_synth

    src = tmp_path / "faces"
    for person in sorted(p for p in lfw_mini.iterdir() if p.is_dir())[:2]:
        (src / person.name).mkdir(parents=True)
        for f in sorted(person.glob("*.jpg"))[:2]:
            shutil.copy(f, src / person.name / f.name)
    config = SynthConfig(
        dataset="folder",
        root=str(src),
        detector="haar",
        fallback=False,
        landmarks="dlib",
        image_format="png",
        face_policy="center",
        seed=0,
    )
    result = run_synth(config, tmp_path / "out")
    table = pq.read_table(result.manifest)
    rows = canonical_json({"meta": read_metadata(result.manifest), "rows": table.to_pylist()})
    assert _sha(rows.encode()) == MANIFEST_ROWS_SHA
    if pa.__version__ == MANIFEST_PYARROW:
        assert _sha(result.manifest.read_bytes()) == MANIFEST_SHA
