"""MaskAugment speed in a training loop: milliseconds per 112x112 face, one core.

    .venv/bin/python bench/mask_augment.py [--faces 40] [--calls 400]

Faces: the first photo of each lfw-mini identity, cropped to 112x112 around the face with its
landmarks mapped in (``bench/mask_types.load_faces`` / ``crop112``). Each mix is called
``--calls`` times over the faces with a fresh key per call (a new mask look every call, as
an epoch over a dataset draws), pinned to one CPU, OpenCV on one thread. Prints the mean and
median ms per call (the issue's target: under 2 ms).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mask_types import REPO, crop112, load_faces, pin_one_core

from mfrbench.augment import MaskAugment

MIXES = ("surgical", "n95", "kn95", "cloth", "paper", "surgical:0.4,cloth:0.3,n95:0.2,paper:0.1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "lfw-mini")
    ap.add_argument("--faces", type=int, default=40)
    ap.add_argument("--calls", type=int, default=400)
    a = ap.parse_args()
    cpu = pin_one_core()
    crops = [crop112(rgb, box, canon) for _, rgb, box, canon in load_faces(a.data, a.faces)]
    print(f"{len(crops)} faces at 112x112, {a.calls} calls per mix, CPU {cpu}")
    print(f"{'mix':44} {'mean ms':>8} {'median ms':>10}")
    for mix in MIXES:
        aug = MaskAugment(mix, seed=0)
        aug(crops[0][0], crops[0][1], key="warm")
        times = []
        for k in range(a.calls):
            img, canon = crops[k % len(crops)]
            t0 = time.perf_counter()
            aug(img, canon, key=k)
            times.append(1000 * (time.perf_counter() - t0))
        print(f"{mix:44} {statistics.fmean(times):8.2f} {statistics.median(times):10.2f}")


if __name__ == "__main__":
    main()
