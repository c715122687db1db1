"""The root disk of a profile whose swap is on it keeps a completed write through QEMU's end
(no volatile cache as the guest sees it), and the default's keeps its cache; the
suspend-then-hibernate case's console lines are quoted from their tag on."""

from pathlib import Path

from harness.machines.config import QemuConfig
from harness.machines.qemu.cmdline import WRITETHROUGH, RunPaths, build_argv
from harness.transitions import logind

PATHS = RunPaths(*(Path(f"/r/{n}") for n in ("q.sock", "a.sock", "c.sock", "o", "s", "d")))


def _drive(argv: list[str], drive_id: str) -> str:
    return next(a for a in argv if f",id={drive_id}," in a)


def test_the_root_disk_is_writethrough_only_where_asked() -> None:
    config = QemuConfig("qemu", kernel=Path("k"), initrd=None, append="")
    default = build_argv(config, PATHS, 2222)
    assert _drive(default, "root").endswith(",cache=unsafe")
    assert _drive(default, "swap").endswith(",cache=unsafe")
    through = build_argv(QemuConfig("qemu", Path("k"), None, "", root_writethrough=True), PATHS, 1)
    assert _drive(through, "root").endswith(f",{WRITETHROUGH}")
    assert "cache.writeback=off" in WRITETHROUGH and "cache.no-flush=on" in WRITETHROUGH
    assert _drive(through, "swap").endswith(",cache=unsafe")


def test_the_s2h_lines_are_quoted_from_their_tag() -> None:
    line = f"[   41.5] {logind.S2H_TIMER_TAG}: 712 ns left at the wake"
    assert logind._after_tag(line) == f"{logind.S2H_TIMER_TAG}: 712 ns left at the wake"
    done = f"[   43.0] {logind.S2H_FINISHED_TAG} (success)"
    assert logind._after_tag(done) == f"{logind.S2H_FINISHED_TAG} (success)"


def test_the_timer_hook_acts_only_after_the_suspend_leg() -> None:
    hook = logind._s2h_timer_hook()
    assert '"$1/$2" = "post/suspend-then-hibernate"' in hook
    assert '"$SYSTEMD_SLEEP_ACTION" != suspend' in hook
    assert "clockid: *9" in hook  # CLOCK_BOOTTIME_ALARM
    assert f"-le {logind.RTC_EARLY_NS} ]" in hook
