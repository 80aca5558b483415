"""Shared helpers of the deploy tests: the real tools, found or refused.

The tools are helm (built from the Go module proxy by ``scripts/tools`` into
``.cache/tools``), ``docker-compose`` (Debian's package) and the ``kubernetes_validate``
package. Where one is missing a test skips, naming the command that installs it, except
under ``CI=true``, where it fails: CI must never pass by checking nothing.

``DEPLOY_CHART_DIR`` points the chart tests at a copy of ``helm/`` (to try a change
without touching the tree); by default they use the repository's own chart.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
CHART = Path(os.environ.get("DEPLOY_CHART_DIR") or REPO / "helm")
RELEASE = "det"
NAMESPACE = "security"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

try:
    import yaml
except ImportError:  # the deploy extra brings PyYAML; the checks below say so
    yaml = None


def missing(what: str, how: str) -> None:
    """Skip (or, under CI, fail) a test whose tool is not installed."""
    message = f"{what} is not installed: {how}"
    if IN_CI:
        pytest.fail(message + " (CI=true: a missing tool fails, never skips)")
    pytest.skip(message)


def load_yaml_all(text: str) -> list[Any]:
    if yaml is None:
        missing("PyYAML", "run scripts/tools (pip installs it into .venv)")
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


def load_yaml(text: str) -> Any:
    docs = load_yaml_all(text)
    assert len(docs) == 1, f"expected one YAML document, got {len(docs)}"
    return docs[0]


@cache
def _helm_path() -> str | None:
    for candidate in (os.environ.get("HELM"), REPO / ".cache/tools/helm", shutil.which("helm")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def helm_bin() -> str:
    path = _helm_path()
    if path is None:
        missing("helm", "run scripts/tools (builds it into .cache/tools)")
    assert path is not None
    return path


def compose_bin() -> str:
    path = shutil.which("docker-compose")
    if path is None:
        missing("docker-compose", "apt-get install -y docker-compose")
    assert path is not None
    return path


def kubernetes_validate() -> Any:
    try:
        import kubernetes_validate as module
    except ImportError:
        missing("kubernetes-validate", "run scripts/tools (pip installs it into .venv)")
    return module


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    """Run helm with ``args``; the result, whatever the exit code."""
    env = {
        **os.environ,
        "HELM_CACHE_HOME": str(REPO / ".cache/helm/cache"),
        "HELM_CONFIG_HOME": str(REPO / ".cache/helm/config"),
        "HELM_DATA_HOME": str(REPO / ".cache/helm/data"),
    }
    return subprocess.run(
        [helm_bin(), *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )


def values_file(values: dict[str, Any]) -> str:
    """A values file holding ``values`` (kept for the session, keyed by content)."""
    text = json.dumps(values, sort_keys=True)
    folder = Path(tempfile.gettempdir()) / "deploy-test-values"
    folder.mkdir(exist_ok=True)
    path = folder / f"{hashlib.sha256(text.encode()).hexdigest()[:16]}.yaml"
    path.write_text(text, encoding="utf-8")  # JSON is YAML
    return str(path)


@cache
def _render(values_json: str) -> tuple[int, str, str]:
    values = json.loads(values_json)
    result = helm(
        "template", RELEASE, str(CHART), "--namespace", NAMESPACE, "--values", values_file(values)
    )
    return result.returncode, result.stdout, result.stderr


def render_result(values: dict[str, Any] | None = None) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``helm template`` with ``values`` (cached)."""
    return _render(json.dumps(values or {}, sort_keys=True))


def render(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The manifests ``helm template`` renders for ``values``; fails on a render error."""
    code, out, err = render_result(values)
    assert code == 0, f"helm template failed:\n{err}"
    return load_yaml_all(out)


def find(manifests: list[dict[str, Any]], kind: str, suffix: str = "") -> dict[str, Any]:
    """The one manifest of ``kind`` whose name ends with ``suffix``."""
    hits = [m for m in manifests if m["kind"] == kind and m["metadata"]["name"].endswith(suffix)]
    assert len(hits) == 1, (
        f"expected one {kind} named *{suffix}, got {[m['metadata']['name'] for m in hits]}"
    )
    return hits[0]


def kinds(manifests: list[dict[str, Any]]) -> set[str]:
    return {m["kind"] for m in manifests}
