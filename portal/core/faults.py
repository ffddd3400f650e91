"""Crash injection for the reliability tests: `FAULT_POINT` names a point where the process
kills itself (SIGKILL, as a power cut would). Unset, as always outside those tests, it does
nothing; `flask check` refuses it in production."""

from __future__ import annotations

import os
import signal

from flask import current_app


def fault_point(name: str) -> None:
    if current_app.config.get("FAULT_POINT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
