"""Downloads against a real HTTP server on 127.0.0.1: verified by sha256, cached, and never
left half written or unverified (mismatch, cut-off transfer, missing file)."""

import hashlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from harness.errors import SetupError
from harness.setup.downloads import digest_from_sums, fetch, fetch_text

IMAGE = b"qcow2 image bytes " * 50_000
IMAGE_SHA = hashlib.sha256(IMAGE).hexdigest()
SUMS = f"{IMAGE_SHA}  cloud.qcow2\n{'0' * 64}  other.qcow2\n"


class Mirror(BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        Mirror.hits.append(self.path)
        if self.path == "/images/cloud.qcow2":
            self._send(IMAGE)
        elif self.path == "/images/SHA256SUMS":
            self._send(SUMS.encode())
        elif self.path == "/images/cut.qcow2":
            self.send_response(200)
            self.send_header("Content-Length", str(len(IMAGE)))
            self.end_headers()
            self.wfile.write(IMAGE[: len(IMAGE) // 3])  # then the connection closes
        else:
            self.send_error(404)

    def _send(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def mirror() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Mirror)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Mirror.hits = []
    yield f"http://127.0.0.1:{server.server_address[1]}/images"
    server.shutdown()
    server.server_close()


def leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir() if not p.name.endswith(".lock"))


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
    (tmp_path / "cloud.qcow2").write_bytes(b"damaged")
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
