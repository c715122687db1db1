"""Test helpers for downloads: HTTP and HTTPS servers on 127.0.0.1 only (the HTTPS one with a
self-signed certificate the test trusts through SSL_CERT_FILE), and a throwaway OpenPGP key in
a temporary GNUPGHOME that signs as a distribution does."""

from __future__ import annotations

import contextlib
import shutil
import ssl
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@contextlib.contextmanager
def serve(
    handler: type[BaseHTTPRequestHandler] | object, certificate: tuple[Path, Path] | None = None
) -> Iterator[str]:
    """A server on 127.0.0.1 for ``handler`` (a handler class or a partial of one), over TLS
    with ``certificate`` (certificate, key); its base URL (``http(s)://127.0.0.1:PORT``)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)  # type: ignore[arg-type]
    scheme = "http"
    if certificate is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*certificate)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"{scheme}://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made by openssl, valid for a day."""
    certificate, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(certificate), "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return certificate, key


class Signer:
    """A throwaway ed25519 signing key in a GNUPGHOME of its own (short, under /tmp: the
    agent's socket path must fit), used as a distribution's release key."""

    def __init__(self, name: str = "Throwaway release key") -> None:
        self.home = Path(tempfile.mkdtemp(prefix="gpg-"))
        self.home.chmod(0o700)
        self._gpg("--passphrase", "", "--quick-gen-key", f"{name} <key@example.invalid>",
                  "ed25519", "sign", "never")  # fmt: skip

    def export(self, path: Path, armor: bool = True) -> Path:
        """The public key, ASCII-armored (as Fedora's) or binary (as Ubuntu's keyring)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self._gpg(*(["--armor"] if armor else []), "--export"))
        return path

    def clearsign(self, text: str) -> bytes:
        return self._gpg("--clearsign", stdin=text.encode())

    def detach_sign(self, data: bytes) -> bytes:
        return self._gpg("--detach-sign", stdin=data)

    def close(self) -> None:
        subprocess.run(["gpgconf", "--homedir", str(self.home), "--kill", "gpg-agent"],
                       check=False, capture_output=True, timeout=30)  # fmt: skip
        shutil.rmtree(self.home, ignore_errors=True)

    def _gpg(self, *arguments: str, stdin: bytes | None = None) -> bytes:
        result = subprocess.run(
            ["gpg", "--batch", "--quiet", "--homedir", str(self.home), *arguments],
            input=stdin, capture_output=True, check=True, timeout=60,
        )  # fmt: skip
        return result.stdout
