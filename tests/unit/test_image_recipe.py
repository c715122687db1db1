import subprocess
from pathlib import Path
from typing import ClassVar

import pytest

from harness.errors import ImageBuildError, SetupError
from harness.setup.debian_suites import GuestSuite
from harness.setup.image import (
    GuestImage,
    Recipe,
    checked_package,
    guest_host_keys,
    hook_option,
)

BOOKWORM = GuestSuite("bookworm").sources("linux-image-amd64")


def test_builtin_recipe_loads() -> None:
    recipe = Recipe.load("debian")
    assert recipe.settings["kernel_package"].startswith("linux-image")
    assert "qemu-guest-agent" in recipe.settings["packages"]


def test_key_follows_recipe_suite_kernel_and_versions(tmp_path: Path) -> None:
    (tmp_path / "recipe.toml").write_text('name = "x"\n')
    recipe = Recipe(tmp_path, {"name": "x"})
    key = recipe.content_key(BOOKWORM, "linux-image-amd64", {"systemd": "252"})
    assert key == recipe.content_key(BOOKWORM, "linux-image-amd64", {"systemd": "252"})
    assert key != recipe.content_key(BOOKWORM, "linux-image-6.1.0-28-amd64", {"systemd": "252"})
    assert key != recipe.content_key(BOOKWORM, "linux-image-amd64", {"systemd": "253"})
    sid = GuestSuite("sid").sources("linux-image-amd64")
    assert key != recipe.content_key(sid, "linux-image-amd64", {"systemd": "252"})
    (tmp_path / "customize-hook.sh").write_text("echo changed\n")
    assert key != recipe.content_key(BOOKWORM, "linux-image-amd64", {"systemd": "252"})


def test_unknown_recipe_and_broken_toml_are_clear_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(SetupError, match="no image recipe 'nope'"):
        Recipe.load("nope")
    monkeypatch.setattr("harness.setup.image.RECIPES_DIR", tmp_path)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "recipe.toml").write_text("name = \n")
    with pytest.raises(SetupError, match="not valid TOML"):
        Recipe.load("bad")


def test_incomplete_cached_image_is_refused(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text(
        '{"name": "x", "key": "k", "kernel_release": "6.1", "cmdline": "", "packages": {}}'
    )
    (tmp_path / "vmlinuz").write_bytes(b"k")
    with pytest.raises(SetupError, match="incomplete"):
        GuestImage.from_manifest(tmp_path)


def test_known_issues_file_loads_and_matches() -> None:
    from harness.results import known_issues

    issues = known_issues.load()
    reason = "cycle 1/1: no_pm_failures: kernel: PM: Image not found (code -16)"
    assert known_issues.find(issues, "disk-test_resume", "6.1.0-56-amd64", reason)
    assert known_issues.find(issues, "disk-test_resume", "6.12.48-amd64", reason) is None
    assert known_issues.find(issues, "s3-agent", "6.1.0-56-amd64", reason) is None


def test_known_issue_scoped_to_a_qemu_version() -> None:
    from harness.results import known_issues

    issues = known_issues.load()
    reason = "resume: timed out after 120s waiting for resume: guest agent: ..."
    hit = known_issues.find(issues, "s3-then-managedsave", "6.1.0-56-amd64", reason, "7.2.22")
    assert hit is not None and "QEMU 7.2" in hit.summary
    assert (
        known_issues.find(issues, "s3-then-managedsave", "6.1.0-56-amd64", reason, "10.0.0") is None
    )


def test_known_issue_scoped_to_an_accelerator() -> None:
    from harness.results import known_issues

    issues = known_issues.load()
    reason = (
        "suspend-entry: ... never printed 'PM: suspend-to-idle' within 90s; a guest CPU "
        "stalled (no progress for 21 s or more): rcu: INFO: rcu_preempt detected stalls"
    )
    hit = known_issues.find(issues, "s2idle", "6.1.0-56-amd64", reason, "7.2.22", "tcg")
    assert hit is not None and "TCG" in hit.summary
    assert known_issues.find(issues, "s2idle", "6.1.0-56-amd64", reason, "7.2.22", "kvm") is None
    assert known_issues.find(issues, "s2idle", "6.1.0-56-amd64", reason, "10.0.2", "tcg") is None
    crash = "suspend-entry: ...; the guest kernel crashed: Kernel panic"
    assert known_issues.find(issues, "s2idle", "6.1.0-56-amd64", crash, "7.2.22", "tcg") is None


def test_a_hook_path_reaches_mmdebstraps_shell_quoted(tmp_path: Path) -> None:
    odd = tmp_path / "my recipes; touch $HOME-owned"
    odd.mkdir()
    hook = odd / "customize-hook.sh"
    hook.write_text('#!/bin/sh\nprintf "%s|" "$0" "$@"\n')
    hook.chmod(0o755)
    command = hook_option(odd, "customize").removeprefix("--customize-hook=")
    # mmdebstrap runs a hook as: sh -c COMMAND exec ROOT
    result = subprocess.run(
        ["sh", "-c", command, "exec", "/the root"], capture_output=True, text=True, check=True
    )
    assert result.stdout == f"{hook}|/the root|"


@pytest.mark.parametrize(
    "suite", ["bookworm main\ndeb http://evil.example/ x", "bookworm [trusted=yes]", "", "-x"]
)
def test_a_suite_that_is_not_a_suite_name_is_refused(suite: str) -> None:
    with pytest.raises(SetupError, match="is not a Debian suite name"):
        GuestSuite.named(suite)


@pytest.mark.parametrize(
    "package",
    [
        "linux-image-amd64/bookworm main\ndeb http://evil.example/ x",
        "linux-image-amd64/bookworm [trusted=yes]",
        "linux-image-amd64,evil",
        "--option=x",
    ],
)
def test_a_kernel_package_that_is_not_a_package_is_refused(package: str) -> None:
    with pytest.raises(SetupError, match="is not a Debian package"):
        GuestSuite("bookworm").sources(package)
    with pytest.raises(SetupError, match="is not a Debian package"):
        GuestSuite.named("trixie-backports").kernel_package(package)


@pytest.mark.parametrize(
    "package",
    ["linux-image-amd64", "linux-image-6.1.0-28-amd64", "linux-image-amd64=6.1.123-1"],
)
def test_kernel_packages_as_the_matrix_names_them_pass(package: str) -> None:
    assert checked_package(package) == package


def test_a_built_image_carries_its_host_keys(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text(
        '{"name": "x", "key": "k", "kernel_release": "6.1", "cmdline": "", "packages": {}}'
    )
    (tmp_path / "ssh_host_keys.pub").write_text("ssh-ed25519 AAAAC3Nz\nssh-rsa AAAAB3\n")
    for name in ("vmlinuz", "initrd.img"):
        (tmp_path / name).write_bytes(b"k")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(tmp_path / "base.qcow2"), "1M"])
    image = GuestImage.from_manifest(tmp_path)
    assert image.host_keys == ("ssh-ed25519 AAAAC3Nz", "ssh-rsa AAAAB3")
    (tmp_path / "ssh_host_keys.pub").unlink()
    with pytest.raises(SetupError, match=r"incomplete \(ssh_host_keys.pub missing\)"):
        GuestImage.from_manifest(tmp_path)


def test_host_keys_are_read_from_the_built_root(tmp_path: Path) -> None:
    ssh = tmp_path / "etc" / "ssh"
    ssh.mkdir(parents=True)
    (ssh / "ssh_host_ed25519_key.pub").write_text("ssh-ed25519 AAAAC3Nz root@build\n")
    (ssh / "ssh_host_ed25519_key").write_text("PRIVATE\n")
    (ssh / "ssh_host_rsa_key.pub").write_text("ssh-rsa AAAAB3 root@build\n")
    assert guest_host_keys(tmp_path) == ["ssh-ed25519 AAAAC3Nz", "ssh-rsa AAAAB3"]
    for path in ssh.iterdir():
        path.unlink()
    with pytest.raises(ImageBuildError, match="no ssh host key"):
        guest_host_keys(tmp_path)


def test_the_recipe_names_its_image_by_the_guest_suite() -> None:
    recipe = Recipe.load("debian")
    assert recipe.settings["suite"] == "bookworm"  # the default guest stays the stable one
    assert recipe.image_name(GuestSuite.named("bookworm")) == "debian-bookworm"
    assert recipe.image_name(GuestSuite.named("trixie-backports")) == "debian-trixie"
    assert recipe.image_name(GuestSuite.named("experimental")) == "debian-sid"
    assert Recipe.load("debian-cloud").image_name(GuestSuite.named("sid")) == "debian-cloud"


def test_module_trees_are_left_out_under_both_module_roots() -> None:
    paths = Recipe.load("debian").exclude_paths()
    assert "/usr/share/doc/*" in paths
    assert "/lib/modules/*/kernel/drivers/gpu/*" in paths  # bookworm's kernels
    assert "/usr/lib/modules/*/kernel/drivers/gpu/*" in paths  # merged-/usr packages
    assert not [p for p in paths if "virtio" in p or "/fs/" in p]


class FakeIndex:
    """SuiteIndex without apt: every package at version 1, the sources remembered."""

    made: ClassVar[list[list[str]]] = []

    def __init__(self, cache: Path, sources: list[str]) -> None:
        FakeIndex.made.append(sources)

    def refresh(self) -> str | None:
        return None

    def versions(self, packages: list[str]) -> dict[str, str]:
        return dict.fromkeys(packages, "1")


def cached_image(directory: Path, name: str) -> None:
    """A built image as ``ImageCache.ensure`` finds it."""
    directory.mkdir(parents=True)
    (directory / "manifest.json").write_text(
        f'{{"name": "{name}", "key": "k", "kernel_release": "7.2.13+deb14-amd64", '
        '"cmdline": "root=/dev/vda", "packages": {}}'
    )
    (directory / "ssh_host_keys.pub").write_text("ssh-ed25519 AAAAC3Nz\n")
    for file in ("vmlinuz", "initrd.img"):
        (directory / file).write_bytes(b"k")
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", str(directory / "base.qcow2"), "1M"],
        check=True,
    )


@pytest.mark.parametrize(
    ("suite", "kernel", "image_name", "guest_suite", "kernel_package"),
    [
        (None, None, "debian-bookworm", "", "linux-image-amd64"),
        ("bookworm", None, "debian-bookworm", "", "linux-image-amd64"),
        ("trixie-backports", None, "debian-trixie", "trixie", "linux-image-amd64/trixie-backports"),
        ("sid", None, "debian-sid", "sid", "linux-image-amd64"),
        ("experimental", None, "debian-sid", "sid", "linux-image-amd64/experimental"),
        (None, "linux-image-amd64/bookworm-backports", "debian-bookworm", "",
         "linux-image-amd64/bookworm-backports"),
    ],
)  # fmt: skip
def test_one_recipe_finds_the_image_of_each_guest_suite_side_by_side(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    suite: str | None,
    kernel: str | None,
    image_name: str,
    guest_suite: str,
    kernel_package: str,
) -> None:
    from harness.setup import image as image_module

    monkeypatch.setattr(image_module, "SuiteIndex", FakeIndex)
    FakeIndex.made.clear()
    recipe = Recipe.load("debian")
    guest = GuestSuite.named(suite or "bookworm")
    wanted = guest.kernel_package(kernel or "linux-image-amd64")
    assert wanted == kernel_package
    sources = guest.sources(wanted)
    versions = dict.fromkeys([wanted, *recipe.settings["versioned_packages"]], "1")
    key = recipe.content_key(sources, wanted, versions)
    cached_image(tmp_path / f"{image_name}-{key}", image_name)
    found = image_module.ImageCache(tmp_path).ensure(recipe, kernel, lambda _: None, suite)
    assert FakeIndex.made == [sources]
    assert (found.name, found.guest_suite) == (image_name, guest_suite)
    assert found.disk == tmp_path / f"{image_name}-{key}" / "base.qcow2"


def test_images_of_different_suites_have_different_keys() -> None:
    recipe = Recipe.load("debian")
    keys = set()
    for name in ("bookworm", "bookworm-backports", "trixie", "trixie-backports", "sid",
                 "experimental"):  # fmt: skip
        guest = GuestSuite.named(name)
        kernel = guest.kernel_package("linux-image-amd64")
        keys.add(recipe.content_key(guest.sources(kernel), kernel, {kernel: "1"}))
    assert len(keys) == 6


def test_the_cell_id_names_a_newer_guests_suite_beside_its_kernel() -> None:
    from harness.matrix.cell import Cell

    stable = Cell("6.1.0-57-amd64", "7.2.22", "seabios1.16.2", "pc", "tcg")
    assert stable.id == "k6.1.0-57-q7.2.22-seabios1.16.2-pc-tcg"  # as it always was
    sid = Cell("7.2.13+deb14-amd64", "7.2.22", "seabios1.16.2", "pc", "tcg", guest="sid")
    assert sid.id == "k7.2.13+deb14-sid-q7.2.22-seabios1.16.2-pc-tcg"
