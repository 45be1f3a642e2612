"""bench/run.py --smoke runs end to end on the CPU: plain diffusers (tiny), the real server driven by the
async openai client, ratios, and the JSON result."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_bench_smoke_mode_runs_end_to_end(tmp_path: Path):
    out = tmp_path / "result.json"
    done = subprocess.run([sys.executable, str(REPO / "bench" / "run.py"), "--smoke", "--out", str(out)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert [row["batch"] for row in report["plain_diffusers"]] == [1, 4]
    assert report["baseline"]["images_per_s"] > 0
    server = {row["concurrency"]: row for row in report["server"]}
    assert sorted(server) == [1, 4]
    for row in server.values():
        assert row["errors"] == 0 and row["images"] == row["requests"] == 4
        assert row["images_per_s"] > 0 and row["p95_ms"] >= row["p50_ms"] > 0 and row["ratio"] > 0
        assert sum(int(size) * count for size, count in row["batch_sizes"].items()) == 4
    assert "images/s" in done.stdout and "ratio" in done.stdout
    if "one_at_a_time" not in report:
        assert any("one-at-a-time server skipped" in note for note in report["notes"])
