"""``./run bisect`` under ``git bisect run``: real builds, real boots, the right commit.

The "builds" are wrappers around the host's QEMU (one adds ``-global PIIX4_PM.disable_s3=1``,
as a regression that drops S3 from the ACPI tables would) and copies of the image's kernel.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.setup.image import ImageCache, Recipe

pytestmark = pytest.mark.selftest

ROOT = Path(__file__).resolve().parents[2]
STEP_TIMEOUT = 900  # seconds for a whole `git bisect run` (two or three boots)

GOOD_QEMU = '#!/bin/sh\nexec qemu-system-x86_64 "$@"\n'
BAD_QEMU = '#!/bin/sh\nexec qemu-system-x86_64 "$@" -global PIIX4_PM.disable_s3=1\n'
BROKEN_QEMU = """#!/bin/sh
[ "$1" = "--version" ] && exec qemu-system-x86_64 --version
echo "cannot initialise the accelerator" >&2
exit 1
"""


def git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    return subprocess.run(
        ["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True
    ).stdout


def commit(repo: Path, message: str, qemu: str | None = None) -> str:
    if qemu is not None:
        (repo / "qemu").write_text(qemu)
        (repo / "qemu").chmod(0o755)
    (repo / "log").write_text((repo / "log").read_text() + message + "\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD").strip()


def bisect_command(reports: Path, *args: str) -> list[str]:
    return [str(ROOT / "run"), "bisect", "--report-dir", str(reports), *args]


def judge(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        bisect_command(tmp_path / "reports", *args),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=STEP_TIMEOUT,
    )


def kernel_with_initrd(tmp_path: Path) -> tuple[Path, Path]:
    """A bzImage and its initrd as a kernel build leaves them: copies of the image's own."""
    image = ImageCache().ensure(Recipe.load("debian"), None)
    kernel, initrd = tmp_path / "bzImage", tmp_path / "initrd.img"
    assert image.kernel is not None, "the debian recipe boots its kernel directly"
    shutil.copyfile(image.kernel, kernel)
    shutil.copyfile(image.initrd or "", initrd)
    return kernel, initrd


def test_git_bisect_run_lands_on_the_commit_that_dropped_s3(tmp_path: Path) -> None:
    """Every step also boots a bzImage with its initrd given by ``--kernel``/``--initrd``, so
    the good step proves as well that such a kernel boots on the image and is judged good (a
    test of its own would be one more boot for the same verdict)."""
    kernel, initrd = kernel_with_initrd(tmp_path)
    repo = tmp_path / "qemu-tree"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "log").write_text("")
    good = commit(repo, "good: the host's QEMU", GOOD_QEMU)
    commit(repo, "unrelated change 1")
    commit(repo, "unrelated change 2")
    culprit = commit(repo, "regression: S3 gone from the ACPI tables", BAD_QEMU)
    bad = commit(repo, "unrelated change 3")
    git(repo, "bisect", "start", bad, good)
    step = bisect_command(
        tmp_path / "reports", "--qemu", "./qemu", "--kernel", str(kernel), "--initrd", str(initrd)
    )
    result = subprocess.run(
        ["git", "bisect", "run", *step],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
        timeout=STEP_TIMEOUT,
    )
    output = result.stdout + result.stderr
    assert f"{culprit} is the first bad commit" in output, output[-3000:]
    assert "bisect: bad (exit 1)" in output and "UNSUPPORTED" in output, output[-3000:]
    assert "bisect: good (exit 0)" in output, output[-3000:]
    assert f"--kernel {kernel} --initrd {initrd}" in output, output[-3000:]


def test_a_build_that_cannot_start_a_machine_is_skipped(tmp_path: Path) -> None:
    broken = tmp_path / "qemu-broken"
    broken.write_text(BROKEN_QEMU)
    broken.chmod(0o755)
    result = judge(tmp_path, "--qemu", broken.name)
    assert result.returncode == 125, result.stdout[-2000:] + result.stderr[-2000:]
    assert "cannot initialise the accelerator" in result.stdout.splitlines()[-1]


def test_a_kernel_that_panics_at_boot_is_skipped_without_waiting_out_the_boot(
    tmp_path: Path,
) -> None:
    # Debian's kernel keeps virtio_blk in its initrd: without one it cannot mount the root.
    image = ImageCache().ensure(Recipe.load("debian"), None)
    assert image.kernel is not None, "the debian recipe boots its kernel directly"
    shutil.copyfile(image.kernel, tmp_path / "bzImage")
    result = judge(tmp_path, "--kernel", "bzImage")
    last = result.stdout.splitlines()[-1]
    assert result.returncode == 125, result.stdout[-2000:] + result.stderr[-2000:]
    assert "KernelPanic: boot: the guest kernel panicked" in last
    assert "VFS: Unable to mount root fs" in last
