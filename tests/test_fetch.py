"""Checksummed download, cache and safe extraction, against a real local HTTP server."""

from __future__ import annotations

import hashlib
import http.server
import io
import shutil
import socket
import tarfile
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from mfrbench.datasets import get_dataset
from mfrbench.errors import UserError
from mfrbench.fetch import cache_dir, extract_tgz, fetch, parse_checksum, sha256_file


class _Server:
    """A threaded http.server serving one folder on 127.0.0.1, counting the requests it gets."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.paths: list[str] = []
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                server.paths.append(self.path)
                if self.path == "/truncated":  # promise 1000 bytes, send 10, hang up
                    self.send_response(200)
                    self.send_header("Content-Length", "1000")
                    self.end_headers()
                    self.wfile.write(b"0123456789")
                    self.wfile.flush()
                    self.close_connection = True
                    return
                super().do_GET()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), partial(Handler, directory=str(root))
        )
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[_Server]:
    root = tmp_path / "srv"
    root.mkdir()
    srv = _Server(root)
    yield srv
    srv.close()


def _normal_modes(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.mode = 0o755 if info.isdir() else 0o644  # the shared data is read-only; archives are not
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


@pytest.fixture
def lfw_tgz(server: _Server, lfw_mini: Path) -> tuple[str, str]:
    """lfw-mini packed like the official archive (top folder lfw-deepfunneled/): (url, sha256)."""
    archive = server.root / "lfw-deepfunneled.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(lfw_mini, arcname="lfw-deepfunneled", filter=_normal_modes)
    return server.url(archive.name), sha256_file(archive)


def _files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*")) if folder.exists() else []


# ----------------------------------------------------------------------------- fetch


def test_download_lfw_matches_local_copy_and_is_cached(
    server: _Server, lfw_tgz: tuple[str, str], lfw_mini: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.delenv("MFRBENCH_DATA", raising=False)
    url, digest = lfw_tgz
    official = lfw_mini.parent / "lfw" / "pairs.txt"
    if not official.is_file():
        pytest.skip(f"LFW's pairs.txt not found at {official}")
    shutil.copy(official, server.root / "pairs.txt")  # the file the mirror serves, same sha256
    cache = tmp_path / "cache"
    kwargs = {"download": True, "url": url, "checksum": f"sha256:{digest}", "cache_dir": cache}
    kwargs["pairs_url"] = server.url("pairs.txt")

    downloaded = get_dataset("lfw", **kwargs)
    got = list(downloaded.records())
    expected = list(get_dataset("lfw", root=lfw_mini).records())
    assert len(got) == 292
    assert got == expected
    assert downloaded.root.name == "lfw-deepfunneled"
    assert server.paths == ["/lfw-deepfunneled.tgz", "/pairs.txt"]
    assert downloaded.pairs_file().read_bytes() == official.read_bytes()
    assert not [p for p in _files(cache) if p.name.startswith(".")]  # no temp files left

    again = get_dataset("lfw", **kwargs)
    assert again.root == downloaded.root
    assert len(server.paths) == 2  # second call: no request
    # An earlier download is found without --download too.
    without = get_dataset("lfw", url=url, checksum=f"sha256:{digest}", cache_dir=cache)
    assert without.root == downloaded.root
    assert len(server.paths) == 2


def test_lfw_variants_are_the_figshare_mirror_with_sha256(tmp_path: Path, monkeypatch) -> None:
    """The default archive is the original LFW from the mirror scikit-learn uses, by sha256."""
    from mfrbench.datasets import lfw

    monkeypatch.delenv("MFRBENCH_DATA", raising=False)
    assert lfw.DEFAULT_VARIANT == "original"
    assert lfw.VARIANTS["original"][:2] == (
        "https://ndownloader.figshare.com/files/5976018",
        "sha256:055f7d9c632d7370e6fb4afc7468d40f970c34a80d4c6f50ffec63f5a8d536c0",
    )
    assert lfw.VARIANTS["funneled"][0].endswith("/5976015")
    assert lfw.PAIRS_CHECKSUM.endswith(
        "ea42330c62c92989f9d7c03237ed5d591365e89b3e649747777b70e692dc1592"
    )
    with pytest.raises(UserError, match="unknown LFW variant 'deep'"):
        get_dataset("lfw", variant="deep", cache_dir=tmp_path)
    with pytest.raises(UserError, match="needs its checksum"):
        get_dataset("lfw", url="http://127.0.0.1:9/x.tgz", cache_dir=tmp_path)
    with pytest.raises(UserError, match="--download"):  # nothing is fetched without asking
        get_dataset("lfw", cache_dir=tmp_path)


def test_wrong_checksum_raises_and_caches_nothing(
    server: _Server, lfw_tgz: tuple[str, str], tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.delenv("MFRBENCH_DATA", raising=False)
    url, digest = lfw_tgz
    cache = tmp_path / "cache"
    cache.mkdir()
    wrong = "0" * 64
    with pytest.raises(UserError) as err:
        get_dataset("lfw", download=True, url=url, checksum=f"sha256:{wrong}", cache_dir=cache)
    msg = str(err.value)
    assert "\n" not in msg
    assert url in msg
    assert f"expected sha256:{wrong}" in msg
    assert f"got sha256:{digest}" in msg
    assert "--root" in msg
    assert _files(cache) == []


def test_http_404_raises_and_caches_nothing(server: _Server, tmp_path: Path) -> None:
    dest = tmp_path / "cache" / "sub" / "missing.tgz"
    with pytest.raises(UserError, match=r"download failed: .*missing\.tgz: HTTP 404"):
        fetch(server.url("missing.tgz"), dest, checksum="md5:" + "0" * 32)
    assert not (tmp_path / "cache").exists()  # folders it created are removed again


def test_truncated_download_leaves_nothing(server: _Server, tmp_path: Path) -> None:
    dest = tmp_path / "cache" / "file.bin"
    (tmp_path / "cache").mkdir()
    with pytest.raises(UserError, match="closed after 10 of 1000 bytes"):
        fetch(server.url("truncated"), dest, checksum="sha256:" + "0" * 64)
    assert _files(tmp_path / "cache") == []


def test_connection_refused_is_a_user_error(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port that nothing listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(UserError, match="download failed"):
        fetch(f"http://127.0.0.1:{port}/x", tmp_path / "x", checksum="md5:" + "0" * 32, timeout=5)
    assert _files(tmp_path) == []


def test_md5_checksum_existing_file_and_redownload(server: _Server, tmp_path: Path) -> None:
    payload = b"mfrbench " * 1000
    (server.root / "blob.bin").write_bytes(payload)
    md5 = "md5:" + hashlib.md5(payload).hexdigest().upper()  # case-insensitive hex
    dest = tmp_path / "blob.bin"

    assert fetch(server.url("blob.bin"), dest, checksum=md5) == dest
    assert dest.read_bytes() == payload
    assert len(server.paths) == 1

    fetch(server.url("blob.bin"), dest, checksum=md5)  # present and matching: no request
    assert len(server.paths) == 1

    dest.write_bytes(b"corrupt")  # present but wrong: fetched again
    fetch(server.url("blob.bin"), dest, checksum=md5)
    assert dest.read_bytes() == payload
    assert len(server.paths) == 2


def test_concurrent_fetches_agree(server: _Server, tmp_path: Path) -> None:
    payload = bytes(range(256)) * 4096
    (server.root / "big.bin").write_bytes(payload)
    checksum = "sha256:" + hashlib.sha256(payload).hexdigest()
    dest = tmp_path / "cache" / "big.bin"
    errors: list[BaseException] = []

    def run() -> None:
        try:
            fetch(server.url("big.bin"), dest, checksum=checksum)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert dest.read_bytes() == payload
    assert [p.name for p in dest.parent.iterdir()] == ["big.bin"]  # no temp files left


@pytest.mark.parametrize("bad", ["sha1:abc", "sha256:xyz", "md5:" + "0" * 31, "deadbeef", ""])
def test_invalid_checksum_strings(bad: str) -> None:
    with pytest.raises(UserError, match="invalid checksum"):
        parse_checksum(bad)


def test_cache_dir_precedence(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("MFRBENCH_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "mfrbench"
    monkeypatch.setenv("MFRBENCH_CACHE", str(tmp_path / "env"))
    assert cache_dir() == tmp_path / "env"
    assert cache_dir(tmp_path / "arg") == tmp_path / "arg"
    assert not (tmp_path / "arg").exists()  # only a path; nothing is created


def test_sha256_file_matches_hashlib(tmp_path: Path) -> None:
    data = b"x" * ((1 << 20) + 7)  # spans more than one chunk
    path = tmp_path / "f"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()
    assert sha256_file(path, chunk=1000) == hashlib.sha256(data).hexdigest()


# ----------------------------------------------------------------------------- extraction


def _tar_with(path: Path, member: tarfile.TarInfo, data: bytes = b"") -> Path:
    with tarfile.open(path, "w:gz") as tar:
        ok = tarfile.TarInfo("top/ok.txt")
        ok.size = 2
        tar.addfile(ok, io.BytesIO(b"ok"))
        member.size = len(data) if member.isfile() else 0
        tar.addfile(member, io.BytesIO(data) if member.isfile() else None)
    return path


def _symlink(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    return info


def _hardlink(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.LNKTYPE
    info.linkname = target
    return info


def _fifo(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.FIFOTYPE
    return info


@pytest.mark.parametrize(
    "member",
    [
        tarfile.TarInfo("../evil"),
        tarfile.TarInfo("top/../../evil"),
        tarfile.TarInfo("/tmp/evil"),
        _symlink("top/link", "../../evil"),
        _symlink("top/link", "/etc/passwd"),
        _hardlink("top/hard", "../evil"),
        _fifo("top/fifo"),
    ],
    ids=["dotdot", "nested-dotdot", "absolute", "symlink-out", "symlink-abs", "hardlink", "fifo"],
)
def test_unsafe_members_are_refused(member: tarfile.TarInfo, tmp_path: Path) -> None:
    archive = _tar_with(tmp_path / "bad.tgz", member, b"pwned")
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(UserError, match="unsafe member"):
        extract_tgz(archive, work / "out")
    assert _files(work) == []  # no dest, no temp folder
    assert not (tmp_path / "evil").exists()


def test_extract_is_atomic_and_idempotent(tmp_path: Path) -> None:
    archive = _tar_with(tmp_path / "good.tgz", _symlink("top/alias.txt", "ok.txt"))
    out = extract_tgz(archive, tmp_path / "out")
    assert out == tmp_path / "out"
    assert (out / "top" / "ok.txt").read_bytes() == b"ok"
    assert (out / "top" / "alias.txt").read_bytes() == b"ok"  # inside links are fine
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.tgz", "out"]
    (out / "top" / "ok.txt").write_bytes(b"kept")
    assert extract_tgz(archive, out) == out  # a finished extraction is reused as is
    assert (out / "top" / "ok.txt").read_bytes() == b"kept"


def test_corrupt_archive_is_a_user_error(tmp_path: Path) -> None:
    archive = tmp_path / "broken.tgz"
    archive.write_bytes(b"\x1f\x8b" + b"not really gzip" * 10)
    with pytest.raises(UserError, match="cannot extract"):
        extract_tgz(archive, tmp_path / "work" / "out")
    assert not (tmp_path / "work").exists()
