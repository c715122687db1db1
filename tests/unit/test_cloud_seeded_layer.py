"""The run's seeded layer (harness.machines.cloud_ready): the seeded root kept under a fresh
overlay, published whole, first one wins; and the guest-side command that unpins cloud-init's
networkd file from the seeding NIC, run here on a stand-in /etc."""

import json
import subprocess
from pathlib import Path

from harness.machines import cloud_ready


def qcow2(path: Path, backing: Path | None = None) -> None:
    argv = ["qemu-img", "create", "-q", "-f", "qcow2"]
    if backing is not None:
        argv += ["-b", str(backing), "-F", "qcow2"]
    subprocess.run([*argv, str(path), "1M"], check=True, timeout=60)


def backing_of(path: Path) -> str:
    info = subprocess.run(
        ["qemu-img", "info", "--output=json", "-U", str(path)],
        check=True, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return str(json.loads(info.stdout)["backing-filename"])


def test_the_seeded_root_is_kept_under_a_fresh_overlay_and_published_once(tmp_path: Path) -> None:
    base = tmp_path / "base.qcow2"
    qcow2(base)
    runtime_dirs = [tmp_path / "run" / "qemu-1", tmp_path / "run" / "libvirt-2"]
    for runtime_dir in runtime_dirs:
        runtime_dir.mkdir(parents=True)
        qcow2(runtime_dir / cloud_ready.ROOT_OVERLAY, base)
    kept = cloud_ready._keep_seeded_root(runtime_dirs[0])
    assert kept == tmp_path / "run" / "qemu-1.seeded.qcow2"
    assert backing_of(kept) == str(base)  # the seed's writes, over the untouched base
    assert backing_of(runtime_dirs[0] / cloud_ready.ROOT_OVERLAY) == str(kept)
    layer = cloud_ready.seeded_layer(tmp_path / "run")
    assert not layer.exists()  # not before the reboot showed resume= in effect
    cloud_ready._publish(kept)
    assert layer.samefile(kept)
    other = cloud_ready._keep_seeded_root(runtime_dirs[1])
    assert other is not None
    cloud_ready._publish(other)
    assert layer.samefile(kept)  # the first one stays


def test_a_machine_without_a_root_overlay_keeps_nothing(tmp_path: Path) -> None:
    assert cloud_ready._keep_seeded_root(tmp_path) is None
    assert list(tmp_path.parent.glob(f"{tmp_path.name}.*")) == []


def unpin(etc: Path) -> str:
    command = cloud_ready.PORTABLE_NETWORK.replace("/etc/", f"{etc}/")
    return subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True).stdout


def test_the_networkd_file_loses_its_nic_pin(tmp_path: Path) -> None:
    network = tmp_path / "systemd" / "network"
    network.mkdir(parents=True)
    pinned = network / "10-cloud-init-enp0s5.network"
    pinned.write_text(
        "[Match]\nMACAddress=52:54:00:12:34:56\nName=enp0s5\n\n[Network]\nDHCP=ipv4\n"
    )
    assert unpin(tmp_path).split() == [cloud_ready.PORTABLE]
    assert pinned.read_text() == "[Match]\nName=en* eth*\n\n[Network]\nDHCP=ipv4\n"


def test_no_networkd_file_or_several_are_not_portable(tmp_path: Path) -> None:
    assert unpin(tmp_path) == ""
    network = tmp_path / "systemd" / "network"
    network.mkdir(parents=True)
    for name in ("enp0s5", "enp0s6"):
        (network / f"10-cloud-init-{name}.network").write_text(f"[Match]\nName={name}\n")
    assert unpin(tmp_path) == ""
    assert (network / "10-cloud-init-enp0s5.network").read_text() == "[Match]\nName=enp0s5\n"
