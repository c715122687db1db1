"""The matrix file: expansion, excludes and includes, selection, stable shards, merges."""

from pathlib import Path

import pytest

from harness.errors import SetupError
from harness.matrix.spec import ALL_AXES, DEFAULT_MATRIX, CellSpec, load, path_of, select, shard
from harness.results.merge import compare, merge, verdict_table

MATRIX = """
[axes]
kernel = ["k1", "k2"]
qemu = ["q1", "q2"]
firmware = ["seabios", "ovmf:2025.02"]
machine = ["pc"]
accel = ["tcg"]

[[exclude]]
kernel = "k2"
firmware = "ovmf*"

[[include]]
kernel = "k3"
qemu = "/opt/qemu"
firmware = "seabios:/opt/bios.bin"
machine = "q35"
accel = "kvm"
"""


def _load(tmp_path: Path, text: str = MATRIX) -> list[CellSpec]:
    path = tmp_path / "m.toml"
    path.write_text(text)
    return load(path)


def test_axes_expand_less_excludes_plus_includes(tmp_path: Path) -> None:
    cells = _load(tmp_path)
    assert len(cells) == 2 * 2 * 2 - 2 + 1
    assert CellSpec("k2", "q1", "ovmf:2025.02", "pc", "tcg") not in cells
    assert cells[-1].pytest_args() == [
        "--kernel-package", "k3", "--qemu", "/opt/qemu", "--firmware", "seabios",
        "--machine-type", "q35", "--accel", "kvm", "--seabios", "/opt/bios.bin",
    ]  # fmt: skip


def test_the_default_matrix_has_two_qemus_two_kernels_and_both_firmwares() -> None:
    cells = load(DEFAULT_MATRIX)
    assert {c.qemu for c in cells} >= {"qemu-system-x86_64", "10.0"}
    assert len({c.kernel for c in cells}) >= 2
    assert {c.firmware_kind for c in cells} == {"seabios", "ovmf"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[axes\n", "not valid TOML"),
        ('[axes]\nkernel = ["k"]\n', "must name kernel, qemu"),
        (MATRIX.replace('accel = ["tcg"]', "accel = []"), "axis accel must be a non-empty"),
        (MATRIX + '\n[[exclude]]\ncolour = "red"\n', "names only axes"),
        (MATRIX.split("[[include]]")[0] + '[[exclude]]\nkernel = "*"\n', "leaves no cell"),
    ],
)
def test_a_malformed_matrix_is_a_one_line_error(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(SetupError, match=message) as caught:
        _load(tmp_path, text)
    assert "\n" not in str(caught.value)


def test_cells_are_selected_by_label_or_detected_id(tmp_path: Path) -> None:
    cells = _load(tmp_path)
    ids = {cell: f"id-{n}" for n, cell in enumerate(cells)}
    assert select(cells, ["k3_*"], ids) == [cells[-1]]
    assert select(cells, ["id-0"], ids) == [cells[0]]
    with pytest.raises(SetupError, match="no cell matches nope"):
        select(cells, ["nope"], ids)


def test_shards_are_stable_disjoint_and_complete(tmp_path: Path) -> None:
    cells = _load(tmp_path)
    shards = [shard(cells, f"{i}/3") for i in (1, 2, 3)]
    assert sorted(c.label for part in shards for c in part) == sorted(c.label for c in cells)
    assert shard(list(reversed(cells)), "2/3") == shards[1]
    with pytest.raises(SetupError, match="use i/n"):
        shard(cells, "4/3")


def _run(run_id: str, cell: str, verdicts: dict[str, str]) -> dict:  # type: ignore[type-arg]
    return {
        "run_id": run_id,
        "cells": [{"id": cell}],
        "tests": [
            {
                "test": f"testcases/t.py::test_x[{cell}-{case}]",
                "cell": cell,
                "outcome": "passed" if verdict == "PASS" else "failed",
                "verdicts": [verdict],
                "series": [{"reason": ""}],
            }
            for case, verdict in verdicts.items()
        ],
    }


def test_merged_shards_equal_the_whole_run() -> None:
    a = _run("r1", "cellA", {"s3": "PASS", "s4": "FAIL"})
    b = _run("r2", "cellB", {"s3": "PASS", "s4": "PASS"})
    whole = {
        "run_id": "all",
        "cells": a["cells"] + b["cells"],
        "tests": a["tests"] + b["tests"],
    }
    assert verdict_table(merge([a, b])) == verdict_table(merge([whole]))
    assert verdict_table(merge([a, b]))["testcases/t.py::test_x[s4]"] == {
        "cellA": "FAIL",
        "cellB": "PASS",
    }


def test_compare_names_regressions_fixes_and_new_failures() -> None:
    old = merge([_run("r1", "c", {"a": "PASS", "b": "FAIL", "gone": "PASS"})])
    new = merge([_run("r2", "c", {"a": "FAIL", "b": "PASS", "new": "ERROR"})])
    kinds = {(ch.kind, ch.case.split("[")[1].rstrip("]")) for ch in compare(old, new).changes}
    assert kinds == {("regression", "a"), ("fix", "b"), ("new-failure", "new"), ("missing", "gone")}


def test_a_second_matrix_run_on_the_same_out_is_refused(tmp_path: Path) -> None:
    """Two runs given one --out would pick up each other's cell runs: the second is refused."""
    from harness.tools.matrix_run import owned

    refused = pytest.raises(SetupError, match=r"another matrix run \(pid \d+\) is writing to")
    with owned(tmp_path / "out"), refused, owned(tmp_path / "out"):
        pass
    with owned(tmp_path / "out"):  # free again once the first run is over
        pass


def test_the_optional_axes_default_and_name_themselves_only_when_set(tmp_path: Path) -> None:
    stable = CellSpec("k1", "q1", "seabios", "pc", "tcg")
    assert stable.label == "k1_q1_seabios_pc_tcg"  # as before the axes existed
    newest = CellSpec("k1", "stack", "seabios", "pc", "tcg", guest="sid", libvirt="sid")
    assert newest.label == "k1_stack_seabios_pc_tcg_guest-sid_libvirt-sid"
    assert newest.pytest_args() == [
        "--kernel-package", "k1", "--guest-suite", "sid", "--libvirt-stack", "sid",
        "--firmware", "seabios", "--machine-type", "pc", "--accel", "tcg",
    ]  # fmt: skip
    cells = _load(tmp_path, MATRIX.replace('accel = ["tcg"]', 'accel = ["tcg"]\nguest = ["sid"]'))
    assert {cell.guest for cell in cells[:-1]} == {"sid"}
    assert cells[-1].guest == "default"  # an include without the axis


@pytest.mark.parametrize(("libvirt", "qemu"), [("sid", "q1"), ("host", "stack")])
def test_a_stack_cell_takes_the_stacks_qemu_and_only_it(
    tmp_path: Path, libvirt: str, qemu: str
) -> None:
    text = MATRIX + f'\n[[include]]\nkernel = "k"\nqemu = "{qemu}"\nfirmware = "seabios"\n'
    text += f'machine = "pc"\naccel = "tcg"\nlibvirt = "{libvirt}"\n'
    with pytest.raises(SetupError, match='write qemu = "stack" exactly where libvirt'):
        _load(tmp_path, text)


def test_the_nightly_matrix_moves_one_axis_at_a_time_from_stable() -> None:
    cells = load(path_of("nightly"))
    stable = CellSpec("linux-image-amd64", "qemu-system-x86_64", "seabios", "pc", "auto")
    newest = [cell for cell in cells if cell.libvirt != "host" and cell.guest != "default"]
    assert {cell.firmware_kind for cell in newest} == {"seabios", "ovmf"}
    for cell in cells:
        if cell in newest:
            continue
        moved = [
            a for a, x, y in zip(ALL_AXES, cell.values(), stable.values(), strict=True) if x != y
        ]
        # the kernel moves with its suite's guest; libvirt with its QEMU; OVMF needs q35
        assert moved in (
            ["kernel", "guest"], ["qemu", "firmware"], ["firmware"],
            ["firmware", "machine"], ["qemu", "libvirt"],
        ), (cell.label, moved)  # fmt: skip
