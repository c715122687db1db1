"""The matrix file: expansion, excludes and includes, selection, stable shards, merges."""

from pathlib import Path

import pytest

from harness.errors import SetupError
from harness.matrix.spec import DEFAULT_MATRIX, CellSpec, load, select, shard
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
        ('[axes]\nkernel = ["k"]\n', "must name exactly"),
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
