"""Component specs: what names a Debian version, how versions are matched."""

import time
from pathlib import Path

import pytest

from harness.errors import SetupError
from harness.setup import components
from harness.setup.components import DebianArchive, is_version, provision_qemu, upstream


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
    def __init__(self, offered: list[str]) -> None:
        super().__init__(Path("/nonexistent"))
        self.offered = offered

    def versions(self, package: str) -> list[str]:
        return self.offered


def test_a_prefix_picks_the_build_for_this_debian_release() -> None:
    archive = OfferedArchive(["1:10.0.13+ds-0+deb13u1", "1:10.0.2+ds-2+deb13u1~bpo12+1"])
    assert archive.resolve("qemu-system-x86", "10.0") == "1:10.0.2+ds-2+deb13u1~bpo12+1"
    assert archive.resolve("qemu-system-x86", "10.0.13") == "1:10.0.13+ds-0+deb13u1"


def test_an_unknown_version_names_what_is_offered() -> None:
    archive = OfferedArchive(["1:7.2+dfsg-7+deb12u18+b3"])
    with pytest.raises(SetupError, match=r"qemu-system-x86 9.9 is not in Debian.s archive.*7\.2"):
        archive.resolve("qemu-system-x86", "9.9")


def test_arch_all_companions_drop_the_binnmu_suffix() -> None:
    archive = OfferedArchive(["1:7.2+dfsg-7+deb12u18"])
    assert archive.companion_version("qemu-system-data", "1:7.2+dfsg-7+deb12u18+b3") == (
        "1:7.2+dfsg-7+deb12u18"
    )


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
        components._check_libraries(binary, "qemu-system-x86", "1:99.0")
    assert time.monotonic() - started < 10
