"""Accessibility checks in the browser tests: axe-core (web/node_modules/axe-core) run on the page as it is.

``assert_accessible(page, name)`` evaluates axe's own script in the page (through the DevTools protocol,
so the client's Content Security Policy, which allows no inline script, does not stand in the way), runs
it on the whole document and fails listing every violation of impact ``serious`` or ``critical``: the
rule, its help text and link, and the offending nodes with axe's summary of what to fix.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
AXE_SCRIPT = ROOT / "web" / "node_modules" / "axe-core" / "axe.min.js"
FAILING_IMPACTS = frozenset({"serious", "critical"})
# WCAG 2.x A and AA, and axe's best practices (which catch a missing main landmark or h1).
RUN_OPTIONS: dict[str, Any] = {
    "runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]},
    "resultTypes": ["violations"],
}


@cache
def _axe_source() -> str:
    if not AXE_SCRIPT.is_file():
        raise AssertionError(f"{AXE_SCRIPT} is missing: run `npm ci` in web/ (axe-core is a devDependency)")
    return AXE_SCRIPT.read_text(encoding="utf-8")


def violations(page: Any) -> list[dict[str, Any]]:
    """axe's violations on the page's current document (every impact)."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        # A bare expression (not a function) runs as the script itself; it ends with a value to return.
        page.evaluate(_axe_source() + "\n;true")
    result: dict[str, Any] = page.evaluate("(options) => window.axe.run(document, options)", RUN_OPTIONS)
    return list(result["violations"])


def describe(found: list[dict[str, Any]]) -> str:
    lines = []
    for violation in found:
        lines.append(f"- [{violation['impact']}] {violation['id']}: {violation['help']} ({violation['helpUrl']})")
        for node in violation["nodes"][:5]:
            target = " ".join(str(part) for part in node.get("target", []))
            summary = " ".join(str(node.get("failureSummary", "")).split())
            lines.append(f"    {target}: {summary}")
        if len(violation["nodes"]) > 5:
            lines.append(f"    … and {len(violation['nodes']) - 5} more")
    return "\n".join(lines)


def assert_accessible(page: Any, name: str) -> None:
    """Fail when axe finds a serious or critical violation on the screen called ``name``."""
    serious = [v for v in violations(page) if v.get("impact") in FAILING_IMPACTS]
    assert not serious, f"axe: {len(serious)} serious or critical violation(s) on the {name} screen:\n" + describe(
        serious
    )
