"""Downloads against real HTTP and HTTPS servers on 127.0.0.1: verified by sha256, cached by
content (two contents under one name never overwrite each other), never left half written or
unverified (mismatch, cut-off transfer, missing file), bounded in time however slowly the
bytes come, and never led from https to http by a redirect."""

import hashlib
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import ClassVar

import pytest

from harness.errors import SetupError
from harness.setup.downloads import (
    DowngradeRefused,
    digest_from_sums,
    fetch,
    fetch_text,
    is_secure,
)
from tests.unit.local_mirrors import self_signed_certificate, serve

IMAGE = b"qcow2 image bytes " * 50_000
IMAGE_SHA = hashlib.sha256(IMAGE).hexdigest()
SUMS = f"{IMAGE_SHA}  cloud.qcow2\n{'0' * 64}  other.qcow2\n"
NEWER = b"the image published later under the same name " * 1000


class Mirror(BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []
    latest: ClassVar[bytes] = IMAGE  # what /images/latest.qcow2 serves now
    redirect_to: ClassVar[str] = ""  # where /images/moved.qcow2 sends the client

    def do_GET(self) -> None:
        Mirror.hits.append(self.path)
        if self.path == "/images/cloud.qcow2":
            self._send(IMAGE)
        elif self.path == "/images/latest.qcow2":
            self._send(Mirror.latest)
        elif self.path == "/images/moved.qcow2":
            self.send_response(302)
            self.send_header("Location", Mirror.redirect_to)
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/images/slow.qcow2":
            self._trickle()
        elif self.path == "/images/SHA256SUMS":
            self._send(SUMS.encode())
        elif self.path == "/images/cut.qcow2":
            self.send_response(200)
            self.send_header("Content-Length", str(len(IMAGE)))
            self.end_headers()
            self.wfile.write(IMAGE[: len(IMAGE) // 3])  # then the connection closes
        else:
            self.send_error(404)

    def _trickle(self) -> None:
        """A byte at a time, each well inside the socket timeout, for far longer than allowed."""
        self.send_response(200)
        self.send_header("Content-Length", str(len(IMAGE)))
        self.end_headers()
        try:
            for byte in IMAGE[:200]:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.05)
        except OSError:
            pass  # the client gave up, as it should

    def _send(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def mirror() -> Iterator[str]:
    Mirror.hits, Mirror.latest = [], IMAGE
    with serve(Mirror) as url:
        yield f"{url}/images"


@pytest.fixture
def tls_mirror(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """The same mirror over https, its self-signed certificate the only one trusted."""
    certificate = self_signed_certificate(tmp_path_factory.mktemp("tls"))
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    with serve(Mirror, certificate) as url:
        yield f"{url}/images"


def leftovers(cache: Path) -> list[str]:
    """The files left in the cache, its locks aside."""
    return sorted(p.name for p in cache.rglob("*") if p.is_file() and p.name != ".lock")


def cached(cache: Path, digest: str, name: str) -> Path:
    return cache / "sha256" / digest / name


def test_downloaded_verified_then_served_from_the_cache(mirror: str, tmp_path: Path) -> None:
    sha = digest_from_sums(fetch_text(f"{mirror}/SHA256SUMS"), "cloud.qcow2")
    first = fetch(f"{mirror}/cloud.qcow2", sha, tmp_path)
    assert first.read_bytes() == IMAGE
    second = fetch(f"{mirror}/cloud.qcow2", sha, tmp_path)
    assert second == first
    assert Mirror.hits == ["/images/SHA256SUMS", "/images/cloud.qcow2"]  # no second download


def test_a_checksum_mismatch_is_one_line_and_nothing_is_kept(mirror: str, tmp_path: Path) -> None:
    wrong = "1" * 64
    with pytest.raises(SetupError) as caught:
        fetch(f"{mirror}/cloud.qcow2", wrong, tmp_path)
    assert str(caught.value) == (
        f"sha256 mismatch for {mirror}/cloud.qcow2: expected {wrong}, got {IMAGE_SHA}; the "
        "download was discarded: check the mirror, or the checksum given for it"
    )
    assert leftovers(tmp_path) == []


def test_a_cut_off_download_is_an_error_and_nothing_is_kept(mirror: str, tmp_path: Path) -> None:
    with pytest.raises(SetupError, match=r"^download of .*/cut\.qcow2 ended early: 300000 of"):
        fetch(f"{mirror}/cut.qcow2", IMAGE_SHA, tmp_path)
    assert leftovers(tmp_path) == []


def test_a_missing_file_names_the_url(mirror: str, tmp_path: Path) -> None:
    with pytest.raises(SetupError, match=r"^cannot download .*/nope\.qcow2: Not Found$"):
        fetch(f"{mirror}/nope.qcow2", IMAGE_SHA, tmp_path)


def test_a_corrupted_cached_copy_is_downloaded_again(mirror: str, tmp_path: Path) -> None:
    damaged = cached(tmp_path, IMAGE_SHA, "cloud.qcow2")
    damaged.parent.mkdir(parents=True)
    damaged.write_bytes(b"damaged")
    assert fetch(f"{mirror}/cloud.qcow2", IMAGE_SHA, tmp_path).read_bytes() == IMAGE
    assert Mirror.hits == ["/images/cloud.qcow2"]


def test_local_paths_and_file_urls_for_air_gapped_labs(tmp_path: Path) -> None:
    local = tmp_path / "mirror" / "cloud.qcow2"
    local.parent.mkdir()
    local.write_bytes(IMAGE)
    assert fetch(str(local), IMAGE_SHA, tmp_path / "a").read_bytes() == IMAGE
    assert fetch(local.as_uri(), IMAGE_SHA, tmp_path / "b").read_bytes() == IMAGE


def test_checksum_lists_in_both_styles() -> None:
    assert digest_from_sums(SUMS, "cloud.qcow2") == IMAGE_SHA
    bsd = f"# Fedora\nSHA256 (Fedora-Cloud-Base.qcow2) = {IMAGE_SHA.upper()}\n"
    assert digest_from_sums(bsd, "Fedora-Cloud-Base.qcow2") == IMAGE_SHA
    with pytest.raises(SetupError, match=r"names no missing\.qcow2"):
        digest_from_sums(SUMS, "missing.qcow2")


def test_a_checksum_that_is_not_sha256_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SetupError, match="is not a sha256"):
        fetch("http://127.0.0.1:9/x.qcow2", "abc", tmp_path)


def test_the_cache_is_keyed_by_content(mirror: str, tmp_path: Path) -> None:
    """A "latest" image that changed upstream: the run that fetched the older content keeps
    its base untouched while another run fetches the newer one under the same name."""
    first = fetch(f"{mirror}/latest.qcow2", IMAGE_SHA, tmp_path)
    Mirror.latest = NEWER
    newer_sha = hashlib.sha256(NEWER).hexdigest()
    second = fetch(f"{mirror}/latest.qcow2", newer_sha, tmp_path)
    assert first == cached(tmp_path, IMAGE_SHA, "latest.qcow2")
    assert second == cached(tmp_path, newer_sha, "latest.qcow2")
    assert first.read_bytes() == IMAGE and second.read_bytes() == NEWER
    assert fetch(f"{mirror}/latest.qcow2", IMAGE_SHA, tmp_path) == first  # still cached
    assert Mirror.hits == ["/images/latest.qcow2"] * 2


def test_a_trickling_server_is_cut_off_at_the_total_bound(mirror: str, tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(SetupError, match=r"^download of .*/slow\.qcow2 took over 1 s \(\d+ bytes"):
        fetch(f"{mirror}/slow.qcow2", IMAGE_SHA, tmp_path, total_s=1.0)
    assert time.monotonic() - started < 5
    assert leftovers(tmp_path) == []
    with pytest.raises(SetupError, match=r"took over 1 s"):
        fetch_text(f"{mirror}/slow.qcow2", total_s=1.0)


def test_an_https_download_is_never_redirected_to_http(
    mirror: str, tls_mirror: str, tmp_path: Path
) -> None:
    Mirror.redirect_to = f"{mirror}/cloud.qcow2"
    with pytest.raises(DowngradeRefused) as caught:
        fetch(f"{tls_mirror}/moved.qcow2", IMAGE_SHA, tmp_path)
    assert str(caught.value).startswith(
        f"refused the redirect of {tls_mirror}/moved.qcow2 to {mirror}/cloud.qcow2: a download "
        "that starts over https stays on https"
    )
    assert "/images/cloud.qcow2" not in Mirror.hits and leftovers(tmp_path) == []
    with pytest.raises(DowngradeRefused):
        fetch_text(f"{tls_mirror}/moved.qcow2")


def test_redirects_that_keep_or_gain_https_are_followed(
    mirror: str, tls_mirror: str, tmp_path: Path
) -> None:
    Mirror.redirect_to = f"{tls_mirror}/cloud.qcow2"
    assert fetch(f"{tls_mirror}/moved.qcow2", IMAGE_SHA, tmp_path / "a").read_bytes() == IMAGE
    assert fetch(f"{mirror}/moved.qcow2", IMAGE_SHA, tmp_path / "b").read_bytes() == IMAGE


def test_only_https_and_local_files_are_secure_transports(tmp_path: Path) -> None:
    assert is_secure("https://cloud.debian.org/x") and is_secure("HTTPS://m/x")
    assert is_secure(str(tmp_path / "SHA256SUMS")) and is_secure((tmp_path / "x").as_uri())
    assert not is_secure("http://cloud-images.ubuntu.com/x") and not is_secure("ftp://m/x")
