"""A btrfs root file system for a guest profile, made without mounting anything.

The guest's own ``mkfs.btrfs`` (btrfs-progs 7.x, installed in the image: the build host's may
be too old for ``--inode-flags``) packs the root directory into subvolumes as Fedora's
kickstarts lay them out (``root`` for /, ``home`` for /home) with the swapfile in a nested
subvolume ``root/swap`` (btrfs's own advice: a subvolume holding a swapfile cannot be
snapshotted), made NODATACOW by ``--inode-flags`` and written in full, so it has no holes.

``resume_offset`` is the swapfile's first page on the partition. ``btrfs inspect-internal
map-swapfile -r`` says it on a mounted file system; here it is read from the trees of the
unmounted one: the logical address of the file's first extent (its subvolume's tree), mapped
to the device through the chunk tree. The guest's ``map-swapfile -r`` must agree (a test
checks it).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

from harness.errors import ImageBuildError
from harness.setup.build_steps import guest_program, run_step

PAGE = 4096
LABEL = "fedora"  # Fedora's kickstarts: btrfs none --label=fedora
SWAP_SUBVOLUME = "swap"  # below root: /swap, as btrfs's Swapfile page makes it
SWAPFILE = "swapfile"

Progress = Callable[[str], None]

ROOT_REF = re.compile(r"ROOT_REF (\d+)\).*\n\s+root ref key dirid \d+ sequence \d+ name (\S+)$",
                      re.MULTILINE)  # fmt: skip
INODE_REF = re.compile(r"key \((\d+) INODE_REF \d+\).*\n\s+index \d+ namelen \d+ name: (\S+)$",
                       re.MULTILINE)  # fmt: skip
CHUNK = re.compile(
    r"CHUNK_ITEM (\d+)\).*\n\s+length (\d+) .*type (\S+)\n(?:.*\n){2}\s+stripe 0 devid \d+ "
    r"offset (\d+)",
)


def make_btrfs_root(
    rootdir: Path, raw: Path, swapfile_mib: int, fs_uuid: str, progress: Progress
) -> int:
    """Pack ``rootdir`` into the btrfs file system ``raw`` (its size already set), with a
    swapfile of ``swapfile_mib`` at /swap/swapfile; return its ``resume_offset``.

    ``rootdir`` is moved into a staging directory as its ``root`` subvolume and moved back."""
    top = rootdir.with_name("btrfs-top")
    top.mkdir()
    staged = top / "root"
    rootdir.rename(staged)
    try:
        (top / "home").mkdir()
        for entry in (staged / "home").iterdir():
            entry.rename(top / "home" / entry.name)
        swap_dir = staged / SWAP_SUBVOLUME
        swap_dir.mkdir(mode=0o700)
        swapfile = swap_dir / SWAPFILE
        _write_swapfile(swapfile, swapfile_mib)
        progress(f"mkfs.btrfs: subvolumes root, home, root/{SWAP_SUBVOLUME}; the swapfile")
        _btrfs(
            staged,
            "usr/sbin/mkfs.btrfs", "-q", "-f", "-L", LABEL, "-U", fs_uuid, "-r", str(top),
            "--subvol", "rw:root", "--subvol", "rw:home",
            "--subvol", f"rw:root/{SWAP_SUBVOLUME}",
            "--inode-flags", f"nodatacow:root/{SWAP_SUBVOLUME}/{SWAPFILE}",
            str(raw),
        )  # fmt: skip
        swapfile.unlink()
        for entry in (top / "home").iterdir():
            entry.rename(staged / "home" / entry.name)
        roots = _btrfs(staged, "usr/bin/btrfs", "inspect-internal", "dump-tree", "-t", "root",
                       str(raw))  # fmt: skip
        subvolume = subvolume_id(roots, SWAP_SUBVOLUME)
        tree = _btrfs(staged, "usr/bin/btrfs", "inspect-internal", "dump-tree", "-t",
                      str(subvolume), str(raw))  # fmt: skip
        chunks = _btrfs(staged, "usr/bin/btrfs", "inspect-internal", "dump-tree", "-t", "chunk",
                        str(raw))  # fmt: skip
    finally:
        staged.rename(rootdir)
        shutil.rmtree(top)
    return resume_offset(first_extent(tree, SWAPFILE), chunks)


def _write_swapfile(path: Path, size_mib: int) -> None:
    """A swapfile with every block written (zeros after mkswap's header): mkfs.btrfs copies
    written data as extents, and a btrfs swapfile may have no holes."""
    block = bytes(1024 * 1024)
    with path.open("wb") as handle:
        for _ in range(size_mib):
            handle.write(block)
    path.chmod(0o600)
    run_step(["mkswap", "-q", "-L", SWAPFILE, str(path)], "mkswap")


def subvolume_id(root_tree: str, name: str) -> int:
    """The id of the subvolume called ``name`` in ``dump-tree -t root`` output."""
    for found, called in ROOT_REF.findall(root_tree):
        if called == name:
            return int(found)
    raise ImageBuildError(f"btrfs: no subvolume {name!r} in the root tree")


def first_extent(subvolume_tree: str, name: str) -> int:
    """The logical address of the first data extent of the file called ``name`` in a
    subvolume's ``dump-tree`` output."""
    inodes = [int(ino) for ino, called in INODE_REF.findall(subvolume_tree) if called == name]
    if len(inodes) != 1:
        raise ImageBuildError(f"btrfs: {len(inodes)} files called {name!r} in the subvolume")
    extent = re.search(
        rf"key \({inodes[0]} EXTENT_DATA 0\).*\n.*type 1 \(regular\)\n\s+extent data disk byte "
        r"(\d+)",
        subvolume_tree,
    )
    if extent is None or extent.group(1) == "0":
        raise ImageBuildError(f"btrfs: {name!r} starts with a hole or an inline extent")
    return int(extent.group(1))


def resume_offset(logical: int, chunk_tree: str) -> int:
    """The page, on the device, of the logical address ``logical`` (a single data chunk)."""
    for start, length, kind, physical in CHUNK.findall(chunk_tree):
        if int(start) <= logical < int(start) + int(length):
            if kind != "DATA|single":
                raise ImageBuildError(f"btrfs: the swapfile lies in a {kind} chunk")
            return (int(physical) + logical - int(start)) // PAGE
    raise ImageBuildError(f"btrfs: no chunk holds logical address {logical}")


def _btrfs(guest_root: Path, program: str, *args: str) -> str:
    return guest_program(guest_root, program, *args, package="btrfs-progs")
