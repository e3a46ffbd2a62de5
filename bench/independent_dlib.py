"""An independent dlib reference for masked LFW: dlib's documented pipeline, no mfrbench code
on the image path.

For every pair of a masked-unmasked LFW protocol whose probe has a given colour (default
black), with only dlib, OpenCV and the protocol file: the first image as is, the second with
the protocol's frozen polygon filled in its colour (``cv2.fillPoly``); on each, dlib's HOG face box
found on the photo *before* masking (the detection nearest the image centre), the 68-point
predictor fitted in that box on the image the descriptor sees, ``compute_face_descriptor``;
euclidean distance; LFW's 10-fold accuracy (threshold from the other nine folds, computed here
too, not with mfrbench.metrics). This is the issue-9 reference recipe, run on the same pairs
mfrbench scores, so the two numbers differ only in alignment.

    .venv/bin/python bench/independent_dlib.py --protocol protocols/lfw-view2-masked-v1.json \\
        --root ../shared/data/lfw [--colour black] [--folds 10]
"""

from __future__ import annotations

import argparse
import hashlib
import json
from importlib.resources import files
from pathlib import Path

import cv2
import dlib
import numpy as np


def kfold(labels: np.ndarray, dist: np.ndarray, folds: np.ndarray) -> tuple[float, float]:
    accs = []
    for f in sorted(set(folds.tolist())):
        train, test = folds != f, folds == f
        cands = np.unique(dist[train])
        best = max(cands, key=lambda t: np.mean((dist[train] <= t) == (labels[train] == 1)))
        accs.append(np.mean((dist[test] <= best) == (labels[test] == 1)))
    return float(np.mean(accs)), float(np.std(accs, ddof=1) / np.sqrt(len(accs)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--protocol", type=Path, required=True)
    ap.add_argument("--root", type=Path, default=Path("../shared/data/lfw"))
    ap.add_argument("--colour", default="black")
    ap.add_argument("--folds", type=int, default=10)
    args = ap.parse_args()
    cv2.setNumThreads(1)
    protocol = json.loads(args.protocol.read_text())  # plain JSON: no mfrbench reader
    images = {im["id"]: im for im in protocol["images"]}
    pairs = [
        p
        for p in protocol["pairs"]
        if images[p["b"]]["color"] == args.colour and p["fold"] < args.folds
    ]
    models = files("face_recognition_models") / "models"
    hog = dlib.get_frontal_face_detector()
    sp68 = dlib.shape_predictor(str(models / "shape_predictor_68_face_landmarks.dat"))
    net = dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat"))

    def descriptor(image_id: str) -> np.ndarray:
        im = images[image_id]
        data = (args.root / im["src_path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == im["src_sha256"]
        rgb = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), 4)
        rects = hog(rgb, 1)
        h, w = rgb.shape[:2]
        if rects:
            rect = min(
                rects, key=lambda r: (r.center().x - w / 2) ** 2 + (r.center().y - h / 2) ** 2
            )
        else:  # as the reference script: a box inset 10% from the border
            rect = dlib.rectangle(w // 10, h // 10, w - w // 10, h - h // 10)
        seen = rgb
        if im["mask_polygon"] is not None:
            seen = rgb.copy()
            fill = tuple(int(c) for c in im["color_rgb"])  # RGB image, RGB colour
            cv2.fillPoly(seen, [np.asarray(im["mask_polygon"], np.int32)], fill)
        return np.asarray(net.compute_face_descriptor(seen, sp68(seen, rect)))

    cache = {i: descriptor(i) for i in sorted({p[s] for p in pairs for s in ("a", "b")})}
    labels = np.array([p["label"] for p in pairs])
    dist = np.array([np.linalg.norm(cache[p["a"]] - cache[p["b"]]) for p in pairs])
    folds = np.array([p["fold"] for p in pairs])
    mean, sem = kfold(labels, dist, folds)
    print(json.dumps({"pairs": len(pairs), "colour": args.colour, "accuracy": mean, "sem": sem}))


if __name__ == "__main__":
    main()
