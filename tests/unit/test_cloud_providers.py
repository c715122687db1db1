"""Distribution cloud images found by name:version under a mirror on 127.0.0.1 laid out as
upstream is (directory listings from Python's http.server): Fedora and Ubuntu through
avocado's vmimage providers, CentOS Stream and Debian through our own table, each with the
checksum list its distribution publishes."""

import functools
import hashlib
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from harness.errors import SetupError
from harness.setup.cloud_providers import is_spec, resolve
from harness.setup.downloads import fetch

IMAGE = b"a cloud image" * 1000
SHA256 = hashlib.sha256(IMAGE).hexdigest()
SHA512 = hashlib.sha512(IMAGE).hexdigest()

TREE = {
    "pub/fedora/linux/releases/40/Cloud/x86_64/images/"
    "Fedora-Cloud-Base-Generic.x86_64-40-1.14.qcow2": IMAGE,
    "pub/fedora/linux/releases/41/Cloud/x86_64/images/"
    "Fedora-Cloud-Base-Generic-41-1.4.x86_64.qcow2": IMAGE,
    "pub/fedora/linux/releases/41/Cloud/x86_64/images/Fedora-Cloud-41-1.4-x86_64-CHECKSUM": (
        f"# Fedora\nSHA256 (Fedora-Cloud-Base-Generic-41-1.4.x86_64.qcow2) = {SHA256}\n".encode()
    ),
    # Ubuntu's layout as avocado's provider reads it: versions listed in releases/, images in
    # releases/releases/<version>/release/.
    "releases/24.04/README": b"",
    "releases/releases/24.04/release/ubuntu-24.04-server-cloudimg-amd64.img": IMAGE,
    "releases/releases/24.04/release/SHA256SUMS": (
        f"{SHA256} *ubuntu-24.04-server-cloudimg-amd64.img\n".encode()
    ),
    "centos/9-stream/x86_64/images/CentOS-Stream-GenericCloud-9-20241001.0.x86_64.qcow2": b"old",
    "centos/9-stream/x86_64/images/CentOS-Stream-GenericCloud-9-20241118.0.x86_64.qcow2": IMAGE,
    "centos/9-stream/x86_64/images/CHECKSUM": (
        f"SHA256 (CentOS-Stream-GenericCloud-9-20241118.0.x86_64.qcow2) = {SHA256}\n".encode()
    ),
    "images/cloud/bookworm/latest/debian-12-genericcloud-amd64.qcow2": IMAGE,
    "images/cloud/bookworm/latest/SHA512SUMS": (
        f"{SHA512}  debian-12-genericcloud-amd64.qcow2\n".encode()
    ),
}


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("mirror")
    for path, data in TREE.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(root))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("spec", "path", "digest"),
    [
        ("fedora:41", "pub/fedora/linux/releases/41/Cloud/x86_64/images/"
         "Fedora-Cloud-Base-Generic-41-1.4.x86_64.qcow2", SHA256),
        ("ubuntu:24.04", "releases/releases/24.04/release/"
         "ubuntu-24.04-server-cloudimg-amd64.img", SHA256),
        ("centos-stream:9", "centos/9-stream/x86_64/images/"
         "CentOS-Stream-GenericCloud-9-20241118.0.x86_64.qcow2", SHA256),
        ("debian:12", "images/cloud/bookworm/latest/debian-12-genericcloud-amd64.qcow2", SHA512),
    ],
)  # fmt: skip
def test_found_under_the_mirror_with_the_published_checksum(
    mirror: str, tmp_path: Path, spec: str, path: str, digest: str
) -> None:
    ref = resolve(spec, mirror)
    assert (ref.url, ref.digest) == (f"{mirror}/{path}", digest)
    assert fetch(ref.url, ref.digest, tmp_path).read_bytes() == IMAGE


def test_specs_paths_and_urls_are_told_apart() -> None:
    assert is_spec("fedora:41") and is_spec("centos-stream:9")
    assert not is_spec("/srv/images/fedora.qcow2") and not is_spec("http://m/x.qcow2")


def test_an_unknown_distribution_or_release_is_one_line(mirror: str) -> None:
    with pytest.raises(SetupError, match=r"^unknown cloud image 'gentoo:1': use one of "):
        resolve("gentoo:1", mirror)
    with pytest.raises(SetupError, match=r"^unknown Debian release 10: use 11, 12, 13$"):
        resolve("debian:10", mirror)
    with pytest.raises(SetupError, match=r"^cannot list .*/centos/10-stream/x86_64/images/: "):
        resolve("centos-stream:10", mirror)
