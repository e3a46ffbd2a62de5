"""How to make dlib's chip from a protocol's frozen face: four ways, scored on LFW pairs.

dlib's ResNet descriptor needs a 150x150 chip (``get_face_chip``). From the face a protocol
freezes (MTCNN box, dlib's 68 anchors fitted in it) the chip can be made

- ``68``: from the frozen 68 anchors (dlib's 68-point chip template);
- ``5-of-68``: from their dlib-5 subset (points 45, 42, 36, 39, 33: dlib's 5-point layout);
- ``5-in-mtcnn``: dlib's 5-point predictor refitted inside the frozen MTCNN detector box;
- ``dlib``: dlib's own pipeline, HOG around the frozen face box (else that box) then the
  5-point predictor: what ``prepare``'s ``dlib-chip`` does.

Each runs on the photo before masking; a masked image's chip is cut from the masked frame with
that geometry. Accuracy is LFW's cross-validated accuracy over the protocol's first ``--folds``
folds (threshold chosen on the other folds), overall and per mask colour.

    .venv/bin/python bench/dlib_alignment.py --protocol protocols/lfw-view2-unmasked-v1.json \\
        --root ../shared/data/lfw --folds 3 --way 68 --way dlib
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from mfrbench.evaluate import metrics
from mfrbench.evaluate.prepare import _dlib_models, dlib_pipeline_chip, load_source, masked_frame
from mfrbench.models.dlib_resnet import model_files
from mfrbench.protocol import load_protocol
from mfrbench.vision import align

WAYS = ("68", "5-of-68", "5-in-mtcnn", "dlib")
DLIB5_OF_68 = [45, 42, 36, 39, 33]


def chip(image: dict, root: Path, way: str) -> np.ndarray:
    import dlib

    rgb = load_source(image, root)
    frame = masked_frame(image, rgb)
    box = tuple(image["face_box"])
    marks = np.asarray(image["landmarks68"], dtype=np.float64)
    if way == "68":
        return align.dlib_chip(frame, align.dlib_shape(marks, box))
    if way == "5-of-68":
        return align.dlib_chip(frame, align.dlib_shape(marks[DLIB5_OF_68], box))
    if way == "5-in-mtcnn":
        x1, y1, x2, y2 = (round(v) for v in image["det_box"])
        shape = _dlib_models()[1](rgb, dlib.rectangle(x1, y1, x2 - 1, y2 - 1))
        return align.dlib_chip(frame, shape)
    return dlib_pipeline_chip(rgb, box, cut_from=frame)


def main() -> None:
    import cv2
    import dlib

    cv2.setNumThreads(1)
    ap = argparse.ArgumentParser()
    ap.add_argument("--protocol", type=Path, required=True)
    ap.add_argument("--root", type=Path, default=Path("../shared/data/lfw"))
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--way", action="append", choices=WAYS)
    args = ap.parse_args()
    protocol = load_protocol(args.protocol)
    images = {im["id"]: im for im in protocol["images"]}
    pairs = [p for p in protocol["pairs"] if p["fold"] is not None and p["fold"] < args.folds]
    net = dlib.face_recognition_model_v1(str(model_files()[0]))
    y = np.array([p["label"] for p in pairs])
    folds = np.array([p["fold"] for p in pairs])
    colour = np.array([images[p["b"]]["color"] or "none" for p in pairs], dtype=object)
    for way in args.way or WAYS:
        t = time.perf_counter()
        ids = sorted({p[s] for p in pairs for s in ("a", "b")})
        emb = {
            i: np.asarray(net.compute_face_descriptor(chip(images[i], args.root, way))) for i in ids
        }
        d = np.array([np.linalg.norm(emb[p["a"]] - emb[p["b"]]) for p in pairs])
        row = {"way": way, "pairs": len(pairs), "seconds": round(time.perf_counter() - t, 1)}
        row["all"] = round(100 * metrics.kfold_accuracy(y, -d, folds)["mean"], 2)
        for c in sorted(set(colour) - {"none"}):
            m = colour == c
            row[c] = round(100 * metrics.kfold_accuracy(y[m], -d[m], folds[m])["mean"], 2)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
