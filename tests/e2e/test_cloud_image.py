"""A cloud-style image (built here: a UEFI GPT disk with systemd-boot and cloud-init, nothing
of the harness's in it) served by a plain-HTTP mirror on 127.0.0.1, its digest from a local
copy of the SHA256SUMS list or the command line: downloaded, verified, booted by OVMF,
configured by the NoCloud seed (a swapfile on its ext4 root with its offset from filefrag, the
initramfs regenerated, resume= and resume_offset= through systemd-boot's entry and one reboot:
the image's initramfs knows no resume device), and put through an S3 and an S4 cycle, the S4
one resumed from the swapfile; the same image as a libvirt domain through dompmsuspend, in the
same run of the suite, where it boots the QEMU guest's seeded root (a qcow2 layer between the
base image and its own overlay: cloud-init ran once in the run);
a seed that claims a boot-loader change it did not make is a one-line error after the reboot; a
wrong checksum is one line and nothing is kept; an image whose digest would come from the
mirror's own list over plain http, or a qcow2 overlay of another file, is a one-line error
before any guest starts."""

import functools
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from harness.errors import SetupError
from harness.session import HarnessSession, Settings
from harness.setup import cloud
from harness.setup.downloads import file_sha256
from harness.setup.image import ImageCache, Recipe

pytestmark = pytest.mark.selftest

ROOT = Path(__file__).resolve().parents[2]
IMAGE_NAME = "debian-cloud.qcow2"
LIBVIRT_TEST = "test_cloud_image_as_a_libvirt_domain_through_dompmsuspend"
# The QEMU test's run of the suite, which ran the libvirt test's case as well.
SHARED_RUN = pytest.StashKey[tuple[subprocess.CompletedProcess[str], Path]]()


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@dataclass(frozen=True)
class Mirror:
    url: str  # the base URL, plain http
    sha: str  # the image's sha256
    folder: Path  # what it serves: the image, its SHA256SUMS, and an overlay of the image


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mirror]:
    image = ImageCache().ensure(Recipe.load("debian-cloud"))
    served = tmp_path_factory.mktemp("mirror")
    os.link(image.disk, served / IMAGE_NAME)
    sha = file_sha256(served / IMAGE_NAME)
    (served / "SHA256SUMS").write_text(f"{sha}  {IMAGE_NAME}\n")
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(served / IMAGE_NAME),
         "-F", "qcow2", str(served / "overlay.qcow2")],
        check=True, timeout=60,
    )  # fmt: skip
    handler = functools.partial(QuietHandler, directory=str(served))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield Mirror(f"http://127.0.0.1:{server.server_address[1]}", sha, served)
    server.shutdown()
    server.server_close()


def suite(tmp_path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    cache = tmp_path / "cache"  # the downloads of this test only
    return subprocess.run(
        [sys.executable, "-m", "pytest", "testcases", "-p", "no:cacheprovider",
         "--firmware", "ovmf", "--machine-type", "q35",
         "--report-dir", str(tmp_path / "reports"), *options],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=1800,
        env={**os.environ, "S3S4_IMAGE_CACHE": str(cache)},
    )  # fmt: skip


def test_cloud_image_from_the_mirror_boots_through_its_seed_and_sleeps(
    mirror: Mirror, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """S3 and S4 (from the swapfile) on the direct QEMU backend; when the libvirt test of this
    module is selected as well, its dompmsuspend case runs in this same run of the suite (one
    download, one pytest start-up) and that test judges it."""
    selected = {item.name for item in request.session.items}
    # Under xdist the libvirt test may run in another worker, which shares no stash.
    libvirt_too = LIBVIRT_TEST in selected and not hasattr(request.config, "workerinput")
    selection = "s3-agent or s4-agent" + (" or dompmsuspend-mem" if libvirt_too else "")
    options = (
        "--cloud-image", f"{mirror.url}/{IMAGE_NAME}", "--cloud-sums",
        str(mirror.folder / "SHA256SUMS"), "-k", selection,
    )  # fmt: skip
    result = suite(tmp_path, *options)
    if libvirt_too:
        request.config.stash[SHARED_RUN] = (result, tmp_path)
    data = results(result, tmp_path)
    tests = [t for t in data["tests"] if "dompmsuspend" not in t["test"]]
    verdicts = {t["test"].split("[")[-1]: t["verdicts"] for t in tests}
    failed = result.stdout[-4000:] + result.stderr[-2000:]
    assert sorted(verdicts.values()) == [["PASS"], ["PASS"]], (verdicts, failed)  # S3; S4 from swap
    test = next(t for t in tests if "s3-agent" in t["test"])
    assert data["cells"][0]["id"].startswith("kcloud-debian-cloud-q"), data["cells"]
    cycle = test["series"][0]["cycles"][0]
    assert "backend" not in cycle["combination"]  # only libvirt's host facts name a backend
    assert cycle["combination"]["kernel"].endswith("-amd64")  # what the guest itself said
    # The seed did its part: a swapfile on the ext4 root (the only swap: the harness's swap
    # disk is left alone), its offset from filefrag, the initramfs regenerated, and
    # resume=UUID= resume_offset= through systemd-boot's entry, in effect after the harness's
    # reboot; the S4 cycle's PASS (same boot_id, the image loaded) is its resume from the file.
    before = cycle["evidence"]["before"]
    assert swap_names(before["guest.swaps"]) == ["/swapfile"], before["guest.swaps"]
    assert " resume=UUID=" in before["guest.cmdline"], before
    assert " resume_offset=" in before["guest.cmdline"], before
    s4 = next(t for t in tests if "s4-agent" in t["test"])
    s4_cycle = s4["series"][0]["cycles"][0]
    assert "backend" not in s4_cycle["combination"]
    assert swap_names(s4_cycle["evidence"]["before"]["guest.swaps"]) == ["/swapfile"]
    resumed = {c["name"]: c for c in s4_cycle["checks"]}["resumed_not_rebooted"]
    assert resumed["passed"], resumed
    downloaded = tmp_path / "cache" / "downloads" / "sha256" / mirror.sha / IMAGE_NAME
    assert file_sha256(downloaded) == mirror.sha  # kept by content


def test_a_wrong_checksum_is_one_line_and_nothing_is_kept(mirror: Mirror, tmp_path: Path) -> None:
    url, sha = mirror.url, mirror.sha
    wrong = "0" * 64
    result = suite(
        tmp_path, "--cloud-image", f"{url}/{IMAGE_NAME}", "--cloud-sha256", wrong, "-k", "s3-agent"
    )
    errors = [ln for ln in result.stdout.splitlines() if "error: " in ln]
    assert result.returncode == 2 and len(errors) == 1, result.stdout[-3000:]
    assert (
        f"error: sha256 mismatch for {url}/{IMAGE_NAME}: expected {wrong}, got {sha}; "
        in (errors[0])
    )
    downloads = tmp_path / "cache" / "downloads"
    assert [p for p in downloads.rglob("*") if p.is_file() and p.name != ".lock"] == []


def test_an_http_image_without_a_digest_given_is_refused_in_one_line(
    mirror: Mirror, tmp_path: Path
) -> None:
    """The mirror's own SHA256SUMS, over the same plain http, would prove nothing."""
    result = suite(tmp_path, "--cloud-image", f"{mirror.url}/{IMAGE_NAME}", "-k", "s3-agent")
    errors = [ln for ln in result.stdout.splitlines() if "error: " in ln]
    assert result.returncode == 2 and len(errors) == 1, result.stdout[-3000:]
    assert (
        f"error: {mirror.url}/SHA256SUMS is an unsigned checksum list over plain http, which "
        "proves nothing: use https (or a local copy), or give the image's digest with "
        "--cloud-sha256" in errors[0]
    )
    assert not (tmp_path / "cache" / "downloads" / "sha256").exists()  # nothing downloaded


def test_a_qcow2_overlay_is_refused_before_any_guest_starts(mirror: Mirror, tmp_path: Path) -> None:
    overlay = mirror.folder / "overlay.qcow2"
    options = ("--cloud-image", f"{mirror.url}/{overlay.name}", "--cloud-sha256",
               file_sha256(overlay), "-k", "s3-agent")  # fmt: skip
    result = suite(tmp_path, *options)
    errors = [ln for ln in result.stdout.splitlines() if "error: " in ln]
    assert result.returncode == 2 and len(errors) == 1, result.stdout[-3000:]
    assert (
        f"overlay.qcow2 is a qcow2 overlay of {mirror.folder / IMAGE_NAME}, which QEMU "
        in (errors[0])
    )
    assert session_processes(tmp_path) == []


@pytest.mark.libvirt
def test_cloud_image_as_a_libvirt_domain_through_dompmsuspend(
    mirror: Mirror, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The same image as a libvirt domain (OVMF loader and NVRAM, its disk booted, the seed
    read-only): dompmsuspend to RAM, judged from the QEMU test's run when that ran, where the
    domain boots the QEMU guest's seeded layer (resume= already in its boot loader, cloud-init
    not run again); else a run of its own, seeded and rebooted for resume= as on QEMU.
    dompmsuspend to disk is not repeated on this image: S4 from its swapfile is proven on the
    QEMU backend above, and dompmsuspend --target disk on the built-in guest by
    testcases/test_libvirt.py (test_dompmsuspend[...-dompmsuspend-disk]); libvirt's part of
    it does not depend on the image."""
    shared = request.config.stash.get(SHARED_RUN, None)
    seeded_by_qemu = shared is not None
    if shared is None:
        options = (
            "--cloud-image", f"{mirror.url}/{IMAGE_NAME}", "--cloud-sha256", mirror.sha,
            "-m", "libvirt", "-k", "dompmsuspend-mem",
        )  # fmt: skip
        shared = (suite(tmp_path, *options), tmp_path)
    data = results(*shared)
    tests = [t for t in data["tests"] if "dompmsuspend" in t["test"]]
    verdicts = {t["test"].split("[")[-1]: t["verdicts"] for t in tests}
    assert list(verdicts.values()) == [["PASS"]], (verdicts, shared[0].stdout[-4000:])
    cycle = tests[0]["series"][0]["cycles"][0]
    assert cycle["combination"]["backend"] == "libvirt"
    assert " resume_offset=" in cycle["evidence"]["before"]["guest.cmdline"]
    if seeded_by_qemu:  # the domain booted the QEMU guest's seeded layer: no cloud-init run
        logs = list((shared[1] / "reports").glob("2*/guests/*/libvirt-*/serial.log"))
        assert logs, shared[0].stdout[-2000:]
        assert not [p for p in logs if "running 'init'" in p.read_text(errors="replace")], logs


def test_a_seed_that_never_changed_the_boot_loader_is_one_line_after_the_reboot(
    mirror: Mirror, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fault: the seed's script says it edited systemd-boot's entries, and did not. It
    stands in for the swapfile script as well (which would hand it the resume arguments): the
    swapfile and the initramfs it would make play no part in the lie, and cost a TCG guest
    seconds. Its first boot and the reboot are the check itself: no earlier run's guest can
    stand in for them, as the lie is in the seed."""
    liar = tmp_path / "set_resume.sh"
    liar.write_text(
        "#!/bin/sh\nmkdir -p /var/lib/s3s4\necho systemd-boot > /var/lib/s3s4/resume-method\n"
    )
    monkeypatch.setattr(cloud, "SET_RESUME_SH", liar)
    monkeypatch.setattr(cloud, "PREPARE_SWAPFILE_SH", liar)
    monkeypatch.setattr(cloud, "DOWNLOADS", tmp_path / "downloads")
    settings = Settings(
        cloud_image=f"{mirror.url}/{IMAGE_NAME}",
        cloud_sha256=mirror.sha,
        firmware="ovmf",
        machine_type="q35",
        cold_boot=True,
    )
    session = HarnessSession(settings, tmp_path / "guests", lambda _: None)
    try:
        machine = session.fresh_guest("liar")
        with pytest.raises(SetupError) as raised:
            machine.boot()
        assert "the seed set resume= through systemd-boot, but the guest rebooted without it" in (
            str(raised.value)
        )
        assert "\n" not in str(raised.value).split(": ", 1)[0]
    finally:
        session.close()
    assert session_processes(tmp_path) == []


def results(result: subprocess.CompletedProcess[str], tmp_path: Path) -> dict[str, Any]:
    """The run's results.json; a run that wrote none fails with its own output."""
    runs = list((tmp_path / "reports").glob("2*/results.json"))
    assert len(runs) == 1, result.stdout[-4000:] + result.stderr[-2000:]
    data: dict[str, Any] = json.loads(runs[0].read_text())
    return data


def swap_names(swaps: str) -> list[str]:
    """The swap areas the guest's facts list (from /proc/swaps)."""
    return swaps.split()


def session_processes(tmp_path: Path) -> list[str]:
    """Command lines of processes still naming this test's directories."""
    found = subprocess.run(["pgrep", "-af", str(tmp_path)], capture_output=True, text=True)
    return [ln for ln in found.stdout.splitlines() if "pgrep" not in ln]
