"""Signed checksum lists, checked with ``gpgv`` against a key set kept in the repository.

A distribution that signs its cloud images' checksum list (Fedora clearsigns each release's
``CHECKSUM``; Ubuntu signs ``SHA256SUMS`` with ``SHA256SUMS.gpg`` beside it) is trusted
through that signature, whatever the transport: the keyring ``gpgv`` is given holds the keys
of one folder under ``keys/`` (see its README for where they come from) and nothing else, so a
good signature is one made by a key of that set. Digests are then read only from the text the
signature covers, never from what surrounds it.
"""

from __future__ import annotations

import base64
import binascii
import subprocess
import tempfile
from pathlib import Path

from harness.errors import SetupError

KEYS = Path(__file__).with_name("keys")
FEDORA_KEYS = KEYS / "fedora"
UBUNTU_KEYS = KEYS / "ubuntu"
GPGV_TIMEOUT_S = 60.0
ARMOR_BEGIN = "-----BEGIN PGP PUBLIC KEY BLOCK-----"
ARMOR_END = "-----END PGP PUBLIC KEY BLOCK-----"
CLEARSIGN_BEGIN = b"-----BEGIN PGP SIGNED MESSAGE-----"
# Status words of a signature gpgv could not call good (gpg's doc/DETAILS).
REFUSED_STATUS = {"BADSIG", "ERRSIG", "NO_PUBKEY", "EXPSIG", "EXPKEYSIG", "REVKEYSIG"}


def clearsigned_text(signed: bytes, keys: Path, what: str) -> str:
    """The text of the clearsigned ``signed`` (named ``what`` in errors), once ``gpgv`` found it
    signed by a key in ``keys``."""
    if signed.count(CLEARSIGN_BEGIN) != 1:
        raise SetupError(f"{what} is not clearsigned: refused (it should be signed by {keys})")
    with tempfile.TemporaryDirectory(prefix="s3s4-gpgv-") as work:
        message, text = Path(work) / "message.asc", Path(work) / "text"
        message.write_bytes(signed)
        _gpgv(Path(work), keys, what, ["--output", str(text), str(message)])
        return text.read_bytes().decode(errors="replace")


def check_detached(data: bytes, signature: bytes, keys: Path, what: str) -> None:
    """Return once ``gpgv`` found ``signature`` a good one over ``data`` by a key in ``keys``."""
    with tempfile.TemporaryDirectory(prefix="s3s4-gpgv-") as work:
        signed, sig = Path(work) / "data", Path(work) / "data.sig"
        signed.write_bytes(data)
        sig.write_bytes(signature)
        _gpgv(Path(work), keys, what, [str(sig), str(signed)])


def keyring(keys: Path) -> bytes:
    """The keys of the folder ``keys`` as one binary keyring (what gpgv reads): ASCII-armored
    files dearmored, binary ones as they are."""
    files = sorted(p for p in keys.iterdir() if p.is_file() and not p.name.startswith("README"))
    if not files:
        raise SetupError(f"no keys in {keys}: the signed checksum list cannot be checked")
    return b"".join(_dearmor(p) for p in files)


def _gpgv(work: Path, keys: Path, what: str, arguments: list[str]) -> None:
    ring = work / "keyring.gpg"
    ring.write_bytes(keyring(keys))
    home = work / "home"  # gpgv reads nothing of root's own ~/.gnupg
    home.mkdir(mode=0o700)
    argv = ["gpgv", "--homedir", str(home), "--keyring", str(ring), "--status-fd", "1"]
    try:
        result = subprocess.run(
            [*argv, *arguments], capture_output=True, text=True, check=False,
            timeout=GPGV_TIMEOUT_S,
        )  # fmt: skip
    except FileNotFoundError as exc:
        raise SetupError("gpgv not found: run ./run setup (installs gpgv)") from exc
    except subprocess.TimeoutExpired as exc:
        raise SetupError(f"gpgv took over {GPGV_TIMEOUT_S:.0f} s to check {what}") from exc
    words = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("[GNUPG:] ")]
    valid, refused = words.count("VALIDSIG"), REFUSED_STATUS.intersection(words)
    if result.returncode == 0 and valid and not refused and words.count("NEWSIG") == valid:
        return  # every signature good, and by a key of the set: the keyring holds no other
    if "NEWSIG" not in words:
        raise SetupError(f"{what} is not signed: refused (it should be signed by a key in {keys})")
    if "NO_PUBKEY" in words or "ERRSIG" in words:
        raise SetupError(f"{what} is signed by a key that is not in {keys}: refused")
    problem = ", ".join(sorted(refused)) or f"gpgv exit status {result.returncode}"
    raise SetupError(f"{what} has a signature that is not good ({problem}): refused")


def _dearmor(path: Path) -> bytes:
    data = path.read_bytes()
    if not data.lstrip().startswith(ARMOR_BEGIN.encode()):
        return data
    lines = data.decode("ascii", errors="replace").strip().splitlines()
    try:
        body = lines[lines.index(ARMOR_BEGIN) + 1 : lines.index(ARMOR_END)]
    except ValueError as exc:
        raise SetupError(f"{path} is not one ASCII-armored public key block") from exc
    if "" in body:  # armor headers ("Comment: ...") end at the first empty line
        body = body[body.index("") + 1 :]
    payload = "".join(line.strip() for line in body if not line.startswith("="))
    try:
        return base64.b64decode(payload, validate=True)
    except binascii.Error as exc:
        raise SetupError(f"{path}: the armored key does not decode: {exc}") from exc
