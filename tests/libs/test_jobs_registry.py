"""The job registry (libs/jobs.py) is the one place that names a job: every target imports, no box spells one."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

from libs import jobs
from libs.queue import JobSpec, QueueName

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("gateway", "services", "libs")
REGISTRY_FILE = ROOT / "libs" / "jobs.py"
DOTTED_JOB = re.compile(r"services\.[a-z_.]+\.[a-z_]+")


@pytest.mark.parametrize("job", jobs.REGISTRY, ids=lambda j: j.name)
def test_every_registered_target_imports_and_is_callable(job: jobs.Job) -> None:
    module = importlib.import_module(job.module)
    target = getattr(module, job.function, None)
    assert callable(target), f"{job.target} is not a callable of {job.module}"
    assert job.queue in QueueName
    assert job.timeout > 0


def test_names_are_unique_and_send_covers_each_channel() -> None:
    assert len(jobs.BY_NAME) == len(jobs.REGISTRY)
    assert {job.queue for job in jobs.SEND.values()} == {QueueName.EMAIL, QueueName.SMS, QueueName.VOICEMAIL}


def test_a_spec_takes_the_entry_and_its_defaults() -> None:
    spec = jobs.RUN_IMPORT.spec("abc", job_id="lead-import-abc")
    assert spec == JobSpec(
        queue=QueueName.DEFAULT,
        func=jobs.RUN_IMPORT,
        args=("abc",),
        job_id="lead-import-abc",
        timeout=3 * 3600,
        result_ttl=3600,
    )
    assert spec.target == "services.campaign.leads.jobs.run_import"
    assert jobs.SEND_SMS.spec(["m"], timeout=7).timeout == 7


def _is_job_string(node: ast.expr) -> bool:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return DOTTED_JOB.fullmatch(node.value) is not None
    return isinstance(node, ast.JoinedStr)


def _offenders(path: Path) -> list[str]:
    """Places in ``path`` that name a job by a string: a dotted path constant, or a string given to enqueue/JobSpec."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    where = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and DOTTED_JOB.fullmatch(node.value):
            found.append(f"{where}:{node.lineno} {node.value!r}")
        elif isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in ("enqueue", "enqueue_call") and node.args and _is_job_string(node.args[0]):
                found.append(f"{where}:{node.lineno} {name}(<string>)")
            if name == "JobSpec":
                func = next((k.value for k in node.keywords if k.arg == "func"), None)
                if isinstance(func, (ast.JoinedStr, ast.Constant)):
                    found.append(f"{where}:{node.lineno} JobSpec(func=<string>)")
    return sorted(set(found))


def _all_offenders() -> list[str]:
    found: list[str] = []
    for box in SCANNED:
        for path in sorted((ROOT / box).rglob("*.py")):
            if path != REGISTRY_FILE:
                found.extend(_offenders(path))
    return found


def test_the_scan_finds_a_job_named_by_a_string(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        'import x\nA = "services.worker.jobs.send_messages"\n'
        'q.enqueue(f"{__name__}.deliver_webhook", 1)\nJobSpec(queue=1, func=f"{J}.x")\n',
        encoding="utf-8",
    )
    found = _offenders(probe)
    assert len(found) == 3, found


def test_no_module_names_a_job_by_a_string_outside_the_registry() -> None:
    assert _all_offenders() == []
