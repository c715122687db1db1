"""Components from Debian's archive: a build the host cannot run is a one-line error (the
working ones run in tests/e2e/test_matrix_run.py)."""

import pytest

from harness.components import DebianArchive, provision_qemu
from harness.errors import SetupError

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
