"""Which guest the suite boots when none is named.

The built-in Debian guest wherever it can be built: mmdebstrap drives apt and checks Debian's
archive with Debian's keys, all three from the host. On a Fedora host that lacks any of them,
the default is the Fedora Cloud Base image of the host's own release (``fedora:<VERSION_ID>``
from os-release), downloaded once into the cache and verified against Fedora's signed
``CHECKSUM`` by the cloud-image providers (harness.setup.cloud_providers), then prepared by the
seed as any cloud image. Fedora's cloud images boot by BIOS or UEFI (the Fedora 35 change
"FedoraCloudHybridBoot"), so the firmware stays the user's choice. On any other host the
built-in guest stays the default, and its build names what is missing.

A guest the user names (``--cloud-image``) is always the one booted."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.setup.host_distro import Distribution, read_os_release

# Where the host keeps Debian's archive keys: the keyring package's file, or apt's own set.
KEYRING_GLOBS = (
    ("usr/share/keyrings", "debian-archive-*.gpg"),
    ("etc/apt/trusted.gpg.d", "debian-archive-*"),
)
BUILD_PARTS = ("mmdebstrap", "apt", "keyring")
# Options (pytest's dest names) that only the built-in guest has: given one, it is built.
BUILT_IN_ONLY_OPTIONS = ("guest_profile", "guest_suite", "kernel_package", "kernel")


@dataclass(frozen=True)
class BuildHost:
    """Where the build's parts are looked for: files below ``root``, programs on ``path``."""

    root: Path = Path("/")
    path: str | None = None  # None: this process's PATH

    def missing(self) -> list[str]:
        """The parts of the built-in guest's build this host lacks (``BUILD_PARTS`` order)."""
        keyrings = [k for d, pattern in KEYRING_GLOBS for k in (self.root / d).glob(pattern)]
        found = {
            "mmdebstrap": shutil.which("mmdebstrap", path=self.path) is not None,
            "apt": shutil.which("apt-get", path=self.path) is not None,
            "keyring": any(k.is_file() for k in keyrings),
        }
        return [part for part in BUILD_PARTS if not found[part]]


@dataclass(frozen=True)
class DefaultGuest:
    cloud_image: str | None  # a --cloud-image NAME:VERSION, or None for the built-in guest
    reason: str


def choose(distro: Distribution, missing: list[str]) -> DefaultGuest:
    """The default guest of a host of ``distro`` that lacks ``missing`` build parts."""
    if not missing:
        return DefaultGuest(None, "the built-in Debian guest builds here (mmdebstrap, apt, keys)")
    lacking = f"no {', '.join(missing)}: the built-in Debian guest cannot be built"
    if distro.id == "fedora" and distro.version_id.isdigit():
        image = f"fedora:{distro.version_id}"
        return DefaultGuest(image, f"{lacking}; the default is --cloud-image {image}")
    return DefaultGuest(None, f"{lacking}; or --cloud-image fedora:<release>")


def for_host(root: Path = Path("/"), path: str | None = None) -> DefaultGuest:
    """The default guest of the host below ``root``."""
    distro = read_os_release(root / "etc" / "os-release")
    return choose(distro, BuildHost(root, path).missing())


def cloud_image_or_default(given: str | None, built_in_asked: bool = False) -> str | None:
    """The cloud image the session boots: the one given, else this host's default (None: the
    built-in guest). ``built_in_asked``: the user chose something only the built-in guest has
    (a guest profile, suite, kernel package or kernel), so its build runs and names what is
    missing."""
    if given or built_in_asked:
        return given
    return for_host().cloud_image


def from_options(getoption: Callable[[str], Any]) -> str | None:
    """``cloud_image_or_default`` from the session's options (pytest's ``getoption``)."""
    asked = any(getoption(name) for name in BUILT_IN_ONLY_OPTIONS)
    return cloud_image_or_default(getoption("cloud_image"), asked)
