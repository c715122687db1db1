"""Component specs and closures: what names a Debian version, how versions are matched, how a
closure is resolved, cached, refused offline and run through its own loader."""

import hashlib
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from harness.errors import SetupError
from harness.setup import closure, components
from harness.setup.components import (
    DebianArchive,
    Package,
    is_version,
    packages_of,
    provision_qemu,
    upstream,
)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("10.0", True),
        ("1:7.2+dfsg-7+deb12u18+b3", True),
        ("1.16.3", True),
        ("qemu-system-x86_64", False),
        ("/opt/qemu/bin/qemu-system-x86_64", False),
        ("./build/qemu-system-x86_64", False),
    ],
)
def test_version_or_path(spec: str, expected: bool) -> None:
    assert is_version(spec) is expected


def test_upstream_version_drops_epoch_and_debian_parts() -> None:
    assert upstream("1:10.0.2+ds-2+deb13u1~bpo12+1") == "10.0.2"
    assert upstream("2025.02-8+deb13u1") == "2025.02"


class OfferedArchive(DebianArchive):
    def __init__(self, offered: list[tuple[str, str]], root: Path = Path("/nonexistent")) -> None:
        super().__init__(root)
        self.offered = offered

    def offers(self, package: str) -> list[tuple[str, str]]:
        return self.offered


QEMU_OFFERED = [
    ("1:11.1.3+ds-2~bpo13+1", "trixie-backports"),
    ("1:11.1.3+ds-1", "sid"),
    ("1:10.0.13+ds-0+deb13u1", "trixie"),
    ("1:10.0.2+ds-2+deb13u1~bpo12+1", "bookworm-backports"),
    ("1:7.2+dfsg-7+deb12u18+b3", "bookworm"),
]


def test_a_prefix_picks_the_build_of_the_oldest_release() -> None:
    archive = OfferedArchive(QEMU_OFFERED)
    assert archive.resolve("qemu-system-x86", "10.0") == "1:10.0.2+ds-2+deb13u1~bpo12+1"
    assert archive.resolve("qemu-system-x86", "10.0.13") == "1:10.0.13+ds-0+deb13u1"
    assert archive.resolve("qemu-system-x86", "11.1") == "1:11.1.3+ds-2~bpo13+1"
    assert archive.resolve("qemu-system-x86", "1:11.1.3+ds-1") == "1:11.1.3+ds-1"


def test_experimental_is_taken_only_when_nothing_else_matches() -> None:
    archive = OfferedArchive(
        [("7.3~rc7-1~exp1", "experimental"), ("7.3.4-1~bpo13+1", "trixie-backports")]
    )
    assert archive.resolve("linux-image-amd64", "7.3") == "7.3.4-1~bpo13+1"
    archive = OfferedArchive([("7.4~rc1-1~exp1", "experimental"), ("7.2.13-1", "sid")])
    assert archive.resolve("linux-image-amd64", "7.4") == "7.4~rc1-1~exp1"


def test_a_prefix_matches_whole_version_components() -> None:
    archive = OfferedArchive([("1.16.3-2", "trixie")])
    with pytest.raises(SetupError, match=r"seabios 1\.1 is not in Debian.s archive"):
        archive.resolve("seabios", "1.1")


def test_an_unknown_version_names_what_is_offered() -> None:
    archive = OfferedArchive([("1:7.2+dfsg-7+deb12u18+b3", "bookworm")])
    with pytest.raises(SetupError, match=r"qemu-system-x86 9.9 is not in Debian.s archive.*7\.2"):
        archive.resolve("qemu-system-x86", "9.9")


def test_a_version_belongs_to_the_oldest_release_offering_it() -> None:
    archive = OfferedArchive([("1.17.0-1", "sid"), ("1.17.0-1", "trixie-backports")])
    assert archive.suite_of("seabios", "1.17.0-1") == "trixie-backports"


def test_arch_all_companions_drop_the_binnmu_suffix() -> None:
    archive = OfferedArchive([("1:7.2+dfsg-7+deb12u18", "bookworm")])
    assert archive.companion_version("qemu-system-data", "1:7.2+dfsg-7+deb12u18+b3") == (
        "1:7.2+dfsg-7+deb12u18"
    )


def test_madison_lines_name_version_and_suite() -> None:
    line = "qemu-system-x86 | 1:11.1.3+ds-1 | http://deb.debian.org/debian sid/main amd64 Packages"
    assert components._madison_line(line) == ("1:11.1.3+ds-1", "sid")
    assert components._madison_line("garbage") is None


def test_a_missing_binary_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(SetupError, match=r"not found: run \./run setup"):
        provision_qemu(str(tmp_path / "qemu-system-x86_64"))


def test_a_provisioned_qemu_that_hangs_is_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    binary = tmp_path / "qemu-system-x86_64"
    binary.write_text("#!/bin/sh\nexec sleep 600\n")
    binary.chmod(0o755)
    monkeypatch.setattr(components, "PROBE_TIMEOUT_S", 1.0)
    started = time.monotonic()
    with pytest.raises(SetupError, match=r"qemu-system-x86_64 --version still running after 1s"):
        components._check_runs(binary, "qemu-system-x86", "1:99.0")
    assert time.monotonic() - started < 10


# -- resolution and the cache ------------------------------------------------------------------


def offline_archive(root: Path) -> DebianArchive:
    """An archive whose lists count as fetched: nothing runs apt-get update."""
    (root / "apt").mkdir(parents=True)
    (root / "apt/updated").touch()
    return DebianArchive(root, offline=True)


def answer(
    monkeypatch: pytest.MonkeyPatch, returncode: int, stdout: str, stderr: str = ""
) -> list[list[str]]:
    asked: list[list[str]] = []

    def fake(argv: list[str]) -> subprocess.CompletedProcess[str]:
        asked.append(argv)
        return subprocess.CompletedProcess(argv, returncode, stdout, stderr)

    monkeypatch.setattr(components, "_apt", fake)
    return asked


def test_a_closure_is_what_apt_would_install_from_that_release(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = answer(
        monkeypatch,
        0,
        "Inst libc6 (2.41-12 Debian:13.8/stable [amd64])\n"
        "Inst qemu-system-x86 (1:11.1.3+ds-2~bpo13+1 Debian Backports:stable-backports [amd64])\n"
        "Conf libc6 (2.41-12 Debian:13.8/stable [amd64])\n",
    )
    archive = offline_archive(tmp_path)
    wanted = [("qemu-system-x86", "1:11.1.3+ds-2~bpo13+1")]
    assert archive.closure(wanted, "trixie-backports") == [
        ("libc6", "2.41-12"),
        ("qemu-system-x86", "1:11.1.3+ds-2~bpo13+1"),
    ]
    argv = asked[0]
    assert f"Dir::Etc::SourceList={tmp_path}/apt/sources-trixie.list" in argv
    assert f"Dir::State::status={tmp_path}/apt/status" in argv
    assert argv[-3:] == ["-t", "trixie-backports", "qemu-system-x86=1:11.1.3+ds-2~bpo13+1"]
    assert "--no-install-recommends" in argv


def test_experimental_is_never_the_default_release(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = answer(monkeypatch, 0, "Inst ovmf (2027.02-1~exp1 Debian:experimental [all])\n")
    offline_archive(tmp_path).closure([("ovmf", "2027.02-1~exp1")], "experimental")
    assert "-t" not in asked[0]
    assert f"Dir::Etc::SourceList={tmp_path}/apt/sources-experimental.list" in asked[0]


def test_an_unresolvable_closure_names_the_missing_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    answer(
        monkeypatch,
        100,
        "Some packages could not be installed.\n"
        "The following packages have unmet dependencies:\n"
        " qemu-system-x86 : Depends: libfdt1 (>= 1.8) but it is not installable\n",
        "E: Unable to correct problems, you have held broken packages.\n",
    )
    with pytest.raises(SetupError) as caught:
        offline_archive(tmp_path).closure([("qemu-system-x86", "1:12.0")], "sid")
    message = str(caught.value)
    assert "Depends: libfdt1 (>= 1.8) but it is not installable" in message
    assert "on sid" in message and "\n" not in message


def test_offline_without_lists_names_the_cache(tmp_path: Path) -> None:
    with pytest.raises(SetupError, match=r"--offline: Debian's package lists are not in the cache"):
        DebianArchive(tmp_path, offline=True).versions("qemu-system-x86")


def test_offline_names_every_package_the_cache_lacks_in_one_line(tmp_path: Path) -> None:
    archive = offline_archive(tmp_path)
    archive.debs.mkdir()
    (archive.debs / "libc6_2.41-12_amd64.deb").write_bytes(b"cached")
    wanted = [("libc6", "2.41-12"), ("qemu-utils", "1:11.1.3+ds-1"), ("libfdt1", "1.7.2-2")]
    with pytest.raises(SetupError) as caught:
        archive.fetch(wanted)
    message = str(caught.value)
    assert message.startswith("--offline: 2 of 3 packages are not in the cache")
    assert "qemu-utils=1:11.1.3+ds-1 libfdt1=1.7.2-2" in message and "libc6" not in message
    assert "\n" not in message


def build_deb(directory: Path, name: str, version: str, files: dict[str, str]) -> Path:
    """A minimal .deb named as apt names a download (the epoch's colon as %3a)."""
    tree = directory / f"{name}-src"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN/control").write_text(
        f"Package: {name}\nVersion: {version}\nArchitecture: all\n"
        "Maintainer: t <t@example.org>\nDescription: t\n"
    )
    for path, target in files.items():
        (tree / path).parent.mkdir(parents=True, exist_ok=True)
        if target.startswith("->"):
            (tree / path).symlink_to(target[2:])
        else:
            (tree / path).write_text(target)
    deb = directory / f"{name}_{version.replace(':', '%3a')}_all.deb"
    subprocess.run(
        ["dpkg-deb", "-b", "-Zgzip", str(tree), str(deb)], check=True, capture_output=True
    )
    return deb


def test_an_unpacked_tree_records_versions_and_sha256_and_keeps_links_inside(
    tmp_path: Path,
) -> None:
    archive = offline_archive(tmp_path / "cache")
    archive.debs.mkdir()
    files = {
        "usr/share/seabios/bios-256k.bin": "bios",
        "usr/share/qemu/bios-256k.bin": "->/usr/share/seabios/bios-256k.bin",
    }
    deb = build_deb(archive.debs, "seabios", "1:1.17.0-1", files)
    tree, packages = archive.unpack([("seabios", "1:1.17.0-1")], "seabios-test")
    digest = hashlib.sha256(deb.read_bytes()).hexdigest()
    assert packages == (Package("seabios", "1:1.17.0-1", digest),)
    assert packages_of(tree) == packages
    assert json.loads((tree / ".packages.json").read_text())[0]["sha256"] == digest
    link = tree / "usr/share/qemu/bios-256k.bin"
    assert os.readlink(link) == "../seabios/bios-256k.bin"
    assert link.read_text() == "bios"
    assert archive.unpacked("seabios-test") == (tree, packages)
    assert archive.unpacked("absent") is None


# -- the loader ---------------------------------------------------------------------------------


def fake_root(root: Path, layout: str = "usr/lib/x86_64-linux-gnu") -> Path:
    """A root whose 'loader' prints its arguments and the variables QEMU would read."""
    (root / layout).mkdir(parents=True)
    loader = root / layout / closure.LOADER
    loader.write_text(
        '#!/bin/sh\necho "args: $*"\necho "modules: $QEMU_MODULE_DIR"\n'
        'echo "preload: ${LD_PRELOAD:-none}"\n'
    )
    loader.chmod(0o755)
    (root / "usr/bin").mkdir(parents=True)
    for data in ("usr/share/qemu", "usr/share/seabios", closure.QEMU_MODULE_DIR):
        (root / data).mkdir(parents=True, exist_ok=True)
    return root


def test_the_loader_reads_libraries_from_the_root_only(tmp_path: Path) -> None:
    root = fake_root(tmp_path / "root")
    lib = root / "usr/lib/x86_64-linux-gnu"
    assert closure.loader_argv(root) == [
        str(lib / closure.LOADER),
        "--inhibit-cache",
        "--library-path",
        str(lib),
    ]


def test_a_root_without_merged_usr_has_its_loader_under_lib(tmp_path: Path) -> None:
    root = fake_root(tmp_path / "root", "lib/x86_64-linux-gnu")
    (root / "usr/lib/x86_64-linux-gnu").mkdir(parents=True, exist_ok=True)
    argv = closure.loader_argv(root)
    assert argv[0] == str(root / "lib/x86_64-linux-gnu" / closure.LOADER)
    assert argv[-1] == f"{root}/usr/lib/x86_64-linux-gnu:{root}/lib/x86_64-linux-gnu"


def test_a_root_without_a_loader_says_libc6_is_missing(tmp_path: Path) -> None:
    with pytest.raises(SetupError, match=r"holds no ld-linux-x86-64\.so\.2: libc6 is missing"):
        closure.loader_argv(tmp_path)


def test_qemu_runs_through_the_wrapper_with_the_roots_data_and_modules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = fake_root(tmp_path / "root")
    system, img = closure.write_qemu_wrappers(root)
    monkeypatch.setenv("LD_PRELOAD", "/usr/lib/host-hook.so")
    out = subprocess.run([str(system), "--version"], capture_output=True, text=True).stdout
    assert out.splitlines() == [
        f"args: --inhibit-cache --library-path {root}/usr/lib/x86_64-linux-gnu "
        f"{root}/usr/bin/qemu-system-x86_64 -L {root}/usr/share/qemu "
        f"-L {root}/usr/share/seabios --version",
        f"modules: {root}/{closure.QEMU_MODULE_DIR}",
        "preload: none",
    ]
    out = subprocess.run([str(img), "info", "x"], capture_output=True, text=True).stdout
    assert out.splitlines()[0].endswith(f"{root}/usr/bin/qemu-img info x")


def test_a_wrapper_is_rewritten_only_when_its_text_changes(tmp_path: Path) -> None:
    path = tmp_path / "bin/tool"
    closure.write_wrapper(path, ["/a/ld.so", "/a/tool"], {})
    before = path.stat().st_mtime_ns
    closure.write_wrapper(path, ["/a/ld.so", "/a/tool"], {})
    assert path.stat().st_mtime_ns == before
    closure.write_wrapper(path, ["/b/ld.so", "/b/tool"], {})
    assert "/b/tool" in path.read_text() and os.access(path, os.X_OK)
