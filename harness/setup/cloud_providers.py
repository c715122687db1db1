"""Where a distribution's cloud image lives: ``fedora:41``, ``ubuntu:24.04``,
``centos-stream:9`` or ``debian:12`` to the image's URL and its published checksum.

Fedora and Ubuntu are found by avocado-framework's ``vmimage`` providers (which read the
upstream directory listings); CentOS Stream and Debian, which those providers do not know in
their current layouts, by a table of our own. A mirror (``--cloud-mirror``, for labs without
internet) keeps the upstream paths under another base URL, as rsync mirrors do. The checksum
list is the one published beside the image (CHECKSUM, SHA256SUMS or SHA512SUMS).
"""

from __future__ import annotations

import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

from harness.errors import SetupError
from harness.setup.downloads import digest_from_sums, fetch_text

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


def resolve(spec: str, mirror: str | None = None) -> CloudImageRef:
    """The image ``spec`` names, at upstream or under ``mirror``, with its checksum."""
    match = SPEC.match(spec)
    if match is None or match.group("name") not in PROVIDERS:
        raise SetupError(
            f"unknown cloud image {spec!r}: use one of "
            f"{', '.join(f'{name}:VERSION' for name in sorted(PROVIDERS))}, a URL or a path"
        )
    upstream, find = PROVIDERS[match.group("name")]
    base = upstream
    if mirror:  # the mirror stands for the upstream host: the paths below it are kept
        parts = urllib.parse.urlsplit(upstream)
        base = mirror.rstrip("/") + parts.path
    url = find(match.group("version"), base, upstream)
    folder, _, name = url.rpartition("/")
    sums = [entry for entry in _listing(folder + "/") if SUMS.search(entry)]
    if not sums:
        raise SetupError(f"no checksum list (CHECKSUM, SHA256SUMS) beside {url}")
    return CloudImageRef(url, digest_from_sums(fetch_text(f"{folder}/{sums[0]}"), name))


def _avocado(provider_name: str) -> Callable[[str, str, str], str]:
    """A finder through avocado's vmimage provider, its upstream URLs moved to ``base``."""

    def find(version: str, base: str, upstream: str) -> str:
        from avocado.utils import vmimage  # imported here: only these providers need it

        avocado_provider: Any = next(p for p in vmimage.list_providers() if p.name == provider_name)

        class Mirrored(avocado_provider):  # type: ignore[misc]
            """Reads its listings under ``base`` (the provider reads one while it is made)."""

            def _feed_html_parser(self, url: str, parser: Any) -> Any:
                return super()._feed_html_parser(url.replace(upstream, base, 1), parser)

        try:
            found = str(Mirrored(version=version, arch="x86_64").get_image_url())
        except (vmimage.ImageProviderError, urllib.error.URLError, OSError) as exc:
            raise SetupError(f"{provider_name} {version} not found under {base}: {exc}") from exc
        return found.replace(upstream, base, 1)

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


PROVIDERS: dict[str, tuple[str, Callable[[str, str, str], str]]] = {
    "fedora": ("https://dl.fedoraproject.org/pub/fedora/linux/releases/", _avocado("Fedora")),
    "ubuntu": ("http://cloud-images.ubuntu.com/releases/", _avocado("Ubuntu")),
    "centos-stream": ("https://cloud.centos.org/", _centos_stream),
    "debian": ("https://cloud.debian.org/", _debian),
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
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            page = response.read().decode(errors="replace")
    except (urllib.error.URLError, OSError) as exc:
        raise SetupError(f"cannot list {url}: {getattr(exc, 'reason', exc)}") from exc
    parser = _Links()
    parser.feed(page)
    return parser.links
