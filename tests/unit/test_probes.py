import subprocess
import time
from pathlib import Path

from harness.probes import DEFAULT_PROBES, STATE_DIR, Probe, parse_facts, probe_seconds, script
from harness.ssh import CommandResult


def test_facts_are_name_dot_key_lines_only() -> None:
    out = "guest.boot_id=abc\nnoise line\nsentinel.count=12\nbad key=1\n"
    facts = parse_facts(CommandResult("x", 0, out, ""))
    assert facts == {"guest.boot_id": "abc", "sentinel.count": "12"}


def test_one_script_per_phase_covers_every_probe() -> None:
    before, after = script(DEFAULT_PROBES, "before"), script(DEFAULT_PROBES, "after")
    for key in ("guest.boot_id", "sentinel.pid", "disk.written_sha"):
        assert key in before
    for key in ("guest.boot_id", "sentinel.count_later", "disk.reread_sha"):
        assert key in after
    assert "@STATE@" not in before + after and "@FILE@" not in before + after


def run_script(text: str, tmp_path: Path) -> tuple[dict[str, str], float]:
    started = time.monotonic()
    out = subprocess.run(
        ["sh", "-c", text.replace(STATE_DIR, str(tmp_path))], capture_output=True, text=True
    )
    elapsed = time.monotonic() - started
    return parse_facts(CommandResult("x", out.returncode, out.stdout, out.stderr)), elapsed


def test_each_probe_is_timed_by_the_guests_clock_and_the_marks_leave_the_facts(
    tmp_path: Path,
) -> None:
    probes = (Probe("quick", "echo quick.a=1", ""), Probe("slow", "sleep 0.3; echo slow.b=2", ""))
    facts, _ = run_script(script(probes, "before"), tmp_path)
    seconds = probe_seconds(facts)
    assert facts == {"quick.a": "1", "slow.b": "2"}
    assert set(seconds) == {"quick", "slow"}
    assert seconds["slow"] >= 0.25 and seconds["quick"] < 0.2


def test_probes_after_the_first_run_side_by_side_and_print_in_order(tmp_path: Path) -> None:
    probes = (
        Probe("first", "echo first.at=$(cat ORDER 2>/dev/null); echo first > ORDER", ""),
        Probe("b", "sleep 0.4; echo b.x=1; echo b.y=2", ""),
        Probe("c", "sleep 0.4; cat ORDER > /dev/null && echo c.saw_first=yes", ""),
    )
    text = script(probes, "before").replace("ORDER", str(tmp_path / "order"))
    facts, elapsed = run_script(text, tmp_path)
    assert set(probe_seconds(facts)) == {"first", "b", "c"}
    assert list(facts) == ["first.at", "b.x", "b.y", "c.saw_first"]  # grouped, in order
    assert facts["c.saw_first"] == "yes"  # the first probe ran before the others
    assert elapsed < 0.75, elapsed  # 0.4 s twice, side by side
    assert [p.name for p in tmp_path.iterdir()] == ["order"]  # no output files left


def test_a_phase_without_fragments_has_no_marks() -> None:
    assert script((Probe("net", "echo net.x=1", ""),), "after").strip() == ""
