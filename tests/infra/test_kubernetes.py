"""infra/k8s: every overlay renders with kustomize, validates offline, and runs the process table."""

from __future__ import annotations

import copy
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from libs.processes import BY_NAME, PROCESSES, PUBLIC, SECRETS, Kind, Process, rq_queue_key
from tests.infra.support import K8S, OVERLAYS, every_setting, load_yaml_documents, tool_or_skip

KUBERNETES_VERSION = "1.32.0"
"""The schemas (kubernetes-validate's) the manifests are checked against: the oldest minor we support."""
CRDS = Path(__file__).with_name("crds")
"""KEDA's CustomResourceDefinitions, vendored unchanged from
https://github.com/kedacore/keda/tree/main/config/crd/bases (commit 8b4f083ca8c8c2baf8477e322bd4d16ac4dfa09a)."""
REDIS_LIST_SCALER_KEYS = frozenset({"address", "host", "port", "listName", "listLength", "activationListLength"}) | {
    "databaseIndex",
    "enableTLS",
    "unsafeSsl",
}
"""The metadata KEDA's Redis list scaler reads (pkg/scalers/redis_scaler.go)."""


def kustomize(folder: Path) -> list[dict[str, Any]]:
    """Render ``folder`` with ``kubectl kustomize``; raise with its error when it cannot."""
    kubectl = tool_or_skip("kubectl", "apt-get install kubectl; kustomize is built in")
    result = subprocess.run(
        [kubectl, "kustomize", str(folder)], capture_output=True, text=True, timeout=120, check=False
    )
    if result.returncode != 0:
        raise AssertionError(f"kubectl kustomize {folder} failed: {result.stderr}")
    return load_yaml_documents(result.stdout)


@cache
def _crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    schemas = {}
    for path in CRDS.glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schemas[(f"{group}/{version['name']}", kind)] = version["schema"]["openAPIV3Schema"]
    return schemas


def validation_errors(document: dict[str, Any]) -> list[str]:
    """What the Kubernetes (or the vendored CRD) schema finds wrong with ``document``."""
    key = (document.get("apiVersion", ""), document.get("kind", ""))
    crd = _crd_schemas().get(key)
    if crd is not None:
        validator = jsonschema.Draft7Validator(crd)
        return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]
    try:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [str(exc)]
    except kubernetes_validate.SchemaNotFoundError:
        return [f"no schema for {key}"]
    return []


@pytest.fixture(scope="module", params=OVERLAYS, ids=lambda p: p.name)
def rendered(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    folder: Path = request.param
    return kustomize(folder)


def by_kind(documents: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in documents if d["kind"] == kind}


def containers(documents: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for d in documents:
        if d["kind"] in {"Deployment", "Job"}:
            for c in d["spec"]["template"]["spec"]["containers"]:
                yield d["metadata"]["name"], c


def test_there_is_a_production_overlay() -> None:
    assert K8S / "overlays" / "production" in OVERLAYS


def test_the_base_renders() -> None:
    assert kustomize(K8S / "base")


def test_every_document_validates(rendered: list[dict[str, Any]]) -> None:
    errors = {f"{d['kind']}/{d['metadata']['name']}": validation_errors(d) for d in rendered}
    assert {name: found for name, found in errors.items() if found} == {}


@pytest.mark.parametrize(
    ("kind", "breakage"),
    [
        ("Deployment", lambda d: d["spec"].update(replicas="two")),
        ("Deployment", lambda d: d["spec"]["template"]["spec"]["containers"][0].update(livenessprobe={})),
        ("Service", lambda d: d["spec"]["ports"][0].pop("port")),
        ("ScaledObject", lambda d: d["spec"].pop("scaleTargetRef")),
        ("ScaledObject", lambda d: d["spec"].update(minReplicaCount="one")),
        ("NetworkPolicy", lambda d: d["spec"].update(policyTypes="Ingress")),
    ],
    ids=["replicas-not-a-number", "misspelt-field", "port-missing", "no-target", "count-not-a-number", "not-a-list"],
)
def test_a_broken_manifest_is_refused(rendered: list[dict[str, Any]], kind: str, breakage: Any) -> None:
    document = copy.deepcopy(next(d for d in rendered if d["kind"] == kind))
    breakage(document)
    assert validation_errors(document)


def test_a_broken_kustomization_does_not_render(tmp_path: Path) -> None:
    base = tmp_path / "base"
    shutil.copytree(K8S / "base", base)
    kustomization = base / "kustomization.yaml"
    kustomization.write_text(kustomization.read_text().replace("- ticker.yaml", "- ticker.yaml\n- missing.yaml"))
    with pytest.raises(AssertionError, match=r"missing\.yaml"):
        kustomize(base)


def test_one_workload_per_process_and_nothing_else(rendered: list[dict[str, Any]]) -> None:
    jobs, deployments = by_kind(rendered, "Job"), by_kind(rendered, "Deployment")
    assert set(jobs) == {p.name for p in PROCESSES if p.kind is Kind.ONE_SHOT}
    assert set(deployments) == {p.name for p in PROCESSES if p.kind is not Kind.ONE_SHOT}
    assert not by_kind(rendered, "Secret"), "Secrets are referenced, never written in the manifests"


@pytest.mark.parametrize("process", PROCESSES, ids=lambda p: p.name)
def test_each_workload_runs_its_table_entry(rendered: list[dict[str, Any]], process: Process) -> None:
    workload = {**by_kind(rendered, "Job"), **by_kind(rendered, "Deployment")}[process.name]
    pod = workload["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"] == list(process.args)
    assert "command" not in container, "the image's entry point is sdr"
    env = {e["name"]: e for e in container["env"]}
    assert set(process.env) <= set(env) <= process.allowed
    for name, entry in env.items():
        if name in SECRETS:
            assert "secretKeyRef" in entry.get("valueFrom", {}), f"{name} must come from a Secret"
    assert env["SDR_ENV"]["value"] == "production"
    assert container["resources"]["requests"]
    assert container["resources"]["limits"]["memory"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["automountServiceAccountToken"] is False
    if process.kind is Kind.HTTP:
        assert container["ports"] == [{"name": "http", "containerPort": process.port}]
        assert container["livenessProbe"]["httpGet"]["path"] == process.health_path
        assert container["readinessProbe"]["httpGet"]["path"] == process.ready_path
    else:
        assert "livenessProbe" not in container
        assert "readinessProbe" not in container
    pod_labels = workload["spec"]["template"]["metadata"]["labels"]
    assert pod_labels["app.kubernetes.io/component"] == process.name
    assert pod_labels["tidewater.io/role"] == "app"


def test_only_variables_sdr_reads(rendered: list[dict[str, Any]]) -> None:
    for _, container in containers(rendered):
        assert {e["name"] for e in container["env"]} <= every_setting()


def test_services_pdbs_and_autoscalers(rendered: list[dict[str, Any]]) -> None:
    http = {p.name for p in PROCESSES if p.kind is Kind.HTTP}
    workers = {p.name for p in PROCESSES if p.kind is Kind.WORKER}
    services = by_kind(rendered, "Service")
    assert set(services) == http
    for name, service in services.items():
        assert service["spec"].get("type", "ClusterIP") == "ClusterIP", "the gateway is exposed by your ingress"
        assert service["spec"]["ports"][0]["port"] == BY_NAME[name].port
    assert set(by_kind(rendered, "PodDisruptionBudget")) == http | workers
    hpas = by_kind(rendered, "HorizontalPodAutoscaler")
    assert set(hpas) == http
    for name, hpa in hpas.items():
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        assert hpa["spec"]["minReplicas"] >= 2


def test_workers_scale_on_their_queues_with_keda(rendered: list[dict[str, Any]]) -> None:
    scaled = by_kind(rendered, "ScaledObject")
    auth = by_kind(rendered, "TriggerAuthentication")
    assert set(scaled) == {p.name for p in PROCESSES if p.kind is Kind.WORKER}
    for name, so in scaled.items():
        assert so["spec"]["scaleTargetRef"]["name"] == name
        assert so["spec"]["minReplicaCount"] >= 1, "a queue is never left without a worker"
        triggers = so["spec"]["triggers"]
        assert [t["metadata"]["listName"] for t in triggers] == [rq_queue_key(q) for q in BY_NAME[name].queues]
        for trigger in triggers:
            assert trigger["type"] == "redis"
            assert set(trigger["metadata"]) <= REDIS_LIST_SCALER_KEYS
            assert "password" not in trigger["metadata"]
            assert trigger["authenticationRef"]["name"] in auth
    for ta in auth.values():
        assert {ref["parameter"] for ref in ta["spec"]["secretTargetRef"]} == {"address", "password"}


def test_network_policies(rendered: list[dict[str, Any]]) -> None:
    policies = list(by_kind(rendered, "NetworkPolicy").values())
    deny = [p for p in policies if p["spec"]["podSelector"] == {} and not p["spec"].get("ingress")]
    assert deny, "a default deny of ingress"
    open_to_all = [
        p["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
        for p in policies
        if any("from" not in rule for rule in p["spec"].get("ingress", []))
    ]
    assert open_to_all == [PUBLIC], "only the gateway is reachable from outside"
    app_only = {"app.kubernetes.io/name": "tidewater", "tidewater.io/role": "app"}
    datastores = [
        p for p in policies if p["spec"]["podSelector"].get("matchLabels") == {"tidewater.io/datastore": "true"}
    ]
    assert len(datastores) == 1
    (rule,) = datastores[0]["spec"]["ingress"]
    assert rule["from"] == [{"podSelector": {"matchLabels": app_only}}]
    assert {p["port"] for p in rule["ports"]} == {5432, 6379}
    for policy in policies:
        for rule in policy["spec"].get("ingress", []):
            for peer in rule.get("from", []):
                assert peer == {"podSelector": {"matchLabels": app_only}}


def test_the_migrate_job_runs_first(rendered: list[dict[str, Any]]) -> None:
    job = by_kind(rendered, "Job")["migrate"]
    assert job["metadata"]["annotations"]["argocd.argoproj.io/hook"] == "PreSync"
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert job["metadata"]["labels"]["app.kubernetes.io/component"] == "migrate"


def test_one_image_for_every_process(rendered: list[dict[str, Any]]) -> None:
    images = {c["image"] for _, c in containers(rendered)}
    assert len(images) == 1
