"""Dataset adapters on real LFW data and on small trees built from lfw-mini images."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import time
from pathlib import Path

import pytest

import mfrbench.datasets.base as base
from mfrbench.datasets import (
    IMAGE_EXTENSIONS,
    LFW,
    MFR2,
    RMFRD,
    Record,
    available_datasets,
    get_dataset,
    register_dataset,
)
from mfrbench.errors import UserError


@pytest.fixture(scope="module")
def jpgs(lfw_mini: Path) -> list[Path]:
    """Six distinct real JPEGs from lfw-mini."""
    files = sorted(lfw_mini.rglob("*.jpg"))[:6]
    assert len(files) == 6
    return files


def _put(root: Path, rel: str, src: Path | bytes) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(src, bytes):
        path.write_bytes(src)
    else:
        shutil.copyfile(src, path)
    path.chmod(0o644)
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# Records a mixed identity tree must give, as (identity, rel_path); everything else is noise.
TREE_IMAGES = [
    "Bob/Bob_0001.JPG",
    "Carol/extra/deeper/Carol_0003.png",
    "Carol/Carol_0001.jpeg",
    "José_Müller/José_Müller_0001.jpg",
    "Zoë/Zoë_0001.webp",
    "Bob/Bob_0002.jpg",
]
TREE_NOISE = [
    "root.jpg",  # directly at the root: not a record
    "pairs.txt",
    "Bob/.hidden.jpg",
    "Bob/notes.txt",
    "Bob/Bob_0003.jpg.bak",
    ".cache/Ghost/Ghost_0001.jpg",  # hidden folder
    "Carol/.thumbs/Carol_0009.jpg",
]


def _build_tree(root: Path, jpgs: list[Path], order: list[int]) -> Path:
    items = [(rel, jpgs[i % len(jpgs)]) for i, rel in enumerate(TREE_IMAGES)]
    items += [(rel, b"noise") for rel in TREE_NOISE]
    for k in order:
        rel, src = items[k]
        _put(root, rel, src)
    return root


def test_folder_tree_identities_paths_and_hashes(tmp_path: Path, jpgs: list[Path]) -> None:
    n = len(TREE_IMAGES) + len(TREE_NOISE)
    root = _build_tree(tmp_path / "tree", jpgs, list(range(n)))
    ds = get_dataset("folder", root=root)
    recs = list(ds.records())
    assert [r.rel_path for r in recs] == sorted(TREE_IMAGES)
    assert [r.identity for r in recs] == [p.split("/")[0] for p in sorted(TREE_IMAGES)]
    assert {r.dataset for r in recs} == {"folder"}
    assert all(r.real_mask is None for r in recs)
    for r in recs:
        path = ds.path(r)
        assert path == root / r.rel_path
        assert r.sha256 == _sha(path)
    # Non-ASCII names are kept exactly as written (no Unicode normalisation).
    assert "José_Müller/José_Müller_0001.jpg" in [r.rel_path for r in recs]


def test_order_independent_of_creation_and_listing_order(
    tmp_path: Path, jpgs: list[Path], monkeypatch
) -> None:
    n = len(TREE_IMAGES) + len(TREE_NOISE)
    first = _build_tree(tmp_path / "a", jpgs, list(range(n)))
    second = _build_tree(tmp_path / "b", jpgs, list(reversed(range(n))))
    expected = [(r.identity, r.rel_path, r.sha256) for r in get_dataset("folder", first).records()]
    got = [(r.identity, r.rel_path, r.sha256) for r in get_dataset("folder", second).records()]
    assert got == expected

    rng = random.Random(7)
    real_list_dir = base.list_dir

    def shuffled(path: str) -> list[os.DirEntry[str]]:
        entries = real_list_dir(path)
        rng.shuffle(entries)
        return entries

    monkeypatch.setattr(base, "list_dir", shuffled)
    for _ in range(3):
        again = [(r.identity, r.rel_path, r.sha256) for r in get_dataset("folder", first).records()]
        assert again == expected


def test_symlinks_are_followed_without_looping(tmp_path: Path, jpgs: list[Path]) -> None:
    root = tmp_path / "root"
    _put(root, "Ann/Ann_0001.jpg", jpgs[0])
    _put(tmp_path / "elsewhere", "Dan_0001.jpg", jpgs[1])
    (root / "Dan").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (root / "Ann" / "Ann_0002.jpg").symlink_to(jpgs[2])
    (root / "Ann" / "loop").symlink_to(root, target_is_directory=True)  # must not recurse forever
    recs = list(get_dataset("folder", root).records())
    assert [(r.identity, r.rel_path) for r in recs] == [
        ("Ann", "Ann/Ann_0001.jpg"),
        ("Ann", "Ann/Ann_0002.jpg"),
        ("Dan", "Dan/Dan_0001.jpg"),
    ]
    assert recs[1].sha256 == _sha(jpgs[2])
    assert recs[2].sha256 == _sha(jpgs[1])


def test_unreadable_files_are_records_with_empty_hash(tmp_path: Path, jpgs: list[Path]) -> None:
    root = tmp_path / "root"
    _put(root, "Ann/Ann_0001.jpg", jpgs[0])
    (root / "Ann" / "Ann_0002.jpg").symlink_to(tmp_path / "gone.jpg")  # broken link
    recs = list(get_dataset("folder", root).records())
    assert [r.rel_path for r in recs] == ["Ann/Ann_0001.jpg", "Ann/Ann_0002.jpg"]
    assert recs[0].sha256 == _sha(jpgs[0])
    assert recs[1].sha256 == ""


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads anything")
def test_permission_denied_gives_empty_hash(tmp_path: Path, jpgs: list[Path]) -> None:
    root = tmp_path / "root"
    locked = _put(root, "Ann/Ann_0001.jpg", jpgs[0])
    locked.chmod(0)
    try:
        (rec,) = get_dataset("folder", root).records()
        assert rec.rel_path == "Ann/Ann_0001.jpg"
        assert rec.sha256 == ""
    finally:
        locked.chmod(0o644)


def test_image_extensions_case_insensitive() -> None:
    assert ".jpg" in IMAGE_EXTENSIONS and ".png" in IMAGE_EXTENSIONS
    assert (
        base.is_image_name("a.JPG") and base.is_image_name("b.Jpeg") and base.is_image_name("c.PGM")
    )
    assert not base.is_image_name(".a.jpg")
    assert not base.is_image_name("a.txt")
    assert not base.is_image_name("jpg")


# ----------------------------------------------------------------------------- rmfrd


def _build_rmfrd(root: Path, jpgs: list[Path]) -> Path:
    _put(root, "AFDB_masked_face_dataset/wangfei/0_0_wangfei_0001.jpg", jpgs[0])
    _put(root, "AFDB_masked_face_dataset/aidai/1_0_aidai_0002.jpg", jpgs[1])
    _put(root, "AFDB_face_dataset/aidai/0_0_0.jpg", jpgs[2])
    _put(root, "AFDB_face_dataset/wangfei/0_0_1.jpg", jpgs[3])
    _put(root, "AFDB_face_dataset/wangfei/0_0_2.png", jpgs[4])
    _put(root, "AFDB_face_dataset/readme.txt", b"noise")
    _put(root, "AFDB_face_dataset/loose.jpg", jpgs[5])  # not inside an identity folder
    return root


RMFRD_EXPECTED = [
    ("aidai", "AFDB_face_dataset/aidai/0_0_0.jpg", False),
    ("wangfei", "AFDB_face_dataset/wangfei/0_0_1.jpg", False),
    ("wangfei", "AFDB_face_dataset/wangfei/0_0_2.png", False),
    ("aidai", "AFDB_masked_face_dataset/aidai/1_0_aidai_0002.jpg", True),
    ("wangfei", "AFDB_masked_face_dataset/wangfei/0_0_wangfei_0001.jpg", True),
]


@pytest.mark.parametrize("wrapper", ["", "self-built-masked-face-recognition-dataset"])
def test_rmfrd_layouts(tmp_path: Path, jpgs: list[Path], wrapper: str) -> None:
    given = tmp_path / "rmfrd"
    _build_rmfrd(given / wrapper if wrapper else given, jpgs)
    ds = get_dataset("rmfrd", root=given)
    assert isinstance(ds, RMFRD)
    recs = list(ds.records())
    assert [(r.identity, r.rel_path, r.real_mask) for r in recs] == RMFRD_EXPECTED
    assert all(r.dataset == "rmfrd" for r in recs)
    assert all(r.sha256 == _sha(ds.path(r)) for r in recs)


def test_rmfrd_one_folder_is_enough(tmp_path: Path, jpgs: list[Path]) -> None:
    _put(tmp_path / "r", "AFDB_masked_face_dataset/aidai/a.jpg", jpgs[0])
    recs = list(get_dataset("rmfrd", root=tmp_path / "r").records())
    assert [(r.identity, r.real_mask) for r in recs] == [("aidai", True)]


def test_rmfrd_missing_folders_named(tmp_path: Path, jpgs: list[Path]) -> None:
    _put(tmp_path / "r", "someone/a.jpg", jpgs[0])
    with pytest.raises(UserError) as err:
        get_dataset("rmfrd", root=tmp_path / "r")
    assert "AFDB_face_dataset" in str(err.value)
    assert "AFDB_masked_face_dataset" in str(err.value)


# ----------------------------------------------------------------------------- mfr2


def test_mfr2_records_and_pairs_file(tmp_path: Path, jpgs: list[Path]) -> None:
    root = tmp_path / "mfr2"
    _put(root, "Aamir_Khan/Aamir_Khan_0002.png", jpgs[0])
    _put(root, "Aamir_Khan/Aamir_Khan_0001.png", jpgs[1])
    _put(root, "Adam_Sandler/Adam_Sandler_0001.png", jpgs[2])
    ds = get_dataset("mfr2", root=root)
    assert isinstance(ds, MFR2)
    assert ds.pairs_file() is None
    assert [(r.identity, r.rel_path) for r in ds.records()] == [
        ("Aamir_Khan", "Aamir_Khan/Aamir_Khan_0001.png"),
        ("Aamir_Khan", "Aamir_Khan/Aamir_Khan_0002.png"),
        ("Adam_Sandler", "Adam_Sandler/Adam_Sandler_0001.png"),
    ]
    _put(root, "pairs.txt", b"Aamir_Khan 1 2\n")
    assert ds.pairs_file() == root / "pairs.txt"
    assert len(list(ds.records())) == 3  # the pair list is not a record
    assert all(r.mask_type is None and r.real_mask is None for r in ds.records())


def test_mfr2_labels_in_mfr2s_format(tmp_path: Path, jpgs: list[Path]) -> None:
    """``mfr2_labels.txt`` exactly as MFR2 ships it: ``Name, number, type`` per image."""
    root = tmp_path / "mfr2"
    for i, name in enumerate(
        (
            "AdrianDunbar/AdrianDunbar_0001.png",
            "AdrianDunbar/AdrianDunbar_0002.png",
            "AdrianDunbar/AdrianDunbar_0003.png",
            "AlanMulally/AlanMulally_0001.png",
        )
    ):
        _put(root, name, jpgs[i])
    _put(
        root,
        "mfr2_labels.txt",
        b"AdrianDunbar, 1, surgical_blue\nAdrianDunbar, 2, no-mask\n\nAlanMulally, 1, KN95\n",
    )
    records = {r.rel_path: r for r in get_dataset("mfr2", root=root).records()}
    got = {k: (r.mask_type, r.real_mask) for k, r in records.items()}
    assert got == {
        "AdrianDunbar/AdrianDunbar_0001.png": ("surgical_blue", True),
        "AdrianDunbar/AdrianDunbar_0002.png": ("no-mask", False),
        "AdrianDunbar/AdrianDunbar_0003.png": (None, None),  # not labelled: unknown
        "AlanMulally/AlanMulally_0001.png": ("KN95", True),
    }


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (b"AdrianDunbar, 1\n", "expected 'identity, number, mask_type'"),
        (b"AdrianDunbar, one, N95\n", "not a positive integer"),
        (b"AdrianDunbar, 0, N95\n", "not a positive integer"),
        (b"AdrianDunbar, 1, surgical blue\n", "not a plain name"),
        (b"AdrianDunbar, 1, N95\nAdrianDunbar, 1, N99\n", "labelled 'N95' and 'N99'"),
    ],
)
def test_mfr2_labels_refuse_malformed_lines(
    tmp_path: Path, jpgs: list[Path], text: bytes, needle: str
) -> None:
    root = tmp_path / "mfr2"
    _put(root, "AdrianDunbar/AdrianDunbar_0001.png", jpgs[0])
    _put(root, "mfr2_labels.txt", text)
    with pytest.raises(UserError, match=needle) as err:
        get_dataset("mfr2", root=root)
    assert "mfr2_labels.txt:" in str(err.value)


# ----------------------------------------------------------------------------- lfw


def test_lfw_mini(lfw_mini: Path) -> None:
    ds = get_dataset("lfw", root=lfw_mini)
    assert isinstance(ds, LFW)
    recs = list(ds.records())
    assert len(recs) == 292
    assert len({r.identity for r in recs}) == 40
    assert [r.rel_path for r in recs] == sorted(r.rel_path for r in recs)
    assert all(r.rel_path.startswith(r.identity + "/") for r in recs)
    sample = recs[::37]
    assert all(r.sha256 == _sha(ds.path(r)) for r in sample)
    folder = [(r.identity, r.rel_path, r.sha256) for r in get_dataset("folder", lfw_mini).records()]
    assert [(r.identity, r.rel_path, r.sha256) for r in recs] == folder


def test_lfw_full(lfw_root: Path) -> None:
    start = time.perf_counter()
    ds = get_dataset("lfw", root=lfw_root)
    recs = list(ds.records())
    elapsed = time.perf_counter() - start
    assert len(recs) == 13233
    assert len({r.identity for r in recs}) == 5749
    assert all(len(r.sha256) == 64 for r in recs)
    assert ds.pairs_file() == lfw_root / "pairs.txt"
    assert ds.pairs_file("pairsDevTrain.txt") == lfw_root / "pairsDevTrain.txt"
    assert ds.pairs_file("nope.txt") is None
    assert "pairs.txt" not in {r.rel_path for r in recs}
    print(f"lfw: {len(recs)} records hashed in {elapsed:.2f} s")


def test_lfw_root_resolution(tmp_path: Path, jpgs: list[Path], monkeypatch) -> None:
    monkeypatch.delenv("MFRBENCH_DATA", raising=False)
    monkeypatch.setenv("MFRBENCH_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(
        UserError, match=r"^LFW not found: pass --root DIR, set MFRBENCH_DATA, or use --download$"
    ):
        get_dataset("lfw")
    assert not (tmp_path / "empty-cache").exists()

    with pytest.raises(UserError, match=r"root does not exist: .*missing"):
        get_dataset("lfw", root=tmp_path / "missing")

    data = tmp_path / "data"
    _put(data / "lfw", "Al_Gore/Al_Gore_0001.jpg", jpgs[0])
    monkeypatch.setenv("MFRBENCH_DATA", str(data))
    assert get_dataset("lfw").root == data / "lfw"

    # A root holding only the archive's top folder is unwrapped.
    _put(tmp_path / "x" / "lfw-deepfunneled", "Al_Gore/Al_Gore_0001.jpg", jpgs[0])
    ds = get_dataset("lfw", root=tmp_path / "x")
    assert ds.root == tmp_path / "x" / "lfw-deepfunneled"
    assert [r.rel_path for r in ds.records()] == ["Al_Gore/Al_Gore_0001.jpg"]


# ----------------------------------------------------------------------------- registry


def test_registry_errors(tmp_path: Path, jpgs: list[Path]) -> None:
    assert set(available_datasets()) >= {"folder", "lfw", "mfr2", "rmfrd"}
    with pytest.raises(UserError) as err:
        get_dataset("nope")
    assert "nope" in str(err.value)
    for name in ("folder", "lfw", "mfr2", "rmfrd"):
        assert name in str(err.value)

    _put(tmp_path / "r", "Ann/Ann_0001.jpg", jpgs[0])
    with pytest.raises(UserError, match=r"does not accept option.*download"):
        get_dataset("folder", root=tmp_path / "r", download=True)
    with pytest.raises(UserError, match="needs a root"):
        get_dataset("folder")
    with pytest.raises(UserError, match="not a directory"):
        get_dataset("folder", root=tmp_path / "r" / "Ann" / "Ann_0001.jpg")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no identity folders"):
        get_dataset("folder", root=tmp_path / "empty")


def test_register_custom_dataset(tmp_path: Path, jpgs: list[Path]) -> None:
    _put(tmp_path / "r", "Ann/Ann_0001.jpg", jpgs[0])

    @register_dataset("test-custom")
    class Custom(base.IdentityFolderDataset):
        name = "test-custom"

    try:
        (rec,) = get_dataset("test-custom", root=tmp_path / "r").records()
        assert rec == Record("test-custom", "Ann", "Ann/Ann_0001.jpg", _sha(jpgs[0]), None)
        with pytest.raises(ValueError, match="already registered"):
            register_dataset("test-custom")(lambda root=None: Custom(root))
    finally:
        base._REGISTRY.pop("test-custom", None)
