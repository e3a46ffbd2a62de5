"""Face detectors on masked faces: detection rate, box agreement, false faces, ms per image.

Three sets, each run with every detector below on one thread:

- ``masked-real``: the 26 real masked photos of ``../shared/data/masked-real`` (one face each);
- ``lfw``: N LFW photos (seeded sample of the sources of ``lfw-view2-masked-v1``), unmasked;
- ``lfw-masked``: the same photos with the protocol's black paper-polygon mask drawn.

Box agreement on the LFW sets: IoU of the face the detector picks (nearest the centre, as
``--face-policy center``) with the MTCNN box the protocol froze on the unmasked photo; a pick
with IoU < 0.3 counts as a **false face** (a bystander or a non-face). On masked-real (no
reference box) agreement is the IoU with MTCNN's default box where both find a face, and
"extra" counts detections beyond the one face each photo shows.

    .venv/bin/python bench/detect_real.py [--n 300] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mfrbench.evaluate.prepare import load_source, masked_frame
from mfrbench.protocol import load_protocol
from mfrbench.vision.align import iou
from mfrbench.vision.blazeface import BlazeFace
from mfrbench.vision.decode import decode_image
from mfrbench.vision.detect import Cascade, DlibHog, MmodCnn, plausible_points5, select_face
from mfrbench.vision.mtcnn import MTCNN


def detectors() -> dict[str, Callable[[np.ndarray], list]]:
    default = MTCNN()
    loose = MTCNN(thresholds=(0.6, 0.7, 0.5))
    looser = MTCNN(thresholds=(0.5, 0.6, 0.3))
    hog, mmod = DlibHog(), MmodCnn(upsample=0)
    short, full = BlazeFace("short"), BlazeFace("full")
    short_lo = BlazeFace("short", min_score=0.3)

    def checked(det: MTCNN) -> Callable[[np.ndarray], list]:
        return lambda rgb: [f for f in det.detect(rgb) if plausible_points5(f)]

    return {
        "mtcnn (0.6, 0.7, 0.7)": default.detect,
        "mtcnn (0.6, 0.7, 0.5) + points check": checked(loose),
        "mtcnn (0.5, 0.6, 0.3) + points check": checked(looser),
        "mtcnn (0.5, 0.6, 0.3), unchecked": looser.detect,
        "dlib HOG": hog.detect,
        "dlib MMOD CNN (upsample 0)": mmod.detect,
        "BlazeFace short (0.5)": short.detect,
        "BlazeFace short (0.3)": short_lo.detect,
        "BlazeFace full (0.6)": full.detect,
        "cascade mtcnn > dlib > haar (synth's)": Cascade(["mtcnn", "dlib", "haar"]).detect,
        "cascade mtcnn > mmod > dlib > haar": Cascade(["mtcnn", "mmod", "dlib", "haar"]).detect,
        "cascade mtcnn > blazeface-short > haar": Cascade(
            ["mtcnn", "blazeface-short", "haar"]
        ).detect,
    }


def lfw_sets(data: Path, n: int, seed: int) -> tuple[list, list]:
    protocol = load_protocol(
        Path(__file__).resolve().parents[1] / "protocols/lfw-view2-masked-v1.json"
    )
    masked = sorted(
        (im for im in protocol["images"] if im["color"] == "black"), key=lambda im: im["id"]
    )
    rng = np.random.default_rng(seed)
    pick = [masked[i] for i in sorted(rng.choice(len(masked), size=n, replace=False))]
    root = data / "lfw"
    plain, covered = [], []
    for im in pick:
        rgb = load_source(im, root)
        plain.append((rgb, im["det_box"]))
        covered.append((masked_frame(im, rgb), im["det_box"]))
    return plain, covered


def run(name: str, detect: Callable, images: list) -> dict:
    found = agree = false = extra = 0
    ious, times, missed = [], [], []
    for k, (rgb, ref) in enumerate(images):
        t = time.perf_counter()
        faces = detect(rgb)
        times.append(time.perf_counter() - t)
        if not faces:
            missed.append(k)
            continue
        found += 1
        extra += len(faces) - 1
        face, _ = select_face(faces, "center", (rgb.shape[1], rgb.shape[0]))
        if ref is not None:
            v = iou(face.box, ref)
            ious.append(v)
            false += v < 0.3
            agree += v >= 0.5
    n = len(images)
    return {
        "detector": name,
        "images": n,
        "found": found,
        "rate": found / n,
        "median_iou": float(np.median(ious)) if ious else None,
        "false_faces": int(false),
        "extra_detections": int(extra),
        "ms": 1000 * float(np.median(times)),
        "missed": missed,
    }


def main() -> None:
    import cv2
    import torch

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    dets = detectors()
    real_paths = sorted((args.data / "masked-real").iterdir())
    real = [(decode_image(p.read_bytes()).rgb, None) for p in real_paths]
    # masked-real has no reference: agreement is with MTCNN's default box
    ref_boxes = []
    for rgb, _ in real:
        faces = dets["mtcnn (0.6, 0.7, 0.7)"](rgb)
        ref_boxes.append(
            select_face(faces, "largest", (rgb.shape[1], rgb.shape[0]))[0].box if faces else None
        )
    plain, covered = lfw_sets(args.data, args.n, args.seed)
    rows = []
    for name, det in dets.items():
        for set_name, images in (
            ("masked-real", [(rgb, ref) for (rgb, _), ref in zip(real, ref_boxes, strict=True)]),
            ("lfw", plain),
            ("lfw-masked", covered),
        ):
            row = run(name, det, images)
            row["set"] = set_name
            rows.append(row)
            missed = (
                [real_paths[k].name for k in row["missed"]] if set_name == "masked-real" else []
            )
            print(
                f"{set_name:12s} {name:40s} {row['found']:4d}/{row['images']:<4d} "
                f"IoU {row['median_iou'] or 0:.3f} false {row['false_faces']:3d} "
                f"extra {row['extra_detections']:3d} {row['ms']:7.1f} ms"
                + (f" missed {missed}" if missed else ""),
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
