"""The TPM and shared-folder devices: QEMU's arguments, the helpers' command lines, where
virtiofsd is found, when a helper listens, what QEMU's words blame, and the checks."""

import json
from pathlib import Path

import pytest

from harness.checks.device_checks import probes_and_checks, share_healthy, tpm_healthy
from harness.checks.judges import DEFAULT_CHECKS
from harness.checks.probes import DEFAULT_PROBES
from harness.checks.verdict import CycleEvidence
from harness.errors import SetupError
from harness.guest.console.diagnosis import device_refused_sleep
from harness.machines.device_helpers import HelperPaths, backend_failure, helper_args
from harness.machines.devices import DeviceProfile
from harness.machines.shares import virtiofsd_argv, virtiofsd_binary
from harness.machines.swtpm import listening_unix_sockets, swtpm_argv

PATHS = HelperPaths.under(Path("/r"))
BOOT = {"guest.boot_id": "b"}


def test_the_profile_names_its_tpm_and_share_and_virtiofs_cold_boots() -> None:
    assert DeviceProfile(tpm=True, share="9p").id_suffix == "tpm-share-9p"
    assert DeviceProfile(tpm=True).migratable and DeviceProfile(share="9p").migratable
    assert not DeviceProfile(share="virtiofs").migratable
    assert not DeviceProfile(tpm=True).is_default
    with pytest.raises(ValueError, match="use one of virtiofs, 9p"):
        DeviceProfile(share="nfs")


def test_qemu_args_of_a_tpm_and_each_share() -> None:
    assert helper_args(DeviceProfile(), PATHS, 1024) == []
    tpm = helper_args(DeviceProfile(tpm=True), PATHS, 1024)
    assert tpm == [
        "-chardev",
        "socket,id=chrtpm,path=/r/tpm.sock",
        "-tpmdev",
        "emulator,id=tpm0,chardev=chrtpm",
        "-device",
        "tpm-crb,tpmdev=tpm0,id=tpm",
    ]
    virtiofs = helper_args(DeviceProfile(share="virtiofs"), PATHS, 1024)
    assert "memory-backend-memfd,id=share-mem,size=1024M,share=on" in virtiofs
    assert "memory-backend=share-mem" in virtiofs
    assert "vhost-user-fs-pci,chardev=char-share,tag=s3s4share,id=share" in virtiofs
    ninep = helper_args(DeviceProfile(share="9p"), PATHS, 1024)
    assert "local,id=fs-share,path=/r/share,security_model=mapped-xattr" in ninep
    assert "virtio-9p-pci,fsdev=fs-share,mount_tag=s3s4share,id=share" in ninep


def test_helper_command_lines() -> None:
    argv = swtpm_argv("swtpm", Path("/r/tpm"), Path("/r/tpm.sock"), Path("/e/swtpm.log"))
    assert argv[:3] == ["swtpm", "socket", "--tpm2"] and "--terminate" in argv
    assert "type=unixio,path=/r/tpm.sock,mode=0600" in argv
    assert virtiofsd_argv("vfsd", Path("/r/fs.sock"), Path("/r/share"))[1:4] == [
        "--socket-path=/r/fs.sock",
        "-o",
        "source=/r/share",
    ]


def test_virtiofsd_is_found_through_the_vhost_user_descriptors(tmp_path: Path) -> None:
    binary = tmp_path / "virtiofsd"
    binary.write_text("")
    etc, usr = tmp_path / "etc", tmp_path / "usr"
    etc.mkdir()
    usr.mkdir()
    (usr / "40-gpu.json").write_text(json.dumps({"type": "gpu", "binary": str(binary)}))
    (usr / "50-fs.json").write_text(json.dumps({"type": "fs", "binary": str(binary)}))
    (etc / "10-fs.json").write_text(json.dumps({"type": "fs", "binary": "/nonexistent"}))
    assert virtiofsd_binary((etc, usr)) == str(binary)


def test_no_virtiofsd_names_setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SetupError, match=r"run \./run setup"):
        virtiofsd_binary((tmp_path,))


def test_only_listening_sockets_count() -> None:
    text = (
        "Num       RefCount Protocol Flags    Type St Inode Path\n"
        "0000: 00000002 00000000 00010000 0001 01 11 /r/tpm.sock\n"
        "0000: 00000003 00000000 00000000 0001 03 12 /r/fs.sock\n"
        "0000: 00000003 00000000 00000000 0001 03 13\n"
    )
    assert listening_unix_sockets(text) == {"/r/tpm.sock"}


def test_qemu_words_blame_the_device_of_the_profile() -> None:
    said = "qemu-system-x86_64: tpm-emulator: Could not stop TPM: Input/output error\n"
    assert backend_failure(DeviceProfile(tpm=True), said) == (
        "the TPM (tpm-crb on swtpm) lost its backend: "
        "qemu-system-x86_64: tpm-emulator: Could not stop TPM: Input/output error"
    )
    assert backend_failure(DeviceProfile(), said) == ""
    vhost = "qemu-system-x86_64: Failed to read from slave.\nvhost-user-fs: vhost_dev_start failed"
    assert "the virtiofs share" in backend_failure(DeviceProfile(share="virtiofs"), vhost)


def _tpm(pcrs: str, error: str = "") -> dict[str, str]:
    facts = {**BOOT, "tpm.device": "tpm0", "tpm.driver": "tpm_crb", "tpm.pcrs": pcrs}
    return {**facts, "tpm.error": error} if error else facts


def test_tpm_pcrs_must_be_kept_across_s3_but_only_answer_after_s4() -> None:
    s3 = CycleEvidence("s3", expected_events=["suspended", "woken"])
    s3.before, s3.after = _tpm("0:AA 1:BB"), _tpm("0:AA 1:BB")
    assert tpm_healthy(s3).passed
    assert tpm_healthy(s3).detail == "tpm_crb tpm0: 2 SHA-256 PCRs kept across the sleep"
    s3.after = _tpm("0:00 1:BB")
    result = tpm_healthy(s3)
    assert not result.passed and result.detail.startswith("tpm_crb tpm0: PCRs changed")
    assert "PCR 0 AA.. -> 00.." in result.detail
    s4 = CycleEvidence("s4", expected_events=["hibernated", "powered-off"])
    s4.before, s4.after = _tpm("0:AA"), _tpm("0:CC")
    assert tpm_healthy(s4).passed
    s4.after = _tpm("", error="PCR 0: cat: read error: Input/output error")
    assert tpm_healthy(s4).detail == (
        "tpm_crb tpm0: did not answer after the wake: PCR 0: cat: read error: Input/output error"
    )


def test_share_check_wants_the_old_file_back_and_a_new_one() -> None:
    ev = CycleEvidence("s3")
    ev.before = {**BOOT, "share.fs": "9p", "share.mounted": "1", "share.before_token": "t1"}
    ev.after = {**BOOT, "share.reread": "t1", "share.after_token": "t2", "share.after_reread": "t2"}
    assert share_healthy(ev).passed
    ev.after = {**BOOT, "share.reread": "error: cat: /mnt/s3s4share/before: No such file"}
    ev.after["share.after_error"] = "no answer within 20s"
    detail = share_healthy(ev).detail
    assert detail.startswith("9p share s3s4share: the file written before the sleep reads back")
    assert "a new file cannot be written: no answer within 20s" in detail


def test_a_plain_guest_keeps_the_default_checks() -> None:
    assert probes_and_checks(DeviceProfile()) == (DEFAULT_PROBES, DEFAULT_CHECKS)
    probes, checks = probes_and_checks(DeviceProfile(tpm=True, share="virtiofs"))
    assert [p.name for p in probes[-2:]] == ["tpm", "share"]
    assert [c.__name__ for c in checks[-2:]] == ["tpm_healthy", "share_healthy"]


def test_a_device_that_refused_the_sleep_is_named_with_its_drivers_words() -> None:
    lines = [
        "[   13.478582] PM: suspend entry (deep)",
        "[   13.543279] virtio-fs: suspend/resume not yet supported",
        "[   13.543553] virtio-pci 0000:00:09.0: PM: pci_pm_suspend(): virtio_pci_freeze+0x0/0x50"
        " [virtio_pci] returns -95",
        "[   13.544277] virtio-pci 0000:00:09.0: PM: failed to suspend async: error -95",
        "[   13.580718] PM: suspend entry (s2idle)",
    ]
    assert device_refused_sleep(lines) == (
        "virtio-pci 0000:00:09.0 failed to suspend: error -95 "
        "(virtio-fs: suspend/resume not yet supported); -95 is EOPNOTSUPP, operation not "
        "supported, returned by virtio_pci_freeze"
    )
    assert device_refused_sleep(lines[:1]) == ""


def test_a_share_that_no_longer_answers_is_named() -> None:
    ev = CycleEvidence("s3")
    ev.before = {**BOOT, "share.fs": "9p", "share.mounted": "1", "share.before_token": "t1"}
    ev.after = {**BOOT, "share.stuck": "no answer through the share within 20s"}
    result = share_healthy(ev)
    assert not result.passed
    assert result.detail == "9p share s3s4share: no answer through the share within 20s"
