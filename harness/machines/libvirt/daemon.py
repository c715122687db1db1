"""A private libvirtd (and its virtlogd) that the harness starts where no daemon answers, e.g.
on a CI runner without systemd; both run as the harness's children and stop when it ends.

Private: each runs in a mount namespace of its own where directories under the run directory
are bound over libvirt's configuration, runtime, state, cache and log directories. The daemon
reads a copy of the host's configuration files with the harness's settings added, keeps its
domains, sockets and logs in the run directory, and never sees the host's own domains; the
host's files are not changed. The harness reaches it at
``qemu:///system?socket=<state>/run/libvirt-sock``. Both command lines name the run directory
(their pid files are there), so the watchdog also kills them if the harness is killed outright.

A host whose ``qemu:///system`` answers (a Fedora host with socket activation, a daemon the user
runs) never gets here, unless a libvirt stack of another suite is asked for
(harness.setup.libvirt_stack): then the daemon always is the harness's own, and that root's
``/usr`` and loader cache are bound over the host's in the same namespace, so the suite's
libvirtd, virtlogd and the QEMU they start run with their own programs, libraries and data
while every other path (run directory, disks, sockets, /dev) stays the host's. Its
configuration starts from the suite's own files, not the host's.
"""

from __future__ import annotations

import logging
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from harness.errors import SetupError
from harness.process import ChildProcess
from harness.setup.libvirt_modular import HOST_LIBVIRTD, DaemonPrograms

log = logging.getLogger(__name__)

HOST_CONFIG_DIR = Path("/etc/libvirt")
# The private directory (under the state directory) bound over each of libvirt's own.
BOUND_DIRS = {
    "etc": "/etc/libvirt",
    "run": "/run/libvirt",
    "lib": "/var/lib/libvirt",
    "cache": "/var/cache/libvirt",
    "log": "/var/log/libvirt",
}
# QEMU runs as root so that it can open the harness's 0700 run directory; libvirt otherwise
# also re-probes QEMU's capabilities on every call when the cache owner does not match.
QEMU_SETTINGS = {"user": "root", "group": "root"}
# The socket the harness connects to is where it looks for it, whatever the host's file says.
LIBVIRTD_SETTINGS = {"unix_sock_dir": BOUND_DIRS["run"]}
READY_POLL_SECONDS = 0.2  # libvirtd has no readiness notification without systemd
AF_UNIX_PATH_MAX = 107  # sun_path is 108 bytes with its NUL
# A stack's files bound over the host's, in this order: /usr last, since the binds before it
# still run the host's mkdir and mount.
STACK_BINDS = (("etc/ld.so.cache", "/etc/ld.so.cache"), ("usr", "/usr"))
# Binding /usr replaces /bin, /lib and /lib64 only where they are links into it.
MERGED_USR_LINKS = ("bin", "lib", "lib64", "sbin")
# Runs in the new namespace: bind each "private target" pair of arguments up to "--" (making
# a missing target directory, e.g. /run/libvirt on a host that never ran libvirtd), then exec
# the rest. The paths are arguments, never part of the script.
BIND_THEN_EXEC = (
    'while [ "$1" != -- ]; do { [ -e "$2" ] || mkdir -p "$2"; } && mount --bind "$1" "$2" '
    '|| exit 1; shift 2; done; shift; exec "$@"'
)


def with_settings(text: str, settings: dict[str, str]) -> str:
    """A libvirt configuration file's text with each of ``settings`` set once, at the end
    (any line of the host's that sets one of those keys is dropped)."""
    keys = "|".join(re.escape(key) for key in settings)
    kept = [line for line in text.splitlines() if not re.match(rf"\s*({keys})\s*=", line)]
    added = [f'{key} = "{value}"' for key, value in settings.items()]
    return "\n".join([*kept, "", "# set by s3s4-harness for its private daemon", *added]) + "\n"


def write_private_config(
    target: Path, source: Path = HOST_CONFIG_DIR, daemon_config: str = "libvirtd.conf"
) -> None:
    """The host's configuration files (the top level of ``source``, not its domain, network
    or hook definitions) copied to ``target``, with the harness's settings added (the
    daemon's own to ``daemon_config``)."""
    target.mkdir(mode=0o700, parents=True, exist_ok=True)
    for entry in sorted(source.iterdir()) if source.is_dir() else []:
        if entry.is_file():
            shutil.copy2(entry, target / entry.name)
    for name, settings in (("qemu.conf", QEMU_SETTINGS), (daemon_config, LIBVIRTD_SETTINGS)):
        path = target / name
        host_text = path.read_text() if path.is_file() else ""
        path.write_text(with_settings(host_text, settings))
        path.chmod(0o600)


def in_private_namespace(
    state_dir: Path, argv: list[str], usr_root: Path | None = None
) -> list[str]:
    """``argv`` run in a new mount namespace with ``state_dir``'s directories bound over
    libvirt's own, and with ``usr_root``'s /usr and loader cache over the host's."""
    pairs = [(state_dir / name, target) for name, target in BOUND_DIRS.items()]
    if usr_root is not None:
        pairs += [(usr_root / name, target) for name, target in STACK_BINDS]
    binds = [str(arg) for pair in pairs for arg in pair]
    return [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        BIND_THEN_EXEC,
        "sh",
        *binds,
        "--",
        *argv,
    ]


def merged_usr(root: Path = Path("/")) -> bool:
    """``root``'s /bin, /lib, /lib64 and /sbin, where they exist, are links into its /usr."""
    return all(
        (root / name).is_symlink() or not (root / name).exists() for name in MERGED_USR_LINKS
    )


class LibvirtDaemon:
    """virtlogd then libvirtd, in the foreground as children of the harness (so they die with
    it), in a private namespace over ``state_dir``, with their output in ``log_dir``; the
    host's programs, or with ``usr_root`` those of that root (a libvirt stack). ``programs``
    names the daemon in libvirtd's place (virtqemud) and where it is (see
    harness.setup.libvirt_modular)."""

    def __init__(
        self,
        state_dir: Path,
        log_dir: Path,
        usr_root: Path | None = None,
        programs: DaemonPrograms = HOST_LIBVIRTD,
    ) -> None:
        self.state_dir = state_dir
        self.log_dir = log_dir
        self.usr_root = usr_root
        self.programs = programs
        self._processes: dict[str, ChildProcess] = {}  # in start order

    @property
    def socket(self) -> Path:
        return self.state_dir / "run" / self.programs.socket_name

    @property
    def uri(self) -> str:
        return f"qemu:///system?socket={self.socket}"

    @property
    def qemu_log_dir(self) -> Path:
        """Where the daemon's virtlogd keeps each domain's QEMU output."""
        return self.state_dir / "log" / "qemu"

    def start(self, ready: Callable[[], bool], timeout: float) -> float:
        """Start both daemons and wait until ``ready()`` holds; the seconds it took."""
        self._check_programs()
        if len(str(self.socket)) > AF_UNIX_PATH_MAX:
            raise SetupError(
                f"{self.socket} is too long a path for libvirtd's socket: set TMPDIR to a "
                "shorter directory"
            )
        self._prepare()
        started = time.monotonic()
        for tool in ("virtlogd", self.programs.name):
            # A stack's own programs, by their path inside the namespace (not the host's PATH).
            program = f"/usr/sbin/{tool}" if self.usr_root else self.programs.program(tool)
            argv = [program, "--pid-file", str(self.state_dir / f"{tool}.pid")]
            process = ChildProcess(
                in_private_namespace(self.state_dir, argv, self.usr_root),
                self.log_dir / f"{tool}.log",
            )
            process.start()
            self._processes[tool] = process
        deadline = started + timeout
        virtlogd_socket = self.state_dir / "run" / "virtlogd-sock"
        while not (virtlogd_socket.exists() and ready()):
            self._check_running()
            if time.monotonic() > deadline:
                self.stop()
                raise SetupError(
                    f"{self.programs.name} did not answer within {timeout:.0f}s; "
                    f"see {self.log_dir / (self.programs.name + '.log')}"
                )
            time.sleep(READY_POLL_SECONDS)
        return time.monotonic() - started

    def _check_programs(self) -> None:
        if shutil.which("unshare") is None:
            raise SetupError("unshare not found: run ./run setup (installs util-linux)")
        if self.usr_root is None:
            for tool in ("virtlogd", self.programs.name):
                if shutil.which(self.programs.program(tool)) is None:
                    raise SetupError(
                        f"{tool} not found: run ./run setup (installs libvirt-daemon-system)"
                    )
            return
        for tool in ("virtlogd", "libvirtd"):
            if not (self.usr_root / "usr/sbin" / tool).is_file():
                raise SetupError(f"{self.usr_root} has no usr/sbin/{tool}: not a libvirt stack")
        if not merged_usr():
            raise SetupError(
                "a libvirt stack runs from its own /usr bound over the host's, which needs a "
                "merged /usr on the host (/bin, /lib, /lib64 links into /usr)"
            )

    def _prepare(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        source = self.programs.config_dir or HOST_CONFIG_DIR
        if self.usr_root is not None:
            source = self.usr_root / "etc/libvirt"
        write_private_config(self.state_dir / "etc", source, self.programs.config_name)
        for name in BOUND_DIRS:
            (self.state_dir / name).mkdir(mode=0o700, exist_ok=True)

    def _check_running(self) -> None:
        for tool, process in self._processes.items():
            if not process.running:
                tail = process.output_tail(400).replace("\n", " | ")
                self.stop()
                raise SetupError(f"{tool} exited at start: {tail}")

    def stop(self) -> None:
        """libvirtd first (it may still talk to virtlogd), then virtlogd."""
        for process in reversed(self._processes.values()):
            process.kill(grace=15.0)
        self._processes.clear()

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._processes.values() if p.pid is not None]


def installed() -> bool:
    return shutil.which("libvirtd") is not None


__all__ = [
    "LibvirtDaemon",
    "in_private_namespace",
    "installed",
    "merged_usr",
    "write_private_config",
]
