"""The Dockerfile, checked against the package where no Docker engine can build it.

A real build (``docker build .``) runs only where an engine answers; the checks here
read the Dockerfile's instructions and compare them with the package: the entry point
is ``python -m consumer run``, the user a fixed non-root uid that the chart also uses,
the build context holds what the wheel is built from, and the final stage has no
build tools.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

from consumer.settings import OPTIONS

from .tools import CHART, REPO, load_yaml

DOCKERFILE = REPO / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = pending + stripped
        pending = ""
        word, _, rest = full.partition(" ")
        out.append((word.upper(), rest.strip()))
    assert not pending, "Dockerfile ends inside a continued line"
    return out


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for word, rest in instructions():
        if word == "FROM":
            result.append([])
        if result:
            result[-1].append((word, rest))
    return result


def final(word: str) -> list[str]:
    return [rest for w, rest in stages()[-1] if w == word]


def exec_form(text: str) -> list[str]:
    value: Any = json.loads(text)
    assert isinstance(value, list), f"{text}: use the exec (JSON) form"
    return value


def test_multi_stage_with_a_slim_base() -> None:
    froms = [rest for w, rest in instructions() if w == "FROM"]
    assert len(froms) >= 2 and re.search(r"\bAS build\b", froms[0])
    args = dict(
        re.match(r"(\w+)=(.*)", rest).groups()
        for w, rest in instructions()  # type: ignore[union-attr]
        if w == "ARG" and "=" in rest
    )
    assert "slim" in args["BASE_IMAGE"]
    assert args["PYTHON_VERSION"] == "3.11"
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == ">=3.11"


def test_entry_point_is_python_m_consumer_run() -> None:
    (entrypoint,) = final("ENTRYPOINT")
    (cmd,) = final("CMD")
    argv = exec_form(entrypoint) + exec_form(cmd)
    assert argv[0].endswith("/python") and argv[1:] == ["-m", "consumer", "run"]
    # The venv the build stage made is the one copied and put first on PATH.
    assert argv[0] == "/opt/consumer/bin/python"
    assert any("--from=build /opt/consumer /opt/consumer" in c for c in final("COPY"))
    # And the package really has that command.
    result = subprocess.run(
        [sys.executable, "-m", "consumer", "run", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0 and "--bootstrap-servers" in result.stdout


def test_runs_as_a_fixed_non_root_user_the_chart_expects() -> None:
    (user,) = final("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) >= 10000, "a numeric uid, so runAsNonRoot can verify it"
    assert gid.isdigit() and int(gid) >= 10000
    run = " ".join(final("RUN"))
    assert f"--uid {uid}" in run and f"--gid {gid}" in run
    values = load_yaml((CHART / "values.yaml").read_text(encoding="utf-8"))
    assert values["podSecurityContext"]["runAsUser"] == int(uid)
    assert values["podSecurityContext"]["runAsGroup"] == int(gid)
    assert values["securityContext"]["runAsUser"] == int(uid)


def test_final_stage_has_no_build_tools_or_sources() -> None:
    text = " ".join(rest for _, rest in stages()[-1])
    for word in (
        "apt-get install",
        "gcc",
        "build-essential",
        "pip install",
        "pip wheel",
        "COPY consumer",
        "COPY . ",
    ):
        assert word not in text, f"final stage: {word}"
    # The image's own pip goes as well: nothing is installed at run time.
    assert "pip uninstall" in text
    copies = final("COPY")
    assert copies and all(c.startswith("--from=") for c in copies)


def test_metadata_port_signal_and_writable_paths() -> None:
    labels = " ".join(final("LABEL"))
    for key in ("title", "description", "version", "revision", "created", "licenses"):
        assert f"org.opencontainers.image.{key}=" in labels
    metrics_port = next(o.default for o in OPTIONS if o.env == "CONSUMER_METRICS_PORT")
    assert final("EXPOSE") == [str(metrics_port)]
    assert final("STOPSIGNAL") == ["SIGTERM"]
    env = " ".join(final("ENV"))
    assert "PYTHONDONTWRITEBYTECODE=1" in env and "TMPDIR=/tmp" in env


def test_build_context_holds_what_the_wheel_needs() -> None:
    """.dockerignore is an allow-list: each file the wheel is built from is let in and copied."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    needed = {"pyproject.toml", pyproject["project"]["readme"]}
    wheel = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]
    needed |= set(wheel["packages"]) | set(wheel.get("force-include", {}))
    ignore = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert ignore[0] == "*"
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert needed <= allowed, needed - allowed
    build_copies = " ".join(rest for w, rest in stages()[0] if w == "COPY")
    for path in needed:
        assert path in build_copies, f"the build stage does not copy {path}"


def test_builtin_rules_link_matches_the_package() -> None:
    """The image links the package's built-in rules at a fixed path and loads them."""
    run = " ".join(rest for w, rest in stages()[0] if w == "RUN")
    assert "builtin_rules_path()" in run
    assert "consumer check-rules /opt/consumer/builtin-rules" in run


def test_the_wheel_the_image_installs_carries_everything_the_consumer_reads(
    tmp_path: Path,
) -> None:
    """What the Dockerfile's build stage does, without an engine: build the wheel,
    install it on its own, and run the built-in rules and the bundled samples from it."""
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(REPO)],
        check=True, timeout=300,
    )  # fmt: skip
    [wheel] = wheels.glob("consumer-*.whl")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
         str(wheel)],
        check=True, timeout=300,
    )  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(target)}
    script = (
        "import consumer, sys; from pathlib import Path\n"
        "from consumer.rules import builtin_rules_path\n"
        "from consumer.samples import sample_events_path\n"
        "from consumer.codecs import default_schema_dir\n"
        "assert Path(consumer.__file__).is_relative_to(sys.argv[1]), consumer.__file__\n"
        "print(builtin_rules_path()); print(sample_events_path()); print(default_schema_dir())\n"
    )
    paths = subprocess.run(
        [sys.executable, "-c", script, str(target)],
        env=env, capture_output=True, text=True, check=True, timeout=60, cwd=tmp_path,
    ).stdout.split()  # fmt: skip
    assert all(Path(p).is_relative_to(target) for p in paths), paths
    assert (Path(paths[2]) / "ecs_process_event.avsc").is_file()
    replay = subprocess.run(
        [sys.executable, "-m", "consumer", "replay", "--input", paths[1]],
        env=env, capture_output=True, text=True, check=False, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert replay.returncode == 0, replay.stderr
    assert "alerts: 6" in replay.stderr
