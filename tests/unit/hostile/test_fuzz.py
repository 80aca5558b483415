"""A short atheris run of each fuzz target (tests/unit/hostile/fuzz.py).

Seeded with the hostile inputs of the other tests, for a fixed number of runs: a quick
smoke test that the targets work and the well-known corners hold. Long runs are manual
(see fuzz.py). atheris is in the ``dev`` extra.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[3]
RUNS = int(os.environ.get("CONSUMER_FUZZ_RUNS", "3000"))

SEEDS: dict[str, list[bytes]] = {
    "decode": [
        b'{"process":{"name":"kextunload","args":["a"]},"@timestamp":"2024-01-01T00:00:00Z"}',
        b'{"a":"\\ud800","b":1e400,"c":NaN}',
        b"[" * 2000,
        b"\x00\x00\x00\x00\x01(2024-01-01T00:00:00Z\x02\x04hi\x00\x00\x00",
        b"(2024-01-01T00:00:00Z\x00\x02\xfe\xff\xff\xff\xff\xff\xff\xff\x7f\x02a",
    ],
    "kql": [
        b"process.name:kextunload and event.type:(start or process_started)",
        b'a:{ b:1 and not c:"x*" } or @timestamp >= now-9m/m',
        b"(" * 100 + b"a:1",
        b"*:" + b"*a" * 20 + b"*b",
        b'message:"a b c" or source.ip:10.0.0.0/8 or process.pid <= 1e308',
    ],
    "rules": [
        (
            ROOT / "consumer/rules/builtin/defense_evasion_unload_endpointsecurity_kext.toml"
        ).read_bytes(),
        json.dumps(
            {
                "rule_id": "r",
                "name": "n",
                "type": "query",
                "query": "a:1",
                "severity": "low",
                "risk_score": 1,
                "interval": "99999999999999d",
                "threat": [{"tactic": 1}],
            }
        ).encode(),
        b"a = " + b"[" * 3000,
    ],
}


@pytest.mark.parametrize("target", list(SEEDS))
def test_fuzz_target_runs_clean(tmp_path: Path, target: str) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, seed in enumerate(SEEDS[target]):
        (corpus / f"seed-{i}").write_bytes(seed)
    result = subprocess.run(
        [
            sys.executable, "-m", "tests.unit.hostile.fuzz", target,
            f"-runs={RUNS}", "-timeout=10", "-rss_limit_mb=2048", "-max_len=65536",
            f"-artifact_prefix={tmp_path}/", str(corpus),
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=110, check=False,
    )  # fmt: skip
    crashes = sorted(p.name for p in tmp_path.glob("crash-*")) + sorted(
        p.name for p in tmp_path.glob("timeout-*")
    )
    assert result.returncode == 0 and not crashes, result.stderr[-4000:]
