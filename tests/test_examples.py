"""examples/quickstart.py (the library on asyncio and Trio, with faults) runs as it claims."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

EXAMPLE = pathlib.Path(__file__).parent.parent / "examples" / "quickstart.py"


def test_the_quickstart_example_runs_on_both_backends() -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        capture_output=True,
        encoding="utf-8",
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
        timeout=120,
        check=True,
    )
    for backend in ("asyncio", "trio"):
        assert f"--- {backend}: AuraClient.stream() from http://127.0.0.1:" in result.stdout
    assert result.stdout.count("Hello from the reference server ✓") == 4
    assert result.stdout.count("a 503, then the reply: attempts 2") == 2
    assert result.stdout.count("a reply that stalls: IncompleteStreamError, kept 'Hello") == 2
    assert result.stderr == ""
