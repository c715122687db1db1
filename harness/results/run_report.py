"""Write reports/<run-id>/results.json: one record per test, with verdicts and the combination."""

from __future__ import annotations

import json
import os
import platform
import secrets
import socket
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


@dataclass
class RunReport:
    directory: Path
    run_id: str
    started: float = field(default_factory=time.time)
    records: list[dict[str, Any]] = field(default_factory=list)
    cells: list[dict[str, Any]] = field(default_factory=list)
    in_progress: str | None = None  # the test under way (pytest node id)
    command_line: list[str] = field(default_factory=lambda: list(sys.argv))

    def add_cell(self, cell: Any) -> None:
        """The combination as declared; each cycle also records what the system reported."""
        self.cells.append({"id": cell.id, **asdict(cell)})

    def add(self, record: dict[str, Any]) -> None:
        self.records.append(record)

    def write(self, exit_status: int, interrupted_by: str | None = None) -> Path:
        """``interrupted_by``: the signal or ``KeyboardInterrupt`` that cut the run short;
        the records are then those of the tests that ran to the end."""
        self.directory.mkdir(parents=True, exist_ok=True)
        summary: dict[str, int] = {}
        for record in self.records:
            for verdict in record.get("verdicts", []):
                summary[verdict] = summary.get(verdict, 0) + 1
        payload = {
            "schema": SCHEMA_VERSION,
            "run_id": self.run_id,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.started)),
            "duration_s": round(time.time() - self.started, 1),
            "exit_status": exit_status,
            "interrupted": interrupted_by is not None,
            "interrupted_by": interrupted_by,
            "interrupted_test": self.in_progress if interrupted_by else None,
            "verdict_counts": summary,
            "host": host(),
            "command_line": self.command_line,
            "cells": self.cells,
            "tests": self.records,
        }
        path = self.directory / "results.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(payload, indent=2, default=str))
        os.replace(tmp, path)
        latest = self.directory.parent / "latest"
        try:
            if latest.is_symlink() or latest.exists():
                latest.unlink()
            latest.symlink_to(self.directory.name)
        except OSError:
            pass
        return path


def host() -> dict[str, Any]:
    """The machine the run ran on, as a report's header names it."""
    return {
        "name": socket.gethostname(),
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }
