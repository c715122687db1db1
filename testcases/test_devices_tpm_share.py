"""The TPM and the shared folder of the session's device profile (``--tpm``, ``--share
virtiofs|9p``): S3 and S4 with their checks, and swtpm killed while the guest sleeps, a FAIL
naming the TPM.

The checks (harness.checks.device_checks) run in every case of such a guest. On a Linux 6.1
guest the shares do not pass: its virtiofs driver refuses every sleep, and its 9p transport
has no suspend callbacks, so after a wake the share no longer answers (see docs/devices.md).
Both are guest-kernel limits listed in testcases/known_issues.toml: those FAILs xfail.
"""

import pytest

from harness.checks.verdict import Verdict
from harness.cycle.device_faults import swtpm_killed
from harness.cycle.faults import Fault
from harness.machines.protocol import Machine
from harness.plugin import PowerCycle, expect_judged, expect_pass
from harness.session import HarnessSession
from harness.transitions.catalogue import S3_AGENT, S4_AGENT
from harness.transitions.parts import Transition


def _need(harness_session: HarnessSession, tpm: bool = False, share: bool = False) -> None:
    devices = harness_session.devices
    if tpm and not devices.tpm:
        pytest.skip("the guest has no TPM: give --tpm")
    if share and not devices.share:
        pytest.skip("the guest has no shared folder: give --share virtiofs or --share 9p")


@pytest.mark.parametrize(
    "transition",
    [pytest.param(S3_AGENT, marks=pytest.mark.s3), pytest.param(S4_AGENT, marks=pytest.mark.s4)],
    ids=lambda t: "tpm-share-" + t.id.split("-")[0],
)
def test_tpm_and_share_sleep(
    power_cycle: PowerCycle, harness_session: HarnessSession, guest: Machine, transition: Transition
) -> None:
    """S3, or S4: the TPM answers (its PCRs kept across S3) and the share keeps the file
    written before the sleep and takes a new one, which the host sees."""
    devices = harness_session.devices
    if not (devices.tpm or devices.share):
        pytest.skip("the guest has neither a TPM nor a share: give --tpm or --share")
    series = power_cycle(transition)
    expect_pass(series)
    details = {c.name: c.detail for c in series.last.checks}
    if devices.tpm:
        assert details["tpm_healthy"].startswith("tpm_crb tpm0: "), details
    if devices.share:
        assert "share s3s4share: " in details["share_healthy"], details
        after = series.last.evidence.after["share.after_token"]
        # The host sees the file written after the wake (mapped-xattr keeps 9p's data as is).
        host_file = guest.device_helpers.paths.share_dir / "after"  # type: ignore[attr-defined]
        assert host_file.read_text().strip() == after


def _fails_naming(power_cycle: PowerCycle, fault: Fault, *names: str) -> str:
    """S3 with ``fault``: a FAIL whose reason names the device by one of ``names`` (its check's
    detail, or the wake's failure when QEMU itself ends over the device); the reason."""
    series = power_cycle(S3_AGENT, faults=[fault])
    expect_judged(series)
    outcome = series.last
    assert outcome.verdict is Verdict.FAIL, outcome.reason
    assert any(name in outcome.reason for name in names), outcome.reason
    return outcome.reason


@pytest.mark.s3
def test_swtpm_killed_names_the_tpm(
    power_cycle: PowerCycle, harness_session: HarnessSession
) -> None:
    """swtpm killed while the guest sleeps: a FAIL naming the TPM. QEMU 7.2 ends at the wake
    (resetting its TPM needs swtpm), and its own words name the TPM emulator."""
    _need(harness_session, tpm=True)
    _fails_naming(power_cycle, swtpm_killed(), "tpm_healthy: tpm_crb tpm0: ", "the TPM (tpm-crb")
