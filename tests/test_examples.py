"""examples/quickstart.py (the library on asyncio and Trio, with faults) runs as it claims."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

pytestmark = pytest.mark.subprocess

EXAMPLES = pathlib.Path(__file__).parent.parent / "examples"
EXAMPLE = EXAMPLES / "quickstart.py"


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


@pytest.mark.ray
@pytest.mark.timeout(300)  # a hang guard, not a speed target
def test_the_ray_example_writes_a_row_for_every_line(
    tmp_path: pathlib.Path, ray_cluster: str
) -> None:
    parquet = pytest.importorskip("pyarrow.parquet")

    source, output = tmp_path / "prompts.jsonl", tmp_path / "replies"
    lines = [json.dumps({"id": n, "prompt": f"p{n}"}) for n in range(30)]
    lines.append(json.dumps({"id": 30, "prompt": "p30", "system": 3}))  # a bad row
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = subprocess.run(
        [
            *(sys.executable, str(EXAMPLES / "ray_batch.py"), str(source), str(output)),
            *("--format", "parquet", "--actors", "2", "--batch-size", "8"),
            *("--address", ray_cluster),  # the suite's cluster, joined as a cluster's would be
        ],
        capture_output=True,
        encoding="utf-8",
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
        timeout=280,
        check=True,
    )
    assert "wrote 31 rows to" in result.stdout
    assert "1 of them failed" in result.stdout
    rows = parquet.read_table(output).to_pylist()
    assert sorted(row["id"] for row in rows) == list(range(31))
    for row in rows:
        if row["id"] == 30:
            assert (row["ok"], row["error"]) == (False, "system must be a string")
        else:
            assert row["ok"]
            assert f"you said «p{row['id']}»" in row["text"]
