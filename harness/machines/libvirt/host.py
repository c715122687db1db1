"""One connection to libvirt with its event loop running, opened on a daemon that already
answers or on a private one the harness starts (see daemon), always the latter for a libvirt
stack of another suite (see harness.setup.libvirt_stack); domains that a harness of this host
left when it died are swept (see owner).

The harness's own libvirt client (the host's libvirt-python) talks to a stack's newer daemon
over libvirt's RPC protocol, which keeps every procedure of older clients: only what the
client asks is limited by its version, and the daemon's version is what ``getLibVersion``
reports."""

from __future__ import annotations

import logging
import os
import shutil
import threading
from pathlib import Path
from typing import Any

import libvirt

from harness.errors import SetupError
from harness.machines.libvirt.daemon import LibvirtDaemon, installed
from harness.machines.libvirt.errors import call
from harness.machines.libvirt.owner import Owner, current, is_dead_harness, owner_of, start_time
from harness.setup.libvirt_modular import HOST_LIBVIRTD, DaemonPrograms
from harness.setup.libvirt_stack import HOST as HOST_STACK
from harness.setup.libvirt_stack import LibvirtStack

log = logging.getLogger(__name__)

DEFAULT_URI = "qemu:///system"
PRIVILEGED_URIS = (DEFAULT_URI, "qemu:///session")
DOMAIN_PREFIX = "s3s4-"  # domains are named s3s4-<harness pid>-<guest>: unique per run
HOST_QEMU_LOG_DIR = Path("/var/log/libvirt/qemu")  # the host's daemon's per-domain QEMU logs
KEEPALIVE_INTERVAL_S = 5
KEEPALIVE_COUNT = 3

_event_loop_lock = threading.Lock()
_event_loop_started = False


def _start_event_loop() -> None:
    """libvirt delivers domain events only through a registered loop, run on its own thread;
    it must be registered before the first connection is opened, once per process."""
    global _event_loop_started
    with _event_loop_lock:
        if _event_loop_started:
            return
        libvirt.registerErrorHandler(lambda _ctx, _err: None, None)  # errors arrive as raises
        libvirt.virEventRegisterDefaultImpl()
        threading.Thread(target=_run_event_loop, name="libvirt-events", daemon=True).start()
        _event_loop_started = True


def _run_event_loop() -> None:
    while True:
        libvirt.virEventRunDefaultImpl()


def domain_name(guest: str, pid: int | None = None) -> str:
    return f"{DOMAIN_PREFIX}{pid or os.getpid()}-{guest}"


class LibvirtHost:
    """The libvirt the harness talks to: ``uri``'s daemon, or where it does not answer a private
    one the harness starts over ``state_dir`` (``uri`` then names that one's socket). With a
    ``stack``, always a private daemon of that stack; with ``programs`` other than the host's
    libvirtd (virtqemud), always a private daemon of those."""

    def __init__(
        self,
        uri: str,
        log_dir: Path,
        start_timeout: float,
        state_dir: Path,
        stack: LibvirtStack | None = None,
        programs: DaemonPrograms = HOST_LIBVIRTD,
    ) -> None:
        self.uri = uri
        self.log_dir = log_dir
        self.start_timeout = start_timeout
        self.state_dir = state_dir
        self.stack = stack
        self.programs = programs
        self.owner: Owner = current()
        self.daemon: LibvirtDaemon | None = None
        self.daemon_start_s: float | None = None
        self._conn: libvirt.virConnect | None = None

    @property
    def conn(self) -> libvirt.virConnect:
        if self._conn is None:
            self._conn = self._open()
        return self._conn

    def _open(self) -> libvirt.virConnect:
        _start_event_loop()
        if self.stack is not None:
            self._check_stack_allowed()
        own_daemon = self.stack is not None or self.programs != HOST_LIBVIRTD
        conn = None if own_daemon else self._try_open(self.uri)
        if conn is None:
            if not self._may_start_daemon():
                raise SetupError(
                    f"cannot connect to libvirt at {self.uri}: start libvirtd (systemctl start "
                    "libvirtd.socket) or run as root so the harness starts one; "
                    "./run setup installs libvirt-daemon-system"
                )
            usr_root = self.stack.root if self.stack is not None else None
            daemon = LibvirtDaemon(self.state_dir, self.log_dir, usr_root, self.programs)
            self.daemon = daemon
            self.daemon_start_s = daemon.start(
                lambda: self._try_open(daemon.uri, keep=False) is not None, self.start_timeout
            )
            self.uri = daemon.uri
            conn = self._try_open(self.uri)
            if conn is None:
                raise SetupError(f"libvirtd started but {self.uri} does not answer")
        conn.setKeepAlive(KEEPALIVE_INTERVAL_S, KEEPALIVE_COUNT)
        self._sweep_stale(conn)
        return conn

    @staticmethod
    def _try_open(uri: str, keep: bool = True) -> libvirt.virConnect | None:
        try:
            conn = libvirt.open(uri)
        except libvirt.libvirtError as exc:
            log.debug("libvirt %s: %s", uri, exc)
            return None
        if not keep:
            conn.close()
        return conn

    def _may_start_daemon(self) -> bool:
        """Only root can start the privileged daemon; for root, libvirt also routes
        ``qemu:///session`` to it (an unprivileged user's session daemon is spawned by libvirt
        itself on open)."""
        daemon_available = self.stack is not None or self.programs != HOST_LIBVIRTD or installed()
        return self.uri in PRIVILEGED_URIS and os.geteuid() == 0 and daemon_available

    def _check_stack_allowed(self) -> None:
        """A stack runs only as the harness's own daemon: as root, in place of the local one."""
        assert self.stack is not None
        if self.uri not in PRIVILEGED_URIS:
            raise SetupError(
                f"the libvirt stack of {self.stack.suite} runs as the harness's own daemon; "
                f"it cannot be reached at {self.uri} (leave --libvirt-uri at its default)"
            )
        if os.geteuid() != 0:
            raise SetupError(
                f"the libvirt stack of {self.stack.suite} runs as the harness's own privileged "
                "daemon, which needs root"
            )

    def _sweep_stale(self, conn: libvirt.virConnect) -> None:
        """Destroy and undefine the domains whose recorded owner is provably a harness of this
        host that died; any other domain stays, whatever its name."""
        for dom in conn.listAllDomains(0):
            if not dom.name().startswith(DOMAIN_PREFIX):
                continue
            owner = owner_of(_xml_of(dom))
            if owner is not None and is_dead_harness(owner, self.owner, start_time):
                log.info("removing stale domain %s of harness pid %d", dom.name(), owner.pid)
                remove_domain(dom)

    def owns(self, dom: libvirt.virDomain) -> bool:
        """The domain was defined by this harness process."""
        return owner_of(_xml_of(dom)) == self.owner

    @property
    def qemu_log_dir(self) -> Path:
        """Where the daemon keeps each domain's QEMU output (``<domain>.log``)."""
        return self.daemon.qemu_log_dir if self.daemon is not None else HOST_QEMU_LOG_DIR

    def facts(self) -> dict[str, Any]:
        conn = self.conn
        return {
            "backend": "libvirt",
            "libvirt_uri": self.uri,
            # The daemon's own version (a remote call), and the harness's client library's.
            "libvirt_version": _dotted(call("getLibVersion", conn.getLibVersion)),
            "libvirt_client_version": _dotted(libvirt.getVersion()),
            "libvirt_daemon": (
                "private, started by the harness" if self.daemon else "already running"
            ),
            **(self.stack.facts() if self.stack is not None else {"libvirt_stack": HOST_STACK}),
            **self.programs.facts(),
        }

    def check_emulator(self, binary: str, machine: str) -> None:
        """libvirt must be able to probe the QEMU it is to run; when it cannot, it says only
        "cause unknown", and the reason is in its own log."""
        emulator = shutil.which(binary) or binary
        try:
            self.conn.getDomainCapabilities(emulator, "x86_64", machine, None, 0)
        except libvirt.libvirtError as exc:
            said = self._probe_failure(emulator) or str(exc)
            version = _dotted(self.conn.getLibVersion())
            raise SetupError(
                f"libvirt {version} cannot use the QEMU at {emulator}: {said}; run the libvirt "
                "cases with a QEMU this libvirt can probe (the host's), or on a newer libvirt "
                "with its own QEMU (--libvirt-stack sid)"
            ) from exc

    def _probe_failure(self, emulator: str) -> str:
        """The probe failure libvirtd logged, where the harness started it (and has its log)."""
        if self.daemon is None:
            return ""
        lines = [
            "its capabilities probe failed: " + line.split(f"{emulator}: ", 1)[-1].strip()
            for log_file in sorted(self.log_dir.glob(f"{self.programs.name}*.log"))
            for line in log_file.read_text(errors="replace").splitlines()
            if "Failed to probe capabilities" in line and emulator in line
        ]
        return lines[-1] if lines else ""

    def foreign_active_domains(self) -> list[str]:
        """Active domains this harness process does not own (another user's guests)."""
        return [
            dom.name()
            for dom in self.conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)
            if not self.owns(dom)
        ]

    def close(self) -> None:
        """Close the connection; a private daemon is emptied of its domains first (their QEMUs
        would outlive libvirtd otherwise), then stopped."""
        if self._conn is not None and self.daemon is not None:
            try:
                for dom in self._conn.listAllDomains(0):
                    remove_domain(dom)
            except libvirt.libvirtError as exc:
                log.debug("emptying the private daemon: %s", exc)
        if self._conn is not None:
            try:
                self._conn.close()
            except libvirt.libvirtError as exc:
                log.debug("closing %s: %s", self.uri, exc)
            self._conn = None
        if self.daemon is not None:
            self.daemon.stop()
            self.daemon = None


def remove_domain(dom: libvirt.virDomain) -> None:
    """Destroy if active, then undefine with its managed save, snapshots and NVRAM."""
    try:
        if dom.isActive():
            dom.destroy()
    except libvirt.libvirtError as exc:
        log.debug("destroy %s: %s", dom.name(), exc)
    flags = (
        libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
        | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
        | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
    )
    try:
        dom.undefineFlags(flags)
    except libvirt.libvirtError as exc:
        log.debug("undefine %s: %s", dom.name(), exc)


def _xml_of(dom: libvirt.virDomain) -> str:
    """The domain's XML, or "" if it went away meanwhile."""
    try:
        return str(dom.XMLDesc(0))
    except libvirt.libvirtError as exc:
        log.debug("XMLDesc %s: %s", dom.name(), exc)
        return ""


def _dotted(version: int) -> str:
    return f"{version // 1000000}.{version // 1000 % 1000}.{version % 1000}"
