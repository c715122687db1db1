"""Signed checksum lists checked by gpgv against a key set in a folder: a good signature by a
key of the set is accepted and only the signed text is read; a bad signature, a key outside
the set, or no signature at all is refused."""

import itertools
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.errors import SetupError
from harness.setup.signatures import FEDORA_KEYS, UBUNTU_KEYS, check_detached, clearsigned_text
from harness.setup.signatures import keyring as make_keyring
from tests.unit.local_mirrors import Signer

GOOD = "1" * 64
SUMS = f"# Fedora-Cloud-41\nSHA256 (Fedora-Cloud-Base-Generic-41-1.4.x86_64.qcow2) = {GOOD}\n"


@pytest.fixture(scope="module")
def signer() -> Iterator[Signer]:
    key = Signer()
    yield key
    key.close()


@pytest.fixture(scope="module")
def stranger() -> Iterator[Signer]:
    key = Signer("A key of no distribution")
    yield key
    key.close()


@pytest.fixture
def keys(signer: Signer, tmp_path: Path) -> Path:
    """A key set of one: the signer's public key, ASCII-armored as Fedora ships its keys."""
    signer.export(tmp_path / "keys" / "RPM-GPG-KEY-throwaway")
    (tmp_path / "keys" / "README.md").write_text("not a key: skipped\n")
    return tmp_path / "keys"


def test_a_good_clearsignature_by_a_key_of_the_set_gives_the_signed_text(
    signer: Signer, keys: Path
) -> None:
    assert clearsigned_text(signer.clearsign(SUMS), keys, "CHECKSUM") == SUMS


def test_text_around_the_signed_part_is_never_read(signer: Signer, keys: Path) -> None:
    forged = f"SHA256 (Fedora-Cloud-Base-Generic-41-1.4.x86_64.qcow2) = {'6' * 64}\n"
    signed = forged.encode() + signer.clearsign(SUMS) + forged.encode()
    assert clearsigned_text(signed, keys, "CHECKSUM") == SUMS


def test_a_changed_digest_under_a_good_signature_is_refused(signer: Signer, keys: Path) -> None:
    tampered = signer.clearsign(SUMS).replace(GOOD.encode(), b"6" * 64)
    with pytest.raises(SetupError, match=r"^CHECKSUM has a signature that is not good \(BADSIG"):
        clearsigned_text(tampered, keys, "CHECKSUM")


def test_a_signature_by_a_key_outside_the_set_is_refused(stranger: Signer, keys: Path) -> None:
    with pytest.raises(SetupError) as caught:
        clearsigned_text(stranger.clearsign(SUMS), keys, "CHECKSUM")
    assert str(caught.value) == f"CHECKSUM is signed by a key that is not in {keys}: refused"


def test_an_unsigned_list_is_refused(keys: Path) -> None:
    with pytest.raises(SetupError, match=r"^CHECKSUM is not clearsigned: refused"):
        clearsigned_text(SUMS.encode(), keys, "CHECKSUM")
    with pytest.raises(SetupError, match=r"^SHA256SUMS is not signed: refused"):
        check_detached(SUMS.encode(), b"not a signature", keys, "SHA256SUMS")


def test_a_detached_signature_in_a_binary_keyring(
    signer: Signer, stranger: Signer, tmp_path: Path
) -> None:
    keys = tmp_path / "ubuntu"
    signer.export(keys / "cloudimage-keyring.gpg", armor=False)  # binary, as Ubuntu ships it
    data = SUMS.encode()
    check_detached(data, signer.detach_sign(data), keys, "SHA256SUMS")
    with pytest.raises(SetupError, match=r"^SHA256SUMS has a signature that is not good"):
        check_detached(data + b"\n", signer.detach_sign(data), keys, "SHA256SUMS")
    with pytest.raises(SetupError, match=r"^SHA256SUMS is signed by a key that is not in "):
        check_detached(data, stranger.detach_sign(data), keys, "SHA256SUMS")


def test_an_empty_key_set_is_an_error(tmp_path: Path, signer: Signer) -> None:
    with pytest.raises(SetupError, match=r"^no keys in .*: the signed checksum list cannot be"):
        clearsigned_text(signer.clearsign(SUMS), tmp_path, "CHECKSUM")


@pytest.mark.parametrize(
    ("keys", "fingerprints"),
    [
        (FEDORA_KEYS, {"466CF2D8B60BC3057AA9453ED0622462E99D6AD1",  # Fedora 41
                       "B0F4950458F69E1150C6C5EDC8AC4916105EF944"}),  # Fedora 42
        (UBUNTU_KEYS, {"D2EB44626FDDC30B513D5BB71A5D6C4C7DB87C81",  # UEC Image Automatic Signing
                       "4A3CE3CD565D7EB5C810E2B97FF3F408476CF100"}),  # Ubuntu Cloud Image Builder
    ],
)  # fmt: skip
def test_the_kept_key_sets_read_as_keyrings(
    keys: Path, fingerprints: set[str], tmp_path: Path
) -> None:
    """Fedora's armored release keys and Ubuntu's binary keyring, as the repository keeps them,
    become the binary keyring gpgv reads, with the keys they should hold."""
    (tmp_path / "ring.gpg").write_bytes(make_keyring(keys))
    shown = subprocess.run(
        ["gpg", "--batch", "--homedir", str(tmp_path), "--with-colons", "--show-keys",
         str(tmp_path / "ring.gpg")],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    lines = [line.split(":") for line in shown.stdout.splitlines()]
    primary = [fields[9] for previous, fields in itertools.pairwise(lines)
               if previous[0] == "pub" and fields[0] == "fpr"]  # fmt: skip
    assert fingerprints <= set(primary)
    if keys == FEDORA_KEYS:
        assert len(primary) == len(list(keys.glob("RPM-GPG-KEY-fedora-*-primary"))) >= 8
