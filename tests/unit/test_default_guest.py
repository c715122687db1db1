"""The default guest (harness.setup.default_guest) on stand-in hosts: a Fedora host without
mmdebstrap, apt or Debian's keys boots its own release's Fedora Cloud Base image through the
cloud-image providers; a host that builds the built-in guest, or any other distribution, keeps
the built-in guest; a guest the user names always wins."""

from pathlib import Path

import pytest

from harness.setup import default_guest
from harness.setup.default_guest import BuildHost, choose, for_host
from harness.setup.host_distro import Distribution, read_os_release

FEDORA_41 = Distribution("fedora", (), "Fedora Linux 41", "41")


def stand_in(tmp_path: Path, os_release: str, programs: tuple[str, ...], keys: bool) -> Path:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/os-release").write_text(os_release)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in programs:
        (bin_dir / name).write_text("")
        (bin_dir / name).chmod(0o755)
    if keys:
        (root / "usr/share/keyrings").mkdir(parents=True)
        (root / "usr/share/keyrings/debian-archive-keyring.gpg").write_text("keys")
    return root


def test_a_fedora_host_without_mmdebstrap_defaults_to_its_releases_cloud_image(
    tmp_path: Path,
) -> None:
    root = stand_in(tmp_path, "ID=fedora\nVERSION_ID=41\n", ("apt-get",), keys=False)
    chosen = for_host(root, str(tmp_path / "bin"))
    assert chosen.cloud_image == "fedora:41"
    assert chosen.reason == (
        "no mmdebstrap, keyring: the built-in Debian guest cannot be built; "
        "the default is --cloud-image fedora:41"
    )


def test_a_fedora_host_that_builds_it_keeps_the_built_in_guest(tmp_path: Path) -> None:
    root = stand_in(tmp_path, "ID=fedora\nVERSION_ID=41\n", ("mmdebstrap", "apt-get"), keys=True)
    assert for_host(root, str(tmp_path / "bin")).cloud_image is None


def test_apts_own_key_set_counts_as_debians_keys(tmp_path: Path) -> None:
    root = stand_in(tmp_path, "ID=fedora\n", ("mmdebstrap", "apt-get"), keys=False)
    (root / "etc/apt/trusted.gpg.d").mkdir(parents=True)
    (root / "etc/apt/trusted.gpg.d/debian-archive-bookworm-stable.asc").write_text("k")
    assert BuildHost(root, str(tmp_path / "bin")).missing() == []


@pytest.mark.parametrize(
    ("distro", "expected"),
    [
        (Distribution("debian", (), "Debian 12", "12"), None),  # its build names what is missing
        (Distribution("centos", ("rhel", "fedora"), "CentOS Stream 9", "9"), None),
        (Distribution("fedora", (), "Fedora rawhide", ""), None),  # no release number
        (FEDORA_41, "fedora:41"),
    ],
)
def test_only_a_fedora_release_falls_back(distro: Distribution, expected: str | None) -> None:
    assert choose(distro, ["mmdebstrap"]).cloud_image == expected
    assert choose(distro, []).cloud_image is None


def test_a_named_or_built_in_only_choice_is_never_replaced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fallback = default_guest.DefaultGuest("fedora:41", "stand-in")
    monkeypatch.setattr(default_guest, "for_host", lambda: fallback)
    assert default_guest.cloud_image_or_default(None) == "fedora:41"
    assert default_guest.cloud_image_or_default("ubuntu:24.04") == "ubuntu:24.04"
    assert default_guest.cloud_image_or_default(None, built_in_asked=True) is None


def test_the_options_decide_as_the_user_would_expect(monkeypatch: pytest.MonkeyPatch) -> None:
    fallback = default_guest.DefaultGuest("fedora:41", "stand-in")
    monkeypatch.setattr(default_guest, "for_host", lambda: fallback)
    given: dict[str, object] = {}
    assert default_guest.from_options(given.get) == "fedora:41"
    given["guest_profile"] = "swapfile-ext4"
    assert default_guest.from_options(given.get) is None


def test_on_this_host_the_built_in_guest_stays_unless_it_is_a_fedora_one() -> None:
    chosen = default_guest.cloud_image_or_default(None)
    assert chosen is None or read_os_release().id == "fedora"
