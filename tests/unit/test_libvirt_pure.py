"""The libvirt backend's pure parts: domain XML, event names and signals, error translation,
the libvirt-guests configuration and its host-wide lock, the private configuration and
namespace of a harness-started daemon, which domains a sweep may remove, and a libvirt stack
of another suite (its build, its files, its namespace, its cell id and facts)."""

import fcntl
import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.errors import AgentError, SetupError, StageTimeout, StateUnsupported
from harness.machines.config import Firmware, QemuConfig
from harness.machines.libvirt.daemon import (
    BOUND_DIRS,
    STACK_BINDS,
    LibvirtDaemon,
    in_private_namespace,
    merged_usr,
    write_private_config,
)
from harness.machines.libvirt.domain_xml import QEMU_NS, DomainFiles, build_domain_xml
from harness.machines.libvirt.errors import LibvirtError, translate
from harness.machines.libvirt.events import libvirt_signals, lifecycle_name
from harness.machines.libvirt.host import LibvirtHost
from harness.machines.libvirt.owner import (
    Owner,
    current,
    is_dead_harness,
    owner_of,
    start_time,
)
from harness.matrix.cell import Cell, seabios_version
from harness.plugin.options import settings_from
from harness.session import HarnessSession, Settings
from harness.setup import libvirt_stack
from harness.setup.components import QemuBuild
from harness.setup.libvirt_stack import LibvirtStack, build_argv, check_root, sources
from harness.transitions.guests_service import GuestsServiceConfig, config_path_of
from harness.transitions.host_lock import host_lock

FILES = DomainFiles(
    Path("/r/root.qcow2"),
    Path("/r/swap.qcow2"),
    Path("/r/data.qcow2"),
    Path("/r/console.sock"),
    Path("/r/VARS.fd"),
)


def config(**kw: object) -> QemuConfig:
    base: dict[str, object] = dict(
        binary="qemu-system-x86_64",
        kernel=Path("/i/vmlinuz"),
        initrd=Path("/i/initrd.img"),
        append="root=/dev/vda resume=/dev/vdb",
    )
    return QemuConfig(**{**base, **kw})  # type: ignore[arg-type]


def test_domain_has_pm_agent_disks_and_direct_kernel_boot() -> None:
    root = ET.fromstring(build_domain_xml("s3s4-1-g", config(), FILES))
    assert root.get("type") == "qemu"  # TCG
    assert {e.tag: e.get("enabled") for e in root.find("pm")} == {  # type: ignore[union-attr]
        "suspend-to-mem": "yes",
        "suspend-to-disk": "yes",
    }
    disks = root.findall("./devices/disk")
    assert [d.find("target").get("dev") for d in disks] == ["vda", "vdb", "vdc"]  # type: ignore[union-attr]
    assert {d.find("driver").get("type") for d in disks} == {"qcow2"}  # type: ignore[union-attr]
    channel = root.find("./devices/channel/target")
    assert channel is not None and channel.get("name") == "org.qemu.guest_agent.0"
    assert root.findtext("./os/cmdline") == "root=/dev/vda resume=/dev/vdb"
    assert root.find("./devices/serial/source").get("mode") == "connect"  # type: ignore[union-attr]
    assert root.find("./devices/interface/rom").get("enabled") == "no"  # type: ignore[union-attr]
    assert root.find(f"{{{QEMU_NS}}}commandline") is None
    seclabel = root.find("seclabel")  # QEMU runs as the harness's user, whatever qemu.conf says
    assert seclabel is not None and seclabel.get("model") == "dac"
    assert seclabel.findtext("label") == "+0:+0"


def test_kvm_ovmf_and_extra_args() -> None:
    ovmf = Firmware("ovmf", ovmf_code=Path("/fw/CODE.fd"), ovmf_vars=Path("/fw/VARS.fd"))
    xml = build_domain_xml(
        "g",
        config(
            accel="kvm",
            machine="q35",
            firmware=ovmf,
            extra_args=("-global", "ICH9-LPC.disable_s3=1"),
        ),
        FILES,
    )
    root = ET.fromstring(xml)
    assert root.get("type") == "kvm"
    assert root.find("./os/type").get("machine") == "q35"  # type: ignore[union-attr]
    assert root.findtext("./os/loader") == "/fw/CODE.fd"
    assert root.findtext("./os/nvram") == "/r/VARS.fd"
    args = [a.get("value") for a in root.iter(f"{{{QEMU_NS}}}arg")]
    assert args == ["-global", "ICH9-LPC.disable_s3=1"]


def test_a_provisioned_qemu_gets_its_data_and_module_directories() -> None:
    provisioned = config(
        data_dir=Path("/c/qemu-10/usr/share/qemu"),
        env=(("QEMU_MODULE_DIR", "/c/qemu-10/usr/lib/x86_64-linux-gnu/qemu"),),
        extra_args=("-global", "PIIX4_PM.disable_s3=1"),
        initrd=None,
    )
    root = ET.fromstring(build_domain_xml("g", provisioned, FILES))
    args = [a.get("value") for a in root.iter(f"{{{QEMU_NS}}}arg")]
    assert args == ["-L", "/c/qemu-10/usr/share/qemu", "-global", "PIIX4_PM.disable_s3=1"]
    env = {e.get("name"): e.get("value") for e in root.iter(f"{{{QEMU_NS}}}env")}
    assert env == {"QEMU_MODULE_DIR": "/c/qemu-10/usr/lib/x86_64-linux-gnu/qemu"}
    assert root.find("./os/initrd") is None  # a user's kernel without initrd


def test_a_cloud_image_boots_its_own_disk_by_ovmf_with_the_seed_read_only() -> None:
    ovmf = Firmware("ovmf", ovmf_code=Path("/fw/CODE.fd"), ovmf_vars=Path("/fw/VARS.fd"))
    cloud = config(
        kernel=None, initrd=None, append="", firmware=ovmf, machine="q35", seed=Path("/r/seed.iso")
    )
    root = ET.fromstring(build_domain_xml("g", cloud, FILES))
    assert [e.tag for e in root.find("os")] == ["type", "loader", "nvram"]  # type: ignore[union-attr]
    disks = root.findall("./devices/disk")
    assert [d.find("target").get("dev") for d in disks] == ["vda", "vdb", "vdc", "vdd"]  # type: ignore[union-attr]
    assert disks[0].find("boot").get("order") == "1"  # type: ignore[union-attr]
    seed = disks[3]
    assert seed.find("source").get("file") == "/r/seed.iso"  # type: ignore[union-attr]
    assert seed.find("driver").get("type") == "raw"  # type: ignore[union-attr]
    assert seed.find("readonly") is not None


def test_secure_boot_runs_smm_a_secure_loader_and_boots_the_esp_overlay_on_sata() -> None:
    secure = Firmware("ovmf-secure", ovmf_code=Path("/fw/CODE.ms.fd"), ovmf_vars=Path("/r/V.fd"))
    guest = config(kernel=None, initrd=None, append="", firmware=secure, machine="q35")
    guest = QemuConfig(**{**guest.__dict__, "esp": Path("/cache/esp.img")})
    files = DomainFiles(**{**FILES.__dict__, "esp": Path("/r/esp.qcow2")})
    root = ET.fromstring(build_domain_xml("g", guest, files))
    loader = root.find("./os/loader")
    assert loader is not None and loader.get("secure") == "yes" and loader.text == "/fw/CODE.ms.fd"
    assert root.find("./os/kernel") is None  # shim, GRUB and the kernel come from the ESP
    assert root.find("./features/smm").get("state") == "on"  # type: ignore[union-attr]
    disks = root.findall("./devices/disk")
    assert [d.find("target").get("bus") for d in disks] == ["virtio"] * 3 + ["sata"]  # type: ignore[union-attr]
    assert [d.find("boot") is not None for d in disks] == [False, False, False, True]
    assert disks[3].find("source").get("file") == "/r/esp.qcow2"  # type: ignore[union-attr]


def test_secure_boot_without_its_esp_is_refused() -> None:
    secure = Firmware("ovmf-secure", ovmf_code=Path("/fw/CODE.ms.fd"), ovmf_vars=Path("/r/V.fd"))
    guest = config(kernel=None, initrd=None, append="", firmware=secure, machine="q35")
    with pytest.raises(ValueError, match="ESP"):
        build_domain_xml("g", guest, FILES)


@pytest.mark.parametrize(
    ("event", "detail", "name", "signals"),
    [
        (5, 4, "STOPPED/SAVED", ("powered-off", "saved")),
        (5, 0, "STOPPED/SHUTDOWN", ("powered-off",)),
        (2, 2, "STARTED/RESTORED", ("restored",)),
        (2, 3, "STARTED/FROM_SNAPSHOT", ("restored",)),
        (7, 0, "PMSUSPENDED/MEMORY", ()),
        (6, 1, "SHUTDOWN/GUEST", ("shutdown",)),
    ],
)
def test_lifecycle_events_are_named_and_tagged(
    event: int, detail: int, name: str, signals: tuple[str, ...]
) -> None:
    assert lifecycle_name(event, detail) == name
    assert libvirt_signals(name, {}) == signals


def test_pm_events_show_the_same_signals_as_qmp() -> None:
    assert libvirt_signals("PMSUSPEND", {}) == ("suspended",)
    assert libvirt_signals("PMWAKEUP", {}) == ("woken",)
    assert libvirt_signals("PMSUSPEND_DISK", {}) == ("hibernated",)


class FakeLibvirtError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message

    def get_error_code(self) -> int:
        return self.code

    def get_error_message(self) -> str:
        return self.message


@pytest.mark.parametrize(
    ("code", "text", "kind"),
    [
        (
            84,
            "Operation not supported: qemu doesn't support taking snapshots of PMSUSPENDED guests",
            StateUnsupported,
        ),
        (1, "internal error: S3 state is disabled for this domain", StateUnsupported),
        (86, "Guest agent is not responding: QEMU guest agent is not connected", AgentError),
        (42, "Domain not found", LibvirtError),
    ],
)
def test_libvirt_errors_become_one_line_harness_errors(code: int, text: str, kind: type) -> None:
    error = translate("save", FakeLibvirtError(code, text))
    assert isinstance(error, kind)
    assert text in str(error) and f"libvirt error {code}" in str(error)
    assert "\n" not in str(error)


def test_guests_service_config_renders_every_setting() -> None:
    config = GuestsServiceConfig(
        "qemu:///system",
        on_shutdown="shutdown",
        on_boot="ignore",
        parallel_shutdown=2,
        shutdown_timeout=60,
        start_delay=3,
        bypass_cache=True,
        sync_time=True,
    )
    lines = dict(line.split("=", 1) for line in config.render().splitlines() if "=" in line)
    assert lines == {
        "URIS": "qemu:///system",
        "ON_SHUTDOWN": "shutdown",
        "ON_BOOT": "ignore",
        "PARALLEL_SHUTDOWN": "2",
        "SHUTDOWN_TIMEOUT": "60",
        "START_DELAY": "3",
        "BYPASS_CACHE": "1",
        "SYNC_TIME": "1",
    }
    assert config.id == "shutdown-ignore-parallel2-bypass-cache-sync-time-delay3"


def test_config_path_is_read_from_the_script() -> None:
    debian = (
        'sysconfdir="/etc"\ntest -f "$sysconfdir"/default/libvirt-guests &&\n'
        '    . "$sysconfdir"/default/libvirt-guests\n'
    )
    fedora = (
        'sysconfdir="/etc"\ntest -f "$sysconfdir"/sysconfig/libvirt-guests &&\n'
        '    . "$sysconfdir"/sysconfig/libvirt-guests\n'
    )
    assert config_path_of(debian) == Path("/etc/default/libvirt-guests")
    assert config_path_of(fedora) == Path("/etc/sysconfig/libvirt-guests")
    with pytest.raises(SetupError):
        config_path_of("#!/bin/sh\n")


def settings_of(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs if not k.lstrip().startswith("#")}


def test_the_private_daemon_gets_a_copy_of_the_host_config_and_the_host_file_stays(
    tmp_path: Path,
) -> None:
    host = tmp_path / "etc-libvirt"
    (host / "qemu" / "networks").mkdir(parents=True)
    (host / "hooks").mkdir()
    (host / "qemu.conf").write_text('#user = "libvirt-qemu"\nuser = "qemu"\nvnc_listen = "::"\n')
    (host / "libvirtd.conf").write_text('unix_sock_dir = "/elsewhere"\n')
    (host / "virtlogd.conf").write_text("max_size = 1024\n")
    (host / "qemu" / "host-guest.xml").write_text("<domain/>")  # the host's own domain
    (host / "hooks" / "qemu").write_text("#!/bin/sh\n")
    before = {p: p.read_bytes() for p in host.rglob("*") if p.is_file()}
    private = tmp_path / "private"
    write_private_config(private, source=host)
    assert {p: p.read_bytes() for p in host.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in private.iterdir()) == [
        "libvirtd.conf",
        "qemu.conf",
        "virtlogd.conf",
    ]  # configuration only: neither the host's domains nor its hooks
    qemu = settings_of(private / "qemu.conf")
    assert qemu == {"user": '"root"', "group": '"root"', "vnc_listen": '"::"'}
    assert settings_of(private / "libvirtd.conf") == {"unix_sock_dir": '"/run/libvirt"'}
    assert (private / "qemu.conf").stat().st_mode & 0o077 == 0


def test_the_private_daemon_runs_in_a_namespace_over_the_run_directory() -> None:
    state = Path("/run/s3s4-harness/1-ab/libvirtd")
    argv = in_private_namespace(state, ["libvirtd", "--pid-file", f"{state}/libvirtd.pid"])
    assert argv[:4] == ["unshare", "--mount", "--propagation", "private"]
    script_args = argv[argv.index("sh", 5) + 1 :]
    separator = script_args.index("--")
    pairs = dict(zip(script_args[:separator:2], script_args[1:separator:2], strict=True))
    assert pairs == {str(state / name): target for name, target in BOUND_DIRS.items()}
    assert set(BOUND_DIRS.values()) == {
        "/etc/libvirt",
        "/run/libvirt",
        "/var/lib/libvirt",
        "/var/cache/libvirt",
        "/var/log/libvirt",
    }
    # pid files are the daemon's own (/run/*.pid is shared), and name the run directory
    assert script_args[separator + 1 :] == ["libvirtd", "--pid-file", f"{state}/libvirtd.pid"]
    assert str(state) not in argv[6]  # paths reach the shell as arguments, never as code
    daemon = LibvirtDaemon(state, Path("/evidence"))
    assert daemon.uri == f"qemu:///system?socket={state}/run/libvirt-sock"
    assert daemon.qemu_log_dir == state / "log" / "qemu"


HERE = Owner(host="h", boot_id="b-1", pid_ns="pid:[1]", pid=100, start_time=5000)


def test_the_owner_is_recorded_in_the_domain_metadata_and_read_back() -> None:
    xml = build_domain_xml("s3s4-100-g", config(), FILES, HERE)
    assert owner_of(xml) == HERE
    assert ET.fromstring(xml).find("metadata") is not None
    assert owner_of(build_domain_xml("s3s4-100-g", config(), FILES)) is None
    assert owner_of("<domain><metadata><other xmlns='urn:x'/></metadata></domain>") is None
    assert owner_of("not xml") is None


def test_this_process_is_its_own_owner() -> None:
    me = current()
    assert me.pid == os.getpid()
    assert me.start_time == start_time(os.getpid())
    assert me.boot_id == Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    assert me.pid_ns.startswith("pid:[")


def test_start_time_is_read_after_a_command_name_with_spaces(tmp_path: Path) -> None:
    (tmp_path / "42").mkdir()
    fields = ["S"] + [str(n) for n in range(4, 22)] + ["777", "0"]
    (tmp_path / "42" / "stat").write_text("42 (a) b (c) " + " ".join(fields))
    assert start_time(42, tmp_path) == 777
    assert start_time(43, tmp_path) is None


@pytest.mark.parametrize(
    ("owner", "running", "swept"),
    [
        (None, {}, False),  # no record, e.g. a foreign s3s4-99999-x: not provably ours
        (HERE, {100: 5000}, False),  # this very process
        (Owner("h", "b-1", "pid:[1]", 7, 40), {7: 40}, False),  # another harness, alive
        (Owner("h", "b-1", "pid:[1]", 7, 40), {}, True),  # gone
        (Owner("h", "b-1", "pid:[1]", 7, 40), {7: 41}, True),  # its pid now another process
        (Owner("other", "b-1", "pid:[1]", 7, 40), {}, False),  # another host
        (Owner("h", "b-0", "pid:[1]", 7, 40), {}, False),  # an earlier boot
        (Owner("h", "b-1", "pid:[2]", 7, 40), {}, False),  # another pid namespace
    ],
    ids=[
        "no-owner",
        "this-process",
        "alive",
        "dead",
        "pid-reused",
        "other-host",
        "other-boot",
        "other-pid-namespace",
    ],
)
def test_a_sweep_removes_only_provably_dead_harnesses_of_this_host(
    owner: Owner | None, running: dict[int, int], swept: bool
) -> None:
    assert is_dead_harness(owner, HERE, running.get) is swept


def test_the_guests_service_lock_is_held_by_one_run_at_a_time(tmp_path: Path) -> None:
    lock = tmp_path / "service.lock"
    with host_lock(lock, 1.0, "libvirt-guests stop"):
        other = os.open(lock, os.O_RDWR)
        with pytest.raises(BlockingIOError):
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        waited = pytest.raises(StageTimeout, match="another run to release")
        with waited, host_lock(lock, 0.3, "libvirt-guests stop"):
            pass
    fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released on leaving the block
    os.close(other)
    (tmp_path / "elsewhere").write_text("")
    (tmp_path / "link.lock").symlink_to(tmp_path / "elsewhere")
    refused = pytest.raises(SetupError, match="cannot open")
    with refused, host_lock(tmp_path / "link.lock", 1.0, "libvirt-guests stop"):
        pass


# -- a libvirt stack of another suite ------------------------------------------------------

SID = "http://deb.debian.org/debian sid main"


def test_a_plain_suite_is_built_as_it_is_with_the_stacks_packages() -> None:
    assert sources("sid") == ("sid", [], [])
    argv = build_argv("sid", Path("/r"), "unshare")
    included = next(a for a in argv if a.startswith("--include=")).split("=", 1)[1].split(",")
    assert {"libvirt-daemon", "libvirt-daemon-driver-qemu", "qemu-system-x86"} <= set(included)


def test_an_overlay_suite_is_built_on_its_base_and_preferred_where_it_offers_a_package() -> None:
    base, lines, options = sources("trixie-backports")
    assert base == "trixie"
    assert [line.split()[2] for line in lines] == ["trixie", "trixie-updates", "trixie-backports"]
    # qemu-system-x86 from backports needs its SeaBIOS and libraries from there too
    assert options == ['APT::Default-Release "trixie-backports"']
    argv = build_argv("trixie-backports", Path("/r"), "unshare")
    assert '--aptopt=APT::Default-Release "trixie-backports"' in argv
    assert argv[-5:-3] == ["trixie", "/r"]
    base, lines, options = sources("experimental")
    assert (base, [line.split(maxsplit=1)[1] for line in lines]) == (
        "sid",
        [SID, "http://deb.debian.org/debian experimental main"],
    )
    assert options == ['APT::Default-Release "experimental"']


def test_a_suite_name_that_is_not_one_is_refused() -> None:
    with pytest.raises(SetupError, match="not a Debian suite"):
        sources("sid main\ndeb http://evil/")


def test_the_stack_is_built_by_mmdebstrap_past_valid_until_keeping_its_package_files() -> None:
    argv = build_argv("sid", Path("/cache/.build-sid-1/root"), "unshare")
    assert argv[:3] == ["mmdebstrap", "--mode=unshare", "--variant=apt"]
    assert '--aptopt=Acquire::Check-Valid-Until "false"' in argv
    # every package file is kept for its sha256 to go into the manifest
    assert {"--skip=cleanup/apt/cache", "--skip=essential/unlink"} <= set(argv)
    assert argv[-2:] == ["sid", "/cache/.build-sid-1/root"]
    assert libvirt_stack.cache_key("sid") != libvirt_stack.cache_key("experimental")


def fake_stack(root: Path) -> LibvirtStack:
    return LibvirtStack(
        suite="sid",
        root=root,
        packages={
            "libvirt-daemon": "12.8.0-1",
            "libvirt0": "12.8.0-1",
            "qemu-system-x86": "1:11.1.3+ds-1",
            "seabios": "1.17.0-1",
        },
        debs={"libvirt-daemon": "ab" * 32},
    )


def test_a_stack_names_its_versions_and_its_files_under_its_root(tmp_path: Path) -> None:
    stack = fake_stack(tmp_path / "sid-1")
    assert (stack.libvirt_version, stack.qemu_version) == ("12.8.0", "11.1.3")
    assert stack.emulator == tmp_path / "sid-1/usr/bin/qemu-system-x86_64"
    assert stack.seabios == tmp_path / "sid-1/usr/share/seabios/bios-256k.bin"
    assert stack.ovmf[0].parent == tmp_path / "sid-1/usr/share/OVMF"
    facts = stack.facts()
    assert facts["libvirt_stack"] == "sid"
    assert facts["libvirt_stack_packages"]["libvirt-daemon"] == {
        "version": "12.8.0-1",
        "sha256": "ab" * 32,
    }
    assert facts["libvirt_stack_packages"]["seabios"]["sha256"] == ""  # not kept: unknown
    assert "ovmf" not in facts["libvirt_stack_packages"]


def test_a_stack_is_loaded_from_its_manifest(tmp_path: Path) -> None:
    stack = fake_stack(tmp_path)
    (tmp_path / libvirt_stack.MANIFEST).write_text(
        json.dumps({"suite": "sid", "packages": stack.packages, "debs": stack.debs})
    )
    assert LibvirtStack.load(tmp_path) == stack


def test_a_root_without_the_daemon_or_with_its_own_lib_is_not_a_stack(tmp_path: Path) -> None:
    with pytest.raises(SetupError, match="lacks usr/sbin/libvirtd"):
        check_root(tmp_path)
    for name in libvirt_stack.REQUIRED:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    (tmp_path / "usr/lib").mkdir(exist_ok=True)
    (tmp_path / "lib").symlink_to("usr/lib")
    check_root(tmp_path)
    (tmp_path / "lib64").mkdir()
    with pytest.raises(SetupError, match="merged /usr"):
        check_root(tmp_path)


def test_the_stacks_daemon_runs_its_own_usr_bound_last_over_the_hosts() -> None:
    state = Path("/run/s3s4-harness/1-ab/libvirtd")
    root = Path("/cache/libvirt-stacks/sid-1")
    argv = in_private_namespace(state, ["/usr/sbin/libvirtd"], root)
    script_args = argv[argv.index("sh", 5) + 1 :]
    separator = script_args.index("--")
    pairs = list(zip(script_args[:separator:2], script_args[1:separator:2], strict=True))
    assert pairs[: len(BOUND_DIRS)] == [(str(state / n), t) for n, t in BOUND_DIRS.items()]
    assert pairs[len(BOUND_DIRS) :] == [(str(root / n), t) for n, t in STACK_BINDS]
    assert pairs[-1] == (str(root / "usr"), "/usr")  # last: the binds before it use the host's
    assert ("/cache/libvirt-stacks/sid-1/etc/ld.so.cache", "/etc/ld.so.cache") in pairs
    assert script_args[separator + 1 :] == ["/usr/sbin/libvirtd"]


def test_binding_usr_needs_a_merged_usr(tmp_path: Path) -> None:
    (tmp_path / "usr/lib").mkdir(parents=True)
    (tmp_path / "lib").symlink_to("usr/lib")
    assert merged_usr(tmp_path)  # the others are absent: nothing of the host's stays
    (tmp_path / "bin").mkdir()
    assert not merged_usr(tmp_path)


def test_a_root_without_libvirtd_is_refused_before_anything_starts(tmp_path: Path) -> None:
    daemon = LibvirtDaemon(tmp_path / "state", tmp_path / "logs", usr_root=tmp_path / "root")
    with pytest.raises(SetupError, match="has no usr/sbin/virtlogd: not a libvirt stack"):
        daemon.start(lambda: True, 1.0)
    assert not (tmp_path / "state").exists()


def test_the_stacks_daemon_starts_from_the_suites_own_configuration(tmp_path: Path) -> None:
    suite_config = tmp_path / "root/etc/libvirt"
    suite_config.mkdir(parents=True)
    (suite_config / "qemu.conf").write_text('#user = "libvirt-qemu"\nremember_owner = 1\n')
    private = tmp_path / "private"
    write_private_config(private, source=suite_config)
    assert settings_of(private / "qemu.conf") == {
        "remember_owner": "1",
        "user": '"root"',
        "group": '"root"',
    }


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("qemu+ssh://elsewhere/system", "cannot be reached at qemu\\+ssh"),
        ("qemu:///system", "needs root"),
    ],
)
def test_a_stack_is_only_ever_the_harnesss_own_daemon(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, uri: str, message: str
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    stack = fake_stack(tmp_path / "root")
    host = LibvirtHost(uri, tmp_path / "logs", 1.0, tmp_path / "state", stack=stack)
    with pytest.raises(SetupError, match=message):
        host.conn  # noqa: B018 - opening is the point
    assert host.daemon is None


def test_the_cell_id_names_the_stacks_libvirt_and_the_hosts_stays_as_it_was() -> None:
    common = dict(kernel="7.2.13-amd64", firmware="seabios1.17.0", machine="pc", accel="tcg")
    assert Cell(qemu="11.1.3", backend="libvirt", libvirt="12.8.0", **common).id == (
        "k7.2.13-q11.1.3-seabios1.17.0-pc-tcg-libvirt12.8.0"
    )
    assert Cell(qemu="7.2.22", backend="libvirt", **common).id.endswith("-pc-tcg-libvirt")
    assert Cell(qemu="7.2.22", **common).id.endswith("-pc-tcg")


def test_a_stack_runs_every_guest_through_libvirt_and_the_host_stays_the_default(
    pytester: pytest.Pytester,
) -> None:
    default = settings_from(pytester.parseconfig())
    assert (default.libvirt_stack, default.backend) == ("host", "qemu")
    chosen = settings_from(pytester.parseconfig("--libvirt-stack", "sid"))
    assert (chosen.libvirt_stack, chosen.backend) == ("sid", "libvirt")


def test_a_stack_brings_its_own_qemu_and_refuses_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stack's daemon runs the stack's QEMU; direct-QEMU cases of the cell run the same
    package version from its own closure (outside the daemon the stack's binary has no
    loader of its own)."""
    stack = fake_stack(tmp_path / "root")
    closure = tmp_path / "closure" / "qemu-system-x86_64"
    provisioned: list[str] = []

    def provision(wanted: str, _archive: object) -> QemuBuild:
        provisioned.append(wanted)
        return QemuBuild(closure, wanted)

    monkeypatch.setattr("harness.session.provision_qemu", provision)
    for settings, expected in (
        (Settings(libvirt_stack="sid", backend="libvirt"), closure),
        (Settings(libvirt_stack="sid", backend="libvirt", qemu="10.0"), None),
    ):
        session = HarnessSession(settings, tmp_path / "evidence", lambda _line: None)
        session._libvirt_stack = stack  # as built: no mmdebstrap here
        if expected is None:
            with pytest.raises(SetupError, match="both name the QEMU"):
                session.qemu_build  # noqa: B018 - resolving it is the point
        else:
            assert session.qemu_build.binary == expected
            assert provisioned == ["1:11.1.3+ds-1"]  # the stack's exact package version
            assert session._seabios_image() == stack.seabios
            assert session._ovmf_images() == stack.ovmf
        session.close()


def test_the_stacks_seabios_names_its_version_after_nop_padding(tmp_path: Path) -> None:
    bios = tmp_path / "bios-256k.bin"  # as sid's 1.17.0 lays it out
    bios.write_bytes(b"\x00" * 64 + b"for Debian) 2.45\x00\x901.17.0-debian-1.17.0-1\x00\x90\x00")
    assert seabios_version(bios) == "1.17.0"
    bios.write_bytes(b"\x00" * 64 + b"\x001.16.2-debian-1.16.2-1\x00")
    assert seabios_version(bios) == "1.16.2"
