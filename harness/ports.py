"""Pick a free TCP port on 127.0.0.1 for the guest's ssh forward."""

from __future__ import annotations

import socket


def free_local_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
