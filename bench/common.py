"""Shared by the benchmarks: each measures its own baseline in the same run and reports ratios
(these machines are shared and noisy, so absolute times mean little); a dated row goes to
bench/RESULTS.md."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "RESULTS.md"
HEADER = (
    "| date | benchmark | figure | baseline | ratio | goal | met |\n"
    "| --- | --- | --- | --- | --- | --- | --- |\n"
)

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def report(name: str, figure: str, baseline: str, ratio: float, goal: str, met: bool) -> None:
    verdict = "MET" if met else "MISSED"
    print(f"{name}: {figure} against {baseline}: ratio {ratio:.2f} (goal {goal}) {verdict}")
    if not RESULTS.exists():
        RESULTS.write_text(
            "# Benchmark results\n\nAppended by `make bench`; ratios are against a baseline "
            "measured in the same run.\n\n" + HEADER
        )
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M")
    with RESULTS.open("a") as handle:
        row = [stamp, name, figure, baseline, f"{ratio:.2f}", goal, "yes" if met else "no"]
        handle.write("| " + " | ".join(row) + " |\n")


@contextmanager
def bench_app(**overrides):
    """A portal on a fresh migrated SQLite database in a temporary instance folder."""
    directory = Path(tempfile.mkdtemp(prefix="portal-bench-"))
    os.environ["PORTAL_INSTANCE_PATH"] = str(directory / "instance")
    from portal import create_app
    from portal.cli.database import upgrade
    from portal.core.db import build_engine

    url = f"sqlite:///{directory / 'portal.db'}"
    engine = build_engine(url)
    upgrade(engine)
    engine.dispose()
    config = {
        "DATABASE_URL": url,
        "SECRET_KEY": "bench-secret-key-0123456789abcdef0123456789",
        "DATA_ENCRYPTION_KEY": "qLUPqJ9bY6I5s0b0wEnUhG3R8oJrV7m3W5S0XbVmP1g=",
        "ENVIRONMENT": "development",
        "MFA_REQUIRED_FOR_STAFF": False,
        "RATELIMIT_ENABLED": False,
        **overrides,
    }
    app = create_app(config)
    try:
        yield app, directory, url
    finally:
        app.extensions["portal.database"][0].dispose()
        shutil.rmtree(directory, ignore_errors=True)
