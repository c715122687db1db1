from harness.probes import DEFAULT_PROBES, parse_facts, script
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
