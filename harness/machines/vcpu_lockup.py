"""A guest locked up with interrupts disabled, seen from outside through its vCPUs' state.

A guest CPU that spins with interrupts disabled says nothing: its own lockup detectors need
the timer interrupt it no longer takes (or a PMU NMI, which TCG guests lack), and a wait for
the guest only ends at its limit. QEMU still shows each vCPU: a CPU that is not halted, runs
with IF clear in RFLAGS, and has its local APIC timer's vector pending in IRR, in every sample
over ``LOCKUP_SECONDS``, is locked up. Firmware does not arm the local APIC timer, and the
kernel's own interrupts-off sections (a hibernation snapshot included) last well under that
bound, so a guest that merely boots or sleeps slowly is not taken for one.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

LOCKUP_SECONDS = 20.0  # the kernel's own hard-lockup detector reports after 10 s
SAMPLE_SECONDS = 5.0
IF_FLAG = 0x200

_CPU_HEADER = re.compile(r"^CPU#(\d+)", re.MULTILINE)
_RIP = re.compile(r"\bRIP=([0-9a-fA-F]+)")
_RFL = re.compile(r"\bRFL=([0-9a-fA-F]+)")
_HLT = re.compile(r"\bHLT=(\d)")
_LVTT = re.compile(r"^LVTT\s+0x([0-9a-fA-F]+)", re.MULTILINE)
_IRR = re.compile(r"^IRR\s+(.*)$", re.MULTILINE)
LVT_MASKED = 1 << 16


@dataclass(frozen=True)
class VcpuState:
    index: int
    rip: str
    interrupts_enabled: bool
    halted: bool
    timer_pending: bool

    @property
    def locked(self) -> bool:
        """Running with interrupts off while its own timer interrupt waits to be taken."""
        return not self.interrupts_enabled and not self.halted and self.timer_pending


def parse_registers(text: str) -> dict[int, tuple[str, bool, bool]]:
    """HMP ``info registers -a`` as {cpu index: (RIP, interrupts enabled, halted)}."""
    headers = list(_CPU_HEADER.finditer(text))
    found: dict[int, tuple[str, bool, bool]] = {}
    for i, header in enumerate(headers):
        end = headers[i + 1].start() if i + 1 < len(headers) else len(text)
        block = text[header.end() : end]
        rip, rfl, hlt = _RIP.search(block), _RFL.search(block), _HLT.search(block)
        if rip and rfl and hlt:
            enabled = bool(int(rfl.group(1), 16) & IF_FLAG)
            found[int(header.group(1))] = (rip.group(1).lower(), enabled, hlt.group(1) == "1")
    return found


def timer_pending(lapic: str) -> bool:
    """HMP ``info lapic N``: the timer is unmasked and its vector is pending in IRR."""
    lvtt, irr = _LVTT.search(lapic), _IRR.search(lapic)
    if lvtt is None or irr is None:
        return False
    value = int(lvtt.group(1), 16)
    if value & LVT_MASKED:
        return False
    return str(value & 0xFF) in irr.group(1).split()


def vcpu_states(registers: str, lapics: dict[int, str]) -> list[VcpuState]:
    return [
        VcpuState(index, rip, enabled, halted, timer_pending(lapics.get(index, "")))
        for index, (rip, enabled, halted) in sorted(parse_registers(registers).items())
    ]


class LockupWatch:
    """Samples the vCPUs at most every ``SAMPLE_SECONDS`` while a wait goes on; ``check``
    names the vCPUs seen locked in every sample over ``LOCKUP_SECONDS``. ``sample`` returns no
    states when the guest is not running (asleep, paused, gone): that ends any lockup seen.
    Once a lockup is found, every later ``check`` names it."""

    def __init__(
        self,
        sample: Callable[[], Sequence[VcpuState]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sample = sample
        self._clock = clock
        self._last_sample: float | None = None
        self._locked_since: dict[int, float] = {}
        self._rips: dict[int, list[str]] = {}
        self._diagnosis = ""

    def check(self) -> str:
        if self._diagnosis:
            return self._diagnosis
        now = self._clock()
        if self._last_sample is not None and now - self._last_sample < SAMPLE_SECONDS:
            return ""
        self._last_sample = now
        states = {state.index: state for state in self._sample()}
        for index in list(self._locked_since):
            if index not in states or not states[index].locked:
                del self._locked_since[index]
                self._rips.pop(index, None)
        for index, state in states.items():
            if state.locked:
                self._locked_since.setdefault(index, now)
                self._rips.setdefault(index, []).append(state.rip)
        locked = sorted(i for i, t in self._locked_since.items() if now - t >= LOCKUP_SECONDS)
        if not locked:
            return ""
        where = "; ".join(
            f"vCPU {i} at RIP {', '.join(dict.fromkeys(self._rips[i][-3:]))}" for i in locked
        )
        self._diagnosis = (
            f"the guest locked up: {len(locked)} of {len(states)} vCPUs ran with interrupts "
            f"disabled and their timer interrupt pending for {LOCKUP_SECONDS:.0f} s or more "
            f"({where})"
        )
        return self._diagnosis
