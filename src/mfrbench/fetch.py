"""Checksummed downloads and safe archive extraction into a local cache.

Everything mfrbench fetches from the network goes through :func:`fetch`: the file is streamed to a
temporary file beside its destination, verified against a published checksum, and only then moved
into place with ``os.replace``. A killed or concurrent download therefore never leaves a partial
file at the destination, and a failed one leaves nothing behind. Archives are unpacked the same way
(:func:`extract_tgz`: a temporary folder, then one rename), refusing members that would escape it.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import posixpath
import shutil
import stat
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from mfrbench.digest import file_digest
from mfrbench.digest import sha256_file as sha256_file  # re-exported: callers import it from here
from mfrbench.errors import UserError

#: Digest algorithms accepted in a ``checksum`` string, with their hex length. md5 is accepted only
#: because some official datasets publish nothing else (e.g. LFW's archives, whose md5 sums are
#: the ones recorded in torchvision/datasets/lfw.py).
_ALGORITHMS = {"sha256": 64, "md5": 32}

_HINT = "pass a local file/--root instead"


def cache_dir(override: str | Path | None = None) -> Path:
    """Return the cache folder: ``override``, else ``$MFRBENCH_CACHE``, else ``~/.cache/mfrbench``.

    The folder is not created here; :func:`fetch` creates what it needs.
    """
    if override is not None and str(override) != "":
        return Path(override).expanduser()
    env = os.environ.get("MFRBENCH_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "mfrbench"


def parse_checksum(checksum: str) -> tuple[str, str]:
    """Split ``"sha256:<hex>"`` or ``"md5:<hex>"`` into (algorithm, lower-case hex), validated."""
    algorithm, sep, hexdigest = checksum.strip().partition(":")
    algorithm, hexdigest = algorithm.lower(), hexdigest.lower()
    length = _ALGORITHMS.get(algorithm)
    if (
        not sep
        or length is None
        or len(hexdigest) != length
        or any(c not in "0123456789abcdef" for c in hexdigest)
    ):
        raise UserError(
            f"invalid checksum {checksum!r}: expected 'sha256:<64 hex digits>' or "
            "'md5:<32 hex digits>'"
        )
    return algorithm, hexdigest


def _make_dirs(path: Path) -> list[Path]:
    """Create ``path`` and its parents; return the folders this call created, outermost first."""
    missing: list[Path] = []
    p = path
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    path.mkdir(parents=True, exist_ok=True)
    return list(reversed(missing))


def _remove_empty_dirs(created: list[Path]) -> None:
    """Remove folders made by :func:`_make_dirs` again, innermost first, while they are empty."""
    for d in reversed(created):
        try:
            d.rmdir()
        except OSError:
            break


def _copy_stream(
    src: BinaryIO, dst: BinaryIO, h: Any, total: int | None, label: str, progress: bool
) -> int:
    """Copy ``src`` to ``dst`` while hashing; return the byte count; optionally show progress."""
    done = 0
    last_shown = -1
    while block := src.read(1 << 20):
        dst.write(block)
        h.update(block)
        done += len(block)
        if progress:
            shown = int(100 * done / total) if total else done >> 20
            if shown != last_shown:
                last_shown = shown
                what = f"{shown}%" if total else f"{shown} MiB"
                print(f"\rdownloading {label}: {what}", end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr, flush=True)
    return done


def fetch(
    url: str, dest: Path, *, checksum: str, timeout: float = 60.0, progress: bool = False
) -> Path:
    """Download ``url`` to ``dest`` unless ``dest`` already holds a file with ``checksum``.

    ``checksum`` is ``"sha256:<hex>"`` or ``"md5:<hex>"``. An existing ``dest`` that matches is
    returned without touching the network; one that does not match is downloaded again. The bytes
    go to a temporary file in ``dest``'s folder, are hashed as they arrive, and are moved to
    ``dest`` with ``os.replace`` only when the digest matches. On a network error or a mismatch
    the temporary file (and any folder this call created) is removed and :class:`UserError` is
    raised with the URL and the reason on one line.
    """
    dest = Path(dest)
    algorithm, expected = parse_checksum(checksum)
    if dest.is_file() and file_digest(dest, algorithm) == expected:
        return dest

    created = _make_dirs(dest.parent)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    ok = False
    try:
        h = hashlib.new(algorithm)
        try:
            with os.fdopen(fd, "wb") as out:
                request = urllib.request.Request(url, headers={"User-Agent": "mfrbench"})
                with urllib.request.urlopen(request, timeout=timeout) as response:
                    length = response.headers.get("Content-Length")
                    total = int(length) if length and length.isdigit() else None
                    done = _copy_stream(response, out, h, total, dest.name, progress)
                    if total is not None and done != total:
                        raise UserError(
                            f"download failed: {url}: connection closed after {done} of "
                            f"{total} bytes; {_HINT}"
                        )
                out.flush()
                os.fsync(out.fileno())
        except urllib.error.HTTPError as e:
            raise UserError(f"download failed: {url}: HTTP {e.code} {e.reason}; {_HINT}") from e
        except urllib.error.URLError as e:
            raise UserError(f"download failed: {url}: {e.reason}; {_HINT}") from e
        except (OSError, ValueError, http.client.HTTPException) as e:
            # timeouts, resets, truncated bodies, bad URLs, disk full
            raise UserError(f"download failed: {url}: {e or type(e).__name__}; {_HINT}") from e
        got = h.hexdigest()
        if got != expected:
            raise UserError(
                f"checksum mismatch for {url}: expected {algorithm}:{expected}, "
                f"got {algorithm}:{got}; {_HINT}"
            )
        os.replace(tmp, dest)
        ok = True
    finally:
        if not ok:
            with contextlib.suppress(OSError):
                tmp.unlink()
            _remove_empty_dirs(created)
    return dest


def _unsafe_reason(member: tarfile.TarInfo) -> str | None:
    """Why extracting ``member`` could write outside the target folder, or None when it is safe."""
    name = member.name
    parts = PurePosixPath(name).parts
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "absolute path"
    if ".." in parts:
        return "'..' in path"
    if member.issym():
        target = member.linkname
        if (
            target.startswith("/")
            or posixpath.normpath(posixpath.join(posixpath.dirname(name), target)).split("/")[0]
            == ".."
        ):
            return f"symlink pointing outside ({target})"
    elif member.islnk():
        target = member.linkname
        if target.startswith("/") or ".." in PurePosixPath(target).parts:
            return f"hard link pointing outside ({target})"
    elif not (member.isfile() or member.isdir()):
        return "device, FIFO or other special file"
    return None


def _rmtree(path: Path) -> None:
    """Remove a tree even when it holds read-only folders (as archives of read-only data do)."""

    def make_writable_and_retry(func, p, _exc):
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(p), stat.S_IRWXU)
            os.chmod(p, stat.S_IRWXU)
        func(p)

    if not path.exists():
        return
    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=make_writable_and_retry)
    else:
        shutil.rmtree(path, onerror=make_writable_and_retry)


def extract_tgz(archive: Path, dest_dir: Path) -> Path:
    """Extract a (gzipped) tar archive into ``dest_dir`` atomically and safely; return ``dest_dir``.

    Members with absolute paths, ``..`` components, links pointing outside, or special files are
    refused (:class:`UserError`) before anything is written. The archive is unpacked into a
    temporary sibling folder which is renamed to ``dest_dir`` only when complete, so an existing
    ``dest_dir`` is always a finished extraction and is returned as is.
    """
    archive, dest_dir = Path(archive), Path(dest_dir)
    if dest_dir.is_dir():
        return dest_dir
    created = _make_dirs(dest_dir.parent)
    tmp = Path(tempfile.mkdtemp(dir=dest_dir.parent, prefix=f".{dest_dir.name}.", suffix=".tmp"))
    ok = False
    try:
        try:
            with tarfile.open(archive, "r:*") as tar:
                members = tar.getmembers()
                for m in members:
                    reason = _unsafe_reason(m)
                    if reason is not None:
                        raise UserError(
                            f"refusing to extract {archive}: unsafe member {m.name!r} ({reason})"
                        )
                if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12 / 3.11.4: belt and braces
                    tar.extractall(tmp, members=members, filter="data")
                else:  # pragma: no cover - older Pythons; members were checked above
                    tar.extractall(tmp, members=members)
        except (tarfile.TarError, OSError, EOFError) as e:
            raise UserError(f"cannot extract {archive}: {e}; {_HINT}") from e
        try:
            os.rename(tmp, dest_dir)
        except OSError:
            if not dest_dir.is_dir():  # a concurrent extraction that finished first is fine
                raise
            _rmtree(tmp)
        ok = True
    finally:
        if not ok:
            _rmtree(tmp)
            _remove_empty_dirs(created)
    return dest_dir
