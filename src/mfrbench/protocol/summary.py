"""A printable summary of a protocol (what ``mfrbench protocol show`` prints)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from mfrbench.protocol.digests import protocol_id
from mfrbench.protocol.lineage import superseded
from mfrbench.protocol.schema import SPLIT_RANK
from mfrbench.records import Pair, Protocol


def _tally(pairs: Iterable[Pair], key: Callable[[Pair], Any]) -> dict[Any, dict[str, int]]:
    """Pairs, genuine and impostor counts per ``key(pair)``."""
    out: dict[Any, dict[str, int]] = {}
    for p in pairs:
        row = out.setdefault(key(p), {"pairs": 0, "genuine": 0, "impostor": 0})
        row["pairs"] += 1
        row["genuine" if p["label"] == 1 else "impostor"] += 1
    return out


def show(protocol: Protocol) -> dict[str, Any]:
    """A printable summary: identity, dataset, and pair counts by split, fold, type and label.

    ``colors`` counts masked synthetic images per colour; ``detectors`` and ``landmarks`` count
    images per face detector and landmark backend; ``face_status`` counts images with a frozen
    face (``ok``), none found (``no_face``) or never detected (``None``); ``points5_source``
    where their five points come from; ``mask_types`` counts images per dataset mask label;
    ``identities`` counts distinct identities overall and per split. ``citation`` is the
    protocol's BibTeX ("" when none was recorded); ``supersedes`` lists the ids of the
    protocols it was re-frozen from (same images and pairs), oldest first.
    """
    pairs = protocol["pairs"]
    images = {img["id"]: img for img in protocol["images"]}
    by_split = _tally(pairs, lambda p: p["split"])
    ids_per_split: dict[str, set[str]] = {}
    for p in pairs:
        ids = ids_per_split.setdefault(p["split"], set())
        ids.update((images[p["a"]]["identity"], images[p["b"]]["identity"]))
    for split, ids in ids_per_split.items():
        by_split[split]["identities"] = len(ids)
    by_fold = _tally((p for p in pairs if p["fold"] is not None), lambda p: p["fold"])
    labels = Counter("genuine" if p["label"] == 1 else "impostor" for p in pairs)
    colors = Counter(img["color"] for img in images.values() if img["color"] is not None)
    detectors = Counter(
        img["detector"] for img in images.values() if img.get("detector") is not None
    )
    landmarks = Counter(
        img["landmarks"] for img in images.values() if img.get("landmarks") is not None
    )
    return {
        "id": protocol_id(protocol),
        "name": protocol["name"],
        "version": protocol["version"],
        "description": protocol["description"],
        "citation": protocol["citation"],
        "supersedes": [protocol_id(entry) for entry in superseded(protocol)],
        "mfrbench_version": protocol["mfrbench_version"],
        "dataset": protocol["dataset"]["name"],
        "content_digest": protocol["dataset"]["content_digest"],
        "source_images": protocol["dataset"]["n_images"],
        "images": len(images),
        "identities": len({img["identity"] for img in images.values()}),
        "pairs": len(pairs),
        "strategy": protocol["generation"]["strategy"],
        "by_split": dict(sorted(by_split.items(), key=lambda kv: SPLIT_RANK[kv[0]])),
        "by_fold": dict(sorted(by_fold.items())),
        "by_pair_type": dict(sorted(_tally(pairs, lambda p: p["pair_type"]).items())),
        "by_label": {"genuine": labels["genuine"], "impostor": labels["impostor"]},
        "variants": dict(sorted(Counter(img["variant"] for img in images.values()).items())),
        "colors": dict(sorted(colors.items())),
        "detectors": dict(sorted(detectors.items())),
        "landmarks": dict(sorted(landmarks.items())),
        "face_status": dict(
            sorted(Counter(str(img["face_status"]) for img in images.values()).items())
        ),
        "points5_source": dict(
            sorted(
                Counter(
                    img["points5_source"] for img in images.values() if img["points5_source"]
                ).items()
            )
        ),
        "mask_types": dict(
            sorted(Counter(img["mask_type"] for img in images.values() if img["mask_type"]).items())
        ),
        "warnings": list(protocol["generation"]["warnings"]),
    }
