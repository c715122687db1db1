"""The tmt plans prepare with ./run setup (so a Fedora compose installs through host-packages.txt
with dnf) and ask Testing Farm for a machine with hardware virtualization."""

from pathlib import Path

import fmf  # type: ignore[import-untyped]
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("plan", ["/plans/cell", "/plans/testday"])
def test_plans_prepare_with_run_setup_on_a_virtualization_host(plan: str) -> None:
    data = fmf.Tree(str(ROOT)).find(plan).data
    assert data["prepare"] == {"how": "shell", "script": "./run setup"}
    assert data["provision"]["hardware"]["virtualization"] == {"is-supported": True}


def test_the_testday_plan_runs_the_testday_test() -> None:
    tree = fmf.Tree(str(ROOT))
    assert tree.find("/plans/testday").data["discover"]["filter"] == "tag: testday"
    test = tree.find("/tmt/testday").data
    assert "testday" in test["tag"] and test["test"] == "./testday.sh"
    script = (ROOT / "tmt" / "testday.sh").read_text()
    assert "./run testday --bot" in script and "tmt-results" in script
