"""An image build's work directory is removed without crossing into a mount, and the
leftovers of dead builds are swept."""

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.errors import SetupError
from harness.setup.scratch import (
    mounts_under,
    remove_tree,
    remove_work_dir,
    sweep_dead_builds,
)

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")


def test_mount_points_are_read_from_mountinfo_deepest_first(tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text(
        "22 1 0:21 / /proc rw - proc proc rw\n"
        "90 1 0:50 / /w/.build-x-1/root/dev rw - tmpfs tmpfs rw\n"
        "91 90 0:25 / /w/.build-x-1/root/dev/shm rw - tmpfs tmpfs rw\n"
        "92 1 0:51 / /w/.build-x-10/root/proc rw - proc proc rw\n"
        "93 1 0:52 / /w/.build-x-1/a\\040b rw - tmpfs tmpfs rw\n"
    )
    assert mounts_under(Path("/w/.build-x-1"), info) == [
        Path("/w/.build-x-1/root/dev/shm"),
        Path("/w/.build-x-1/root/dev"),
        Path("/w/.build-x-1/a b"),
    ]


@pytest.fixture
def mounted(tmp_path: Path) -> Iterator[Path]:
    """A work directory with a tmpfs mounted below it, holding a file: the host's /dev/shm
    as a root-mode build leaves it."""
    work = tmp_path / ".build-x-1"
    shm = work / "root" / "dev" / "shm"
    shm.mkdir(parents=True)
    (work / "root" / "etc").mkdir()
    (work / "root" / "etc" / "hostname").write_text("guest\n")
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(shm)], check=True)
    (shm / "host-file").write_text("the host's\n")
    yield work
    subprocess.run(["umount", "--lazy", str(shm)], check=False)


@needs_root
def test_the_walker_never_deletes_through_a_mount(mounted: Path) -> None:
    shm = mounted / "root" / "dev" / "shm"
    with pytest.raises(SetupError, match=r"dev/shm on another file system \(a mount\)"):
        remove_tree(mounted)
    assert (shm / "host-file").read_text() == "the host's\n"
    assert not (mounted / "root" / "etc").exists()  # what was its own is gone


@needs_root
def test_a_work_directory_is_unmounted_then_removed(mounted: Path) -> None:
    shm = mounted / "root" / "dev" / "shm"
    assert mounts_under(mounted) == [shm]
    remove_work_dir(mounted)
    assert not mounted.exists()
    assert mounts_under(mounted) == []


def test_dead_builds_are_swept_live_ones_kept(tmp_path: Path) -> None:
    dead = tmp_path / ".build-debian-bookworm-0123-4194304"  # above pid_max: gone
    live = tmp_path / f".build-debian-bookworm-0123-{os.getpid()}"
    for work in (dead, live):
        (work / "root").mkdir(parents=True)
        (work / "root" / "file").write_text("x")
    (tmp_path / "debian-bookworm-0123").mkdir()  # a built image: not a build
    assert sweep_dead_builds(tmp_path) == [dead]
    assert not dead.exists() and live.is_dir()
    assert (tmp_path / "debian-bookworm-0123").is_dir()
