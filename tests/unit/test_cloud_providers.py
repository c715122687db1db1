"""Distribution cloud images found by name:version under a mirror on 127.0.0.1 laid out as
upstream is (directory listings from Python's http.server): Fedora and Ubuntu through
avocado's vmimage providers, CentOS Stream and Debian through our own table, each with the
checksum list its distribution publishes, trusted as that distribution allows: Fedora's and
Ubuntu's by their signatures (a throwaway key stands for the release key) over any
transport, Debian's and CentOS's, which are not signed, only over https or with the digest
given."""

import functools
import hashlib
import re
from collections.abc import Callable, Iterator
from http.server import SimpleHTTPRequestHandler
from pathlib import Path
from typing import Any, TypeVar

import pytest

from harness.errors import SetupError
from harness.setup import cloud_providers as providers
from harness.setup import downloads
from harness.setup.cloud_providers import PROVIDERS, is_spec, resolve
from harness.setup.downloads import fetch
from harness.setup.signatures import KEYS
from tests.unit.local_mirrors import Signer, self_signed_certificate, serve

T = TypeVar("T")
IMAGE = b"a cloud image" * 1000
SHA256 = hashlib.sha256(IMAGE).hexdigest()
SHA512 = hashlib.sha512(IMAGE).hexdigest()

FEDORA_SUMS = f"# Fedora\nSHA256 (Fedora-Cloud-Base-Generic-41-1.4.x86_64.qcow2) = {SHA256}\n"
UBUNTU_SUMS = f"{SHA256} *ubuntu-24.04-server-cloudimg-amd64.img\n"
FEDORA_CHECKSUM = (
    "pub/fedora/linux/releases/41/Cloud/x86_64/images/Fedora-Cloud-41-1.4-x86_64-CHECKSUM"
)
UBUNTU_SHA256SUMS = "releases/releases/24.04/release/SHA256SUMS"
TREE = {
    "pub/fedora/linux/releases/40/Cloud/x86_64/images/"
    "Fedora-Cloud-Base-Generic.x86_64-40-1.14.qcow2": IMAGE,
    "pub/fedora/linux/releases/41/Cloud/x86_64/images/"
    "Fedora-Cloud-Base-Generic-41-1.4.x86_64.qcow2": IMAGE,
    # Ubuntu's layout as avocado's provider reads it: versions listed in releases/, images in
    # releases/releases/<version>/release/.
    "releases/24.04/README": b"",
    "releases/releases/24.04/release/ubuntu-24.04-server-cloudimg-amd64.img": IMAGE,
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
def signer() -> Iterator[Signer]:
    key = Signer("Throwaway distribution release key")
    yield key
    key.close()


@pytest.fixture(scope="module")
def keys(signer: Signer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The key sets the signed lists are checked against: the throwaway key for both."""
    root = tmp_path_factory.mktemp("keys")
    signer.export(root / "fedora" / "RPM-GPG-KEY-throwaway")
    signer.export(root / "ubuntu" / "throwaway-keyring.gpg", armor=False)
    return root


@pytest.fixture(scope="module")
def tree(signer: Signer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mirror")
    signed = {
        FEDORA_CHECKSUM: signer.clearsign(FEDORA_SUMS),
        UBUNTU_SHA256SUMS: UBUNTU_SUMS.encode(),
        f"{UBUNTU_SHA256SUMS}.gpg": signer.detach_sign(UBUNTU_SUMS.encode()),
    }
    for path, data in {**TREE, **signed}.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
    return root


@pytest.fixture(scope="module")
def mirror(tree: Path) -> Iterator[str]:
    """The tree over plain http."""
    with serve(functools.partial(QuietHandler, directory=str(tree))) as url:
        yield url


@pytest.fixture
def tls_mirror(
    tree: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """The tree over https, its self-signed certificate the only one trusted."""
    certificate = self_signed_certificate(tmp_path_factory.mktemp("tls"))
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    with serve(functools.partial(QuietHandler, directory=str(tree)), certificate) as url:
        yield url


FEDORA = ("fedora:41", "pub/fedora/linux/releases/41/Cloud/x86_64/images/"
          "Fedora-Cloud-Base-Generic-41-1.4.x86_64.qcow2", SHA256)  # fmt: skip
UBUNTU = ("ubuntu:24.04", "releases/releases/24.04/release/"
          "ubuntu-24.04-server-cloudimg-amd64.img", SHA256)  # fmt: skip
CENTOS = ("centos-stream:9", "centos/9-stream/x86_64/images/"
          "CentOS-Stream-GenericCloud-9-20241118.0.x86_64.qcow2", SHA256)  # fmt: skip
DEBIAN = ("debian:12", "images/cloud/bookworm/latest/debian-12-genericcloud-amd64.qcow2", SHA512)


@pytest.mark.parametrize(("spec", "path", "digest"), [FEDORA, UBUNTU])
def test_signed_lists_are_trusted_over_a_plain_http_mirror(
    mirror: str, keys: Path, tmp_path: Path, spec: str, path: str, digest: str
) -> None:
    ref = resolve(spec, mirror, keys=keys)
    assert (ref.url, ref.digest) == (f"{mirror}/{path}", digest)
    assert fetch(ref.url, ref.digest, tmp_path).read_bytes() == IMAGE


@pytest.mark.parametrize(("spec", "what"), [("fedora:41", "CHECKSUM"), ("ubuntu:24.04", "SUMS")])
def test_a_list_signed_by_a_key_outside_the_kept_set_is_refused(
    mirror: str, spec: str, what: str
) -> None:
    """The repository's own keys (Fedora's and Ubuntu's) did not sign the mirror's lists."""
    with pytest.raises(SetupError, match=rf"{what} is signed by a key that is not in {KEYS}/"):
        resolve(spec, mirror)


@pytest.mark.parametrize(("spec", "path", "digest"), [CENTOS, DEBIAN])
def test_unsigned_lists_are_read_over_https(
    tls_mirror: str, tmp_path: Path, spec: str, path: str, digest: str
) -> None:
    ref = resolve(spec, tls_mirror)
    assert (ref.url, ref.digest) == (f"{tls_mirror}/{path}", digest)
    assert fetch(ref.url, ref.digest, tmp_path).read_bytes() == IMAGE


@pytest.mark.parametrize(("spec", "path", "digest"), [CENTOS, DEBIAN])
def test_unsigned_lists_over_plain_http_are_refused_unless_the_digest_is_given(
    mirror: str, spec: str, path: str, digest: str
) -> None:
    sums = {"centos-stream:9": "CHECKSUM", "debian:12": "SHA512SUMS"}[spec]
    with pytest.raises(SetupError) as caught:
        resolve(spec, mirror)
    assert str(caught.value) == (
        f"{mirror}/{path.rpartition('/')[0]}/{sums} is an unsigned checksum list over plain "
        "http, which proves nothing: use https (or a local copy), or give the image's digest "
        "with --cloud-sha256"
    )
    ref = resolve(spec, mirror, digest)  # given: no list is read
    assert (ref.url, ref.digest) == (f"{mirror}/{path}", digest)


def test_every_upstream_is_https() -> None:
    assert all(p.upstream.startswith("https://") for p in PROVIDERS.values())


@pytest.mark.parametrize("spec", ["fedora:41", "ubuntu:24.04"])
def test_without_a_mirror_every_read_is_over_https(
    mirror: str, keys: Path, spec: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Upstream itself (avocado names Ubuntu's over http): every listing, list and signature
    is asked for over https; the test answers from the local tree."""
    asked: list[str] = []

    def answered_locally(real: Callable[..., T]) -> Callable[..., T]:
        def read(url: str, *args: Any, **kwargs: Any) -> T:
            asked.append(url)
            return real(re.sub(r"^https://[^/]+", mirror, url), *args, **kwargs)

        return read

    monkeypatch.setattr(providers, "fetch_text", answered_locally(downloads.fetch_text))
    monkeypatch.setattr(providers, "fetch_bytes", answered_locally(downloads.fetch_bytes))
    ref = resolve(spec, keys=keys)
    assert ref.url.startswith("https://") and ref.digest == SHA256
    assert len(asked) >= 3 and all(url.startswith("https://") for url in asked), asked


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
