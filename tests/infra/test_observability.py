"""infra/observability: the alerting rules pass promtool, and every series they and the dashboard name is exported."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gateway.ops.metrics import OpsCollector, RequestMetrics
from libs import queue_stats
from tests.infra.support import ALERTS, DASHBOARD, tool_or_skip

ALERT_TESTS = ALERTS.with_name("alerts.test.yaml")
SERIES = re.compile(r"\b(tidewater[_:][a-zA-Z0-9_:]*)")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    """Run Debian's promtool (package prometheus, installed by .ci/run)."""
    binary = tool_or_skip("promtool", "apt-get install prometheus")
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=120, check=False)


def exported() -> set[str]:
    """Every sample name the gateway's /metrics serves, from the exporter itself with one of everything."""
    registry = CollectorRegistry()
    RequestMetrics(registry, ["auth", "brand", "campaign"]).observe("campaign", 200, 0.01)
    collector = OpsCollector()
    collector.queues = [queue_stats.QueueStats(name="email", queued=1, throughput_per_minute={"1m": 1.0})]
    collector.workers = [queue_stats.WorkerStats("w", ["email"], "idle", None, None, 1.0, 0, 0)]
    collector.durations = {"email": ([0] * (len(queue_stats.DURATION_BUCKETS) + 1), 0.0, 0)}
    collector.ledger = [("email", "held", "cap_sender_hour", 1), ("email", "sent", "", 2)]
    collector.stream = {"errors": 0}
    registry.register(collector)
    text = generate_latest(registry).decode()
    return {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}


def rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def _names(expressions: list[str]) -> set[str]:
    return {name for expr in expressions for name in SERIES.findall(expr)}


def test_promtool_checks_the_rules() -> None:
    result = promtool("check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_alerts_fire_on_trouble_and_stay_quiet_otherwise() -> None:
    result = promtool("test", "rules", str(ALERT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("for: 10m", "for: ten minutes"),
        ("> 1000", "> > 1000"),
        ("record: tidewater:messages_failed:sum", "record: 'bad name'"),
    ],
    ids=["bad-duration", "bad-expression", "bad-record-name"],
)
def test_promtool_refuses_broken_rules(tmp_path: Path, old: str, new: str) -> None:
    broken = tmp_path / "alerts.yaml"
    broken.write_text(ALERTS.read_text().replace(old, new, 1))
    assert promtool("check", "rules", str(broken)).returncode != 0


def test_the_alerts_cover_what_operators_watch() -> None:
    alerts = {rule["alert"] for rule in rules() if "alert" in rule}
    for wanted in (
        "TidewaterQueueBacklog",
        "TidewaterQueueOldJobs",
        "TidewaterUnknownMessages",
        "TidewaterGatewayErrorRate",
        "TidewaterSendFailureRate",
        "TidewaterBounceRate",
        "TidewaterSendersAtCap",
        "TidewaterWorkerFleetStopped",
    ):
        assert wanted in alerts
    for rule in rules():
        if "alert" in rule:
            assert rule["labels"]["severity"] in {"critical", "warning", "info"}
            assert rule["annotations"]["summary"]


def test_every_series_named_is_exported_or_recorded() -> None:
    recorded = {rule["record"] for rule in rules() if "record" in rule}
    served = exported()
    expressions = [rule["expr"] for rule in rules()] + dashboard_expressions()
    unknown = _names(expressions) - served - recorded
    assert not unknown, f"not exported by gateway/ops/metrics.py: {sorted(unknown)}"
    # The check has teeth: a misspelt series is caught.
    assert _names(["rate(tidewater_gateway_request_total[5m])"]) - served


def test_only_tidewater_series_are_named() -> None:
    # Any series but ours (up, node_*, ...) would depend on what else Prometheus scrapes.
    functions = {"sum", "rate", "delta", "absent", "count", "histogram_quantile", "max", "by", "on", "and", "unless"}
    for expr in [rule["expr"] for rule in rules()] + dashboard_expressions():
        stripped = re.sub(r"\{[^}]*\}|\"[^\"]*\"|\[[^\]]*\]", "", expr)
        words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", stripped))
        assert words - functions <= _names([expr]) | {"le", "queue", "upstream", "channel", "status", "state", "reason"}


def test_the_dashboard_is_well_formed_and_its_queries_parse(tmp_path: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert dashboard["uid"]
    assert [v["name"] for v in dashboard["templating"]["list"]] == ["datasource"]
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"
        assert panel["targets"]
    # promtool parses every query of the dashboard when it is written as a recording rule.
    as_rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [{"record": f"dashboard:q{i}", "expr": e} for i, e in enumerate(dashboard_expressions())],
            }
        ]
    }
    path = tmp_path / "dashboard-rules.yaml"
    path.write_text(yaml.safe_dump(as_rules))
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
