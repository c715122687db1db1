"""Which libvirt daemon the private daemon runs (libvirtd or virtqemud), where its programs are,
and how a virtqemud the host lacks is built: pure logic, nothing is built or started."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.errors import SetupError
from harness.machines.libvirt.daemon import LibvirtDaemon, write_private_config
from harness.plugin.options import settings_from
from harness.setup import libvirt_modular
from harness.setup.libvirt_modular import (
    HOST_LIBVIRTD,
    MANIFEST,
    DaemonPrograms,
    build_dir_name,
    cache_key,
    check_with_stack,
    install_build_depends,
    meson_argv,
    missing_build_depends,
    resolve_daemon,
    source_lines,
    unavailable_reason,
)

VERSION = "9.0.0-4+deb12u2"


def no_progress(_line: str) -> None:
    pass


def fake_build(builds_dir: Path, version: str = VERSION) -> Path:
    prefix = builds_dir / build_dir_name(version)
    (prefix / "sbin").mkdir(parents=True)
    (prefix / MANIFEST).write_text(json.dumps({"version": version}))
    return prefix


def test_libvirtd_is_the_hosts_by_path_with_its_usual_socket_and_configuration() -> None:
    programs = resolve_daemon("libvirtd", no_progress, which=lambda _name: None)
    assert programs == HOST_LIBVIRTD
    assert programs.program("libvirtd") == "libvirtd"
    assert programs.program("virtlogd") == "virtlogd"
    assert (programs.socket_name, programs.config_name) == ("libvirt-sock", "libvirtd.conf")


def test_an_installed_virtqemud_is_the_hosts_and_nothing_is_built(tmp_path: Path) -> None:
    installed = {"virtqemud": "/usr/sbin/virtqemud", "virtlogd": "/usr/sbin/virtlogd"}
    programs = resolve_daemon("virtqemud", no_progress, tmp_path, which=installed.get)
    assert programs == DaemonPrograms("virtqemud")
    assert (programs.socket_name, programs.config_name) == ("virtqemud-sock", "virtqemud.conf")
    assert not tmp_path.joinpath("libvirt-modular").exists()
    assert list(tmp_path.iterdir()) == []


def test_a_virtqemud_the_host_lacks_is_the_cached_build_of_the_hosts_libvirt_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(libvirt_modular, "host_libvirt_version", lambda: VERSION)
    prefix = fake_build(tmp_path)
    programs = resolve_daemon("virtqemud", no_progress, tmp_path, which=lambda _name: None)
    assert programs.name == "virtqemud"
    assert programs.program("virtqemud") == str(prefix / "sbin/virtqemud")
    assert programs.program("virtlogd") == str(prefix / "sbin/virtlogd")
    assert programs.config_dir == prefix / "etc/libvirt"
    assert programs.facts() == {
        "libvirt_daemon_program": "virtqemud",
        "libvirt_daemon_origin": f"built from Debian's libvirt {VERSION} source into {prefix}",
    }


def test_an_unknown_daemon_is_one_line_naming_the_choices() -> None:
    with pytest.raises(SetupError, match="use one of libvirtd, virtqemud"):
        resolve_daemon("virtxend", no_progress)


def test_virtqemud_does_not_combine_with_a_stack_of_another_suite() -> None:
    check_with_stack("virtqemud", "host", "host")
    check_with_stack("libvirtd", "sid", "host")
    with pytest.raises(SetupError, match="Debian's packages have no virtqemud\\): drop one"):
        check_with_stack("virtqemud", "sid", "host")


def test_the_build_is_the_qemu_driver_with_libvirts_usual_state_paths_under_its_prefix() -> None:
    argv = meson_argv(Path("/src"), Path("/build"), Path("/cache/prefix"))
    assert argv[:4] == ["meson", "setup", "/build", "/src"]
    for wanted in (
        "--prefix=/cache/prefix",
        "--sysconfdir=/etc",
        "--localstatedir=/var",
        "-Drunstatedir=/run",
        "-Drpath=enabled",
        "-Ddriver_qemu=enabled",
        "-Ddriver_libvirtd=enabled",
        "-Ddriver_network=disabled",
        "-Ddriver_lxc=disabled",
        "-Ddocs=disabled",
        "-Dtests=disabled",
        "-Dbuildtype=plain",  # no -O: the compile is the build's largest step
    ):
        assert wanted in argv
    options = [arg.split("=")[0] for arg in argv if arg.startswith("-D")]
    assert len(options) == len(set(options))  # each option set once


def test_the_cache_key_follows_the_source_version_not_the_prefix() -> None:
    assert cache_key(VERSION) == cache_key(VERSION)
    assert cache_key(VERSION) != cache_key("9.0.0-4+deb12u3")
    assert build_dir_name("1:9.0.0~rc1-1").startswith("libvirt-1_9.0.0_rc1-1-")


def test_only_the_missing_build_dependencies_are_installed() -> None:
    have = {"meson", "gcc"}
    missing = missing_build_depends(lambda package: package in have)
    assert "meson" not in missing and "gcc" not in missing
    assert "libyajl-dev" in missing
    assert missing_build_depends(lambda _package: True) == []


def test_the_source_comes_from_the_hosts_release_and_its_updates() -> None:
    assert source_lines("bookworm") == (
        "deb-src http://deb.debian.org/debian bookworm main\n"
        "deb-src http://deb.debian.org/debian bookworm-updates main\n"
    )


def test_the_private_virtqemud_gets_its_socket_setting_in_its_own_file(tmp_path: Path) -> None:
    source = tmp_path / "build-etc"
    source.mkdir()
    (source / "virtqemud.conf").write_text('#unix_sock_dir = "/run/libvirt"\n')
    write_private_config(tmp_path / "private", source, "virtqemud.conf")
    text = (tmp_path / "private/virtqemud.conf").read_text()
    assert text.rstrip().endswith('unix_sock_dir = "/run/libvirt"')
    assert not (tmp_path / "private/libvirtd.conf").exists()


def test_the_private_virtqemud_is_started_by_its_path_and_reached_at_its_socket(
    tmp_path: Path,
) -> None:
    programs = DaemonPrograms("virtqemud", tmp_path / "build/sbin", tmp_path / "build/etc")
    daemon = LibvirtDaemon(tmp_path / "state", tmp_path / "logs", programs=programs)
    assert daemon.uri == f"qemu:///system?socket={tmp_path}/state/run/virtqemud-sock"
    # Its programs are checked before anything starts: the build has none here.
    with pytest.raises(SetupError, match="virtlogd not found"):
        daemon.start(lambda: True, 1.0)
    assert not (tmp_path / "state").exists()


def test_the_option_picks_the_daemon_and_implies_the_libvirt_backend(
    pytester: pytest.Pytester,
) -> None:
    default = settings_from(pytester.parseconfig())
    assert (default.libvirt_daemon, default.backend) == ("libvirtd", "qemu")
    chosen = settings_from(pytester.parseconfig("--libvirt-daemon", "virtqemud"))
    assert (chosen.libvirt_daemon, chosen.backend, chosen.libvirt_stack) == (
        "virtqemud",
        "libvirt",
        "host",
    )
    with pytest.raises(SetupError, match="drop one"):
        settings_from(
            pytester.parseconfig("--libvirt-daemon", "virtqemud", "--libvirt-stack", "sid")
        )


def test_virtqemud_can_be_had_where_installed_built_or_buildable(tmp_path: Path) -> None:
    everything = {"virtqemud": "/usr/sbin/virtqemud", "virtlogd": "/usr/sbin/virtlogd"}
    assert unavailable_reason(tmp_path, which=everything.get) is None
    debian = {"dpkg-query": "/usr/bin/dpkg-query", "apt-get": "/usr/bin/apt-get"}
    as_root = unavailable_reason(tmp_path, debian.get, lambda: VERSION, lambda: 0)
    assert as_root is None  # built on first use, as on CI's clean clone
    fake_build(tmp_path)
    assert unavailable_reason(tmp_path, debian.get, lambda: VERSION, lambda: 1000) is None


def test_no_virtqemud_can_be_had_is_one_line_naming_why(tmp_path: Path) -> None:
    no_apt = {"dpkg-query": "/usr/bin/dpkg-query"}.get
    assert unavailable_reason(tmp_path, no_apt, lambda: VERSION, lambda: 0) == (
        "no virtqemud installed, and no apt-get to build one from Debian's source"
    )
    debian = {"dpkg-query": "/usr/bin/dpkg-query", "apt-get": "/usr/bin/apt-get"}.get
    assert unavailable_reason(tmp_path, debian, lambda: VERSION, lambda: 1000) == (
        "no virtqemud installed or built, and building one needs root"
    )

    def no_libvirt() -> str:
        raise SetupError("libvirt-daemon is not installed: run ./run setup")

    assert unavailable_reason(tmp_path, debian, no_libvirt, lambda: 0) == (
        "libvirt-daemon is not installed: run ./run setup"
    )


class RecordingApt:
    """subprocess.run for apt-get: records each command, fails the one named ``fails``."""

    def __init__(self, fails: str = "") -> None:
        self.fails = fails
        self.argvs: list[list[str]] = []

    def __call__(self, argv: list[str], **_kwargs: object) -> object:
        self.argvs.append(argv)
        failed = argv[1] == self.fails
        stderr = "E: Failed to fetch x.deb  404  Not Found\nE: Unable to fetch\n" if failed else ""
        return type("Result", (), {"returncode": 100 if failed else 0, "stderr": stderr})()


def test_missing_build_dependencies_are_installed_after_refreshing_apts_lists(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(libvirt_modular, "missing_build_depends", lambda: ["meson", "gcc"])
    apt = RecordingApt()
    install_build_depends(no_progress, apt)
    assert apt.argvs == [
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", "meson", "gcc"],
    ]
    monkeypatch.setattr(libvirt_modular, "missing_build_depends", list)
    nothing = RecordingApt()
    install_build_depends(no_progress, nothing)
    assert nothing.argvs == []


def test_a_failed_install_of_the_build_dependencies_is_one_line_naming_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(libvirt_modular, "missing_build_depends", lambda: ["meson"])
    with pytest.raises(SetupError) as raised:
        install_build_depends(no_progress, RecordingApt(fails="install"))
    assert str(raised.value) == (
        "apt-get install of virtqemud's build dependencies failed (E: Unable to fetch): "
        "install meson by hand, or use --libvirt-daemon libvirtd"
    )
