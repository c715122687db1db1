import subprocess
from pathlib import Path

import pytest

from harness.errors import ImageBuildError, SetupError
from harness.setup.image import (
    GuestImage,
    Recipe,
    checked_package,
    guest_host_keys,
    hook_option,
    mirror_lines,
)


def test_builtin_recipe_loads() -> None:
    recipe = Recipe.load("debian")
    assert recipe.settings["kernel_package"].startswith("linux-image")
    assert "qemu-guest-agent" in recipe.settings["packages"]


def test_key_follows_recipe_kernel_and_versions(tmp_path: Path) -> None:
    (tmp_path / "recipe.toml").write_text('name = "x"\n')
    recipe = Recipe(tmp_path, {"name": "x"})
    key = recipe.content_key("linux-image-amd64", {"systemd": "252"})
    assert key == recipe.content_key("linux-image-amd64", {"systemd": "252"})
    assert key != recipe.content_key("linux-image-6.1.0-28-amd64", {"systemd": "252"})
    assert key != recipe.content_key("linux-image-amd64", {"systemd": "253"})
    (tmp_path / "customize-hook.sh").write_text("echo changed\n")
    assert key != recipe.content_key("linux-image-amd64", {"systemd": "252"})


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


def test_a_kernel_from_another_suite_adds_that_suite() -> None:
    assert mirror_lines("bookworm", "linux-image-amd64") == []
    assert mirror_lines("bookworm", "linux-image-amd64/bookworm") == []
    assert mirror_lines("bookworm", "linux-image-amd64/bookworm-backports") == [
        "deb http://deb.debian.org/debian bookworm main",
        "deb http://deb.debian.org/debian bookworm-backports main",
    ]


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
        mirror_lines(suite, "linux-image-amd64/bookworm-backports")


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
        mirror_lines("bookworm", package)


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
