"""Template renders are bounded in time, steps, nesting and the text they build; legit templates still render."""

from __future__ import annotations

import contextvars
import time

import pytest

from libs import templating
from libs.templating import RenderLimitExceeded, check_template, render

LEAD = {"first_name": "Ann", "company": "Initech", "custom_fields": {"industry": "printing", "size": "40"}}
BRAND = {"name": "Acme"}

COSTLY = [
    "{% for a in range(300) %}{% for b in range(300) %}{% for c in range(300) %}x{% endfor %}{% endfor %}{% endfor %}",
    "{% for i in range(100000) %}{% endfor %}",
    "{{ 'a'.ljust(50000000) }}",
    "{{ 'a'.rjust(50000000) }}",
    "{{ 'a'.center(50000000) }}",
    "{{ '1'.zfill(50000000) }}",
    "{{ ('a\tb' * 3000).expandtabs(1000) }}",
    "{{ '{:>50000000}'.format('a') }}",
    "{{ '{:.50000000f}'.format(1.0) }}",
    "{{ ('{:>50000000}'|safe).format('a') }}",
    "{{ (('{0}' * 30000)|safe).format('x' * 100) }}",
    "{% set s = 'x' * 600 %}{{ ('{0}' * 30000).format(s) }}",
    "{{ '%50000000s' % 'a' }}",
    "{{ ('%(a)s' * 20000) % {'a': 'x' * 1000} }}",
    "{{ '%50000000s'|format('a') }}",
    "{{ 'x' * 100000000 }}",
    "{% set s = 'x' * 60000 %}{{ [s] * 2 }}",
    "{% set s = 'x' * 60000 %}{{ [s, s] }}",
    "{% set s = 'x' * 60000 %}{{ s ~ s }}",
    "{% set s = 'x' * 60000 %}{{ s.replace('x', 'yy') }}",
    "{% set s = 'x' * 60000 %}{{ s|replace('x', 'yy') }}",
    "{% set s = 'x' * 600 %}{{ (range(200)|map('string')|list)|join(s) }}",
    "{{ 'a'|center(50000000) }}",
    "{{ ('ab\n' * 30000)|indent(10) }}",
    "{{ ('x' * 1000)|wordwrap(1, wrapstring='y' * 1000) }}",
    "{{ [1]|batch(100000000, 0)|list }}",
    "{{ ('x ' * 49000)|wordwrap(1) }}",
    "{{ ('http://a ' * 9000)|urlize }}",
    "{{ range(100)|list|tojson(indent=100000000) }}",
    "{{ 2 ** 100 ** 100 }}",
    "{% set ns = namespace(x=3) %}{% for i in range(40) %}{% set ns.x = ns.x * ns.x %}{% endfor %}{{ ns.x > 1 }}",
    "{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
    "{% set ns = namespace(x=[1]) %}{% for i in range(40) %}{% set ns.x = [ns.x, ns.x] %}{% endfor %}{{ ns.x }}",
    "{% set ns = namespace(x=[1]) %}{% for i in range(40) %}{{ ns.x.extend(ns.x) or '' }}{% endfor %}",
    "{% set ns = namespace(a=[1], b=[1]) %}{% for i in range(40) %}{% set ns.a = [ns.a, ns.a] %}"
    "{% set ns.b = [ns.b, ns.b] %}{% endfor %}{{ ns.a == ns.b }}",
    "{% set ns = namespace(a=(1,)) %}{% for i in range(40) %}{% set ns.a = (ns.a, ns.a) %}{% endfor %}"
    "{{ ns.a|length }}",
    "{% set ns = namespace(a={}) %}{% for i in range(40) %}{% set ns.a = {'x': ns.a, 'y': ns.a} %}{% endfor %}"
    "{{ ns.a|length }}",
    "{% for i in range(60) %}{{ 'y' * 99999 }}{% endfor %}",
    "{% set s %}{% for i in range(20) %}{{ 'y' * 99999 }}{% endfor %}{% endset %}{{ s|length }}",
]


@pytest.mark.parametrize("source", COSTLY)
def test_costly_templates_are_refused_at_save_time_quickly_and_by_name(source: str) -> None:
    started = time.monotonic()
    problem = check_template(source)
    assert time.monotonic() - started < 2 * templating.MAX_RENDER_SECONDS + 0.5
    assert problem is not None
    assert problem.message.startswith("too costly to render: "), problem.message


@pytest.mark.parametrize("source", COSTLY)
def test_costly_templates_raise_the_limit_error_when_rendered(source: str) -> None:
    with pytest.raises(RenderLimitExceeded) as caught:
        render(source, lead=LEAD, brand=BRAND)
    assert caught.value.reason.startswith("template_")
    assert caught.value.message


def test_nested_loops_stop_at_the_step_budget_with_its_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(templating, "MAX_RENDER_SECONDS", 60.0)  # the step budget, not the clock, stops it
    with pytest.raises(RenderLimitExceeded) as caught:
        render(COSTLY[0], lead=LEAD, brand=BRAND)
    assert caught.value.reason == "template_step_limit"
    assert f"{templating.MAX_RENDER_STEPS:,} loop iterations" in str(caught.value)


def test_a_loop_over_real_custom_fields_is_bounded_at_send_time_too() -> None:
    # At save time lead.custom is empty: the inner loop never runs. Real data makes it run.
    source = "{% for k in lead.custom %}{% for i in range(9000) %}{% endfor %}{% endfor %}"
    assert check_template(source) is None
    with pytest.raises(RenderLimitExceeded):
        render(source, lead=LEAD, brand=BRAND)


def test_macros_are_bounded_in_calls_depth_and_built_text() -> None:
    doubling = "{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(40) }}"
    with pytest.raises(RenderLimitExceeded) as caught:
        render(doubling, lead=LEAD, brand=BRAND)
    assert caught.value.reason in ("template_step_limit", "template_time_limit")
    with pytest.raises(RenderLimitExceeded) as caught:
        render("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", lead=LEAD, brand=BRAND)
    assert caught.value.reason == "template_depth_limit"
    built = "{% macro m() %}{% for i in range(5000) %}{{ 'y' * 99999 }}{% endfor %}{% endmacro %}{{ m()|length }}"
    with pytest.raises(RenderLimitExceeded, match="builds more than"):
        render(built, lead=LEAD, brand=BRAND)


def test_the_deadline_stops_a_render(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(templating, "MAX_RENDER_SECONDS", 0.0)
    with pytest.raises(RenderLimitExceeded) as caught:
        render("{% for i in range(50) %}{{ i }}{% endfor %}", lead=LEAD, brand=BRAND)
    assert caught.value.reason == "template_time_limit"


def test_output_over_the_budget_is_an_error_not_a_silent_cut() -> None:
    with pytest.raises(RenderLimitExceeded, match="rendered template would be longer"):
        render("{{ 'y' * 60000 }}{{ 'y' * 60000 }}", lead=LEAD, brand=BRAND)
    assert len(render("{{ 'y' * 99000 }}", lead=LEAD, brand=BRAND)) == 99000


LEGIT = {
    "Hi {{ lead.first_name }} at {{ company }} from {{ brand.name }}": "Hi Ann at Initech from Acme",
    "{% for k, v in lead.custom|dictsort %}{{ k }}={{ v|upper }};{% endfor %}": "industry=PRINTING;size=40;",
    "{% for k in lead.custom %}{{ loop.index }}{% if not loop.last %},{% endif %}{% endfor %}": "1,2",
    "{{ '{:>6}|'.format(lead.first_name) }}{{ '%-5s|' % first_name }}{{ '%d%%'|format(5) }}": "   Ann|Ann  |5%",
    "{{ ('<{}>'|safe).format('&') }}": "<&amp;>",
    "{{ lead.company|default('you')|title ~ '!' }} {{ [1, 2, 3]|join(', ') }}": "Initech! 1, 2, 3",
    "{{ lead.custom.industry|replace('print', 'mint')|center(12) }}|": "  minting   |",
    "{{ 'ab' * 3 }} {{ 2 ** 10 }} {{ ('x' * 3).ljust(5, '.') }} {{ lead.custom.size|int + 2 }}": "ababab 1024 xxx.. 42",
    "{% set ns = namespace(n=0) %}{% for i in range(100) %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}": "4950",
    "{{ lead.title|default('', true) or 'there' }}": "there",
    "{% for a, b in [(1, 2), (3, 4)] %}{{ a + b }};{% endfor %}{% set x, y = 'ab' %}{{ y }}{{ {'k': 1}.k }}": "3;7;b1",
}


@pytest.mark.parametrize(("source", "expected"), list(LEGIT.items()))
def test_legit_templates_check_and_render(source: str, expected: str) -> None:
    assert check_template(source) is None
    assert render(source, lead=LEAD, brand=BRAND) == expected


def test_after_one_refusal_further_trial_renders_get_a_shorter_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    # A request full of costly templates cannot hold its thread for MAX_RENDER_SECONDS each.
    monkeypatch.setattr(templating, "MAX_CHECK_SECONDS_AFTER_REFUSAL", 0.0)  # makes the shorter deadline visible
    legit = "{% for k in ['a', 'b'] %}{{ k }}{% endfor %} {{ lead.first_name }}"

    def one_request() -> list[str | None]:
        answers = [check_template(legit), check_template(COSTLY[0]), check_template(legit)]
        return [None if p is None else p.message for p in answers]

    first, costly, after = contextvars.Context().run(one_request)
    assert first is None
    assert costly is not None
    assert after == "too costly to render: the template takes longer than 0 s to render"
    assert contextvars.Context().run(check_template, legit) is None  # another request starts afresh


def test_limits_are_per_render() -> None:
    source = "{% for i in range(9000) %}{% endfor %}ok"
    assert [render(source, lead=LEAD, brand=BRAND) for _ in range(3)] == ["ok", "ok", "ok"]
