"""LibvirtMachine: one guest as a persistent libvirt domain, on its own overlay and disks.

libvirt owns QEMU and the agent channel; the harness owns the console socket (QEMU connects to
it at every start), ssh (a host forward added to each new QEMU over HMP ``hostfwd_add``) and
the events it subscribes to.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import os
import shutil
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import libvirt
import libvirt_qemu

from harness.aio import LoopThread
from harness.errors import AgentError, BootTimeout, HarnessError, SetupError
from harness.guest.agent_exec import run_script
from harness.guest.console.server import ConsoleServer
from harness.guest.ssh import CommandResult, SshKey
from harness.machines import checkpoint as ckpt
from harness.machines import cloud_ready, disks
from harness.machines.base import RESTORE_STAGE, MachineBase
from harness.machines.config import QemuConfig
from harness.machines.events import EventLog, RecordedEvent
from harness.machines.libvirt import events as lv_events
from harness.machines.libvirt.domain_xml import NETDEV_ID, DomainFiles, build_domain_xml
from harness.machines.libvirt.errors import LibvirtError, call
from harness.machines.libvirt.host import LibvirtHost, domain_name, remove_domain
from harness.machines.protocol import Checkpointable, HostLifecycle, Machine, Signal
from harness.setup import selinux
from harness.setup.image import GuestImage
from harness.timeouts import Timeouts

log = logging.getLogger(__name__)

AGENT_ATTEMPT_SECONDS = 5.0
AGENT_RESPONSE_TIMEOUT_S = 10  # libvirt's own bound on an agent reply (agentSetResponseTimeout)
PM_TARGETS = {
    "mem": libvirt.VIR_NODE_SUSPEND_TARGET_MEM,
    "disk": libvirt.VIR_NODE_SUSPEND_TARGET_DISK,
    "hybrid": libvirt.VIR_NODE_SUSPEND_TARGET_HYBRID,
}
AGENT_SUSPEND = {
    "guest-suspend-ram": "mem",
    "guest-suspend-disk": "disk",
    "guest-suspend-hybrid": "hybrid",
}
LINUX_KEYCODES = {"shift": 42, "ctrl": 29, "alt": 56, "spc": 57, "ret": 28}
STATES = {
    libvirt.VIR_DOMAIN_NOSTATE: "nostate",
    libvirt.VIR_DOMAIN_RUNNING: "running",
    libvirt.VIR_DOMAIN_BLOCKED: "blocked",
    libvirt.VIR_DOMAIN_PAUSED: "paused",
    libvirt.VIR_DOMAIN_SHUTDOWN: "shutdown",
    libvirt.VIR_DOMAIN_SHUTOFF: "shutoff",
    libvirt.VIR_DOMAIN_CRASHED: "crashed",
    libvirt.VIR_DOMAIN_PMSUSPENDED: "pmsuspended",
}


class LibvirtMachine(MachineBase, Machine, Checkpointable, HostLifecycle):
    """A guest under libvirt: a Machine as QemuMachine is, with the host-side lifecycle."""

    def __init__(
        self,
        name: str,
        image: GuestImage,
        config: QemuConfig,
        runtime_dir: Path,
        evidence_dir: Path,
        ssh_key: SshKey,
        runner: LoopThread,
        host: LibvirtHost,
        timeouts: Timeouts,
        agent_timeout_s: int = AGENT_RESPONSE_TIMEOUT_S,
    ) -> None:
        super().__init__(name, image, config, runtime_dir, evidence_dir, ssh_key, timeouts)
        self.domain_name = domain_name(name)
        self.host = host
        self.agent_timeout_s = agent_timeout_s
        self.files = DomainFiles(
            root=runtime_dir / "root.qcow2",
            swap=runtime_dir / "swap.qcow2",
            data=runtime_dir / "data.qcow2",
            console_socket=runtime_dir / "console.sock",
            nvram=config.firmware.ovmf_vars,
            owner=(os.getuid(), os.getgid()),
            esp=runtime_dir / "esp.qcow2" if config.esp is not None else None,
        )
        self.save_path = runtime_dir / "save.img"
        self.events = EventLog(evidence_dir / "libvirt-events.jsonl", lv_events.libvirt_signals)
        self._console_server = ConsoleServer(
            runner, self.files.console_socket, self.console, persistent=True
        )
        self._dom: libvirt.virDomain | None = None
        self._callbacks: list[int] = []
        self._forwarded_id: int | None = None
        self._platform: dict[str, Any] = {}
        # When set, a ready guest comes from a restore of this checkpoint, not a cold boot.
        self.ready_from: ckpt.Checkpoint | None = None
        self._pool = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix=self.domain_name)

    # -- the domain --------------------------------------------------------------------------

    @property
    def dom(self) -> libvirt.virDomain:
        """The domain, looked up afresh: a virDomain keeps the id it had when looked up, and
        restore, start and revert give the domain a new one."""
        if self._dom is None:
            raise HarnessError(f"{self.name}: domain {self.domain_name} is not defined")
        return call("lookup", lambda: self.host.conn.lookupByUUID(self._dom.UUID()))  # type: ignore[union-attr]

    def _define(self) -> None:
        if self._dom is not None:
            return
        conn = self.host.conn
        self._console_server.listen()
        # SELinux: sVirt labels what the XML names; QEMU's own data directory it does not.
        unnamed = [self.config.data_dir] if self.config.data_dir else []
        svirt = selinux.svirt_for_domain(conn.getCapabilities, unnamed)
        xml = build_domain_xml(self.domain_name, self.config, self.files, self.host.owner, svirt)
        (self.evidence_dir / "domain.xml").write_text(xml)
        self.host.check_emulator(self.config.binary, self.config.machine)
        self._dom = call("defineXML", lambda: conn.defineXML(xml))
        self._callbacks = lv_events.subscribe(conn, self._dom, self.events)

    @property
    def running(self) -> bool:
        return self._dom is not None and bool(call("isActive", self.dom.isActive))

    @property
    def host_lifecycle(self) -> HostLifecycle:
        return self

    def state(self) -> str:
        state, reason = call("state", lambda: self.dom.state(0))
        name = STATES.get(state, str(state))
        return f"{name}/{_reason_name(state, reason)}"

    def note_state(self, after: str) -> str:
        state = self.state()
        self.events.append("STATE", {"after": after, "state": state})
        return state

    # -- lifecycle ---------------------------------------------------------------------------

    def cold_boot(self) -> dict[str, float]:
        """``virsh start`` on a fresh overlay, swap and scratch disk."""
        self.stop()
        self._define()
        disks.create_overlay(self.image.disk, self.files.root)
        if self.config.esp is not None and self.files.esp is not None:
            disks.create_overlay(self.config.esp, self.files.esp, backing_format="raw")
        self.replace_swap_disk()
        disks.create_scratch(self.files.data, "qcow2")
        if self.has_managed_save():
            call("managedSaveRemove", lambda: self.dom.managedSaveRemove(0))
        return self._boot_with(lambda: self._start(lambda: self.dom.create(), "start"))

    def _looks_up(self) -> bool:
        return self.running and self._ssh.connected and self.state().startswith("running")

    def power_on(self) -> None:
        """``virsh start``: a cold boot, an S4 resume, or the restore of a managed save."""
        if self.running:
            raise HarnessError(f"{self.name}: power_on while the domain is still running")
        self._start(lambda: self.dom.create(), "start")

    def _start(self, action: Any, operation: str) -> None:
        self._ssh.close()
        call(operation, action)
        self._after_start()

    def _after_start(self) -> None:
        dom = self.dom
        call(
            "agentSetResponseTimeout", lambda: dom.agentSetResponseTimeout(self.agent_timeout_s, 0)
        )
        self._platform = self._query_platform()

    def stop(self) -> None:
        self._ssh.close()
        self._forwarded_id = None
        if self._dom is not None and self.running:
            try:
                call("destroy", self.dom.destroy)
            except HarnessError as exc:
                log.debug("destroy: %s", exc)

    def remove(self) -> None:
        """Stop, then undefine the domain with its managed save and snapshots; QEMU's own log
        (kept by libvirt's virtlogd) is copied into the evidence first."""
        self.stop()
        qemu_log = self.host.qemu_log_dir / f"{self.domain_name}.log"
        if qemu_log.is_file():
            shutil.copyfile(qemu_log, self.evidence_dir / "qemu-output.log")
        if self._dom is not None:
            lv_events.unsubscribe(self.host.conn, self._callbacks)
            remove_domain(self._dom)
            self._dom = None
        self._console_server.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- readiness and commands --------------------------------------------------------------

    def wait_ready(self, stage: str, timeout: float) -> dict[str, float]:
        """The agent answers (libvirt's passthrough), ssh is forwarded to this QEMU and
        answers with the per-run key."""
        deadline = time.monotonic() + timeout
        start = time.monotonic()
        self._wait_agent(stage, deadline)
        timings = {"agent": time.monotonic() - start}
        self._forward_ssh()
        self._ssh_ready(stage, deadline)
        timings["ssh"] = time.monotonic() - start
        if self.image.cloud and stage == "boot":
            timings.update(cloud_ready.settle(self, self.image.name, deadline))
        return timings

    def _wait_agent(self, stage: str, deadline: float) -> None:
        """Ping until the agent answers; while libvirt says it is not connected, wait for its
        AGENT/CONNECTED event instead of asking again."""
        limit = deadline - time.monotonic()
        console_mark = self.console.mark()
        watch = self.lockup_watch()
        port_watch = self.agent_port_watch() if stage == "resume" else None
        while True:
            mark = self.events.mark()
            self._check_not_stalled(stage, console_mark, watch)
            self._check_agent_port(stage, port_watch)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BootTimeout(
                    f"{stage}: guest agent",
                    limit,
                    f"domain {self.state()}; {self._agent_silence()}{self.serial_tail()}",
                )
            if not self.running:
                raise AgentError(f"{stage}: the domain stopped while waiting for the guest agent")
            try:
                self._agent_call("guest-ping", None, min(AGENT_ATTEMPT_SECONDS, remaining))
                return
            except AgentError as exc:
                if "not connected" in str(exc):
                    self.events.wait_for(
                        {"AGENT/CONNECTED"}, mark, min(AGENT_ATTEMPT_SECONDS, remaining)
                    )

    def _forward_ssh(self) -> None:
        """Each new QEMU process needs its own host forward to the guest's sshd."""
        dom_id = self.dom.ID()
        if dom_id == self._forwarded_id:
            return
        self._ssh.close()
        rule = f"tcp:127.0.0.1:{self._ssh_port}-:22"
        out = self.hmp(f"hostfwd_add {NETDEV_ID} {rule}")
        if out.strip():
            raise SetupError(f"{self.name}: hostfwd_add {rule} failed: {out.strip()}")
        self._forwarded_id = dom_id

    def agent_shell(self, script: str, timeout: float | None = None) -> CommandResult:
        limit = timeout or self.timeouts.command
        return run_script(lambda cmd, args: self._agent_call(cmd, args, limit), script, limit)

    def agent_execute(
        self, command: str, arguments: dict[str, Any] | None = None, timeout: float | None = None
    ) -> Any:
        return self._agent_call(command, arguments, timeout or self.timeouts.command)

    def _agent_call(self, command: str, arguments: dict[str, Any] | None, timeout: float) -> Any:
        request: dict[str, Any] = {"execute": command}
        if arguments:
            request["arguments"] = arguments
        dom = self.dom
        reply = call(
            f"agent {command}",
            lambda: libvirt_qemu.qemuAgentCommand(
                dom, json.dumps(request), int(max(1, timeout)), 0
            ),
        )
        return json.loads(reply).get("return") if reply else None

    def agent_fire(
        self, command: str, arguments: dict[str, Any] | None = None
    ) -> concurrent.futures.Future[Any]:
        """libvirt owns the agent channel: its guest-suspend-* go through
        virDomainPMSuspendForDuration (what dompmsuspend does); anything else is passed on."""
        target = AGENT_SUSPEND.get(command)
        if target is not None:
            return self.pm_suspend(target)
        return self._pool.submit(self.agent_execute, command, arguments)

    def hmp(self, command: str) -> str:
        dom = self.dom
        flags = libvirt_qemu.VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP
        return str(
            call(f"HMP {command}", lambda: libvirt_qemu.qemuMonitorCommand(dom, command, flags))
        )

    def qmp(self, command: str, arguments: dict[str, Any] | None = None) -> Any:
        dom = self.dom
        request = json.dumps({"execute": command, "arguments": arguments or {}})
        reply = call(f"QMP {command}", lambda: libvirt_qemu.qemuMonitorCommand(dom, request, 0))
        return json.loads(reply).get("return")

    # -- power signals -----------------------------------------------------------------------

    def wait_signal(self, signal: Signal, since: int, timeout: float) -> RecordedEvent | None:
        wanted = {signal.value, Signal.POWERED_OFF.value}
        event = self.events.wait_for_signal(wanted, since, timeout)
        if event is not None and signal.value not in event.signals:
            raise HarnessError(
                f"the domain stopped ({event.name}) while waiting for {signal.value}: "
                f"{self.serial_tail()}"
            )
        if event is not None and Signal.POWERED_OFF.value in event.signals:
            self._ssh.close()
        return event

    def wake_from_ram(self) -> None:
        call("dompmwakeup", lambda: self.dom.pMWakeup(0))

    def power_cut(self) -> None:
        self._ssh.close()
        call("destroy", self.dom.destroy)

    def send_key(self, key: str) -> None:
        code = LINUX_KEYCODES[key]
        call("send-key", lambda: self.dom.sendKey(libvirt.VIR_KEYCODE_SET_LINUX, 100, [code], 1, 0))

    def set_link(self, up: bool) -> None:
        """``virsh domif-setlink``: the interface's link state changed through libvirt."""
        root = ET.fromstring(call("XMLDesc", lambda: self.dom.XMLDesc(0)))
        interface = root.find("./devices/interface")
        if interface is None:
            raise HarnessError(f"{self.name}: the domain has no interface")
        link = interface.find("link")
        if link is None:
            link = ET.SubElement(interface, "link")
        link.set("state", "up" if up else "down")
        xml = ET.tostring(interface, encoding="unicode")
        flags = libvirt.VIR_DOMAIN_AFFECT_LIVE
        call("domif-setlink", lambda: self.dom.updateDeviceFlags(xml, flags))

    def fail_data_disk_io(self) -> None:
        raise SetupError(
            "blkdebug fault injection under the scratch disk needs the direct QEMU backend "
            "(--backend qemu)"
        )

    def replace_swap_disk(self) -> None:
        if self.running:
            raise HarnessError(f"{self.name}: cannot replace the swap disk of a running guest")
        disks.create_swap(self.files.swap, self.config.memory_mib, "qcow2")

    # -- host-side lifecycle -----------------------------------------------------------------

    def pm_suspend(self, target: str) -> concurrent.futures.Future[Any]:
        code = PM_TARGETS[target]
        dom = self.dom

        def suspend() -> None:
            call(
                f"dompmsuspend --target {target}",
                lambda: dom.pMSuspendForDuration(code, 0, 0),
            )

        return self._pool.submit(suspend)

    def shutdown(self, mode: str) -> None:
        flags = {
            "default": libvirt.VIR_DOMAIN_SHUTDOWN_DEFAULT,  # libvirt's order: the agent first
            "acpi": libvirt.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN,
            "agent": libvirt.VIR_DOMAIN_SHUTDOWN_GUEST_AGENT,
        }[mode]
        call(f"shutdown --mode {mode}", lambda: self.dom.shutdownFlags(flags))

    def save(self) -> Path:
        self._ssh.close()
        self.save_path.unlink(missing_ok=True)
        call("save", lambda: self.dom.save(str(self.save_path)))
        return self.save_path

    def capture_checkpoint(self, directory: Path) -> ckpt.Checkpoint:
        """Freeze this ready domain into ``directory`` (``virsh save``, then copies of its
        disks at that point); the domain is shut off afterwards."""
        started = time.monotonic()
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        state = directory / "state.libvirt-save"
        self._ssh.close()  # no session of ours is frozen into the guest
        try:
            call("save", lambda: self.dom.save(str(state)))
            frozen = ckpt.freeze_disks(self._disk_paths(), directory)
        except (HarnessError, OSError) as exc:
            self.stop()
            error = ckpt.explain_failure(exc, directory)
            shutil.rmtree(directory, ignore_errors=True)  # no half-written checkpoint
            raise error from exc
        state.chmod(0o400)
        return ckpt.Checkpoint(
            name=self.name, state=state, disks=frozen, capture_s=time.monotonic() - started
        )

    def start_from(self, checkpoint: ckpt.Checkpoint) -> dict[str, float]:
        """``virsh restore`` of ``checkpoint`` on fresh copies of its disks (the domain's own
        paths), then wait until ready; the guest's clock is set from the host's."""
        self.stop()
        if self.has_managed_save():
            call("managedSaveRemove", lambda: self.dom.managedSaveRemove(0))
        started = time.monotonic()
        ckpt.thaw_disks(checkpoint, self._disk_paths())
        timings = {"disks": time.monotonic() - started}
        conn = self.host.conn
        self._start(lambda: conn.restore(str(checkpoint.state)), "restore of the checkpoint")
        timings["restore"] = time.monotonic() - started
        ready = self._ready_or_timeout(RESTORE_STAGE, self.timeouts.resume)
        self.agent_execute("guest-set-time", {"time": time.time_ns()})
        timings.update({f"ready_{k}": v for k, v in ready.items()})
        timings["total"] = time.monotonic() - started
        return timings

    def _disk_paths(self) -> dict[str, Path]:
        return {"root": self.files.root, "swap": self.files.swap, "data": self.files.data}

    def restore(self, path: Path | None = None) -> None:
        source = str(path or self.save_path)
        conn = self.host.conn
        self._start(lambda: conn.restore(source), "restore")

    def managed_save(self) -> None:
        self._ssh.close()
        call("managedsave", lambda: self.dom.managedSave(0))

    def has_managed_save(self) -> bool:
        return bool(call("hasManagedSaveImage", lambda: self.dom.hasManagedSaveImage(0)))

    def snapshot_halt(self, name: str) -> None:
        xml = f"<domainsnapshot><name>{name}</name></domainsnapshot>"
        flags = libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_HALT
        self._ssh.close()
        call("snapshot-create --halt", lambda: self.dom.snapshotCreateXML(xml, flags))

    def revert(self, name: str) -> None:
        dom = self.dom

        def revert() -> None:
            snapshot = dom.snapshotLookupByName(name, 0)
            dom.revertToSnapshot(snapshot, libvirt.VIR_DOMAIN_SNAPSHOT_REVERT_RUNNING)
            snapshot.delete(0)

        self._start(revert, "snapshot-revert")

    def resume(self) -> None:
        call("resume", self.dom.resume)

    def snapshot_disks(self, tag: str) -> None:
        self._require_stopped("snapshot its disks")
        for path in self._qcow2_disks():
            disks.run_tool(["qemu-img", "snapshot", "-c", tag, str(path)])

    def revert_disks(self, tag: str) -> None:
        self._require_stopped("revert its disks")
        for path in self._qcow2_disks():
            disks.run_tool(["qemu-img", "snapshot", "-a", tag, str(path)])

    def _qcow2_disks(self) -> list[Path]:
        esp = [self.files.esp] if self.files.esp is not None else []
        return [self.files.root, self.files.swap, self.files.data, *esp]

    def _require_stopped(self, what: str) -> None:
        if self.running:
            raise HarnessError(f"{self.name}: cannot {what} while the domain runs")

    # -- facts -------------------------------------------------------------------------------

    def platform_facts(self) -> dict[str, Any]:
        return dict(self._platform)

    def _query_platform(self) -> dict[str, Any]:
        try:
            version = self.qmp("query-version")
            machine = self.qmp("query-current-machine")
        except LibvirtError as exc:
            return {**self.host.facts(), "error": str(exc)}
        qemu = version["qemu"]
        return {
            **self.host.facts(),
            "qemu_version": f"{qemu['major']}.{qemu['minor']}.{qemu['micro']}",
            "qemu_package": version.get("package", "").strip(),
            "accel": self.config.accel,
            "machine": self.config.machine,
            "firmware": self.config.firmware.kind,
            "wakeup_suspend_support": machine.get("wakeup-suspend-support"),
            "domain": self.domain_name,
        }


def _reason_name(state: int, reason: int) -> str:
    table = {
        libvirt.VIR_DOMAIN_RUNNING: (
            "unknown booted migrated restored from_snapshot unpaused migration_canceled "
            "save_canceled wakeup crashed postcopy postcopy_failed"
        ),
        libvirt.VIR_DOMAIN_PAUSED: (
            "unknown user migration save dump ioerror watchdog from_snapshot shutting_down "
            "snapshot crashed starting_up postcopy postcopy_failed api_error"
        ),
        libvirt.VIR_DOMAIN_SHUTOFF: (
            "unknown shutdown destroyed crashed migrated saved failed from_snapshot daemon"
        ),
        libvirt.VIR_DOMAIN_PMSUSPENDED: "unknown",
    }
    names = table.get(state, "").split()
    return names[reason] if 0 <= reason < len(names) else str(reason)


__all__ = ["LibvirtMachine"]
