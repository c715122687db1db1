"""Fetch a file (a cloud image, its checksum list) into the cache, verified by its sha256
(or sha512, as Debian publishes).

A download lands in a temporary file beside its target and is renamed into place only once
its sha256 matches, under a lock, so concurrent runs share one download and nothing half
written or unverified is ever used. ``http(s)://``, ``file://`` URLs and plain paths (a local
copy or a mirror mounted in an air-gapped lab) are all accepted.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, cast

from harness.errors import SetupError
from harness.setup.image import locked

CHUNK = 1024 * 1024
TIMEOUT_S = 60.0  # per network operation (connect, each read), not for the whole file
ALGORITHMS = {64: "sha256", 128: "sha512"}  # by the digest's length in hex digits


def fetch(url: str, digest: str, cache_dir: Path, name: str | None = None) -> Path:
    """The file at ``url`` in ``cache_dir`` (downloaded unless already there and verified);
    ``digest`` is its sha256 or sha512 in hex."""
    digest = digest.lower()
    algorithm = ALGORITHMS.get(len(digest))
    if algorithm is None or not re.fullmatch(r"[0-9a-f]+", digest):
        raise SetupError(f"{digest!r} is not a sha256 or sha512 (64 or 128 hex digits) for {url}")
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / (name or _file_name(url))
    with locked(cache_dir / f".{target.name}.lock"):
        if target.is_file() and file_digest(target, algorithm) == digest:
            return target
        partial = target.with_name(f".{target.name}.{os.getpid()}.part")
        try:
            _copy_to(url, partial)
            got = file_digest(partial, algorithm)
            if got != digest:
                raise SetupError(
                    f"{algorithm} mismatch for {url}: expected {digest}, got {got}; the download "
                    "was discarded: check the mirror, or the checksum given for it"
                )
            partial.rename(target)
        finally:
            partial.unlink(missing_ok=True)
    return target


def fetch_text(url: str, limit: int = 4 * CHUNK) -> str:
    """A small text file (a SHA256SUMS list), not cached: it names what to verify against."""
    try:
        response, _length = _open(url)
        with response:
            data = response.read(limit)
    except (OSError, urllib.error.URLError) as exc:
        raise SetupError(f"cannot read {url}: {_why(exc)}") from exc
    return data.decode(errors="replace")


def digest_from_sums(sums: str, file_name: str) -> str:
    """The sha256 or sha512 of ``file_name`` in a checksum list: ``<hash>  <name>`` (GNU:
    Debian, Ubuntu) or ``SHA256 (<name>) = <hash>`` (BSD style: Fedora, CentOS)."""
    for line in sums.splitlines():
        gnu = re.match(r"^([0-9a-fA-F]{64}|[0-9a-fA-F]{128})\s+\*?(\S+)$", line.strip())
        if gnu and Path(gnu.group(2)).name == file_name:
            return gnu.group(1).lower()
        bsd = re.match(
            r"^SHA(?:256|512) \((.+)\) = ([0-9a-fA-F]{64}|[0-9a-fA-F]{128})$", line.strip()
        )
        if bsd and Path(bsd.group(1)).name == file_name:
            return bsd.group(2).lower()
    raise SetupError(f"the checksum list names no {file_name}")


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    digest = hashlib.new(algorithm)
    with path.open("rb") as data:
        while chunk := data.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    return file_digest(path, "sha256")


def _copy_to(url: str, partial: Path) -> None:
    try:
        response, expected = _open(url)
        with response, partial.open("wb") as out:
            shutil.copyfileobj(response, out, CHUNK)
        if expected is not None and partial.stat().st_size != expected:
            raise SetupError(
                f"download of {url} ended early: {partial.stat().st_size} of {expected} bytes"
            )
    except (OSError, urllib.error.URLError, http.client.HTTPException) as exc:
        raise SetupError(f"cannot download {url}: {_why(exc)}") from exc


def _open(url: str) -> tuple[IO[bytes], int | None]:
    """The stream and, where the server says it, its length (to tell a cut-off download)."""
    if "://" not in url:
        return Path(url).open("rb"), None
    response = urllib.request.urlopen(url, timeout=TIMEOUT_S)
    length = response.headers.get("Content-Length")
    return cast(IO[bytes], response), int(length) if length is not None else None


def _file_name(url: str) -> str:
    name = url.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0]
    if not name:
        raise SetupError(f"{url} names no file")
    return name


def _why(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason or exc)
