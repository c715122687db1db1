"""The run root: made 0700, refused when another user could have made it or can change it."""

import os
import pwd
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.errors import SetupError
from harness.guest.ssh import SshKey
from harness.setup import runtime
from harness.setup.runtime import check_root, make_run_dir, sweep_stale


@pytest.fixture
def short(tmp_path: Path) -> Iterator[Path]:
    """A directory with a name short enough for socket paths below it (tmp_path's is not)."""
    path = Path(tempfile.mkdtemp(prefix="s3s4-t-", dir="/tmp"))
    yield path
    shutil.rmtree(path)


def test_a_missing_root_is_made_private(short: Path) -> None:
    root = short / "s3s4-harness"
    run = make_run_dir(root)
    assert run.parent == root and run.name.startswith(f"{os.getpid()}-")
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert stat.S_IMODE(run.stat().st_mode) == 0o700


def test_a_symlinked_root_is_refused(short: Path) -> None:
    target = short / "elsewhere"
    target.mkdir(mode=0o700)
    (target / "1-victim").mkdir()  # a numbered entry a sweep would delete
    root = short / "s3s4-harness"
    root.symlink_to(target)
    with pytest.raises(SetupError, match=r"is a symbolic link, not a directory: remove "):
        make_run_dir(root)
    with pytest.raises(SetupError, match="symbolic link"):
        sweep_stale(root)
    assert (target / "1-victim").is_dir()


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory away needs root")
def test_a_root_owned_by_another_user_is_refused(short: Path) -> None:
    root = short / "s3s4-harness"
    root.mkdir(mode=0o700)
    nobody = pwd.getpwnam("nobody").pw_uid
    os.chown(root, nobody, -1)
    with pytest.raises(SetupError, match=rf"belongs to uid {nobody}, not to this user"):
        make_run_dir(root)
    assert list(root.iterdir()) == []


@pytest.mark.parametrize("mode", [0o770, 0o707, 0o1777], ids=oct)
def test_a_root_writable_by_group_or_others_is_refused(short: Path, mode: int) -> None:
    root = short / "s3s4-harness"
    root.mkdir()
    root.chmod(mode)
    with pytest.raises(SetupError, match=rf"writable by group or others \(mode {mode:04o}\)"):
        make_run_dir(root)


def test_a_file_in_place_of_the_root_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "s3s4-harness"
    root.write_text("")
    with pytest.raises(SetupError, match="is not a directory"):
        check_root(root)


def test_an_earlier_runs_root_is_accepted_and_its_dead_runs_swept(short: Path) -> None:
    root = short / "s3s4-harness"
    root.mkdir(mode=0o755)
    dead = root / "4194304-abcdefgh"  # above pid_max: no such process
    dead.mkdir()
    make_run_dir(root)
    assert not dead.exists()


def test_root_defaults_to_run_as_root_unless_tmpdir_is_given(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.delenv("TMPDIR", raising=False)
    assert runtime.runtime_root() == Path("/run/s3s4-harness")
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)  # gettempdir reads TMPDIR again
    assert runtime.runtime_root() == tmp_path / "s3s4-harness"


def test_a_key_file_already_there_is_refused(tmp_path: Path) -> None:
    planted = tmp_path / "id_ecdsa"
    planted.write_text("someone else's key\n")
    with pytest.raises(SetupError, match=r"id_ecdsa exists already"):
        SshKey.generate(tmp_path)
    assert planted.read_text() == "someone else's key\n"
    target = tmp_path / "target"
    planted.unlink()
    planted.symlink_to(target)  # a dangling link is refused too, not followed
    with pytest.raises(SetupError, match="exists already"):
        SshKey.generate(tmp_path)
    assert not target.exists()


def test_a_new_key_is_private(tmp_path: Path) -> None:
    key = SshKey.generate(tmp_path)
    assert stat.S_IMODE(key.private_path.stat().st_mode) == 0o600
    assert key.load().get_name() == "ecdsa-sha2-nistp256"
