"""The libvirt-guests service run for real: the distribution's ``libvirt-guests.sh stop|start``
with a configuration file the harness writes.

The script reads a fixed path (``/etc/default/libvirt-guests`` on Debian,
``/etc/sysconfig/libvirt-guests`` on Fedora) and keeps its list of saved guests under
``/var/lib/libvirt``. It runs in a private mount namespace where the harness's file is bound
over that path and a private directory over its state, so the host's own configuration and
state are neither read nor changed. virsh inside still talks to the same libvirtd.

The service acts on every running domain of that daemon, so each action holds a host-wide
lock (``host_lock``): two runs' services never act at once. A daemon the harness starts is
private to its run (see harness.machines.libvirt.daemon), so there the service only ever sees
that run's own domains; on a daemon the user runs, the case skips while it runs other guests.
"""

from __future__ import annotations

import concurrent.futures
import re
import shlex
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from harness.errors import GuestFault, SetupError, StageTimeout
from harness.machines.protocol import Machine, Signal
from harness.transitions.entries import PlatformEntry
from harness.transitions.host import ANY_GUEST, host_of
from harness.transitions.host_lock import GUESTS_SERVICE_LOCK, host_lock
from harness.transitions.logind import LogindConfigured
from harness.transitions.marks import Marks
from harness.transitions.parts import Transition
from harness.transitions.requests import Request
from harness.transitions.wakes import wait_guest_ready

SCRIPTS = (Path("/usr/lib/libvirt/libvirt-guests.sh"), Path("/usr/libexec/libvirt-guests.sh"))
STATE_DIRS = ("/var/lib/libvirt", "/var/lock")  # its list file and its "started" lock file


@dataclass(frozen=True)
class GuestsServiceConfig:
    """The settings of /etc/default/libvirt-guests the harness varies."""

    uris: str
    on_shutdown: str = "suspend"  # suspend (managedsave) or shutdown
    on_boot: str = "start"  # start (what was running) or ignore
    parallel_shutdown: int = 0
    shutdown_timeout: int = 300
    start_delay: int = 0
    bypass_cache: bool = False
    sync_time: bool = False

    def render(self) -> str:
        values = {
            "URIS": self.uris,
            "ON_SHUTDOWN": self.on_shutdown,
            "ON_BOOT": self.on_boot,
            "PARALLEL_SHUTDOWN": str(self.parallel_shutdown),
            "SHUTDOWN_TIMEOUT": str(self.shutdown_timeout),
            "START_DELAY": str(self.start_delay),
            "BYPASS_CACHE": str(int(self.bypass_cache)),
            "SYNC_TIME": str(int(self.sync_time)),
        }
        lines = [f"{key}={shlex.quote(value)}" for key, value in values.items()]
        return "# written by s3s4-harness\n" + "\n".join(lines) + "\n"

    @property
    def id(self) -> str:
        parts = [self.on_shutdown, self.on_boot]
        if self.parallel_shutdown:
            parts.append(f"parallel{self.parallel_shutdown}")
        if self.bypass_cache:
            parts.append("bypass-cache")
        if self.sync_time:
            parts.append("sync-time")
        if self.start_delay:
            parts.append(f"delay{self.start_delay}")
        return "-".join(parts)


@dataclass(frozen=True, kw_only=True)
class ServiceRun:
    action: str
    exit_status: int
    output: str
    seconds: float

    def to_json(self) -> dict[str, object]:
        return {
            "action": self.action,
            "exit_status": self.exit_status,
            "seconds": round(self.seconds, 2),
            "output": self.output.splitlines()[-40:],
        }


def find_script() -> tuple[Path, Path]:
    """The service script and the configuration path it sources."""
    for script in SCRIPTS:
        if script.is_file():
            return script, config_path_of(script.read_text())
    raise SetupError(
        "libvirt-guests.sh not found: run ./run setup (installs libvirt-daemon-system)"
    )


def config_path_of(script_text: str) -> Path:
    """``$sysconfdir/default/libvirt-guests`` resolved from the script's own lines."""
    sysconfdir = re.search(r'^sysconfdir="([^"]+)"', script_text, re.MULTILINE)
    sourced = re.search(r'^\s*\.\s+"\$sysconfdir"/(\S+)', script_text, re.MULTILINE)
    if not sysconfdir or not sourced:
        raise SetupError("cannot tell which configuration file libvirt-guests.sh reads")
    return Path(sysconfdir.group(1)) / sourced.group(1)


class GuestsService:
    """Runs ``stop`` and ``start`` with one configuration and one private state directory."""

    def __init__(self, config: GuestsServiceConfig, work_dir: Path, timeout: float) -> None:
        self.config = config
        self.work_dir = work_dir
        self.timeout = timeout
        self.script, self.config_target = find_script()
        if not self.config_target.exists():
            raise SetupError(
                f"{self.config_target} does not exist, so nothing can be bound over it: "
                "reinstall libvirt-daemon-system"
            )
        work_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.config_file = work_dir / "libvirt-guests.conf"
        self.config_file.write_text(config.render())
        self.runs: list[ServiceRun] = []

    def stop(self) -> ServiceRun:
        return self._run("stop")

    def start(self) -> ServiceRun:
        return self._run("start")

    def once(self, action: str) -> ServiceRun:
        """Run ``action`` unless it already ran: the service acts on every guest at once,
        and each guest's cycle asks for it."""
        for run in self.runs:
            if run.action == action:
                return run
        return self._run(action)

    def _run(self, action: str) -> ServiceRun:
        q = shlex.quote  # the paths reach a shell: quoted, whatever they hold
        binds = [f"mount --bind {q(str(self.config_file))} {q(str(self.config_target))}"]
        for index, directory in enumerate(STATE_DIRS):
            private = self.work_dir / f"state{index}"
            private.mkdir(exist_ok=True)
            binds.append(f"mount --bind {q(str(private))} {q(directory)}")
        script = " && ".join(binds) + f" && exec {q(str(self.script))} {q(action)}"
        argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]
        try:
            with host_lock(GUESTS_SERVICE_LOCK, self.timeout, f"libvirt-guests {action}"):
                started = time.monotonic()
                result = subprocess.run(
                    argv,
                    capture_output=True,
                    text=True,
                    timeout=self.timeout,
                    check=False,
                    stdin=subprocess.DEVNULL,
                )
        except subprocess.TimeoutExpired as exc:
            raise StageTimeout(f"libvirt-guests {action}", self.timeout) from exc
        except FileNotFoundError as exc:
            raise SetupError("unshare not found: install util-linux") from exc
        run = ServiceRun(
            action=action,
            exit_status=result.returncode,
            output=result.stdout + result.stderr,
            seconds=time.monotonic() - started,
        )
        self.runs.append(run)
        if "mount:" in result.stderr or "unshare:" in result.stderr:
            raise SetupError(
                f"libvirt-guests {action}: cannot set up its private namespace (needs root): "
                f"{result.stderr.strip()[-300:]}"
            )
        return run


# -- the service as a transition of each guest ---------------------------------------------


@dataclass(frozen=True)
class ServiceStop:
    """Host shutdown as libvirt-guests sees it: ``libvirt-guests.sh stop``."""

    service: GuestsService

    @property
    def description(self) -> str:
        return f"libvirt-guests stop (ON_SHUTDOWN={self.service.config.on_shutdown})"

    def send(self, machine: Machine) -> None:
        run = self.service.once("stop")
        host_of(machine).note_state("libvirt-guests stop")
        if run.exit_status != 0:
            raise GuestFault(
                "libvirt-guests", f"stop exited {run.exit_status}: {run.output[-300:]}"
            )


@dataclass(frozen=True)
class ServiceStart:
    """Host boot as libvirt-guests sees it: ``libvirt-guests.sh start``. With ON_BOOT=ignore
    the guest must stay off; the harness then starts it itself to prove what was kept."""

    service: GuestsService
    keeps_vm_process: ClassVar[bool] = False

    def perform(self, machine: Machine, marks: Marks, timings: dict[str, float]) -> None:
        config = self.service.config
        run = self.service.once("start")
        host = host_of(machine)
        state = host.note_state("libvirt-guests start")
        if run.exit_status != 0:
            raise GuestFault(
                "libvirt-guests", f"start exited {run.exit_status}: {run.output[-300:]}"
            )
        off = state.startswith("shutoff")
        if config.on_boot == "ignore":
            if not off:
                raise GuestFault("libvirt-guests", f"ON_BOOT=ignore, yet the guest is {state}")
            machine.power_on()
            host.note_state("harness start")
        elif off:
            raise GuestFault("libvirt-guests", f"ON_BOOT=start, yet the guest is {state}")
        limit = (
            machine.timeouts.boot if config.on_shutdown == "shutdown" else machine.timeouts.agent
        )
        wait_guest_ready(machine, limit, timings)


AGENT_DISCONNECTED = "AGENT/DISCONNECTED"
# The script's own words when a guest is still running at the end of SHUTDOWN_TIMEOUT: one
# guest at a time, and PARALLEL_SHUTDOWN's.
TIMEOUT_WORDS = ("failed to complete in time", "Timeout expired while shutting down domains")


@dataclass(frozen=True)
class AgentStopped:
    """``then``, once the guest's agent is stopped and libvirt has seen it go: libvirt's
    shutdown then presses the ACPI power button, as for a guest that runs no agent (with an
    agent, libvirt asks it first, and the guest powers off whatever its power key does)."""

    then: Request

    @property
    def description(self) -> str:
        return f"{self.then.description}, the guest agent stopped"

    def send(self, machine: Machine) -> concurrent.futures.Future[object] | None:
        mark = machine.events.mark()
        result = machine.run("systemctl stop qemu-guest-agent")
        if not result.ok:
            raise GuestFault(
                "request", f"systemctl stop qemu-guest-agent: {result.stderr.strip()[-300:]}"
            )
        limit = machine.timeouts.agent
        if machine.events.wait_for((AGENT_DISCONNECTED,), mark, limit) is None:
            raise GuestFault("request", f"libvirt saw no {AGENT_DISCONNECTED} within {limit:.0f}s")
        return self.then.send(machine)


@dataclass(frozen=True)
class ServiceShutdownEntry:
    """ON_SHUTDOWN=shutdown as the service left the guest: shut off passes; still running or
    asleep once ``stop`` returned is a FAIL in the script's own words (SHUTDOWN_TIMEOUT was
    reached), naming what libvirt says the guest is instead."""

    service: GuestsService

    def wait(
        self,
        machine: Machine,
        marks: Marks,
        answer: concurrent.futures.Future[object] | None,
        description: str,
    ) -> None:
        # stop returns once the guests are off or SHUTDOWN_TIMEOUT ran out: libvirt's state
        # says which at once; a guest shut off has its event on the way.
        state = host_of(machine).note_state("libvirt-guests stop returned")
        if state.startswith("shutoff"):
            limit = machine.timeouts.agent
            if machine.events.wait_for_signal((Signal.POWERED_OFF.value,), marks.events, limit):
                return
            raise GuestFault("libvirt-guests", f"{state}, yet no power-off event in {limit:.0f}s")
        run = self.service.once("stop")
        words = "; ".join(
            line.strip()
            for line in run.output.splitlines()
            if any(said in line for said in TIMEOUT_WORDS)
        )
        slept = (
            f"guest {state.split('/', 1)[0]}"
            if not state.startswith("running")
            else "guest still running"
        )
        timeout = self.service.config.shutdown_timeout
        reached = f"SHUTDOWN_TIMEOUT ({timeout}s) reached" if words else "stop returned"
        raise GuestFault(
            "libvirt-guests",
            f"{description}: {reached}, {slept}, not shut off (libvirt's state {state}); "
            f"the script said: {words or run.output.strip()[-300:] or 'nothing'}",
        )


def sleeping_guest_shutdown(service: GuestsService) -> Transition:
    """ON_SHUTDOWN=shutdown on a guest whose power key suspends it and that runs no agent:
    the service's ``virsh shutdown`` presses the power button, the guest pmsuspends, and the
    service waits out SHUTDOWN_TIMEOUT. Judged by ``ServiceShutdownEntry``."""
    return Transition(
        id=f"libvirt-guests-{service.config.id}-powerkey-suspend",
        needs=ANY_GUEST,
        request=LogindConfigured(
            then=AgentStopped(ServiceStop(service)), settings=(("HandlePowerKey", "suspend"),)
        ),
        entry=ServiceShutdownEntry(service),
        wake=ServiceStart(service),
        expected_events=(Signal.SHUTDOWN, Signal.POWERED_OFF),
    )


def service_transition(service: GuestsService) -> Transition:
    """Each guest's view of one stop/start of the service with ``service``'s settings."""
    config = service.config
    if config.on_shutdown == "shutdown":
        entry = PlatformEntry(signals=(Signal.POWERED_OFF,))
        events = (Signal.SHUTDOWN, Signal.POWERED_OFF)
    else:
        entry = PlatformEntry(signals=(Signal.SAVED,))
        events = (Signal.SAVED, Signal.RESTORED)
    # Without SYNC_TIME a restored guest's clock lags by the time it was saved; the harness
    # then sets it (and keeps the lag). With SYNC_TIME the service's own sync is what is judged.
    resync = config.on_shutdown == "suspend" and not (
        config.sync_time and config.on_boot == "start"
    )
    return Transition(
        id=f"libvirt-guests-{config.id}",
        needs=ANY_GUEST,
        request=ServiceStop(service),
        entry=entry,
        wake=ServiceStart(service),
        expected_events=events,
        resync_clock=resync,
    )
