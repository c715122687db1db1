"""Firmware found through QEMU's firmware descriptors: the search order by file name across
the three directories, selection by interface, machine and features, and the cell's name for
a firmware whose package names its version."""

import json
from pathlib import Path

import pytest

from harness.errors import SetupError
from harness.matrix.cell import ovmf_version
from harness.setup import firmware_descriptors as fd

PLAIN = ["acpi-s3", "amd-sev", "verbose-dynamic"]
SECURE = ["acpi-s3", "enrolled-keys", "requires-smm", "secure-boot"]


def descriptor(
    folder: Path,
    name: str,
    code: Path,
    features: list[str],
    machines: tuple[str, ...] = ("pc-i440fx-*", "pc-q35-*"),
    interface: str = "uefi",
    **mapping: str,
) -> Path:
    code.parent.mkdir(parents=True, exist_ok=True)
    code.write_bytes(b"code")
    template = code.with_name(code.name.replace("CODE", "VARS"))
    template.write_bytes(b"vars")
    data = {
        "description": name,
        "interface-types": [interface],
        "mapping": {
            "device": "flash",
            "executable": {"filename": str(code), "format": "raw"},
            "nvram-template": {"filename": str(template), "format": "raw"},
            **mapping,
        },
        "targets": [{"architecture": "x86_64", "machines": list(machines)}],
        "features": features,
        "tags": [],
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(json.dumps(data))
    return path


def dirs(tmp_path: Path) -> tuple[Path, Path, Path]:
    return tmp_path / "usr", tmp_path / "etc", tmp_path / "user"


def test_search_dirs_follow_xdg_config_home_else_home() -> None:
    assert fd.search_dirs({"XDG_CONFIG_HOME": "/x"})[-1] == Path("/x/qemu/firmware")
    assert fd.search_dirs({"HOME": "/home/u"})[-1] == Path("/home/u/.config/qemu/firmware")
    assert fd.search_dirs({})[:2] == fd.SYSTEM_DIRS


def test_a_more_specific_directory_replaces_a_file_of_the_same_name(tmp_path: Path) -> None:
    usr, etc, user = dirs(tmp_path)
    descriptor(usr, "60-ovmf.json", tmp_path / "dist/OVMF_CODE.fd", PLAIN)
    descriptor(etc, "60-ovmf.json", tmp_path / "admin/OVMF_CODE.fd", PLAIN)
    (found,) = fd.load([usr, etc, user])
    assert found.executable == tmp_path / "admin/OVMF_CODE.fd"


def test_an_empty_file_hides_the_one_of_the_same_name(tmp_path: Path) -> None:
    usr, etc, user = dirs(tmp_path)
    descriptor(usr, "60-ovmf.json", tmp_path / "dist/OVMF_CODE.fd", PLAIN)
    descriptor(usr, "70-other.json", tmp_path / "other/OVMF_CODE.fd", PLAIN)
    user.mkdir()
    (user / "60-ovmf.json").write_text("")
    assert [d.name for d in fd.load([usr, etc, user])] == ["70-other.json"]


def test_the_first_by_file_name_wins_whatever_its_directory(tmp_path: Path) -> None:
    usr, etc, user = dirs(tmp_path)
    descriptor(usr, "60-ovmf.json", tmp_path / "dist/OVMF_CODE.fd", PLAIN)
    descriptor(user, "10-mine.json", tmp_path / "mine/OVMF_CODE.fd", PLAIN)
    found = fd.select(fd.PLAIN_UEFI, "pc-q35-7.2", fd.load([usr, etc, user]))
    assert found.name == "10-mine.json"


def test_features_pick_plain_or_secure_uefi_and_machines_limit_them(tmp_path: Path) -> None:
    usr = tmp_path / "usr"
    q35 = ("pc-q35-*",)
    descriptor(usr, "40-secure.json", tmp_path / "s/OVMF_CODE.ms.fd", SECURE, q35)
    descriptor(usr, "60-plain.json", tmp_path / "p/OVMF_CODE.fd", PLAIN)
    found = fd.load([usr])
    assert fd.select(fd.PLAIN_UEFI, "pc-q35-7.2", found).name == "60-plain.json"
    assert fd.select(fd.PLAIN_UEFI, "pc-i440fx-7.2", found).name == "60-plain.json"
    secure = fd.select(fd.SECURE_UEFI, "pc-q35-7.2", found)
    assert fd.flash_images(secure) == (
        tmp_path / "s/OVMF_CODE.ms.fd",
        tmp_path / "s/OVMF_VARS.ms.fd",
    )
    with pytest.raises(SetupError) as refused:
        fd.select(fd.SECURE_UEFI, "pc-i440fx-7.2", found)
    message = str(refused.value)
    assert "no firmware descriptor offers uefi +enrolled-keys +requires-smm +secure-boot" in message
    assert "x86_64 pc-i440fx-7.2" in message and "40-secure.json" in message
    assert "run ./run setup" in message and "\n" not in message


def test_missing_files_qcow2_images_and_other_interfaces_do_not_fit(tmp_path: Path) -> None:
    usr = tmp_path / "usr"
    descriptor(usr, "10-qcow2.json", tmp_path / "q/OVMF_CODE.qcow2", PLAIN)
    data = json.loads((usr / "10-qcow2.json").read_text())
    data["mapping"]["executable"]["format"] = "qcow2"
    (usr / "10-qcow2.json").write_text(json.dumps(data))
    descriptor(usr, "20-gone.json", tmp_path / "g/OVMF_CODE.fd", PLAIN)
    (tmp_path / "g/OVMF_CODE.fd").unlink()
    descriptor(usr, "30-bios.json", tmp_path / "b/OVMF_CODE.fd", [], interface="bios")
    descriptor(usr, "40-combined.json", tmp_path / "c/OVMF_CODE.fd", PLAIN, mode="combined")
    descriptor(usr, "90-good.json", tmp_path / "ok/OVMF_CODE.fd", PLAIN)
    assert fd.select(fd.PLAIN_UEFI, "pc-q35-7.2", fd.load([usr])).name == "90-good.json"


def test_a_memory_mapped_bios_descriptor_parses(tmp_path: Path) -> None:
    text = json.dumps(
        {
            "interface-types": ["bios"],
            "mapping": {"device": "memory", "filename": "/usr/share/seabios/bios-256k.bin"},
            "targets": [{"architecture": "x86_64", "machines": ["pc-i440fx-*", "pc-q35-*"]}],
            "features": ["acpi-s3", "acpi-s4"],
        }
    )
    bios = fd.parse(tmp_path / "50-seabios-256k.json", text, root=tmp_path)
    assert bios.executable == tmp_path / "usr/share/seabios/bios-256k.bin"
    assert bios.device == "memory" and bios.runs_on("x86_64", "pc-q35-9.2")
    assert not bios.runs_on("i386", "pc-q35-9.2")
    with pytest.raises(SetupError, match="maps its firmware as memory"):
        fd.flash_images(bios)


def test_a_malformed_descriptor_is_named_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(SetupError) as raised:
        fd.parse(tmp_path / "50-bad.json", '{"interface-types": ["uefi"]}')
    assert str(raised.value).startswith(f"{tmp_path / '50-bad.json'}: not a QEMU firmware")
    assert "hides it" in str(raised.value)


def test_machine_aliases_stand_for_their_family_without_qemu() -> None:
    assert fd.concrete_machine("q35") == "pc-q35-0.0"
    assert fd.concrete_machine("pc") == "pc-i440fx-0.0"
    assert fd.concrete_machine("pc-q35-8.2") == "pc-q35-8.2"


def test_ovmf_is_named_by_its_package_version_else_by_its_hash(tmp_path: Path) -> None:
    code = tmp_path / "OVMF_CODE_4M.fd"
    code.write_bytes(b"a build of one's own")
    assert ovmf_version(code, "2022.11-6+deb12u2") == "2022.11"
    assert ovmf_version(code, "1:2026.08-1") == "2026.08"
    assert len(ovmf_version(code)) == 8


@pytest.mark.skipif(not fd.SYSTEM_DIRS[0].is_dir(), reason="no firmware descriptors installed")
def test_the_hosts_descriptors_give_plain_ovmf_on_both_machines() -> None:
    for machine in ("pc", "q35"):
        code, template = fd.host_uefi(machine)
        assert code.is_file() and template.is_file()
        assert "secboot" not in code.name and ".ms." not in code.name
