"""Power cycles: capture facts, request sleep, prove entry, wake, capture again, judge.

``run_cycle`` never raises a HarnessError: every way a cycle can end becomes a verdict with
evidence. ``run_series`` repeats it on one boot and proves every cycle by its own events.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

from harness.checks import live_probes
from harness.checks import probes as probe_lib
from harness.checks.device_checks import probes_and_checks
from harness.checks.judges import DEFAULT_CHECKS, Check
from harness.checks.peripherals import PeripheralWatch
from harness.checks.verdict import SSH_GIVEN_UP, CycleEvidence, CycleOutcome, Verdict
from harness.cycle.faults import AFTER_REQUEST, AFTER_WAKE, ASLEEP, BEFORE_REQUEST, Fault
from harness.cycle.platform_diagnosis import CAUSE as PM_REGISTERS_CAUSE
from harness.cycle.platform_diagnosis import unmapped_pm_registers
from harness.errors import (
    GuestFault,
    HarnessError,
    SetupError,
    StateUnsupported,
    SuspendNotEntered,
)
from harness.guest.console.diagnosis import KERNEL_PM_LINE, console_diagnosis
from harness.guest.ssh import EchoChannel, StreamDownload
from harness.machines.config import QemuConfig
from harness.machines.devices import DeviceProfile
from harness.machines.protocol import GuestChannels, Machine, PlatformRecords
from harness.transitions.marks import Marks
from harness.transitions.parts import Rewake, Transition


@dataclass(frozen=True)
class CycleOptions:
    clock_tolerance_s: float = 2.0
    resync_clock: bool = False  # set the guest clock from the host after resume (SYNC_TIME)


# After a wake through power-off (S4, a power loss) the guest's wall clock comes back from the
# RTC, which the kernel reads in whole seconds when it goes down and again when it comes up:
# up to 2 s behind by design, and somewhat more under TCG. A clock that did not advance
# across the power-off is still caught: the guest is off for longer than this.
RTC_RESTORED_TOLERANCE_S = 3.5


def clock_tolerance(transition: Transition, options: CycleOptions) -> float:
    """How far the guest's clock may be from the host's after this transition's wake."""
    if transition.keeps_vm_process:
        return options.clock_tolerance_s
    return max(options.clock_tolerance_s, RTC_RESTORED_TOLERANCE_S)


def run_cycle(
    machine: Machine,
    transition: Transition,
    *,
    faults: Sequence[Fault] = (),
    probes: tuple[probe_lib.Probe, ...] = probe_lib.DEFAULT_PROBES,
    checks: Sequence[Check] = DEFAULT_CHECKS,
    cycle: int = 1,
    options: CycleOptions = CycleOptions(),
) -> CycleOutcome:
    """Run one transition on ``machine`` and return its verdict; never raises HarnessError."""
    evidence = CycleEvidence(
        transition.id,
        cycle=cycle,
        expected_events=[signal.value for signal in transition.expected_events],
        expected_kernel_records=list(transition.kernel_records),
        faults=[f.name for f in faults if f.cycles == () or cycle in f.cycles],
        expects_suspend_count=transition.counts_suspend,
        tcp_expected=transition.keeps_vm_process,
        clock_tolerance_s=clock_tolerance(transition, options),
    )
    echo: EchoChannel | None = None
    stream: StreamDownload | None = None
    marks = Marks.now(machine)
    started = time.monotonic()
    request_started = 0.0
    try:
        machine.ensure_ready()
        marks = Marks.now(machine)
        checks_started = time.monotonic()
        with _echo_opened_beside(machine, transition.keeps_vm_process) as echo_future:
            evidence.before = _capture(machine, probes, "before", evidence)
            _preflight(machine, transition, evidence.before)
            echo = echo_future.result() if echo_future else None
        if echo is not None:
            evidence.before["tcp.echo"] = _echo(echo, b"before", machine)
        # The USB devices, display and balloon, acted on from the host (harness.checks.
        # peripherals); after the wake they are measured after the guest's own facts, which
        # may give ssh up (a step needing ssh then is not tried).
        peripherals = PeripheralWatch.of(machine)
        peripherals.before(machine, evidence)
        _apply_faults(machine, faults, BEFORE_REQUEST, cycle)
        if transition.keeps_vm_process:
            stream = machine.open_stream(live_probes.STREAM_COMMAND)
        marks = Marks.now(machine)
        request_started = evidence.request_at = time.monotonic()
        evidence.timings["checks_before"] = request_started - checks_started
        answer = transition.request.send(machine)
        _apply_faults(machine, faults, AFTER_REQUEST, cycle)
        transition.entry.wait(machine, marks, answer, transition.request.description)
        if answer is not None:
            answer.cancel()
        evidence.timings["request_to_entry"] = time.monotonic() - request_started
        _apply_faults(machine, faults, ASLEEP, cycle)
        wake_started = time.monotonic()
        transition.wake.perform(machine, marks, evidence.timings)
        evidence.timings["wake_to_ready"] = time.monotonic() - wake_started
        _apply_faults(machine, faults, AFTER_WAKE, cycle)
        checks = [*checks, *peripherals.checks]
    except HarnessError as exc:
        if "request_to_entry" not in evidence.timings and request_started:
            # How soon after the request the cycle's fate was known (a named cause: seconds).
            evidence.timings["request_to_verdict"] = time.monotonic() - request_started
        return _ended_early(machine, evidence, marks, exc)
    return _judge(
        machine,
        transition,
        evidence,
        marks,
        started,
        probes,
        checks,
        options,
        echo,
        stream,
        peripherals,
    )


def run_group_cycle(
    machines: Sequence[Machine],
    transition: Transition,
    *,
    probes: tuple[probe_lib.Probe, ...] = probe_lib.DEFAULT_PROBES,
    checks: Sequence[Check] = DEFAULT_CHECKS,
    options: CycleOptions = CycleOptions(),
) -> list[CycleOutcome]:
    """One transition whose request and wake act on several guests at once (a host service
    such as libvirt-guests; its parts run the service once, whichever guest asks first):
    every guest's facts before, then each guest's request and entry, then each guest's wake,
    then each judged on its own evidence."""
    members: list[_Member] = []
    for machine in machines:
        evidence = CycleEvidence(
            transition.id,
            expected_events=[signal.value for signal in transition.expected_events],
            expected_kernel_records=list(transition.kernel_records),
            clock_tolerance_s=clock_tolerance(transition, options),
        )
        member = _Member(machine, evidence, Marks.now(machine), time.monotonic())
        try:
            machine.ensure_ready()
            evidence.before = _capture(machine, probes, "before", evidence)
            _preflight(machine, transition, evidence.before)
            member.marks = Marks.now(machine)
        except HarnessError as exc:
            member.outcome = _ended_early(machine, evidence, member.marks, exc)
        members.append(member)
    for step in ("sleep", "wake"):
        for member in members:
            if member.outcome is not None:
                continue
            machine, evidence = member.machine, member.evidence
            try:
                started = time.monotonic()
                if step == "sleep":
                    evidence.request_at = started
                    answer = transition.request.send(machine)
                    transition.entry.wait(
                        machine, member.marks, answer, transition.request.description
                    )
                    evidence.timings["request_to_entry"] = time.monotonic() - started
                else:
                    transition.wake.perform(machine, member.marks, evidence.timings)
                    evidence.timings["wake_to_ready"] = time.monotonic() - started
            except HarnessError as exc:
                member.outcome = _ended_early(machine, evidence, member.marks, exc)
    return [
        member.outcome
        or _judge(
            member.machine,
            transition,
            member.evidence,
            member.marks,
            member.started,
            probes,
            checks,
            options,
        )
        for member in members
    ]


@dataclass
class _Member:
    machine: Machine
    evidence: CycleEvidence
    marks: Marks
    started: float
    outcome: CycleOutcome | None = None


def run_cycle_again(
    machine: Machine,
    transition: Transition,
    previous: CycleOutcome,
    rewake: Rewake,
    *,
    probes: tuple[probe_lib.Probe, ...] = probe_lib.DEFAULT_PROBES,
    checks: Sequence[Check] = DEFAULT_CHECKS,
    options: CycleOptions = CycleOptions(),
) -> CycleOutcome:
    """Wake the guest once more from the state the previous cycle saved (one save image
    restored again). The guest must come back to the very point at which it was saved, so
    the previous cycle's facts from before the sleep stay the reference."""
    before = previous.evidence
    evidence = replace(
        before,
        cycle=before.cycle + 1,
        events=[],
        timings={},
        after={},
        after_error="",
        kernel_messages=[],
        kernel_log=[],
        faults=[rewake.description],
        request_at=0.0,
        # Only the wake is repeated: the guest logs no sleep of its own and counts none.
        expected_events=[signal.value for signal in rewake.expected_events],
        expected_kernel_records=[],
        expects_suspend_count=False,
        tcp_expected=False,
    )
    marks = Marks.now(machine)
    started = time.monotonic()
    try:
        rewake.prepare(machine)
        marks = Marks.now(machine)
        wake_started = time.monotonic()
        transition.wake.perform(machine, marks, evidence.timings)
        evidence.timings["wake_to_ready"] = time.monotonic() - wake_started
    except HarnessError as exc:
        return _ended_early(machine, evidence, marks, exc)
    return _judge(machine, transition, evidence, marks, started, probes, checks, options)


def _ended_early(
    machine: Machine, evidence: CycleEvidence, marks: Marks, exc: HarnessError
) -> CycleOutcome:
    """UNSUPPORTED leaves the guest as it is; FAIL and ERROR stop it, so that no half-asleep
    guest is left to the next cycle or test."""
    if isinstance(exc, StateUnsupported):
        return _finish(machine, evidence, marks, Verdict.UNSUPPORTED, str(exc))
    verdict = Verdict.FAIL if isinstance(exc, GuestFault) else Verdict.ERROR
    reason = str(exc)
    lines = machine.console.lines_since(marks.console)
    cause = _named_cause(exc, evidence)
    if cause.startswith("entered ") and (mem_sleep := evidence.before.get("guest.mem_sleep")):
        reason += f"; /sys/power/mem_sleep read '{mem_sleep}' before the request"
    if platform := unmapped_pm_registers(machine, exc, lines):
        reason += f"; {platform}"
        cause = cause or PM_REGISTERS_CAUSE
    # A guest that entered another state than asked stopped nowhere: it sleeps in that state.
    entering = not cause and (
        isinstance(exc, SuspendNotEntered)
        or (isinstance(exc, GuestFault) and exc.stage in ("request", "suspend-entry"))
    )
    diagnosis = console_diagnosis(lines, entering=entering)
    if diagnosis and diagnosis not in reason:  # a stalled wait names its stall already
        reason += f"; {diagnosis}"
    outcome = _finish(machine, evidence, marks, verdict, reason)
    outcome.cause = cause
    outcome.artifacts.update(machine.hang_evidence(f"cycle{evidence.cycle}"))
    machine.stop()
    return outcome


def _named_cause(exc: HarnessError, evidence: CycleEvidence) -> str:
    """The cause the evidence itself names, beyond doubt: the guest kernel announced another
    sleep state than the one asked for, else a device its kernel says refused the sleep.
    Known issues never stand in for it."""
    entered, asked = exc.evidence.get("entered_state"), exc.evidence.get("asked_state")
    if entered and asked:
        return f"entered {entered}, not {asked}"
    device, action = exc.evidence.get("refused_device"), exc.evidence.get("refused_action")
    if device and action:
        return f"{device} refused to {action}"
    return ""


def _judge(
    machine: Machine,
    transition: Transition,
    evidence: CycleEvidence,
    marks: Marks,
    started: float,
    probes: tuple[probe_lib.Probe, ...],
    checks: Sequence[Check],
    options: CycleOptions,
    echo: EchoChannel | None = None,
    stream: StreamDownload | None = None,
    peripherals: PeripheralWatch | None = None,
) -> CycleOutcome:
    """Measure after the wake, then judge every check."""
    if transition.resync_clock and not options.resync_clock:
        options = replace(options, resync_clock=True)
    checks_started = time.monotonic()
    _capture_after(machine, probes, evidence, echo, stream, options)
    evidence.timings["checks_after"] = time.monotonic() - checks_started
    if peripherals is not None:
        peripherals.after(machine, evidence)
    outcome = _finish(machine, evidence, marks, Verdict.PASS, "")
    outcome.checks = [check(evidence) for check in checks]
    if outcome.failed_checks:
        outcome.verdict = Verdict.FAIL
        outcome.reason = "; ".join(f"{c.name}: {c.detail}" for c in outcome.failed_checks)
        # A failed cycle may leave the guest changed (e.g. a hibernation signature left on its
        # swap disk): the next cycle or test starts from a fresh boot on fresh disks.
        machine.stop()
    evidence.timings["cycle_total"] = time.monotonic() - started
    return outcome


def run_series(
    machine: Machine,
    transition: Transition,
    count: int,
    faults: Sequence[Fault] = (),
    options: CycleOptions = CycleOptions(),
) -> list[CycleOutcome]:
    """``count`` cycles in a row on one boot while they pass; each proven on its own. The
    checks follow the guest's devices: a TPM or a share adds its probe and check."""
    config = getattr(machine, "config", None)
    devices = config.devices if isinstance(config, QemuConfig) else DeviceProfile()
    probes, checks = probes_and_checks(devices)
    outcomes: list[CycleOutcome] = []
    for cycle in range(1, count + 1):
        outcome = run_cycle(
            machine,
            transition,
            faults=faults,
            cycle=cycle,
            options=options,
            probes=probes,
            checks=checks,
        )
        outcomes.append(outcome)
        for rewake in transition.then:
            if outcome.verdict is not Verdict.PASS:
                break
            outcome = run_cycle_again(
                machine, transition, outcome, rewake, options=options, probes=probes, checks=checks
            )
            outcomes.append(outcome)
        if outcome.verdict is not Verdict.PASS:
            break  # the guest was stopped or the state is not offered: later cycles prove nothing
    return outcomes


def _capture_after(
    machine: Machine,
    probes: tuple[probe_lib.Probe, ...],
    evidence: CycleEvidence,
    echo: EchoChannel | None,
    stream: StreamDownload | None,
    options: CycleOptions,
) -> None:
    """Everything measured after the wake. The facts script starts at once over ssh; beside it
    the network is looked at through the agent, so that a dead link is diagnosed as such
    (and the ssh waiting on it given up) instead of as an ssh timeout."""
    timed = functools.partial(_timed, evidence.timings)
    try:
        if options.resync_clock:
            # The step the guest came back with is kept, then the clock is set from the host.
            with timed("agent_clock"):
                lag = live_probes.clock_via_agent(machine)["clock.step_s"]
                evidence.after["clock.step_before_resync_s"] = lag
                machine.agent_execute("guest-set-time", {"time": time.time_ns()})
        # The facts script works the guest's disks and processes, the network's part (1 MiB
        # each way, the stream's tail) its NIC, each on its own ssh channel. The facts script
        # ends with the closing look (live_probes.closing_tail), which waits for the transfers
        # so that its kernel log has what both provoked.
        token = os.urandom(6).hex()  # left by the transfers for the closing look to see
        with concurrent.futures.ThreadPoolExecutor(2, "after-wake") as pool:
            facts = pool.submit(_capture, machine, probes, "after", evidence, token)
            with timed("agent_net"):
                evidence.after.update(live_probes.net_facts(machine, evidence.before))
            evidence.after.update(live_probes.clock_via_agent(machine))
            if evidence.after.get("net.operstate") != "up":
                machine.close_ssh()  # the facts script's channel would wait for its timeout
                evidence.after_error = (
                    f"{SSH_GIVEN_UP}: the guest's network link is "
                    f"{evidence.after.get('net.operstate') or 'unknown'} "
                    "(seen through the guest agent)"
                )
                return
            if echo is not None:
                with timed("echo"):
                    evidence.after["tcp.echo"] = _echo(echo, b"after", machine)
                waited = evidence.timings["echo"]
                if silent := live_probes.nic_silent(machine, evidence.after, waited):
                    machine.close_ssh()
                    evidence.after_error = (
                        f"{SSH_GIVEN_UP}: {silent} (seen through the guest agent)"
                    )
                    return
            network = pool.submit(_network_checks, machine, stream, evidence, timed, token)
            evidence.after.update(facts.result())
            network.result()
    except HarnessError as exc:
        evidence.after_error = str(exc)
    finally:
        for channel in (echo, stream):
            if channel is not None:
                channel.close()


def _network_checks(
    machine: Machine,
    stream: StreamDownload | None,
    evidence: CycleEvidence,
    timed: Callable[[str], contextlib.AbstractContextManager[None]],
    token: str,
) -> None:
    """A checksummed MiB each way over ssh (virtio-net) and the NIC's interrupts after it (read
    through the agent while the facts script reads the kernel log), then the stream's tail,
    which has meanwhile come in beside them."""
    with timed("transfers"):
        evidence.after.update(live_probes.transfer_both_ways(machine, token))
    evidence.after["net.irqs_after_transfer"] = live_probes.nic_irqs(
        machine, evidence.after.get("net.device", "")
    )
    if stream is not None:
        with timed("stream_tail"):
            evidence.after["tcp.stream"] = live_probes.judge_stream(
                stream.result(machine.timeouts.wake)
            )


@contextlib.contextmanager
def _timed(timings: dict[str, float], name: str) -> Iterator[None]:
    """How long the block took, into ``timings[name]`` (the benchmark reads them)."""
    started = time.monotonic()
    try:
        yield
    finally:
        timings[name] = time.monotonic() - started


@contextlib.contextmanager
def _echo_opened_beside(
    machine: Machine, wanted: bool
) -> Iterator[concurrent.futures.Future[EchoChannel] | None]:
    """The echo channel opened on a thread of its own (a round trip to the guest) while the
    caller captures the facts; closed again if the caller fails before taking it."""
    if not wanted:
        yield None
        return
    with concurrent.futures.ThreadPoolExecutor(1, "echo-open") as pool:
        future = pool.submit(machine.open_echo)
        try:
            yield future
        except BaseException:
            with contextlib.suppress(Exception):
                future.result().close()
            raise


def _echo(echo: EchoChannel, token: bytes, machine: Machine) -> str:
    payload = token + b"-" + str(time.monotonic_ns()).encode() + b"\n"
    received = echo.roundtrip(payload, min(machine.timeouts.command, live_probes.ECHO_WAIT_S))
    return "ok" if received == payload else f"got {received[:40]!r}"


def _apply_faults(machine: Machine, faults: Sequence[Fault], point: str, cycle: int) -> None:
    for fault in faults:
        if fault.applies(point, cycle):
            fault.apply(machine)


def _capture(
    machine: GuestChannels,
    probes: tuple[probe_lib.Probe, ...],
    phase: str,
    evidence: CycleEvidence,
    closing_token: str | None = None,
) -> dict[str, str]:
    """The facts script of ``phase``; with ``closing_token``, ended by the closing look, whose
    kernel log goes to the evidence."""
    script = probe_lib.script(probes, phase)
    if closing_token is not None:
        script += live_probes.closing_tail(closing_token)
    start = time.monotonic()
    result = machine.run(script)
    evidence.timings[f"capture_{phase}"] = time.monotonic() - start
    if not result.ok:
        raise HarnessError(
            f"guest fact capture ({phase}) exited {result.exit_status}: "
            f"{result.stderr.strip()[-300:]}"
        )
    if closing_token is not None:
        head, evidence.kernel_log = live_probes.split_closing(result.stdout, evidence.before)
        result = replace(result, stdout=head)
    facts = probe_lib.parse_facts(result)
    for name, seconds in probe_lib.probe_seconds(facts).items():
        evidence.timings[f"capture_{phase}_{name}"] = seconds
    return facts


def _preflight(machine: GuestChannels, transition: Transition, facts: dict[str, str]) -> None:
    """UNSUPPORTED when the guest does not offer the state; ERROR when S4 has no swap."""
    reason = transition.needs.unmet(facts)
    if reason:
        raise StateUnsupported(reason)
    if not transition.needs.swap or facts.get("guest.swaps", "").strip():
        return  # the facts just read show swap active: no round trip to ask again
    # Swap is activated late in boot; hibernating before it is active keeps the guest up.
    swap = machine.run("timeout 120 systemctl start swap.target; swapon --show=NAME --noheadings")
    if not swap.stdout.strip():
        raise SetupError(
            "guest has no active swap: S4 needs a swap device at least as large as "
            "its RAM (the built-in guest gets one on /dev/vdb)"
        )


def _finish(
    machine: PlatformRecords, evidence: CycleEvidence, marks: Marks, verdict: Verdict, reason: str
) -> CycleOutcome:
    evidence.events = [e.to_json() for e in machine.events.since(marks.events)]
    lines = machine.console.lines_since(marks.console)
    evidence.kernel_messages = [ln.strip() for ln in lines if KERNEL_PM_LINE.search(ln)][:300]
    return CycleOutcome(verdict, reason, evidence)
