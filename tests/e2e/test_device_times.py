"""Per-device suspend and resume times from the guest kernel's device_pm_callback trace events,
kept in each cycle's evidence for S3 and for S4 (whose resume runs in the kernel restored from
the image)."""

import pytest

from harness.checks.probes import DEVPM_TOP
from harness.checks.verdict import Verdict
from harness.plugin import PowerCycle
from harness.results.device_times import device_times
from harness.transitions.catalogue import S3_AGENT, S4_AGENT
from harness.transitions.parts import Transition

pytestmark = pytest.mark.selftest


@pytest.mark.parametrize(
    ("transition", "resume_phases"),
    [(S3_AGENT, {"resume", "resume_early", "resume_noirq"}),
     (S4_AGENT, {"restore", "restore_early", "restore_noirq"})],
    ids=["s3", "s4"],
)  # fmt: skip
def test_the_slowest_device_callbacks_are_in_the_evidence(
    power_cycle: PowerCycle, transition: Transition, resume_phases: set[str]
) -> None:
    outcome = power_cycle(transition).last
    assert outcome.verdict is Verdict.PASS, outcome.reason
    after = outcome.evidence.after
    assert int(after["devpm.callbacks"]) > 0, after
    times = device_times(after)
    assert times and all(0 <= seconds < 60 for seconds in times.values()), times
    # Each callback is named apart (a device's noirq and plain suspend are two).
    assert len(times) == min(int(after["devpm.callbacks"]), DEVPM_TOP), after
    phases = {key.split()[1] for key in times}
    assert phases & resume_phases, phases  # the wake's side, not only the way down
