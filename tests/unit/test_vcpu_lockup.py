"""The vCPU lockup diagnosis, on the CPU dump of a real lockup (a TCG guest that hung while
freezing tasks for hybrid sleep, 2026-11-24) and on variations of it."""

from pathlib import Path

from harness.checks.verdict import Verdict
from harness.cycle.faults import AFTER_REQUEST, Fault
from harness.cycle.run import run_cycle
from harness.machines.protocol import Machine
from harness.machines.vcpu_lockup import (
    LOCKUP_SECONDS,
    SAMPLE_SECONDS,
    LockupWatch,
    VcpuState,
    parse_registers,
    timer_pending,
    vcpu_states,
)
from harness.timeouts import Timeouts
from harness.transitions.catalogue import S3_SYSTEMCTL
from tests.unit.fake_machine import FakeMachine

DUMP = (Path(__file__).parent / "data" / "cpus-locked-in-freezer.txt").read_text()


def _sections(dump: str) -> tuple[dict[int, str], str]:
    """The dump as cpu_dump writes it: '(qemu) <command>' then its output."""
    lapics: dict[int, str] = {}
    registers = ""
    for part in dump.split("(qemu) ")[1:]:
        command, _, output = part.partition("\n")
        if command.startswith("info lapic "):
            lapics[int(command.split()[-1])] = output
        else:
            registers = output
    return lapics, registers


LAPICS, REGISTERS = _sections(DUMP)


def test_the_real_lockup_shows_both_vcpus_locked() -> None:
    states = vcpu_states(REGISTERS, LAPICS)
    assert [(s.index, s.rip, s.locked) for s in states] == [
        (0, "ffffffffbbe5a170", True),
        (1, "ffffffffbbe44ffe", True),
    ]


def test_interrupts_enabled_or_halted_or_timer_masked_is_not_locked() -> None:
    enabled = REGISTERS.replace("RFL=00000002", "RFL=00000202")
    assert not any(s.locked for s in vcpu_states(enabled, LAPICS))
    halted = REGISTERS.replace("HLT=0", "HLT=1")
    assert not any(s.locked for s in vcpu_states(halted, LAPICS))
    masked = LAPICS[0].replace("0x000000ec", "0x000100ec")
    assert not timer_pending(masked) and timer_pending(LAPICS[0])
    nothing_pending = LAPICS[0].replace("IRR\t 236", "IRR\t (none)")
    assert not timer_pending(nothing_pending)


def test_registers_parse_per_cpu() -> None:
    assert parse_registers(REGISTERS)[1] == ("ffffffffbbe44ffe", False, False)


def _watch(samples: list[list[VcpuState]]) -> tuple[LockupWatch, list[int]]:
    clock = iter(range(0, 10_000, int(SAMPLE_SECONDS)))
    taken: list[int] = []

    def sample() -> list[VcpuState]:
        taken.append(1)
        return samples.pop(0) if samples else []

    return LockupWatch(sample, lambda: float(next(clock))), taken


LOCKED = VcpuState(0, "ffffffffbbe5a170", False, False, True)
RUNNING = VcpuState(0, "ffffffffbbe5a170", True, False, False)
OTHER = VcpuState(1, "ffffffffbbe44ffe", True, False, False)


def test_a_vcpu_locked_in_every_sample_over_the_bound_is_named() -> None:
    rounds = int(LOCKUP_SECONDS / SAMPLE_SECONDS) + 1
    watch, _ = _watch([[LOCKED, OTHER] for _ in range(rounds)])
    found = [watch.check() for _ in range(rounds)]
    assert not any(found[:-1])
    assert found[-1].startswith("the guest locked up: 1 of 2 vCPUs")
    assert "vCPU 0 at RIP ffffffffbbe5a170" in found[-1]
    assert watch.check() == found[-1]  # once found, it stays found


def test_a_sample_where_it_ran_or_the_guest_slept_starts_the_count_again() -> None:
    rounds = int(LOCKUP_SECONDS / SAMPLE_SECONDS) + 1
    for gap in ([RUNNING], []):  # took its timer once; or asleep, nothing to sample
        samples = [[LOCKED]] * (rounds - 1) + [gap] + [[LOCKED]] * (rounds - 1)
        watch, _ = _watch(list(samples))
        assert not any(watch.check() for _ in samples)


def test_samples_are_taken_once_per_period_however_often_it_is_asked() -> None:
    ticks = iter([0.0, 0.5, 1.0, SAMPLE_SECONDS, SAMPLE_SECONDS + 0.1])
    taken: list[int] = []
    watch = LockupWatch(lambda: taken.append(1) or [], lambda: next(ticks))
    for _ in range(5):
        watch.check()
    assert len(taken) == 2


def test_a_guest_locked_on_its_way_to_sleep_fails_before_the_entry_limit(tmp_path: Path) -> None:
    machine = FakeMachine(tmp_path, sleeps=False)
    machine.timeouts = Timeouts(suspend_entry=30, wake=0.3, hibernate=0.3, resume=0.3)
    machine.vcpus = vcpu_states(REGISTERS, LAPICS)
    machine.stuck_at = b"PM: suspend entry (deep)\nFreezing user space processes\n"
    outcome = run_cycle(machine, S3_SYSTEMCTL)
    assert outcome.verdict is Verdict.FAIL
    assert outcome.reason.startswith("suspend-entry: systemctl suspend (in guest) was sent, then")
    assert "the guest locked up: 2 of 2 vCPUs" in outcome.reason
    assert "stopped at 'Freezing user space processes'" in outcome.reason
    assert machine.stopped


def test_a_fault_after_the_request_acts_while_the_guest_goes_to_sleep(tmp_path: Path) -> None:
    """The point the lockup fault clears the flag at: the request has been sent (the guest
    is on its way) and the entry wait has not started (its watch sees the lockup)."""
    machine = FakeMachine(tmp_path, sleeps=False)
    machine.timeouts = Timeouts(suspend_entry=30, wake=0.3, hibernate=0.3, resume=0.3)
    machine.stuck_at = b"PM: suspend entry (deep)\n"
    seen_at_fault: list[str] = []

    def lock(fake: Machine) -> None:
        seen_at_fault.append(machine.console.path.read_text())
        machine.vcpus = vcpu_states(REGISTERS, LAPICS)

    outcome = run_cycle(machine, S3_SYSTEMCTL, faults=[Fault("lock", lock, AFTER_REQUEST)])
    assert seen_at_fault == ["PM: suspend entry (deep)\n"]
    assert outcome.verdict is Verdict.FAIL
    assert "the guest locked up: 2 of 2 vCPUs" in outcome.reason
