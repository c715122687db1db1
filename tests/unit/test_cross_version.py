"""The pure parts of the cross-version cases: names, the version promise, the pinned type."""

from harness.cross_version import Side, pair_id
from harness.machines.events import RecordedEvent
from harness.machines.libvirt.crossing import pinned_machine_type
from harness.machines.qemu.crossing import ALIAS_LINE, _source_wakeup
from harness.transitions.cross_version import keeps_s3_across_migration

MACHINE_HELP = """Supported machines are:
pc-i440fx-7.2        Standard PC (i440FX + PIIX, 1996) (deprecated)
pc                   Standard PC (i440FX + PIIX, 1996) (alias of pc-i440fx-11.1)
pc-i440fx-11.1       Standard PC (i440FX + PIIX, 1996) (default)
q35                  Standard PC (Q35 + ICH9, 2009) (alias of pc-q35-11.1)
"""


def test_pair_id_names_the_older_side_first_then_the_pinned_type() -> None:
    older, newer = Side("7.2.22", "9.0.0"), Side("11.1.3", "12.8.0")
    assert pair_id(older, newer, "pc-i440fx-7.2") == (
        "libvirt9.0.0-q7.2.22-to-libvirt12.8.0-q11.1.3-pc-i440fx-7.2"
    )
    assert pair_id(Side("7.2.22"), Side("11.1.3"), "pc-i440fx-7.2") == (
        "q7.2.22-to-q11.1.3-pc-i440fx-7.2"
    )


def test_qemu_keeps_a_guest_in_s3_across_migration_from_9_0() -> None:
    assert not keeps_s3_across_migration("7.2.22")
    assert not keeps_s3_across_migration("8.2.9")
    assert keeps_s3_across_migration("9.0.0")
    assert keeps_s3_across_migration("11.1.3")


def test_aliases_are_read_from_machine_help() -> None:
    assert dict(ALIAS_LINE.findall(MACHINE_HELP)) == {"pc": "pc-i440fx-11.1", "q35": "pc-q35-11.1"}


def test_the_pinned_machine_type_is_read_from_the_definition() -> None:
    xml = "<domain><os><type arch='x86_64' machine='pc-i440fx-7.2'>hvm</type></os></domain>"
    assert pinned_machine_type(xml) == "pc-i440fx-7.2"
    assert pinned_machine_type("<domain><os/></domain>") == ""


def _events(*names: str) -> list[RecordedEvent]:
    return [
        RecordedEvent(
            name=name.split(":")[0],
            data={"status": name.split(":")[1]} if ":" in name else {},
            qemu_time=0.0,
            received=0.0,
            seq=n,
        )
        for n, name in enumerate(names)
    ]


def test_the_source_wakeup_is_placed_against_the_migrations_end() -> None:
    woke_in_time = _events("MIGRATION:active", "STOP", "WAKEUP", "MIGRATION:completed")
    woke_late = _events("MIGRATION:active", "STOP", "MIGRATION:completed", "WAKEUP")
    assert _source_wakeup(woke_in_time) == "before-completion"
    assert _source_wakeup(woke_late) == "after-completion"
    assert _source_wakeup(_events("MIGRATION:active", "MIGRATION:completed")) == "none"
