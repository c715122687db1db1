"""QemuMachine: one guest run by qemu-system directly, on its own overlay and swap disk."""

from __future__ import annotations

import concurrent.futures
import logging
import re
import shlex
import shutil
import time
from pathlib import Path
from typing import Any

from harness.aio import LoopThread
from harness.errors import (
    AgentError,
    BootTimeout,
    GuestFault,
    HarnessError,
    KernelPanic,
    QemuStartError,
)
from harness.guest.console.server import ConsoleServer
from harness.guest.ssh import CommandResult, SshConnection, SshKey
from harness.machines import checkpoint as ckpt
from harness.machines import cloud_ready, disks
from harness.machines.base import RESTORE_STAGE, MachineBase
from harness.machines.config import DATA_FILE_NODE, DATA_NODE, QemuConfig
from harness.machines.device_helpers import DeviceHelpers, HelperPaths, backend_failure
from harness.machines.events import QEMU_EXITED, EventLog, RecordedEvent
from harness.machines.protocol import Checkpointable, HostLifecycle, Machine, Signal
from harness.machines.qemu.agent import GuestAgent
from harness.machines.qemu.cmdline import RunPaths, build_argv
from harness.machines.qemu.monitor import QmpMonitor
from harness.machines.qemu.signals import qmp_signals
from harness.ports import free_local_port
from harness.process import ChildProcess
from harness.setup.image import GuestImage
from harness.timeouts import Timeouts

log = logging.getLogger(__name__)

PANIC_LINE = re.compile(r"Kernel panic - not syncing")
# What shim, GRUB and OVMF print when secure boot refuses an image: nothing boots after it.
BOOT_REFUSED = re.compile(
    r"Verification failed: \(0x1A\) Security Violation|bad shim signature|Access Denied"
)
TERMINAL_CONTROL = re.compile(r"\x1b\[[0-9;?=]*[A-Za-z]")  # a firmware's text UI draws with them
PORT_ATTEMPTS = 3
QMP_DRAIN_SECONDS = 5.0  # the events QEMU sent before it ended, read before its exit is recorded


class QemuMachine(MachineBase, Machine, Checkpointable):
    """A guest under direct QEMU."""

    def __init__(
        self,
        name: str,
        image: GuestImage,
        config: QemuConfig,
        runtime_dir: Path,
        evidence_dir: Path,
        ssh_key: SshKey,
        runner: LoopThread,
        timeouts: Timeouts,
    ) -> None:
        super().__init__(name, image, config, runtime_dir, evidence_dir, ssh_key, timeouts)
        self.paths = RunPaths(
            qmp_socket=runtime_dir / "qmp.sock",
            agent_socket=runtime_dir / "qga.sock",
            console_socket=runtime_dir / "console.sock",
            root_overlay=runtime_dir / "root.qcow2",
            swap_disk=runtime_dir / "swap.raw",
            data_disk=runtime_dir / "data.raw",
        )
        self.events = EventLog(evidence_dir / "qmp-events.jsonl", qmp_signals)
        self._runner = runner
        self._process: ChildProcess | None = None
        self._monitor: QmpMonitor | None = None
        self._console_server: ConsoleServer | None = None
        self._agent = GuestAgent(runner, self.paths.agent_socket)
        self.argv = build_argv(config, self.paths, self._ssh_port)
        # The TPM's swtpm and the share's virtiofsd: started before each launch, as QEMU is.
        self.device_helpers = DeviceHelpers(
            config.devices, HelperPaths.under(runtime_dir), evidence_dir
        )
        self.launches = 0
        self._launch_mark = 0  # console lines before the last launch
        self._platform: dict[str, Any] = {}
        # When set, a ready guest comes from a restore of this checkpoint, not a cold boot.
        self.ready_from: ckpt.Checkpoint | None = None

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.running

    @property
    def host_lifecycle(self) -> HostLifecycle | None:
        return None  # QEMU alone has no management layer to save or restore a guest

    def cold_boot(self) -> dict[str, float]:
        self.stop()
        self._create_disks()
        self.device_helpers.reset_state()
        return self._boot_with(self._launch)

    def capture_checkpoint(self, directory: Path) -> ckpt.Checkpoint:
        """Freeze this ready guest into ``directory``; QEMU is stopped afterwards."""
        if not self.running:
            raise HarnessError(f"{self.name}: checkpoint of a guest that is not running")
        started = time.monotonic()
        self._ssh.close()  # no session of ours is frozen into the guest
        self._agent.close()
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        state = directory / "state.migration"
        self.qmp("migrate-set-capabilities", ckpt.migration_capabilities())
        self.qmp("migrate-set-parameters", {"max-bandwidth": ckpt.UNCAPPED_BANDWIDTH})
        mark = self.events.mark()
        try:
            uri = ckpt.save_uri(self._monitor, state, self._platform.get("qemu_version", ""))
            self.qmp("migrate", {"uri": uri})
            ckpt.wait_migration(self.events, mark, self.timeouts.hibernate, "save")
            frozen = ckpt.freeze_disks(self._disk_paths(), directory)
        except (HarnessError, OSError) as exc:
            self.stop()
            error = ckpt.explain_failure(exc, directory)  # before the space is given back
            shutil.rmtree(directory, ignore_errors=True)  # no half-written checkpoint
            raise error from exc
        state.chmod(0o400)
        self.stop()
        return ckpt.Checkpoint(
            name=self.name, state=state, disks=frozen, capture_s=time.monotonic() - started
        )

    def start_from(self, checkpoint: ckpt.Checkpoint) -> dict[str, float]:
        """Restore ``checkpoint`` on fresh copies of its disks, then wait until ready; the
        guest's clock, stopped since the capture, is set from the host's."""
        self.stop()
        started = time.monotonic()
        ckpt.thaw_disks(checkpoint, self._disk_paths())
        self.device_helpers.reset_state()  # the TPM's state comes with the checkpoint
        timings = {"disks": time.monotonic() - started}
        try:
            self._launch(incoming=True)
            self.qmp("migrate-set-capabilities", ckpt.migration_capabilities())
            mark = self.events.mark()
            version = self._platform.get("qemu_version", "")
            uri = ckpt.load_uri(self._monitor, checkpoint.state, version)
            self.qmp("migrate-incoming", {"uri": uri})
            ckpt.wait_migration(self.events, mark, self.timeouts.resume, "restore")
        except HarnessError as exc:
            output = self._process_output()
            self.stop()
            text = str(exc) if str(exc).startswith("checkpoint") else f"checkpoint restore: {exc}"
            raise QemuStartError(f"{text}: {output}") from exc
        timings["restore"] = time.monotonic() - started
        ready = self._ready_or_timeout(RESTORE_STAGE, self.timeouts.resume)
        self._agent.execute("guest-set-time", {"time": time.time_ns()})
        timings.update({f"ready_{k}": v for k, v in ready.items()})
        timings["total"] = time.monotonic() - started
        return timings

    def _disk_paths(self) -> dict[str, Path]:
        return {
            "root": self.paths.root_overlay,
            "swap": self.paths.swap_disk,
            "data": self.paths.data_disk,
        }

    def _process_output(self) -> str:
        if self._process is None:
            return ""
        return self._process.output_tail(600).replace("\n", " | ")

    def _looks_up(self) -> bool:
        return self.running and self._ssh.connected

    def power_on(self) -> None:
        """Relaunch with the identical argv and disks: how an S4 guest is resumed."""
        if self.running:
            raise HarnessError(f"{self.name}: power_on while QEMU is still running")
        self._launch()

    def stop(self) -> None:
        """Soft (QMP quit), then hard (SIGTERM, SIGKILL); closes every connection."""
        self._ssh.close()
        self._agent.close()
        if self._monitor is not None and self.running:
            try:
                self._monitor.execute("quit", timeout=self.timeouts.shutdown)
            except HarnessError as exc:
                log.debug("quit: %s", exc)
        if self._process is not None and not self._process.wait(self.timeouts.shutdown):
            self._process.kill()
        self.device_helpers.stop()
        if self._monitor is not None:
            self._monitor.close()
            self._monitor = None

    def _create_disks(self) -> None:
        disks.create_overlay(self.image.disk, self.paths.root_overlay, self.config.qemu_img)
        self.replace_swap_disk()
        disks.create_scratch(self.paths.data_disk)

    def replace_swap_disk(self) -> None:
        if self.running:
            raise HarnessError(f"{self.name}: cannot replace the swap disk of a running guest")
        disks.create_swap(self.paths.swap_disk, self.config.memory_mib)

    def _launch(self, incoming: bool = False) -> None:
        """Start QEMU with the machine's argv (``incoming``: waiting for a checkpoint). The
        ssh port is picked free, but another process may take it before QEMU binds it: then
        QEMU refuses to start, and it is started again on another port."""
        for attempt in range(1, PORT_ATTEMPTS + 1):
            try:
                self._launch_once(incoming)
                return
            except QemuStartError as exc:
                if "host forwarding rule" not in str(exc) or attempt == PORT_ATTEMPTS:
                    raise
                log.info("%s: ssh port %d taken; another", self.name, self._ssh_port)
                self._ssh_port = free_local_port()
                self._ssh = SshConnection(self._ssh_port, self._ssh_key, self.image.host_keys)
                self.argv = build_argv(self.config, self.paths, self._ssh_port)

    def _launch_once(self, incoming: bool) -> None:
        for sock in (self.paths.qmp_socket, self.paths.agent_socket):
            sock.unlink(missing_ok=True)
        if self._monitor is not None:
            self._monitor.close()
        self._ssh.close()
        if self._console_server is not None:
            self._console_server.close()
        self._console_server = ConsoleServer(self._runner, self.paths.console_socket, self.console)
        self._console_server.listen()
        self._monitor = QmpMonitor(self._runner, self.events)
        self._monitor.listen(self.paths.qmp_socket)
        self._agent.listen()
        self.launches += 1
        self._launch_mark = self.console.mark()
        argv = [*self.argv, "-incoming", "defer"] if incoming else self.argv
        (self.evidence_dir / "qemu-argv.txt").write_text(shlex.join(argv) + "\n")
        self.device_helpers.start(self.timeouts.shutdown)
        self._process = ChildProcess(
            argv,
            self.evidence_dir / "qemu-output.log",
            on_exit=self._record_exit,
            env=dict(self.config.env),
        )
        try:
            self._process.start()
        except OSError as exc:
            raise QemuStartError(f"cannot run {self.config.binary}: {exc}") from exc
        alive = self._alive
        try:
            self._monitor.accept(self.timeouts.shutdown, alive)
            self._console_server.accept(self.timeouts.shutdown, alive)
            self._agent.accept(self.timeouts.shutdown, alive)
            self._platform = self._query_platform()
        except QemuStartError as exc:
            output = self._process_output()
            self.stop()
            raise QemuStartError(f"{exc}: {output}") from exc

    def _record_exit(self, returncode: int) -> None:
        """QEMU_EXITED, after the QMP events QEMU sent before it ended (the process watch
        can see the exit before the loop thread has read the guest's SHUTDOWN)."""
        if self._monitor is not None:
            self._monitor.drain(QMP_DRAIN_SECONDS)
        self.events.append(QEMU_EXITED, {"returncode": returncode})

    def _alive(self) -> bool:
        return self.running

    def _panic_line(self) -> str:
        """The console's ``Kernel panic`` line, or secure boot's refusal of an image (its
        words alone: a firmware's text UI draws a box around them), since the last launch."""
        for line in [*self.console.lines_since(self._launch_mark), self.console.pending()]:
            text = TERMINAL_CONTROL.sub(" ", line)
            if PANIC_LINE.search(text):
                return " ".join(text.split())
            if refused := BOOT_REFUSED.search(text):
                return refused.group(0)
        return ""

    def _booting(self) -> bool:
        """QEMU runs and its guest has not panicked (a panicked kernel waits forever)."""
        return self._alive() and not self._panic_line()

    # -- readiness and commands --------------------------------------------------------------

    def wait_ready(self, stage: str, timeout: float) -> dict[str, float]:
        """Agent answers, then ssh answers with the per-run key (see _ssh_ready)."""
        deadline = time.monotonic() + timeout
        timings: dict[str, float] = {}
        start = time.monotonic()
        mark = self.console.mark()
        watch = self.lockup_watch()
        port_watch = self.agent_port_watch() if stage == "resume" else None

        def still_coming() -> bool:
            self._check_agent_port(stage, port_watch)
            return self._booting() and not self._stall_since(stage, mark) and not watch.check()

        try:
            self._agent.sync(timeout, still_coming)
        except TimeoutError as exc:
            raise BootTimeout(
                f"{stage}: guest agent", timeout, f"{exc}; {self._agent_silence()}".rstrip("; ")
            ) from exc
        except AgentError as exc:
            self._check_not_stalled(stage, mark, watch)
            panic = self._panic_line()
            if panic:
                what = (
                    "secure boot refused to start"
                    if BOOT_REFUSED.search(panic)
                    else "the guest kernel panicked"
                )
                raise KernelPanic(
                    stage,
                    f"{what}: {panic}",
                    evidence={"serial_log": str(self.serial_log)},
                ) from exc
            raise
        timings["agent"] = time.monotonic() - start
        self._ssh_ready(stage, deadline)
        timings["ssh"] = time.monotonic() - start
        if self.image.cloud and stage == "boot":
            timings.update(cloud_ready.settle(self, self.image.name, deadline))
        return timings

    def agent_shell(self, script: str, timeout: float | None = None) -> CommandResult:
        return self._agent.shell(script, timeout or self.timeouts.command)

    def set_link(self, up: bool) -> None:
        self.qmp("set_link", {"name": "net0", "up": up})

    def fail_data_disk_io(self) -> None:
        """From now on every read and write of the scratch disk fails with EIO: a blkdebug
        node is added over its file and the raw node is reopened onto it."""
        rules = [{"event": event, "errno": 5, "once": False} for event in ("read_aio", "write_aio")]
        self.qmp(
            "blockdev-add",
            {
                "driver": "blkdebug",
                "node-name": "data-faulty",
                "image": DATA_FILE_NODE,
                "inject-error": rules,
            },
        )
        self.qmp(
            "blockdev-reopen",
            {"options": [{"driver": "raw", "node-name": DATA_NODE, "file": "data-faulty"}]},
        )

    def agent_execute(
        self, command: str, arguments: dict[str, Any] | None = None, timeout: float | None = None
    ) -> Any:
        return self._agent.execute(command, arguments, timeout=timeout or self.timeouts.command)

    def agent_fire(
        self, command: str, arguments: dict[str, Any] | None = None
    ) -> concurrent.futures.Future[Any]:
        return self._agent.fire(command, arguments)

    def qmp(self, command: str, arguments: dict[str, Any] | None = None) -> Any:
        if self._monitor is None or not self.running:
            raise HarnessError(f"{self.name}: QMP {command} but QEMU is not running")
        return self._monitor.execute(command, arguments, timeout=self.timeouts.command)

    # -- power signals -----------------------------------------------------------------------

    def wait_signal(self, signal: Signal, since: int, timeout: float) -> RecordedEvent | None:
        wanted = {signal.value, Signal.POWERED_OFF.value}
        event = self.events.wait_for_signal(wanted, since, timeout)
        if event is not None and event.name == QEMU_EXITED and signal is not Signal.POWERED_OFF:
            self._raise_device_failure(f"waiting for {signal.value}")
            raise QemuStartError(
                f"QEMU exited (status {event.data.get('returncode')}) while "
                f"waiting for {signal.value}: {self.serial_tail()}"
            )
        if signal is Signal.POWERED_OFF and event is not None:
            self._agent.close()
            self._ssh.close()
        return event

    def wake_from_ram(self) -> None:
        try:
            self.qmp("system_wakeup")
        except HarnessError:
            self._raise_device_failure("wake")
            raise

    def _raise_device_failure(self, stage: str) -> None:
        """GuestFault naming the device when QEMU ended blaming a device's host-side helper
        (a TPM whose swtpm is gone: QEMU exits when it resets the TPM at the wake)."""
        if self._process is None or not self._process.wait(self.timeouts.shutdown):
            return
        failure = backend_failure(self.config.devices, self._process.output_tail(4000))
        if failure:
            raise GuestFault(stage, f"QEMU exited: {failure}")

    def send_key(self, key: str) -> None:
        self.qmp("send-key", {"keys": [{"type": "qcode", "data": key}]})

    def power_cut(self) -> None:
        self._agent.close()
        self._ssh.close()
        if self._process is not None:
            self._process.kill(grace=0)

    def platform_facts(self) -> dict[str, Any]:
        """What QEMU reported at the last launch (kept when QEMU has since stopped)."""
        return dict(self._platform)

    def _query_platform(self) -> dict[str, Any]:
        version = self.qmp("query-version")
        machine = self.qmp("query-current-machine")
        qemu = version["qemu"]
        return {
            "qemu_version": f"{qemu['major']}.{qemu['minor']}.{qemu['micro']}",
            "qemu_package": version.get("package", "").strip(),
            "accel": self.config.accel,
            "machine": self.config.machine,
            "firmware": self.config.firmware.kind,
            "wakeup_suspend_support": machine.get("wakeup-suspend-support"),
        }


__all__ = ["QEMU_EXITED", "QemuMachine"]
