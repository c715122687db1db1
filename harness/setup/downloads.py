"""Fetch a file (a cloud image, its checksum list) into the cache, verified by its sha256
(or sha512, as Debian publishes).

The cache is keyed by content: a file lives at ``<cache>/<algorithm>/<digest>/<name>``, so
two runs that want different contents under one name (a "latest" image that changed
upstream) never overwrite each other's base. A download lands in a temporary file beside its
target and is renamed into place only once its digest matches, under a lock, so concurrent
runs share one download and nothing half written or unverified is ever used.
``http(s)://``, ``file://`` URLs and plain paths (a local copy or a mirror mounted in an
air-gapped lab) are all accepted; which of them may be trusted for what is the caller's
rule (``is_secure``).

Every wait is bounded: the connection and each read by ``TIMEOUT_S``, the whole transfer by
a total (``TOTAL_S`` for a file, ``TEXT_TOTAL_S`` for a small text), so a server that
trickles cannot hold a run. A redirect from https to anything else is refused: a download
that starts authenticated stays authenticated.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import IO, BinaryIO, cast

from harness.errors import SetupError
from harness.setup.image import locked

CHUNK = 1024 * 1024
TIMEOUT_S = 60.0  # the connection, and each read: the socket's timeout
TOTAL_S = 3600.0  # a whole image: hundreds of MB on a slow link
TEXT_TOTAL_S = 120.0  # a checksum list or a directory listing
TEXT_LIMIT = 4 * CHUNK
ALGORITHMS = {64: "sha256", 128: "sha512"}  # by the digest's length in hex digits


class DowngradeRefused(SetupError):
    """An https download was redirected to a URL that is not https."""


class _NoDowngrade(urllib.request.HTTPRedirectHandler):
    """Follows redirects as urllib does, except from https to anything but https."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: http.client.HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        if _scheme(req.full_url) == "https" and _scheme(newurl) != "https":
            raise DowngradeRefused(
                f"refused the redirect of {req.full_url} to {newurl}: a download that starts "
                "over https stays on https (use that URL itself, with --cloud-sha256)"
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_NoDowngrade)


def is_secure(url: str) -> bool:
    """Whether what ``url`` reads cannot be changed on the way: https (authenticated, and never
    redirected off it), a ``file://`` URL or a local path. Plain http can."""
    return _scheme(url) in {"https", "file", ""}


def fetch(
    url: str, digest: str, cache_dir: Path, name: str | None = None, total_s: float = TOTAL_S
) -> Path:
    """The file at ``url`` in ``cache_dir`` (downloaded unless already there and verified);
    ``digest`` is its sha256 or sha512 in hex."""
    digest = digest.lower()
    algorithm = ALGORITHMS.get(len(digest))
    if algorithm is None or not re.fullmatch(r"[0-9a-f]+", digest):
        raise SetupError(f"{digest!r} is not a sha256 or sha512 (64 or 128 hex digits) for {url}")
    folder = cache_dir / algorithm / digest
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / (name or _file_name(url))
    with locked(folder / ".lock"):
        if target.is_file() and file_digest(target, algorithm) == digest:
            return target
        partial = target.with_name(f".{target.name}.{os.getpid()}.part")
        try:
            _copy_to(url, partial, total_s)
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


def fetch_bytes(
    url: str, limit: int = TEXT_LIMIT, total_s: float = TEXT_TOTAL_S, action: str = "read"
) -> bytes:
    """A small file (a checksum list, its signature, a listing), not cached: at most ``limit``
    bytes; an error says ``cannot <action> <url>``."""
    try:
        response, _length = _open(url)
        with response:
            chunks: list[bytes] = []
            _read_bounded(response, chunks.append, url, total_s, limit)
    except (OSError, urllib.error.URLError, http.client.HTTPException) as exc:
        raise SetupError(f"cannot {action} {url}: {_why(exc)}") from exc
    return b"".join(chunks)


def fetch_text(
    url: str, limit: int = TEXT_LIMIT, total_s: float = TEXT_TOTAL_S, action: str = "read"
) -> str:
    """A small text file (a SHA256SUMS list, a directory listing), not cached."""
    return fetch_bytes(url, limit, total_s, action).decode(errors="replace")


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


def _copy_to(url: str, partial: Path, total_s: float) -> None:
    try:
        response, expected = _open(url)
        with response, partial.open("wb") as out:
            _read_bounded(response, out.write, url, total_s)
        if expected is not None and partial.stat().st_size != expected:
            raise SetupError(
                f"download of {url} ended early: {partial.stat().st_size} of {expected} bytes"
            )
    except (OSError, urllib.error.URLError, http.client.HTTPException) as exc:
        raise SetupError(f"cannot download {url}: {_why(exc)}") from exc


def _read_bounded(
    stream: BinaryIO,
    write: Callable[[bytes], object],
    url: str,
    total_s: float,
    limit: int | None = None,
) -> None:
    """Copy ``stream`` until its end or ``limit`` bytes; past ``total_s`` seconds, an error.
    One socket read at a time (read1), each bounded by the socket's timeout, so the deadline
    is checked however slowly the bytes come."""
    deadline = time.monotonic() + total_s
    read = getattr(stream, "read1", stream.read)
    total = 0
    while limit is None or total < limit:
        chunk = read(CHUNK if limit is None else min(CHUNK, limit - total))
        if not chunk:
            return
        write(chunk)
        total += len(chunk)
        if time.monotonic() > deadline:
            raise SetupError(
                f"download of {url} took over {total_s:.0f} s ({total} bytes by then): "
                "check the mirror, or use a nearer one"
            )


def _open(url: str) -> tuple[BinaryIO, int | None]:
    """The stream and, where the server says it, its length (to tell a cut-off download)."""
    if "://" not in url:
        return Path(url).open("rb"), None
    response = _OPENER.open(url, timeout=TIMEOUT_S)
    length = response.headers.get("Content-Length")
    return cast(BinaryIO, response), int(length) if length is not None else None


def _scheme(url: str) -> str:
    return urllib.parse.urlsplit(url).scheme.lower() if "://" in url else ""


def _file_name(url: str) -> str:
    name = url.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0]
    if not name:
        raise SetupError(f"{url} names no file")
    return name


def _why(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason or exc)
