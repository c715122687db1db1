"""How S4 grows with the guest's memory: the image's size and the guest's write and read
throughput, read from the kernel's own hibernation records, against the host disk's own
sequential throughput in the directory the swap image lives in, and the part of the cycle
that is the harness's (the cycle's wall time less the guest's write and read).

Throughputs are in the kernel's unit: MB = 1000 KiB (``swsusp_show_speed``).
"""

from __future__ import annotations

import mmap
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# "PM: hibernation: Wrote 193760 kbytes in 5.80 seconds (33.40 MB/s)" (older: "PM: Wrote");
# the resume kernel's "PM: hibernation: Read 193760 kbytes in 8.55 seconds (22.66 MB/s)".
WROTE = re.compile(r"(?:hibernation|PM): Wrote (\d+) kbytes in (\d+\.\d+) seconds")
READ = re.compile(r"(?:hibernation|PM): Read (\d+) kbytes in (\d+\.\d+) seconds")
KB_PER_MB = 1000  # the kernel's MB: 1000 KiB
CHUNK = 4 * 1024 * 1024  # the host probe's write and read size, a multiple of any block size


@dataclass(frozen=True)
class ImageTransfer:
    """The guest kernel's records of one S4 cycle: the image written, then read back."""

    written_kb: int
    write_s: float
    read_kb: int
    read_s: float

    @property
    def write_mb_s(self) -> float:
        return _rate(self.written_kb, self.write_s)

    @property
    def read_mb_s(self) -> float:
        return _rate(self.read_kb, self.read_s)


def _rate(kbytes: float, seconds: float) -> float:
    return kbytes / KB_PER_MB / seconds if seconds > 0 else 0.0


def image_transfer(lines: Sequence[str]) -> ImageTransfer | None:
    """The first ``Wrote`` and the ``Read`` after it on one cycle's console; None when the
    kernel did not print both (an older kernel, or a cycle that did not resume)."""
    for index, line in enumerate(lines):
        wrote = WROTE.search(line)
        if wrote is None:
            continue
        read = next((m for later in lines[index + 1 :] if (m := READ.search(later))), None)
        if read is None:
            return None
        return ImageTransfer(
            int(wrote.group(1)), float(wrote.group(2)), int(read.group(1)), float(read.group(2))
        )
    return None


@dataclass(frozen=True)
class ScalingRow:
    """One S4 cycle at one memory size."""

    memory_gib: int
    fill_mib: int
    transfer: ImageTransfer
    cycle_s: float  # the harness's whole cycle, request to the checks after
    checks_s: float  # the facts scripts before and after (harness only)
    # The guest's own work on its kernels' clocks (entry to power-off, the resume kernel's
    # boot and load, the restored kernel's wake) and the firmware before the resume kernel.
    guest_s: float | None = None

    @property
    def rest_s(self) -> float:
        """The cycle less the guest's write and read: the harness's share (relaunch, waits,
        checks) and what no kernel record counts (the firmware, the resume kernel's boot)."""
        return self.cycle_s - self.transfer.write_s - self.transfer.read_s

    @property
    def harness_s(self) -> float | None:
        """The cycle less all of the guest's own work: the harness's share alone."""
        return None if self.guest_s is None else self.cycle_s - self.guest_s

    def as_json(self) -> dict[str, Any]:
        return asdict(self) | {"rest_s": self.rest_s, "harness_s": self.harness_s}


@dataclass(frozen=True)
class DiskThroughput:
    """The host's own sequential throughput in one directory, in the kernel's MB/s."""

    directory: str
    size_mb: float
    write_mb_s: float  # written and fsync'd
    read_mb_s: float
    read_method: str  # O_DIRECT, or the page cache dropped for the file first


def host_disk_throughput(
    directory: Path, size_bytes: int, clock: Callable[[], float] = time.monotonic
) -> DiskThroughput:
    """Write ``size_bytes`` (rounded up to 4 MiB) of incompressible data to a file in
    ``directory``, fsync it, then read it back bypassing the page cache (O_DIRECT; where the
    filesystem refuses it, the file's cached pages are dropped first). The file is removed."""
    chunks = max(1, -(-size_bytes // CHUNK))
    path = directory / f"bench-disk-probe-{os.getpid()}"
    block = mmap.mmap(-1, CHUNK)  # page aligned, as O_DIRECT requires
    block.write(os.urandom(CHUNK))
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            started = clock()
            for _ in range(chunks):
                os.write(fd, block)
            os.fsync(fd)
            write_s = clock() - started
        finally:
            os.close(fd)
        read_s, method = _read_uncached(path, block, chunks, clock)
    finally:
        path.unlink(missing_ok=True)
        block.close()
    kbytes = chunks * CHUNK / 1024
    return DiskThroughput(
        str(directory), kbytes / KB_PER_MB, _rate(kbytes, write_s), _rate(kbytes, read_s), method
    )


def _read_uncached(
    path: Path, buffer: mmap.mmap, chunks: int, clock: Callable[[], float]
) -> tuple[float, str]:
    try:
        fd, method = os.open(path, os.O_RDONLY | os.O_DIRECT), "O_DIRECT"
    except OSError:
        fd, method = os.open(path, os.O_RDONLY), "page cache dropped (posix_fadvise DONTNEED)"
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    try:
        started = clock()
        for _ in range(chunks):
            os.readv(fd, [buffer])
        return clock() - started, method
    finally:
        os.close(fd)


# The guest's memory filled before the cycle: a MiB of random data repeated in tmpfs, which
# the kernel can neither drop nor compress (its compressor works on chunks far smaller than
# the repeat), so the image grows with the fill. Repeated, not all random: a random stream
# costs a TCG guest far more than copying.
FILL_PATH = "/dev/shm/bench-fill"


def fill_command(mib: int) -> str:
    """A guest shell command that holds ``mib`` MiB of incompressible data in tmpfs."""
    blocks, rest = divmod(mib, 64)
    return (
        f"set -e; d=/dev/shm; head -c 1048576 /dev/urandom > $d/seed; "
        f'set --; for i in $(seq 64); do set -- "$@" $d/seed; done; cat "$@" > $d/seed64; '
        f'set --; for i in $(seq {blocks}); do set -- "$@" $d/seed64; done; '
        f'for i in $(seq {rest}); do set -- "$@" $d/seed; done; '
        f'cat "$@" /dev/null > {FILL_PATH}; rm $d/seed $d/seed64; '
        f"du -m {FILL_PATH} | cut -f1"
    )


def scaling_table(
    rows: Sequence[ScalingRow],
    disk: DiskThroughput | None,
    write: Callable[[str], None] = print,
) -> None:
    """The S4 scaling table: one line per cycle, then the host disk's own throughput."""
    write(
        f"{'memory':>6} {'fill':>6} {'image':>8} {'write':>7} {'MB/s':>6} {'read':>7} "
        f"{'MB/s':>6} {'cycle':>7} {'rest':>7} {'harness':>7} {'checks':>7}"
    )
    for row in rows:
        t = row.transfer
        harness = f"{row.harness_s:>6.1f}s" if row.harness_s is not None else f"{'-':>7}"
        write(
            f"{row.memory_gib:>4}Gi {row.fill_mib:>4}Mi {t.written_kb / KB_PER_MB:>6.0f}MB "
            f"{t.write_s:>6.1f}s {t.write_mb_s:>6.1f} {t.read_s:>6.1f}s {t.read_mb_s:>6.1f} "
            f"{row.cycle_s:>6.1f}s {row.rest_s:>6.1f}s {harness} {row.checks_s:>6.1f}s"
        )
    if disk is not None:
        write(
            f"host disk ({disk.directory}, {disk.size_mb:.0f} MB): write+fsync "
            f"{disk.write_mb_s:.0f} MB/s, read {disk.read_mb_s:.0f} MB/s ({disk.read_method})"
        )
    write("rest = cycle - the guest's write and read of its image")
    write("harness = cycle - all of the guest's own work (kernel clocks and firmware)")
