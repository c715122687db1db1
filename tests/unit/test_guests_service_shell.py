"""libvirt-guests runs under ``sh -c`` in a private mount namespace: the paths in that command
line reach the shell quoted, whatever they hold."""

import os
from pathlib import Path

import pytest

from harness.transitions import guests_service
from harness.transitions.guests_service import GuestsService, GuestsServiceConfig

ODD = "odd \"name\" $(touch pwned) 'x'"


@pytest.mark.skipif(os.geteuid() != 0, reason="a private mount namespace needs root")
def test_paths_with_shell_characters_reach_the_service_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scripts = tmp_path / f"scripts {ODD}"
    scripts.mkdir()
    script = scripts / "libvirt-guests.sh"
    target = tmp_path / "default-libvirt-guests"
    target.write_text("the host's own\n")
    script.write_text(f'#!/bin/sh\necho "action=$1"\ncat "{target}"\n')
    script.chmod(0o755)
    monkeypatch.setattr(guests_service, "find_script", lambda: (script, target))
    monkeypatch.chdir(tmp_path)
    service = GuestsService(GuestsServiceConfig(uris="qemu:///system"), tmp_path / ODD, 30)
    run = service.stop()
    assert run.exit_status == 0, run.output
    assert run.output.startswith("action=stop\n# written by s3s4-harness\n"), run.output
    assert not (tmp_path / "pwned").exists()
    assert target.read_text() == "the host's own\n"  # bound over in the namespace only
