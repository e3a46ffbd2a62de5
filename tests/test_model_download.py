"""Weight downloads of the torch plugins (facenet, resnet50), against a real local HTTP server.

The server (tests/test_fetch.py's) runs on 127.0.0.1 in a thread and serves state dicts of
the project's own networks, freshly initialised from fixed seeds and saved with torch.save:
random weights exercise the download path as well as published ones would. Downloads go to
a temporary ``$MFRBENCH_CACHE``.
"""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from test_fetch import _Server

from mfrbench.errors import UserError
from mfrbench.models.base import EmbeddingModel
from mfrbench.models.facenet import FaceNet
from mfrbench.models.nets.inception_resnet_v1 import InceptionResnetV1
from mfrbench.models.nets.resnet import ResNet50 as ResNet50Net
from mfrbench.models.resnet50 import ResNet50

#: facenet-pytorch's published file name: a pretrained=vggface2 download is cached under it.
VGGFACE2_FILE = "20180402-114759-vggface2.pt"


def _seeded(build: Callable[[], torch.nn.Module], seed: int) -> torch.nn.Module:
    """Build a module under a fixed torch seed without disturbing the global RNG state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def _files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*")) if folder.exists() else []


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """One intra-op thread (a busy 2-core machine slows down with two spinning threads)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Server]:
    """Serves, under mirror-style names: facenet-pytorch's InceptionResnetV1 layout (with the
    VGGFace2 8631-way logits its published file has) and torchvision's ResNet-50 layout."""
    root = tmp_path_factory.mktemp("srv")
    facenet = _seeded(lambda: InceptionResnetV1(num_classes=8631), 1)
    torch.save(facenet.state_dict(), root / "facenet-vggface2-mirror.pt")
    torch.save(_seeded(ResNet50Net, 0).state_dict(), root / "resnet50-random.pth")
    srv = _Server(root)
    yield srv
    srv.close()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh ``$MFRBENCH_CACHE`` (not created: the download creates what it needs)."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("MFRBENCH_CACHE", str(folder))
    return folder


@pytest.fixture(scope="module")
def face(lfw_mini: Path) -> np.ndarray:
    """The central face region of a real LFW image (RGB uint8); the plugins resize it."""
    path = sorted(lfw_mini.rglob("*.jpg"))[0]
    return np.asarray(Image.open(path).convert("RGB"))[62:188, 62:188].copy()


def _digest(server: _Server, name: str) -> str:
    return hashlib.sha256((server.root / name).read_bytes()).hexdigest()


#: (plugin, served file, options besides url/sha256, cache file name, embedding size).
CASES = {
    # facenet: a mirror of the published VGGFace2 file, cached under the published name.
    "facenet-pretrained": (
        FaceNet,
        "facenet-vggface2-mirror.pt",
        {"pretrained": "vggface2"},
        VGGFACE2_FILE,
        512,
    ),
    # resnet50: any torchvision-layout file, cached under the URL's name (a random file cannot
    # pass as pretrained=imagenet, whose file name fixes the first 8 hex digits of its sha256).
    "resnet50-url": (ResNet50, "resnet50-random.pth", {}, "resnet50-random.pth", 2048),
}


# ----------------------------------------------------------------------- (a) download once


@pytest.mark.parametrize("case", CASES)
def test_downloads_once_verifies_loads_and_embeds(
    case: str, server: _Server, cache: Path, face: np.ndarray
) -> None:
    cls, served, extra, cached_name, dim = CASES[case]
    url, digest = server.url(served), _digest(server, served)
    opts: dict[str, Any] = {**extra, "url": url, "sha256": digest}
    before = len(server.paths)

    ok, why = cls.check(**opts)
    assert ok and why.endswith("downloads on first use") and url in why
    assert len(server.paths) == before  # check() never downloads

    model: EmbeddingModel = cls(**opts)
    assert server.paths[before:] == [f"/{served}"]
    dest = cache / "models" / cached_name
    assert model.weights_path == dest and dest.read_bytes() == (server.root / served).read_bytes()
    assert _files(cache) == [cache / "models", dest]  # no temporary file left beside it
    assert model.identity().weights_digest == digest

    emb = model.embed([face], [None])
    assert emb.shape == (1, dim) and emb.dtype == np.float32
    assert np.isfinite(emb).all() and np.linalg.norm(emb) > 0

    again = cls(**{**opts, "sha256": f"sha256:{digest.upper()}"})
    assert len(server.paths) == before + 1  # verified cache hit: no second request
    assert again.identity() == model.identity()
    ok, why = cls.check(**opts)
    assert ok and why.endswith(f"cached at {dest}")


def test_resnet50_mirror_of_imagenet_checks_the_name_prefix(server: _Server, cache: Path) -> None:
    """A mirror of torchvision's file must still carry its sha256; this random one cannot."""
    url, digest = server.url("resnet50-random.pth"), _digest(server, "resnet50-random.pth")
    assert not digest.startswith("0676ba61")
    before = len(server.paths)
    with pytest.raises(UserError, match="sha256 starts with 0676ba61"):
        ResNet50(pretrained="imagenet", url=url, sha256=digest)
    assert len(server.paths) == before and _files(cache) == []


# ----------------------------------------------------------------------- (b) wrong checksum


@pytest.mark.parametrize("case", CASES)
def test_wrong_sha256_is_one_line_and_caches_nothing(
    case: str, server: _Server, cache: Path
) -> None:
    cls, served, extra, _, _ = CASES[case]
    url, digest = server.url(served), _digest(server, served)
    wrong = "0" * 64
    with pytest.raises(UserError) as err:
        cls(**extra, url=url, sha256=wrong)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(f"checksum mismatch for {url}")
    assert f"expected sha256:{wrong}" in msg and f"got sha256:{digest}" in msg
    assert _files(cache) == []  # no partial file, and the folders it made are gone again
    ok, why = cls.check(**extra, url=url, sha256=wrong)
    assert ok and why.endswith("downloads on first use")


# ----------------------------------------------------------------------- (c) no checksum


def test_no_sha256_is_refused_and_says_what_to_pass(server: _Server, cache: Path) -> None:
    before = len(server.paths)
    url = server.url("facenet-vggface2-mirror.pt")
    for cls, opts, expect in [
        (FaceNet, {"pretrained": "vggface2", "url": url}, "no published checksum"),
        (FaceNet, {"url": url}, "url= downloads must be verified"),
        (ResNet50, {"url": server.url("resnet50-random.pth")}, "url= downloads must be verified"),
    ]:
        with pytest.raises(UserError, match=expect) as err:
            cls(**opts)
        msg = str(err.value)
        assert "\n" not in msg
        assert "--model-opt sha256=HEX" in msg and "weights=PATH" in msg
        ok, why = cls.check(**opts)
        assert not ok and why == msg
    assert len(server.paths) == before and _files(cache) == []


# ----------------------------------------------------------------------- (d) server trouble


def test_http_404_is_one_line_and_caches_nothing(server: _Server, cache: Path) -> None:
    url = server.url("no-such-weights.pt")
    for cls in (FaceNet, ResNet50):
        with pytest.raises(UserError) as err:
            cls(url=url, sha256="0" * 64)
        msg = str(err.value)
        assert "\n" not in msg
        assert msg.startswith(f"download failed: {url}: HTTP 404")
    assert _files(cache) == []


def test_server_down_is_one_line_and_caches_nothing(cache: Path) -> None:
    with socket.socket() as s:  # a port that nothing listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/{VGGFACE2_FILE}"
    with pytest.raises(UserError) as err:
        FaceNet(pretrained="vggface2", url=url, sha256="0" * 64)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"download failed: {url}: ")
    assert _files(cache) == []


# ----------------------------------------------------------------------- url= itself


def test_file_url_downloads_from_a_local_file(
    server: _Server, cache: Path, face: np.ndarray
) -> None:
    """``file://`` works as a mirror too (fetch reads it like any URL)."""
    path = server.root / "facenet-vggface2-mirror.pt"
    digest = _digest(server, path.name)
    model = FaceNet(pretrained="vggface2", url=path.as_uri(), sha256=digest)
    assert model.weights_path == cache / "models" / VGGFACE2_FILE
    assert model.identity().weights_digest == digest
    assert np.isfinite(model.embed([face], [None])).all()


@pytest.mark.parametrize(
    ("opts", "expect"),
    [
        ({"url": "ftp://example.org/w.pt"}, r"url='ftp://example.org/w.pt' is invalid: .*http"),
        ({"url": "https://example.org/models/"}, "must end in a file name"),
        ({"url": "weights.pt"}, "expected an http"),
        ({"url": "https://example.org/w.pt", "weights": "w.pt"}, "not both"),
        ({"url": "https://example.org/w.pt", "sha256": "abc"}, "not 64 hex digits"),
        (
            {"url": "https://example.org/w.pt", "pretrained": "vgg", "sha256": "0" * 64},
            "pretrained='vgg' is invalid",
        ),
    ],
)
def test_bad_url_options_are_one_line_errors(
    opts: dict[str, str], expect: str, cache: Path
) -> None:
    for cls in (FaceNet, ResNet50):
        with pytest.raises(UserError, match=expect) as err:
            cls(**opts)
        assert "\n" not in str(err.value)
        ok, why = cls.check(**opts)
        assert not ok and why == str(err.value)
    assert _files(cache) == []
