"""infra/compose.yaml: valid against the Compose Specification, and the process table's processes."""

from __future__ import annotations

import copy
import json
import re
from functools import cache
from typing import Any

import jsonschema
import pytest
import yaml

from libs.processes import BY_NAME, PROCESSES, PUBLIC, SECRETS, Kind, Process
from tests.infra.support import COMPOSE, COMPOSE_SCHEMA, ENV_EXAMPLE, every_setting, sdr_variables

BACKING = {"postgres", "redis"}


@cache
def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(COMPOSE_SCHEMA.read_text())
    return schema


def compose_errors(document: Any) -> list[str]:
    """What the Compose Specification's schema finds wrong with ``document``."""
    validator = jsonschema.Draft7Validator(_schema())
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return document


def test_compose_follows_the_specification(compose: dict[str, Any]) -> None:
    assert compose_errors(compose) == []


@pytest.mark.parametrize(
    "breakage",
    [
        lambda d: d["services"]["gateway"]["depends_on"]["auth"].update(condition="service_ready"),
        lambda d: d["services"]["redis"].update(healthcheck={"test": "redis-cli ping", "interval": 5}),
        lambda d: d["services"]["migrate"].update(restart_policy="never"),
        lambda d: d["services"]["gateway"].update(ports="8000:8000"),
    ],
    ids=["unknown-condition", "interval-not-a-duration", "unknown-key", "ports-not-a-list"],
)
def test_a_broken_compose_file_is_refused(compose: dict[str, Any], breakage: Any) -> None:
    broken = copy.deepcopy(compose)
    breakage(broken)
    assert compose_errors(broken)


def test_every_process_of_the_table_and_nothing_else(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {p.name for p in PROCESSES} | BACKING


@pytest.mark.parametrize("process", PROCESSES, ids=lambda p: p.name)
def test_each_service_runs_its_table_entry(compose: dict[str, Any], process: Process) -> None:
    service = compose["services"][process.name]
    assert service["command"] == list(process.args)
    assert service["build"]["dockerfile"] == "infra/docker/Dockerfile"
    env = service["environment"]
    missing = set(process.env) - set(env)
    extra = set(env) - process.allowed
    assert not missing, f"{process.name}: missing {sorted(missing)}"
    assert not extra, f"{process.name}: not in the table {sorted(extra)}"
    assert env["SDR_ENV"] == "production"
    for name in SECRETS & set(env):
        assert "${" in str(env[name]), f"{process.name}: {name} must come from infra/.env, not be written here"
    health = service.get("healthcheck", {})
    if process.kind is Kind.HTTP:
        assert f"http://127.0.0.1:{process.port}{process.ready_path}" in " ".join(health["test"])
    else:
        assert health == {"disable": True} or process.kind is Kind.ONE_SHOT
    assert ("ports" in service) == (process.name == PUBLIC)


def test_dependency_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["migrate"]["restart"] == "no"
    for process in PROCESSES:
        needs = services[process.name]["depends_on"]
        assert needs["postgres"]["condition"] == needs["redis"]["condition"] == "service_healthy"
        if process.kind is not Kind.ONE_SHOT:
            assert needs["migrate"]["condition"] == "service_completed_successfully", process.name
    gateway = services[PUBLIC]["depends_on"]
    for app in ("auth", "brand", "campaign"):
        assert gateway[app]["condition"] == "service_healthy"
    for name in BACKING:
        assert services[name]["healthcheck"]["test"]


def test_the_backing_servers(compose: dict[str, Any]) -> None:
    postgres, redis = compose["services"]["postgres"], compose["services"]["redis"]
    assert postgres["image"].startswith("postgres:16")
    assert redis["image"].startswith("redis:7")
    command = " ".join(redis["command"])
    for flag in ("--maxmemory-policy noeviction", "--appendonly yes"):
        assert flag in command
    # Reached from the app containers only: on the internal network alone, no published port.
    for server in (postgres, redis):
        assert server["networks"] == ["data"]
        assert "ports" not in server
    assert compose["networks"]["data"]["internal"] is True


def test_the_env_example_names_only_what_sdr_reads() -> None:
    lines = [line for line in ENV_EXAMPLE.read_text().splitlines() if line.strip() and not line.startswith("#")]
    values = dict(line.split("=", 1) for line in lines)
    sdr = {name for name in values if name.startswith("SDR_")}
    assert sdr <= every_setting()
    text = COMPOSE.read_text()
    # Every variable compose interpolates is in the example: the required ones (${X:?...}) as keys.
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", text))
    assert required <= set(values)
    assert set(re.findall(r"\$\{([A-Z0-9_]+)", text)) <= set(re.findall(r"\b([A-Z0-9_]+)=", ENV_EXAMPLE.read_text()))
    for name in SECRETS & set(values) | {"POSTGRES_PASSWORD", "REDIS_PASSWORD"}:
        assert values[name] == "", f"{name}: the example must hold no secret"
    assert (COMPOSE.parent / ".gitignore").read_text().split() == [".env"]


def test_compose_names_only_variables_sdr_reads() -> None:
    unread = sdr_variables(COMPOSE.read_text()) - every_setting()
    assert not unread


def test_each_worker_group_runs_its_queues(compose: dict[str, Any]) -> None:
    for process in PROCESSES:
        if process.kind is Kind.WORKER:
            queues = compose["services"][process.name]["command"][-1].split(",")
            assert queues == [str(q) for q in BY_NAME[process.name].queues]
