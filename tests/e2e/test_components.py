"""Components from Debian's archive: a build the host cannot run is a one-line error (the
working ones run in tests/e2e/test_matrix_run.py)."""

from pathlib import Path

import pytest

from harness.errors import SetupError
from harness.setup.components import DebianArchive, provision_qemu

pytestmark = pytest.mark.selftest


def test_a_build_for_another_release_is_a_one_line_error() -> None:
    # trixie's QEMU (whatever its number today) needs libraries bookworm does not have.
    offered = DebianArchive().versions("qemu-system-x86")
    trixie = [v for v in offered if "deb13" in v and "bpo" not in v]
    if not trixie:
        pytest.skip(f"Debian's archive offers no trixie QEMU: {offered}")
    with pytest.raises(SetupError) as caught:
        provision_qemu(trixie[0])
    message = str(caught.value)
    assert "cannot run on this host" in message and "bookworm-backports" in message, message
    assert "\n" not in message


def test_private_lists_hold_package_indices_only(tmp_path: Path) -> None:
    """Whatever the host's apt is configured to fetch (apt-file's Contents, translations),
    the harness's private lists are the Packages indices of its suites and nothing more."""
    archive = DebianArchive(tmp_path)
    archive.refresh(force=True)
    lists = sorted(p.name for p in (tmp_path / "apt" / "lists").iterdir() if p.is_file())
    assert lists, "no lists fetched"
    assert not [name for name in lists if "Contents" in name or "Translation" in name], lists
    assert any("_bookworm_main_binary-amd64_Packages" in name for name in lists), lists
