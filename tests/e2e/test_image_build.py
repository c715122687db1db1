"""An image build interrupted (Ctrl-C) while mmdebstrap has the host's /dev, /dev/shm, /proc
and /sys mounted below its work directory leaves the host's /dev/shm as it was, no mount, no
process of the build and no ``.build-*`` directory behind: in unshare mode (the harness's
choice where root may make a mount namespace) and in root mode (its fallback), whose mounts
are the host's own."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.selftest

ROOT = Path(__file__).resolve().parents[2]
MOUNT_WAIT_S = 300.0  # download and unpack come first; mirrors vary
EXIT_WAIT_S = 180.0

# A build of the built-in recipe into a cache of the test's own, in the mode given.
DRIVER = """
import sys
from pathlib import Path
from harness.setup import image
mode = sys.argv[2]
image.build_mode = lambda: mode
image.ImageCache(Path(sys.argv[1])).ensure(image.Recipe.load("debian"))
"""


def mounts_below(directory: Path) -> list[str]:
    """Mount points below ``directory`` in any process's mount namespace (the build's own
    namespace shows in its processes' mountinfo)."""
    needle = f" {directory}/"
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "mountinfo").read_text()
        except OSError:
            continue
        found |= {line.split(" ")[4] for line in text.splitlines() if needle in line}
    return sorted(found)


def processes_naming(directory: Path) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and str(directory).encode() in (entry / "cmdline").read_bytes():
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def _interruptible() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("mode", ["unshare", "root"])
def test_an_interrupted_build_leaves_the_hosts_dev_shm_and_no_build_directory(
    tmp_path: Path, mode: str
) -> None:
    marker = Path(f"/dev/shm/s3s4-build-test-{os.getpid()}-{mode}")
    marker.write_text("the host's\n")
    cache = tmp_path / "cache"
    build = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(cache), mode],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_interruptible,
    )
    try:
        deadline = time.monotonic() + MOUNT_WAIT_S
        while not mounts_below(cache):
            assert build.poll() is None, f"the build ended before mounting: {build.stderr}"
            assert time.monotonic() < deadline, f"nothing mounted in {MOUNT_WAIT_S:.0f}s"
            time.sleep(0.2)  # another process's mounts are seen only by looking
        build.send_signal(signal.SIGINT)  # Ctrl-C: the harness's own process group
        _, stderr = build.communicate(timeout=EXIT_WAIT_S)
        assert "KeyboardInterrupt" in stderr, stderr[-2000:]
        assert marker.read_text() == "the host's\n"
        assert list(cache.glob(".build-*")) == []
        assert mounts_below(cache) == []
        assert processes_naming(cache) == []
    finally:
        if build.poll() is None:
            build.kill()
        marker.unlink(missing_ok=True)
