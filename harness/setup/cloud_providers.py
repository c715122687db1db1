"""Where a distribution's cloud image lives: ``fedora:41``, ``ubuntu:24.04``,
``centos-stream:9`` or ``debian:12`` to the image's URL and a digest the harness can trust.

Fedora and Ubuntu are found by avocado-framework's ``vmimage`` providers (which read the
upstream directory listings, here through the harness's bounded downloads), CentOS Stream and
Debian, which those providers do not know in their current layouts, by a table of our own. A
mirror (``--cloud-mirror``, for labs without internet) keeps the upstream paths under another
base URL, as rsync mirrors do. Every upstream is read over https.

Where the digest comes from, and why it is trusted:

- Fedora clearsigns each release's ``*-CHECKSUM`` with the release key: the signature is
  checked against the Fedora keys kept in ``keys/fedora`` (harness.setup.signatures), and the
  digest read from the signed text only. The transport does not matter then: a plain-http
  mirror is fine.
- Ubuntu signs ``SHA256SUMS`` with ``SHA256SUMS.gpg`` beside it, checked against Ubuntu's
  cloud image keys kept in ``keys/ubuntu``; likewise over any transport.
- Debian publishes ``SHA512SUMS`` and CentOS Stream ``CHECKSUM`` beside their cloud images,
  unsigned: https is the trust there (the list is read only over https, from a ``file://`` URL
  or a local path), and over a plain-http mirror the digest must be given on the command line
  (``--cloud-sha256``).

A digest given on the command line is used as it is: no checksum list is read then.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from harness.errors import SetupError
from harness.setup.downloads import digest_from_sums, fetch_bytes, fetch_text, is_secure
from harness.setup.signatures import KEYS, check_detached, clearsigned_text

SPEC = re.compile(r"^(?P<name>[a-z][a-z-]*):(?P<version>[\w.]+)$")
SUMS = re.compile(r"(CHECKSUM|SHA256SUMS|SHA512SUMS)$")
DEBIAN_CODENAMES = {"11": "bullseye", "12": "bookworm", "13": "trixie"}


@dataclass(frozen=True)
class CloudImageRef:
    url: str
    digest: str


def is_spec(text: str) -> bool:
    """``fedora:41`` is a spec; a path or a URL is not."""
    return bool(SPEC.match(text)) and "/" not in text


def resolve(
    spec: str, mirror: str | None = None, digest: str | None = None, keys: Path = KEYS
) -> CloudImageRef:
    """The image ``spec`` names, at upstream or under ``mirror``, with ``digest`` or else the
    one from its distribution's checksum list (signatures checked against ``keys``)."""
    match = SPEC.match(spec)
    if match is None or match.group("name") not in PROVIDERS:
        raise SetupError(
            f"unknown cloud image {spec!r}: use one of "
            f"{', '.join(f'{name}:VERSION' for name in sorted(PROVIDERS))}, a URL or a path"
        )
    provider = PROVIDERS[match.group("name")]
    base = provider.upstream
    if mirror:  # the mirror stands for the upstream host: the paths below it are kept
        parts = urllib.parse.urlsplit(provider.upstream)
        base = mirror.rstrip("/") + parts.path
    url = provider.find(match.group("version"), base, provider.upstream)
    if digest:
        return CloudImageRef(url, digest)
    folder, _, name = url.rpartition("/")
    sums = [entry for entry in _listing(folder + "/") if SUMS.search(entry)]
    if not sums:
        raise SetupError(f"no checksum list (CHECKSUM, SHA256SUMS) beside {url}")
    text = provider.read_sums(f"{folder}/{sums[0]}", keys)
    return CloudImageRef(url, digest_from_sums(text, name))


def unsigned_sums(url: str) -> str:
    """A checksum list no signature covers: read only where it cannot be changed on the way
    (https, a ``file://`` URL, a local path); over plain http it would prove nothing."""
    if not is_secure(url):
        raise SetupError(
            f"{url} is an unsigned checksum list over plain http, which proves nothing: "
            "use https (or a local copy), or give the image's digest with --cloud-sha256"
        )
    return fetch_text(url)


def fedora_sums(url: str, keys: Path) -> str:
    """Fedora's ``*-CHECKSUM``: the text its release key's clearsignature covers."""
    return clearsigned_text(fetch_bytes(url), keys / "fedora", url)


def ubuntu_sums(url: str, keys: Path) -> str:
    """Ubuntu's ``SHA256SUMS``, once ``SHA256SUMS.gpg`` beside it is a good signature of it."""
    sums = fetch_bytes(url)
    check_detached(sums, fetch_bytes(f"{url}.gpg"), keys / "ubuntu", url)
    return sums.decode(errors="replace")


@dataclass(frozen=True)
class Provider:
    """A distribution: its upstream, how an image is found under it (version, base,
    upstream → URL), and how its checksum list is read (URL, key folder → trusted text)."""

    upstream: str
    find: Callable[[str, str, str], str]
    read_sums: Callable[[str, Path], str]


def _avocado(provider_name: str) -> Callable[[str, str, str], str]:
    """A finder through avocado's vmimage provider, its upstream URLs moved to ``base``."""

    def find(version: str, base: str, upstream: str) -> str:
        from avocado.utils import vmimage  # imported here: only these providers need it

        def moved(url: str) -> str:
            # avocado names some upstreams over http: the https upstream, or the mirror, stands
            # for both
            for prefix in (upstream, upstream.replace("https://", "http://", 1)):
                if url.startswith(prefix):
                    return base + url[len(prefix) :]
            return url

        avocado_provider: Any = next(p for p in vmimage.list_providers() if p.name == provider_name)

        class Mirrored(avocado_provider):  # type: ignore[misc]
            """Reads its listings under ``base``, through the harness's bounded downloads."""

            def _feed_html_parser(self, url: str, parser: Any) -> None:
                parser.feed(fetch_text(moved(url), action="list"))

        try:
            found = str(Mirrored(version=version, arch="x86_64").get_image_url())
        except (vmimage.ImageProviderError, urllib.error.URLError, OSError) as exc:
            raise SetupError(f"{provider_name} {version} not found under {base}: {exc}") from exc
        return moved(found)

    return find


def _centos_stream(version: str, base: str, upstream: str) -> str:
    folder = f"{base}centos/{version}-stream/x86_64/images/"
    pattern = rf"^CentOS-Stream-GenericCloud-{re.escape(version)}-[\d.]+\.x86_64\.qcow2$"
    images = sorted(entry for entry in _listing(folder) if re.match(pattern, entry))
    if not images:
        raise SetupError(f"no CentOS Stream {version} GenericCloud qcow2 under {folder}")
    return folder + images[-1]


def _debian(version: str, base: str, upstream: str) -> str:
    codename = DEBIAN_CODENAMES.get(version)
    if codename is None:
        raise SetupError(f"unknown Debian release {version}: use {', '.join(DEBIAN_CODENAMES)}")
    return f"{base}images/cloud/{codename}/latest/debian-{version}-genericcloud-amd64.qcow2"


def _unsigned(url: str, keys: Path) -> str:
    return unsigned_sums(url)


PROVIDERS: dict[str, Provider] = {
    "fedora": Provider(
        "https://dl.fedoraproject.org/pub/fedora/linux/releases/", _avocado("Fedora"), fedora_sums
    ),
    "ubuntu": Provider(
        "https://cloud-images.ubuntu.com/releases/", _avocado("Ubuntu"), ubuntu_sums
    ),
    "centos-stream": Provider("https://cloud.centos.org/", _centos_stream, _unsigned),
    "debian": Provider("https://cloud.debian.org/", _debian, _unsigned),
}


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        href = dict(attrs).get("href")
        if tag == "a" and href and not href.startswith(("?", "/", "..")):
            self.links.append(href.rstrip("/"))


def _listing(url: str) -> list[str]:
    """The entries of a directory listing page (Apache, nginx, Python's http.server)."""
    parser = _Links()
    parser.feed(fetch_text(url, action="list"))
    return parser.links
