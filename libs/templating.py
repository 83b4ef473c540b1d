"""Step templates: sandboxed Jinja2 with lead and brand variables, checked when saved.

The campaign service validates templates with :func:`check_template` when a step is saved; the
worker renders them with :func:`render` and picks A/B variants with :func:`choose_variant`, so
what was accepted is exactly what renders. Templates see ``lead`` (its fields, and
``lead.custom.<name>`` for custom fields), ``brand``, and the short names of ``FLAT_NAMES``.

Every render is bounded (the ``MAX_*`` constants): at most ``MAX_RENDER_STEPS`` loop
iterations and calls, ``MAX_RENDER_SECONDS`` of wall-clock time, ``MAX_CALL_DEPTH`` nested
calls, no single value or output longer than ``MAX_OUTPUT_CHARS`` and no more than
``MAX_PRODUCED_CHARS`` of text built in all. Allocating string methods, filters and operators
are checked before Python builds their result. Over a bound the render raises
:class:`RenderLimitExceeded`: the trial render at save time reports it as the template's
problem, and the worker fails the message with its ``reason``.
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache, update_wrapper
from typing import Any

from jinja2 import (
    Environment,
    StrictUndefined,
    Template,
    TemplateError,
    TemplateSyntaxError,
    Undefined,
    nodes,
    pass_context,
)
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment, SandboxedEscapeFormatter, SandboxedFormatter
from jinja2.utils import Namespace, _PassArg
from markupsafe import Markup

LEAD_FIELDS = frozenset(
    {"first_name", "last_name", "full_name", "email", "phone", "company", "title", "timezone", "custom"}
)
BRAND_FIELDS = frozenset(
    {
        "name",
        "website",
        "description",
        "value_proposition",
        "target_audience",
        "tone_of_voice",
        "email_signature",
        "sms_signoff",
        "postal_address",
    }
)
VARIABLES: Mapping[str, frozenset[str]] = {"lead": LEAD_FIELDS, "brand": BRAND_FIELDS}
FLAT_NAMES = frozenset(
    {"first_name", "last_name", "full_name", "company", "title", "custom", "brand_name", "sender_name", "website"}
)
"""Short names the worker's local writer has always offered (``{{ first_name }}``); still accepted."""


@dataclass(frozen=True, slots=True)
class TemplateProblem:
    """Why a template was refused, in words a user can act on."""

    message: str
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.message} (line {self.line})" if self.line else self.message


class _AnyCustom(dict[str, str]):
    """Custom fields at validation time: any name is allowed, each renders as a sample."""

    def __missing__(self, key: str) -> str:
        return f"<{key}>"


MAX_OUTPUT_CHARS = 100_000
"""Longest rendered template, and longest single value (string, list, number as text) a render may build."""
MAX_PRODUCED_CHARS = 1_000_000
"""All text one render produces, counting what macros and ``{% set %}`` blocks build before it is output."""
MAX_RENDER_STEPS = 10_000
"""Loop iterations plus calls (methods, macros, ``range``) in one render."""
MAX_RENDER_SECONDS = 0.5
"""CPU time one render may take (the rendering thread's own, so a loaded machine that pauses the
thread does not fail a message whose template is cheap)."""
MAX_CHECK_SECONDS_AFTER_REFUSAL = 0.05
"""CPU time of each further trial render in a context (a request) where one was already refused
as too costly: a request full of costly templates cannot hold its thread for long."""
MAX_CALL_DEPTH = 50
"""How deeply macros and calls may nest (a macro calling itself)."""
MAX_INT_BITS = 4096
"""Largest integer arithmetic may build (about 1,200 digits)."""
MAX_NESTING = 64
"""How deeply lists and mappings may nest inside one value."""


class RenderLimitExceeded(SecurityError):
    """A template would take too long, loop too often or build too much text; its message says which.

    ``reason`` names the bound as a short code (``template_time_limit``, ``template_step_limit``,
    ``template_depth_limit``, ``template_size_limit``) for the ledger.
    """

    def __init__(self, message: str, reason: str = "template_size_limit") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(slots=True)
class _Budget:
    """What one render may still spend; the environment's hooks draw on it."""

    deadline: float
    seconds: float = MAX_RENDER_SECONDS
    steps: int = MAX_RENDER_STEPS
    produced: int = MAX_PRODUCED_CHARS
    depth: int = 0

    def clock(self) -> None:
        if time.thread_time() > self.deadline:
            raise RenderLimitExceeded(
                f"the template takes longer than {self.seconds:g} s to render", "template_time_limit"
            )

    def step(self) -> None:
        self.steps -= 1
        if self.steps < 0:
            raise RenderLimitExceeded(
                f"the template runs more than {MAX_RENDER_STEPS:,} loop iterations and calls", "template_step_limit"
            )
        self.clock()

    def produce(self, chars: int) -> None:
        self.produced -= chars
        if self.produced < 0:
            raise RenderLimitExceeded(f"the template builds more than {MAX_PRODUCED_CHARS:,} characters of text")


_BUDGET: ContextVar[_Budget | None] = ContextVar("template_budget", default=None)
_REFUSED: ContextVar[bool] = ContextVar("template_check_refused", default=False)
"""Set once a trial render in this context (a request's task) was refused as too costly."""


def _clock() -> None:
    budget = _BUDGET.get()
    if budget is not None:
        budget.clock()


def _step() -> None:
    budget = _BUDGET.get()
    if budget is not None:
        budget.step()


class _Over(Exception):
    pass


def _weight(value: Any, limit: int = MAX_OUTPUT_CHARS) -> int:
    """About how many characters ``str(value)`` has; stops counting past ``limit`` (returns ``limit + 1``).

    Shared references count each time they appear (``[s] * 1000`` prints ``s`` a thousand
    times); a container inside itself counts once (it prints as ``[...]``).
    """
    total = 0
    path: set[int] = set()

    def add(n: int) -> None:
        nonlocal total
        total += n
        if total > limit:
            raise _Over

    def walk(v: Any, depth: int) -> None:
        if isinstance(v, str | bytes | bytearray):
            add(len(v))
        elif isinstance(v, bool) or v is None or isinstance(v, float | complex):
            add(8)
        elif isinstance(v, int):
            add(v.bit_length() // 3 + 2)
        elif isinstance(v, Undefined):
            pass
        elif isinstance(v, Namespace):
            walk(object.__getattribute__(v, "_Namespace__attrs"), depth)
        elif isinstance(v, Mapping | list | tuple | set | frozenset | deque):
            if depth > MAX_NESTING:
                raise _Over
            if id(v) in path:
                add(8)
                return
            path.add(id(v))
            try:
                add(2)
                for item in v.items() if isinstance(v, Mapping) else v:
                    walk(item, depth + 1)
                    add(4)  # quotes and separator
            finally:
                path.discard(id(v))
        else:
            add(16)

    try:
        walk(value, 0)
    except (_Over, RecursionError):
        return limit + 1
    return total


def _check_size(value: Any, what: str = "a value") -> None:
    if _weight(value) > MAX_OUTPUT_CHARS:
        raise RenderLimitExceeded(f"{what} would be longer than {MAX_OUTPUT_CHARS:,} characters")


def _too_long(what: str) -> RenderLimitExceeded:
    return RenderLimitExceeded(f"{what} would be longer than {MAX_OUTPUT_CHARS:,} characters")


def _int_arg(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?([diouxXeEfFgGcrsa%])")


def _check_percent(fmt: Any, args: Any) -> None:
    """Bound ``fmt % args`` (and the ``format`` filter) before Python builds it."""
    if not isinstance(fmt, str):
        return
    specs = [m for m in _PERCENT_SPEC.finditer(fmt) if m.group(3) != "%"]
    for m in specs:
        for number in (m.group(1), m.group(2)):
            if number == "*":
                raise RenderLimitExceeded("'*' widths are not supported in templates")
            if number and int(number) > MAX_OUTPUT_CHARS:
                raise _too_long("a formatted value")
    values = list(args.values()) if isinstance(args, Mapping) else list(args) if isinstance(args, tuple) else [args]
    widest = max((_weight(v) for v in values), default=0)
    if len(fmt) + len(specs) * widest > MAX_OUTPUT_CHARS:
        raise _too_long("the formatted text")


_FORMAT_NUMBER = re.compile(r"\d+")


class _BoundedFormatter(SandboxedFormatter):
    """``str.format`` in templates: every field and the whole result stay within the bounds."""

    def __init__(self, env: Environment, **kwargs: Any) -> None:
        super().__init__(env, **kwargs)
        self._left = MAX_OUTPUT_CHARS

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        _check_size(value, "a formatted value")
        return super().convert_field(value, conversion)

    def format_field(self, value: Any, format_spec: str) -> Any:
        if any(int(n) > MAX_OUTPUT_CHARS for n in _FORMAT_NUMBER.findall(format_spec)):
            raise _too_long("a formatted value")
        _check_size(value, "a formatted value")
        text = super().format_field(value, format_spec)
        self._left -= len(text)
        if self._left < 0:
            raise _too_long("the formatted text")
        return text


class _BoundedEscapeFormatter(_BoundedFormatter, SandboxedEscapeFormatter):
    """``Markup.format`` in templates: escaped like the sandbox's, bounded like :class:`_BoundedFormatter`."""


def _width_check(s: str, name: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """Refuse a ``str`` method call whose result would be too long, before it is built."""
    if name in ("ljust", "rjust", "center", "zfill"):
        width = _int_arg(args[0] if args else kwargs.get("width"))
        if width > MAX_OUTPUT_CHARS:
            raise _too_long(f"'{name}({width})'")
    elif name == "expandtabs":
        size = _int_arg(args[0] if args else kwargs.get("tabsize", 8))
        if len(s) + s.count("\t") * size > MAX_OUTPUT_CHARS:
            raise _too_long("'expandtabs'")
    elif name == "replace":
        old, new = [*args, kwargs.get("old"), kwargs.get("new")][:2]
        _replace_check(s, old, new, args[2] if len(args) > 2 else kwargs.get("count", -1))
    elif name == "translate":
        table = args[0] if args else None
        if isinstance(table, Mapping):
            widest = max((len(v) for v in table.values() if isinstance(v, str)), default=1)
            if len(s) * widest > MAX_OUTPUT_CHARS:
                raise _too_long("'translate'")


def _replace_check(s: Any, old: Any, new: Any, count: Any = None) -> None:
    if not (isinstance(s, str) and isinstance(old, str) and isinstance(new, str)):
        return
    hits = s.count(old) if old else len(s) + 1
    if isinstance(count, int) and count >= 0:
        hits = min(hits, count)
    if len(s) + hits * max(0, len(new) - len(old)) > MAX_OUTPUT_CHARS:
        raise _too_long("the replaced text")


def _materialize(values: Any) -> Any:
    """A list of what an iterator yields, each item counted as a step (strings and sized collections as they are)."""
    if isinstance(values, str | Mapping | list | tuple | set | frozenset | deque | Undefined):
        return values
    out = []
    for item in values:
        _step()
        out.append(item)
    return out


def _join_check(items: Any, separator: Any) -> None:
    if isinstance(items, str | Undefined):
        count, size = len(items) if isinstance(items, str) else 0, _weight(items)
    else:
        count, size = len(items), _weight(items)
    sep = len(separator) if isinstance(separator, str) else 0
    if size + sep * max(0, count - 1) > MAX_OUTPUT_CHARS:
        raise _too_long("the joined text")


_SLOW_FILTERS = {"wordwrap": 20_000, "urlize": 20_000}
"""Filters whose cost grows fast with their input: they take at most this many characters."""


def _filter_check(name: str, value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """Refuse a filter call whose result would be too long, before it is built."""
    text = value if isinstance(value, str) else ""
    lines = text.count("\n") + 1
    slow = _SLOW_FILTERS.get(name)
    if slow is not None and len(text) > slow:
        raise RenderLimitExceeded(f"'{name}' takes at most {slow:,} characters")
    if name == "center" and _int_arg(args[0] if args else kwargs.get("width", 80)) > MAX_OUTPUT_CHARS:
        raise _too_long("'center'")
    elif name == "indent":
        width = args[0] if args else kwargs.get("width", 4)
        per_line = len(width) if isinstance(width, str) else _int_arg(width)
        if len(text) + lines * per_line > MAX_OUTPUT_CHARS:
            raise _too_long("the indented text")
    elif name == "replace":
        _replace_check(value, *args[:3], **{k: v for k, v in kwargs.items() if k == "count"})
    elif name == "format":
        _check_percent(value, kwargs or args)
    elif name == "wordwrap":
        wrap = args[2] if len(args) > 2 else kwargs.get("wrapstring")
        if isinstance(wrap, str) and len(text) + (len(text) + 1) * len(wrap) > MAX_OUTPUT_CHARS:
            raise _too_long("the wrapped text")
    elif name == "urlize":
        extra = sum(len(v) for v in (*args, *kwargs.values()) if isinstance(v, str))
        if len(text) + (len(text) // 4 + 1) * extra > MAX_OUTPUT_CHARS:
            raise _too_long("the linked text")
    elif name in ("batch", "slice"):
        count = _int_arg(args[0] if args else kwargs.get("linecount", kwargs.get("slices")))
        if count > MAX_OUTPUT_CHARS:
            raise _too_long(f"'{name}({count})'")
    elif name == "tojson":
        indent = args[0] if args else kwargs.get("indent")
        if _int_arg(indent) > 16 or (isinstance(indent, str) and len(indent) > 16):
            raise RenderLimitExceeded("'tojson' indents by at most 16")


_TEXT_FILTERS = frozenset({"join", "sum", "list", "unique", "sort", "reverse", "batch", "slice"})
"""Filters that consume an iterable whole: their input is gathered first, step by step."""


def _bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a filter: its arguments and result stay within the bounds; it is never folded at compile time."""
    passes = _PassArg.from_obj(func)

    def bounded(context: Context, value: Any, *args: Any, **kwargs: Any) -> Any:
        _clock()
        if name in _TEXT_FILTERS:
            value = _materialize(value)
        _check_size(value)
        for arg in (*args, *kwargs.values()):
            _check_size(arg)
        _filter_check(name, value, args, kwargs)
        if name == "join":
            _join_check(value, args[0] if args else kwargs.get("d", ""))
        if passes is _PassArg.context:
            result = func(context, value, *args, **kwargs)
        elif passes is _PassArg.eval_context:
            result = func(context.eval_ctx, value, *args, **kwargs)
        elif passes is _PassArg.environment:
            result = func(context.environment, value, *args, **kwargs)
        else:
            result = func(value, *args, **kwargs)
        if not isinstance(result, Iterator):  # lazy results (map, select) are bounded where they are consumed
            _check_size(result)
        return result

    return pass_context(update_wrapper(bounded, func))  # after update_wrapper, which copies the filter's own mark


_LOOP_FILTER = "_budgeted"


@pass_context  # never folded at compile time
def _budgeted_iter(context: Context, iterable: Any) -> Iterator[Any]:
    """What a ``{% for %}`` loop walks: the iterable, one step drawn per item."""
    budget = _BUDGET.get()
    for item in iterable:
        if budget is not None:
            budget.step()
        yield item


@pass_context
def _finalize(context: Context, value: Any) -> Any:
    """Every piece of output (``{{ ... }}`` and literal text), before it is turned into text."""
    size = _weight(value)
    if size > MAX_OUTPUT_CHARS:
        raise _too_long("an output value")
    budget = _BUDGET.get()
    if budget is not None:
        budget.produce(size)
        budget.clock()
    return value


class _BoundedCodeGenerator(CodeGenerator):
    """Compiles every loop, ``~`` and output piece through the environment's bounds."""

    def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:  # noqa: N802
        for loop in node.find_all(nodes.For):
            if not (isinstance(loop.iter, nodes.Filter) and loop.iter.name == _LOOP_FILTER):
                loop.iter = nodes.Filter(loop.iter, _LOOP_FILTER, [], [], None, None, lineno=loop.iter.lineno)
        super().visit_Template(node, frame)

    def visit_Tuple(self, node: nodes.Tuple, frame: Frame) -> None:  # noqa: N802
        if node.ctx != "load":  # an assignment target (``{% for a, b in ... %}``) stays as it is
            super().visit_Tuple(node, frame)
            return
        self.write("environment.bounded_value(")
        super().visit_Tuple(node, frame)
        self.write(")")

    def visit_List(self, node: nodes.List, frame: Frame) -> None:  # noqa: N802
        self.write("environment.bounded_value(")
        super().visit_List(node, frame)
        self.write(")")

    def visit_Dict(self, node: nodes.Dict, frame: Frame) -> None:  # noqa: N802
        self.write("environment.bounded_value(")
        super().visit_Dict(node, frame)
        self.write(")")

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:  # noqa: N802
        self.write("environment.bounded_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")

    def _output_child_to_const(self, node: nodes.Expr, frame: Frame, finalize: CodeGenerator._FinalizeInfo) -> str:
        raise nodes.Impossible()  # literal text too goes through finalize, so it counts against the budget


class _BoundedEnvironment(SandboxedEnvironment):
    """A sandbox whose every render is bounded in time, steps, nesting and the text it builds.

    Loops draw a step per iteration and calls a step each; string methods and filters that
    allocate (``ljust``, ``center``, ``replace``, ``format``, ``join``, ``indent`` ...) and the
    ``*``, ``**``, ``+`` and ``%`` operators are checked before Python builds their result;
    every output piece and ``~`` concatenation is measured. Over a bound,
    :class:`RenderLimitExceeded` says which.
    """

    intercepted_binops = frozenset({"*", "**", "+", "%"})
    code_generator_class = _BoundedCodeGenerator

    def __init__(self, **options: Any) -> None:
        super().__init__(finalize=_finalize, **options)
        self.filters = {name: _bounded_filter(name, func) for name, func in self.filters.items()}
        self.filters[_LOOP_FILTER] = _budgeted_iter
        self.globals.pop("lipsum", None)  # paragraphs of filler on demand: nothing a message needs

    @staticmethod
    def bounded_value(value: Any) -> Any:
        """A list, tuple or mapping literal: within the bounds however often it repeats what it holds."""
        _check_size(value)
        return value

    @staticmethod
    def bounded_concat(pieces: tuple[Any, ...]) -> str:
        """``a ~ b``: each piece and the whole within the bounds."""
        size = 0
        for piece in pieces:
            size += _weight(piece)
            if size > MAX_OUTPUT_CHARS:
                raise _too_long("the joined text")
        return "".join(str(p) for p in pieces)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _clock()
        ints = isinstance(left, int) and isinstance(right, int)
        if operator == "**":
            if isinstance(right, int | float) and abs(right) > 100:
                raise RenderLimitExceeded("exponent too large")
            if ints and right > 0 and left.bit_length() * right > MAX_INT_BITS:
                raise RenderLimitExceeded("the number would be too large")
        elif operator == "*":
            if ints and left.bit_length() + right.bit_length() > MAX_INT_BITS:
                raise RenderLimitExceeded("the number would be too large")
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(n, int) and _weight(seq) * n > MAX_OUTPUT_CHARS:
                    raise RenderLimitExceeded("repetition too large")
        elif operator == "+":
            if not ints and _weight(left) + _weight(right) > MAX_OUTPUT_CHARS:
                raise RenderLimitExceeded("result too large")
        elif operator == "%":
            _check_percent(left, right)
        result = super().call_binop(context, operator, left, right)
        if isinstance(result, int) and result.bit_length() > MAX_INT_BITS:
            raise RenderLimitExceeded("the number would be too large")
        return result

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        if super().wrap_str_format(value) is None:
            return None
        owner: str = value.__self__
        is_map = value.__name__ == "format_map"

        def formatter() -> _BoundedFormatter:
            if isinstance(owner, Markup):
                return _BoundedEscapeFormatter(self, escape=owner.escape)
            return _BoundedFormatter(self)

        def wrapper(*args: Any, **kwargs: Any) -> str:
            if is_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one argument")
                return type(owner)(formatter().vformat(owner, (), args[0]))
            return type(owner)(formatter().vformat(owner, args, kwargs))

        return update_wrapper(wrapper, value)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        budget = _BUDGET.get()
        if budget is not None:
            budget.step()
            if budget.depth >= MAX_CALL_DEPTH:
                raise RenderLimitExceeded(
                    f"macros and calls nest more than {MAX_CALL_DEPTH} deep", "template_depth_limit"
                )
        owner = getattr(__obj, "__self__", None)
        name = getattr(__obj, "__name__", "")
        if isinstance(owner, str):
            _width_check(owner, name, args, kwargs)
            if name == "join" and args:
                args = (_materialize(args[0]), *args[1:])
                _join_check(args[0], owner)
        for arg in (*args, *kwargs.values()):
            _check_size(arg)
        if budget is not None:
            budget.depth += 1
        try:
            result = super().call(__context, __obj, *args, **kwargs)
        finally:
            if budget is not None:
                budget.depth -= 1
        if not isinstance(result, Iterator):
            _check_size(result)
        if isinstance(owner, list | dict | set | deque):  # append, extend, update ... grew the container
            _check_size(owner)
        return result


def environment() -> SandboxedEnvironment:
    """Return the sandboxed environment every template is compiled in (no autoescape: plain text)."""
    return _BoundedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


_ENV = environment()
_BUILTIN_NAMES = frozenset(_ENV.globals) | {"loop", "caller", "varargs", "kwargs", "super"}


def _variables(ast: nodes.Template) -> list[TemplateProblem]:
    problems: list[TemplateProblem] = []
    assigned = {n.name for n in ast.find_all(nodes.Name) if n.ctx in ("store", "param")}
    assigned |= _BUILTIN_NAMES
    for name in ast.find_all(nodes.Name):
        if name.ctx == "load" and name.name not in VARIABLES and name.name not in FLAT_NAMES | assigned:
            problems.append(
                TemplateProblem(
                    f"unknown variable '{name.name}' (use lead.* or brand.*)", getattr(name, "lineno", None)
                )
            )
    for attr in ast.find_all(nodes.Getattr):
        if isinstance(attr.node, nodes.Name) and attr.node.name in VARIABLES and attr.node.name not in assigned:
            allowed = VARIABLES[attr.node.name]
            if attr.attr not in allowed:
                problems.append(
                    TemplateProblem(
                        f"unknown variable '{attr.node.name}.{attr.attr}'; known: {', '.join(sorted(allowed))}",
                        getattr(attr, "lineno", None),
                    )
                )
    for item in ast.find_all(nodes.Getitem):
        if isinstance(item.node, nodes.Name) and item.node.name in VARIABLES and isinstance(item.arg, nodes.Const):
            allowed = VARIABLES[item.node.name]
            if item.arg.value not in allowed:
                problems.append(
                    TemplateProblem(f"unknown variable '{item.node.name}[{item.arg.value!r}]'", item.lineno)
                )
    return problems


def sample_context() -> dict[str, Any]:
    """A context with every known variable set, used to trial-render templates."""
    lead: dict[str, Any] = {f: f"<lead.{f}>" for f in LEAD_FIELDS}
    lead["custom"] = _AnyCustom()
    flat: dict[str, Any] = {f: f"<{f}>" for f in FLAT_NAMES}
    flat["custom"] = lead["custom"]
    return {**flat, "lead": lead, "brand": {f: f"<brand.{f}>" for f in BRAND_FIELDS}}


def _render(template: Template, context: Mapping[str, Any], seconds: float | None = None) -> str:
    """Render within the bounds: streamed, stopped at the first piece over the output or time budget."""
    seconds = MAX_RENDER_SECONDS if seconds is None else seconds
    budget = _Budget(deadline=time.thread_time() + seconds, seconds=seconds)
    token = _BUDGET.set(budget)
    pieces = template.generate(context)  # a generator: closed below whatever happens
    try:
        out: list[str] = []
        size = 0
        for piece in pieces:
            size += len(piece)
            if size > MAX_OUTPUT_CHARS:
                raise _too_long("the rendered template")
            budget.clock()
            out.append(piece)
        return "".join(out)
    except RecursionError as exc:
        raise RenderLimitExceeded("the template nests too deeply", "template_depth_limit") from exc
    finally:
        close = getattr(pieces, "close", None)
        if close is not None:
            close()
        _BUDGET.reset(token)


def check_template(source: str) -> TemplateProblem | None:
    """Return why ``source`` is not a valid step template, or None when it is."""
    try:
        ast = _ENV.parse(source)
    except TemplateSyntaxError as exc:
        return TemplateProblem(f"syntax error: {exc.message}", exc.lineno)
    problems = _variables(ast)
    if problems:
        return problems[0]
    seconds = min(MAX_RENDER_SECONDS, MAX_CHECK_SECONDS_AFTER_REFUSAL) if _REFUSED.get() else None
    try:
        _render(_ENV.from_string(source), sample_context(), seconds)
    except RenderLimitExceeded as exc:
        _REFUSED.set(True)
        return TemplateProblem(f"too costly to render: {exc.message}")
    except TemplateError as exc:  # unknown filters or tests, sandbox violations, strict undefined
        return TemplateProblem(str(exc.message or exc))
    except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
        return TemplateProblem(f"cannot render: {exc}")
    return None


def lead_context(lead: Mapping[str, Any]) -> dict[str, Any]:
    """The ``lead`` object a template sees, built from a lead row's columns."""
    ctx = {f: lead.get(f) or "" for f in LEAD_FIELDS if f not in ("custom", "full_name")}
    ctx["full_name"] = " ".join(p for p in (lead.get("first_name"), lead.get("last_name")) if p)
    ctx["custom"] = dict(lead.get("custom_fields") or {})
    return ctx


def brand_context(brand: Mapping[str, Any]) -> dict[str, Any]:
    """The ``brand`` object a template sees, built from a brand row's columns."""
    return {f: brand.get(f) or "" for f in BRAND_FIELDS}


def template_context(
    lead: Mapping[str, Any], brand: Mapping[str, Any], sender_name: str | None = None
) -> dict[str, Any]:
    """Every variable a step template may use: ``lead``, ``brand`` and the short names."""
    lead_ctx, brand_ctx = lead_context(lead), brand_context(brand)
    first = str(lead_ctx["first_name"]).strip()
    return {
        "first_name": first or "there",
        "last_name": lead_ctx["last_name"],
        "full_name": lead_ctx["full_name"] or "there",
        "company": str(lead_ctx["company"]).strip() or "your team",
        "title": lead_ctx["title"],
        "custom": lead_ctx["custom"],
        "brand_name": brand_ctx["name"],
        "sender_name": sender_name or brand_ctx["name"],
        "website": brand_ctx["website"],
        "lead": lead_ctx,
        "brand": brand_ctx,
    }


@lru_cache(maxsize=512)
def _compiled(source: str) -> Template:
    # Compiling costs far more than rendering; a worker renders the same few step templates for every lead.
    return _ENV.from_string(source)


def render(source: str, *, lead: Mapping[str, Any], brand: Mapping[str, Any], sender_name: str | None = None) -> str:
    """Render a step template for one lead; raise ``jinja2.TemplateError`` when it cannot be.

    A render over a bound (time, steps, text built; see ``MAX_*``) raises
    :class:`RenderLimitExceeded`, a ``TemplateError`` whose message says which bound.
    """
    return _render(_compiled(source), template_context(lead, brand, sender_name))


def choose_variant(
    enrollment_id: uuid.UUID | str, step_id: uuid.UUID | str, variants: Sequence[Mapping[str, Any]]
) -> Mapping[str, Any] | None:
    """Pick a step's A/B variant for an enrollment: weighted, deterministic, stable across processes."""
    weighted = [v for v in variants if int(v.get("weight", 0)) > 0]
    if not weighted:
        return None
    total = sum(int(v["weight"]) for v in weighted)
    digest = hashlib.sha256(f"{enrollment_id}:{step_id}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") % total
    for variant in weighted:
        point -= int(variant["weight"])
        if point < 0:
            return variant
    return weighted[-1]  # unreachable


__all__ = [
    "BRAND_FIELDS",
    "LEAD_FIELDS",
    "MAX_CALL_DEPTH",
    "MAX_OUTPUT_CHARS",
    "MAX_PRODUCED_CHARS",
    "MAX_RENDER_SECONDS",
    "MAX_RENDER_STEPS",
    "RenderLimitExceeded",
    "TemplateProblem",
    "brand_context",
    "check_template",
    "choose_variant",
    "environment",
    "lead_context",
    "render",
    "sample_context",
    "template_context",
]
