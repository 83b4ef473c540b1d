"""What the infra tests share: the files under ``infra/``, the settings ``sdr`` reads, the linters."""

from __future__ import annotations

import importlib
import os
import re
import shutil
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from libs.processes import CLI_SETTINGS, PROCESSES, Process
from libs.settings import CommonSettings

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
DOCKERFILE = INFRA / "docker" / "Dockerfile"
COMPOSE = INFRA / "compose.yaml"
ENV_EXAMPLE = INFRA / ".env.example"
PROCFILE = INFRA / "Procfile"
K8S = INFRA / "k8s"
OVERLAYS = sorted(p.parent for p in (K8S / "overlays").glob("*/kustomization.yaml"))
ALERTS = INFRA / "observability" / "alerts.yaml"
DASHBOARD = INFRA / "observability" / "grafana-dashboard.json"

COMPOSE_SCHEMA = Path(__file__).with_name("compose-spec.json")
"""The Compose Specification's JSON schema, vendored unchanged from
https://github.com/compose-spec/compose-spec/blob/main/schema/compose-spec.json
(commit 170098ba07d9f53c383a41bfd4c5166b0a4529a6); no PyPI package ships it."""

SDR_VARIABLE = re.compile(r"\bSDR_[A-Z0-9_]+\b")


def tool_or_skip(name: str, hint: str) -> str:
    """The path of the command ``name``; without it, skip (fail under CI, where .ci/run installs it)."""
    found = shutil.which(name) or (str(ROOT / ".venv" / "bin" / name) if (ROOT / ".venv/bin" / name).exists() else None)
    if found:
        return found
    reason = f"{name} is not installed ({hint}); the infra check needs it"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def settings_class(dotted: str) -> type[BaseSettings]:
    """Import ``module:Class``."""
    module, _, name = dotted.partition(":")
    cls = getattr(importlib.import_module(module), name)
    assert isinstance(cls, type), dotted
    assert issubclass(cls, CommonSettings), dotted
    return cls


def variables_of(classes: Iterable[type[BaseSettings]]) -> frozenset[str]:
    """The ``SDR_*`` environment variables the settings classes read."""
    names: set[str] = set()
    for cls in classes:
        prefix = str(cls.model_config.get("env_prefix", ""))
        names |= {f"{prefix}{field}".upper() for field in cls.model_fields}
    return frozenset(names)


def read_by(process: Process) -> frozenset[str]:
    """Every ``SDR_*`` variable ``process`` reads: its settings classes' and the ``sdr`` command line's."""
    return variables_of(settings_class(d) for d in (CLI_SETTINGS, *process.settings))


@cache
def every_setting() -> frozenset[str]:
    """Every ``SDR_*`` variable some process reads."""
    return frozenset().union(*(read_by(p) for p in PROCESSES))


def sdr_variables(text: str) -> set[str]:
    """The ``SDR_*`` names in ``text``."""
    return set(SDR_VARIABLE.findall(text))


def load_yaml_documents(text: str) -> list[Any]:
    """Every non-empty YAML document in ``text``."""
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]
