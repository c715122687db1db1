"""What a guest has under every backend: private run and evidence directories, the console
log, and ssh into the guest over a loopback port forwarded to its sshd (per-run key)."""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.errors import (
    BootTimeout,
    GuestAgentLost,
    GuestFault,
    GuestLockedUp,
    GuestStalled,
    HarnessError,
    KernelPanic,
    SetupError,
    SshError,
    SshKeyRefused,
)
from harness.guest.console.diagnosis import stall_diagnosis
from harness.guest.console.log import ConsoleLog
from harness.guest.ssh import (
    BinaryResult,
    CommandResult,
    EchoChannel,
    SshConnection,
    SshKey,
    StreamDownload,
)
from harness.machines.agent_port import AGENT_PORT_STATE, AgentPortWatch, PortState
from harness.machines.checkpoint import Checkpoint
from harness.machines.config import QemuConfig
from harness.machines.vcpu_lockup import LockupWatch, VcpuState, vcpu_states
from harness.ports import free_local_port
from harness.progress import waiting
from harness.setup.image import GuestImage
from harness.timeouts import Timeouts

log = logging.getLogger(__name__)
AGENT_SILENCE_PROBE_SECONDS = 15.0

READY_PROBE_SECONDS = 15.0  # a guest that does not answer `true` in this long gets rebooted
ADDRESS_POLL_SECONDS = 0.1  # between agent looks at the guest's addresses while it boots
RESTORE_STAGE = "checkpoint restore"  # the readiness wait of a guest restored from a checkpoint


def ipv4_addresses(interfaces: Any) -> list[str]:
    """The IPv4 addresses, loopback's aside, in a ``guest-network-get-interfaces`` reply."""
    found = []
    for interface in interfaces if isinstance(interfaces, list) else []:
        if not isinstance(interface, dict) or interface.get("name") == "lo":
            continue
        for address in interface.get("ip-addresses") or []:
            if address.get("ip-address-type") == "ipv4" and address.get("ip-address"):
                found.append(str(address["ip-address"]))
    return found


class MachineBase:
    """Sockets and disks live in ``runtime_dir`` (0700); logs in ``evidence_dir``, so that they
    outlive the run."""

    ready_from: Checkpoint | None = None  # what ``boot`` restores instead of booting

    def __init__(
        self,
        name: str,
        image: GuestImage,
        config: QemuConfig,
        runtime_dir: Path,
        evidence_dir: Path,
        ssh_key: SshKey,
        timeouts: Timeouts,
    ) -> None:
        self.name = name
        self.image = image
        self.config = config
        self.timeouts = timeouts
        runtime_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        evidence_dir.mkdir(parents=True, exist_ok=True)
        self.runtime_dir = runtime_dir
        self.evidence_dir = evidence_dir
        self.console = ConsoleLog(evidence_dir / "serial.log")
        self.serial_log = self.console.path
        self._ssh_key = ssh_key
        self._ssh_port = free_local_port()
        self._ssh = SshConnection(self._ssh_port, ssh_key, image.host_keys)

    def run(
        self, command: str, timeout: float | None = None, stdin: bytes | None = None
    ) -> CommandResult:
        return self._ssh.run(command, timeout or self.timeouts.command, stdin)

    def fetch(
        self, command: str, timeout: float | None = None, stdin: bytes | None = None
    ) -> BinaryResult:
        return self._ssh.fetch(command, timeout or self.timeouts.command, stdin)

    def close_ssh(self) -> None:
        self._ssh.close()

    def open_echo(self) -> EchoChannel:
        return self._ssh.open_echo(self.timeouts.command)

    def open_stream(self, command: str) -> StreamDownload:
        return self._ssh.open_stream(command, self.timeouts.resume)

    @property
    def running(self) -> bool:
        raise NotImplementedError

    def qmp(self, command: str, arguments: dict[str, Any] | None = None) -> Any:
        raise NotImplementedError

    def screendump(self, name: str) -> Path | None:
        """A PNG of the guest's display (the console may say nothing of a hung guest)."""
        path = self.evidence_dir / name
        if not self.running:
            return None
        try:
            self.qmp("screendump", {"filename": str(path), "format": "png"})
        except HarnessError as exc:
            log.info("%s: no screendump: %s", self.name, exc)
            return None
        return path if path.is_file() else None

    def cpu_dump(self, name: str) -> Path | None:
        """Each vCPU's local APIC and registers (HMP ``info lapic``, ``info registers -a``),
        for a guest that hangs: whether a CPU's timer is armed, masked or held behind an
        interrupt in service, and where each CPU is. The APIC ID is taken to be the CPU
        index, as it is for the harness's topologies (one socket, or one core per socket)."""
        path = self.evidence_dir / name
        if not self.running:
            return None
        try:
            lapics, registers = self._vcpu_monitor_output()
        except HarnessError as exc:
            log.info("%s: no CPU dump: %s", self.name, exc)
            return None
        parts = [f"(qemu) info lapic {i}\n{text}" for i, text in lapics.items()]
        parts.append(f"(qemu) info registers -a\n{registers}")
        path.write_text("\n".join(parts))
        return path

    def _vcpu_monitor_output(self) -> tuple[dict[int, str], str]:
        """HMP ``info lapic N`` of each vCPU by index, and ``info registers -a``."""
        indexes = [cpu["cpu-index"] for cpu in self.qmp("query-cpus-fast") or []]
        lapics = {i: self.hmp(f"info lapic {i}") for i in indexes}
        return lapics, self.hmp("info registers -a")

    def vcpu_states(self) -> list[VcpuState]:
        """Each vCPU's interrupt flag, halt state and pending timer interrupt; none while the
        guest does not run (asleep, paused, stopped), when nothing can lock up."""
        if not self.running:
            return []
        try:
            if (self.qmp("query-status") or {}).get("status") != "running":
                return []
            lapics, registers = self._vcpu_monitor_output()
        except HarnessError as exc:
            log.debug("%s: no vCPU state: %s", self.name, exc)
            return []
        return vcpu_states(registers, lapics)

    def hmp(self, command: str) -> str:
        """An HMP command through QMP (human-monitor-command); its output."""
        return str(self.qmp("human-monitor-command", {"command-line": command}))

    def lockup_watch(self) -> LockupWatch:
        """A watch for one wait on this guest (see harness.machines.vcpu_lockup)."""
        return LockupWatch(self.vcpu_states)

    def hang_evidence(self, suffix: str) -> dict[str, str]:
        """What a hung guest leaves behind: its screen and its CPUs' state, by file."""
        found = {
            "screendump": self.screendump(f"screen-{suffix}.png"),
            "cpu_dump": self.cpu_dump(f"cpus-{suffix}.txt"),
        }
        return {key: str(path) for key, path in found.items() if path is not None}

    def serial_tail(self, lines: int = 3) -> str:
        """The last non-empty console lines, for one-line diagnoses."""
        return self.console.tail(lines)

    # -- booting: each backend says how it starts and whether it looks up --------------------

    def boot(self) -> dict[str, float]:
        """A ready guest on fresh disks: restored from ``ready_from`` when set, else a cold
        boot; timings of each phase. A restore whose guest kernel then panics (rarely, under
        TCG, right after the migration) falls back to a cold boot, with a warning in the run's
        summary: the case tests sleep and wake, not the harness's restore. Any other failed
        restore (a damaged checkpoint, say) stays an error."""
        if self.ready_from is None:
            return self.cold_boot()
        try:
            return self.start_from(self.ready_from)
        except KernelPanic as exc:
            message = f"{self.name}: {exc}; cold booted instead"
            log.warning("%s", message)
            warnings.warn(message, RuntimeWarning, stacklevel=2)
            return {**self.cold_boot(), "restore_panicked": 1.0}

    def cold_boot(self) -> dict[str, float]:
        raise NotImplementedError

    def start_from(self, checkpoint: Checkpoint) -> dict[str, float]:
        raise NotImplementedError

    def wait_ready(self, stage: str, timeout: float) -> dict[str, float]:
        raise NotImplementedError

    def agent_execute(
        self, command: str, arguments: dict[str, Any] | None = None, timeout: float | None = None
    ) -> Any:
        raise NotImplementedError

    def _ssh_ready(self, stage: str, deadline: float) -> None:
        """The tail of ``wait_ready``, once the agent answers: ssh connected with the per-run
        key, and a command run. A live connection (an S3 wake) is reused. A new one waits for
        the guest's address, which any wait but a restore's may be the first since a boot
        (libvirt-guests starting a guest, a cloud image's second boot). The key goes in
        through the agent before a boot's first connection; after a resume or a restore the
        guest holds it already (it was installed before it slept or was saved), so it is
        installed only if sshd refuses it: one agent call less on every relaunch and restore."""

        def remaining() -> float:
            return max(1.0, deadline - time.monotonic())

        def install_key() -> None:
            self.agent_execute(
                "guest-ssh-add-authorized-keys",
                {"username": "root", "keys": [self._ssh_key.public_line]},
                timeout=remaining(),
            )

        if not self._ssh.connected:
            if stage != RESTORE_STAGE:  # a restored guest was frozen with its address
                self._wait_for_an_address(deadline)
            if stage == "boot":
                install_key()
                self._ssh.connect(remaining())
            else:
                try:
                    self._ssh.connect(remaining())
                except SshKeyRefused:
                    log.info("%s: %s: key refused; installing it", self.name, stage)
                    install_key()
                    self._ssh.connect(remaining())
        self._ssh.run("true", timeout=remaining())

    def _wait_for_an_address(self, deadline: float) -> None:
        """Until the guest's NIC has an IPv4 address, read through the agent (no program
        started in the guest). The agent answers before the network is configured, and under
        QEMU's user networking a connection made then is not refused but left unanswered:
        slirp resends its SYN to the guest with TCP's backoff, which delays the connection by
        seconds past the moment the address comes. An agent that refuses the command (a
        distribution's block list) leaves it to ssh's own attempts."""
        while True:
            try:
                interfaces = self.agent_execute(
                    "guest-network-get-interfaces",
                    timeout=max(1.0, deadline - time.monotonic()),
                )
            except HarnessError as exc:
                log.info(
                    "%s: no network facts from the agent (%s); connecting anyway", self.name, exc
                )
                return
            if ipv4_addresses(interfaces):
                return
            if time.monotonic() >= deadline:
                names = [i.get("name") for i in interfaces if isinstance(i, dict)]
                raise SshError(f"the guest's network interfaces {names} never got an IPv4 address")
            time.sleep(ADDRESS_POLL_SECONDS)

    def _stall_since(self, stage: str, since: int) -> str:
        """After a wake, a CPU stall reported on the console since ``since`` ends the wait for
        the guest: the cycle fails whatever comes next (its kernel log has the stall), and
        under TCG such a guest may not answer within the whole wait. Boots are not cut short:
        under TCG a stall report at boot can be followed by a normal boot."""
        return stall_diagnosis(self.console.lines_since(since)) if stage == "resume" else ""

    def _check_not_stalled(self, stage: str, since: int, watch: LockupWatch | None = None) -> None:
        """A stall the console reported, or (with ``watch``) a lockup QEMU shows, ends the wait."""
        if stall := self._stall_since(stage, since):
            raise GuestStalled(stage, stall, evidence={"serial_log": str(self.serial_log)})
        if watch is not None and (lockup := watch.check()):
            raise GuestLockedUp(stage, lockup, evidence={"serial_log": str(self.serial_log)})

    def _looks_up(self) -> bool:
        """The VM runs (not asleep, not stopped) and ssh is connected."""
        raise NotImplementedError

    def ensure_ready(self) -> None:
        """Reuse the running guest if it answers; otherwise cold boot on fresh disks."""
        if self._looks_up():
            try:
                self._ssh.run("true", timeout=READY_PROBE_SECONDS)
                return
            except HarnessError:
                log.info("%s: guest no longer answers; cold booting", self.name)
        self.boot()

    def _boot_with(self, launch: Callable[[], None]) -> dict[str, float]:
        """``launch`` the VM, then wait until agent and ssh answer; timings of each phase."""
        start = time.monotonic()
        launch()
        timings = {"launch": time.monotonic() - start}
        timings.update(self._ready_or_timeout("boot", self.timeouts.boot))
        return timings

    def _ready_or_timeout(self, stage: str, timeout: float) -> dict[str, float]:
        """``wait_ready``; a guest that never answers is a BootTimeout naming ``stage``, with
        the last console lines and the serial log as evidence."""
        try:
            with waiting(f"{self.name}: {stage} (agent, ssh)", timeout):
                return self.wait_ready(stage, timeout)
        except (GuestFault, SetupError):
            raise  # judged or explained already: not a guest that never answered
        except HarnessError as exc:
            evidence = {"serial_log": str(self.serial_log)}
            evidence.update(self.hang_evidence(stage.replace(" ", "-")))
            raise BootTimeout(
                stage, timeout, f"{exc}; serial: {self.serial_tail()}", evidence=evidence
            ) from exc

    def _read_agent_port(self, timeout: float) -> PortState | None:
        """The agent port's state in the guest, over ssh; None if ssh does not answer."""
        try:
            return PortState.parse(self._ssh.run(AGENT_PORT_STATE, timeout=timeout).stdout)
        except HarnessError:
            return None

    def agent_port_watch(self) -> AgentPortWatch:
        """A watch for one wait for the agent after a resume (see harness.machines.agent_port)."""
        return AgentPortWatch(self._read_agent_port)

    def _check_agent_port(self, stage: str, watch: AgentPortWatch | None) -> None:
        """An agent port the host's open never reached ends the wait for the agent."""
        if watch is not None and (lost := watch.check()):
            raise GuestAgentLost(stage, lost, evidence={"serial_log": str(self.serial_log)})

    def _agent_silence(self) -> str:
        """Why the agent is silent, as far as ssh can tell within a short bound: the guest is
        up and its agent port never saw the host open it (``host_connected 0``: the host's
        PORT_OPEN was lost, qemu-ga waits on a hung-up port), or qemu-ga has not opened it,
        or ssh does not answer either (the guest is not back). Both backends' agent waits
        add it to their timeout; it ends with "; "."""
        try:
            ports = self._ssh.run(AGENT_PORT_STATE, timeout=AGENT_SILENCE_PROBE_SECONDS)
        except HarnessError as exc:
            return f"ssh does not answer either ({exc}); "
        state = PortState.parse(ports.stdout)
        if state.host is None:
            return f"ssh answers; the agent port's state is unknown ({state.raw!r}); "
        if state.host_lost:
            return (
                f"ssh answers; the guest's agent port reads host_connected 0 (guest_connected "
                f"{state.guest}): the host's PORT_OPEN never reached it; "
            )
        return (
            f"ssh answers; the agent port reads host_connected {state.host}, "
            f"guest_connected {state.guest}; "
        )
