"""Click options built from :class:`~cdo_deploy.schema.Schema` fields: each option is declared once, in the schema.

:func:`schema_option` gives a command the option of one field: its type (a
``Literal``'s choices), help (the field's ``description``) and shown default
come from the field. The option's own default is ``None``: only what was typed
reaches the schema, which fills in its defaults (or a preset's values) and
checks every value, so a wrong type or a value out of range is the schema's
one-line error (:meth:`Schema.from_options` names the flag in it), not a click
usage error. Values are converted where they can be (``"3"`` -> 3) and passed
on as typed where they cannot, for the schema to reject.

Used by ``cdo-inspect`` (:class:`~cdo_deploy.inspection.InspectConfig`) and
``cdo-train`` (``TrainConfig``).

Example:
    >>> from pydantic import Field
    >>> from cdo_deploy.schema import Schema
    >>> class Opts(Schema):
    ...     workers: int = Field(2, ge=1, description="Threads.")
    >>> @click.command()
    ... @schema_option(Opts, "--workers")
    ... def cmd(**values):
    ...     print(Opts.from_options(values, option_flags()))
    >>> cmd.main(["--workers", "0"], standalone_mode=False)
    Traceback (most recent call last):
    ...
    cdo_deploy.errors.CdoError: --workers must be an integer >= 1, got 0
"""

from __future__ import annotations

import importlib
import types
import typing
from typing import Any, Callable

import click

from .schema import Schema, range_words

__all__ = ["SchemaOption", "click_type", "option_flags", "schema_option", "shown_default"]


class SchemaOption(click.Option):
    """An option whose help ends with the names registered in a registry (read only when --help is shown: a
    registry's module may be slow to import, and most commands never show help) and the schema's default."""

    def __init__(self, *args: Any, registry: str | None = None, shown_default: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._registry = registry
        self._shown_default = shown_default

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        base = self.help or ""
        extra = []
        if self._registry is not None:
            module, name = self._registry.rsplit(".", 1)
            extra.append(f"One of: {', '.join(getattr(importlib.import_module(module), name))}.")
        if self._shown_default is not None:
            extra.append(f" [{self._shown_default}]")
        self.help = " ".join([base, *extra])
        try:
            return super().get_help_record(ctx)
        finally:
            self.help = base


class _Lenient(click.ParamType):
    """``kind`` where the text reads as one, else the text itself (the schema rejects it in one line)."""

    def __init__(self, kind: type) -> None:
        self.kind = kind
        self.name = {bool: "boolean", int: "integer"}.get(kind, kind.__name__)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return click.BOOL.convert(value, param, ctx) if self.kind is bool else self.kind(value)
        except (ValueError, TypeError, click.BadParameter):
            return value


class _Choice(click.Choice):
    """Choices shown as click shows them; a value that is none of them goes on to the schema's check."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        return value  # the schema's error names the choices


def click_type(hint: Any) -> click.ParamType | None:
    """The click type of a schema annotation: the choices of a ``Literal``, a bool, int or float read leniently,
    ``None`` (text) otherwise."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Annotated:
        return click_type(args[0])
    if origin in (typing.Union, types.UnionType):
        return click_type(next(a for a in args if a is not type(None)))
    if origin is typing.Literal:
        return _Choice([str(a) for a in args])
    return _Lenient(hint) if hint in (bool, int, float) else None


def shown_default(default: Any, scale: float = 1.0) -> str | None:
    """How help shows a field's default: ``"default: 0.5"`` (``None``: not shown)."""
    if default is None or default in ((), {}):
        return None
    if isinstance(default, bool):
        return "default: " + ("on" if default else "off")
    if isinstance(default, tuple):
        return "default: " + ", ".join(str(d) for d in default)
    if scale != 1.0 and isinstance(default, (int, float)):
        default = default * scale
    return f"default: {default}"


def schema_option(schema: type[Schema], flag: str, dest: str | None = None, *, short: str | None = None,
                  note: str = "",
                  registry: str | None = None, scale: float = 1.0, **kw: Any) -> Callable[[Any], Any]:
    """The option ``flag`` of ``schema``'s field ``dest`` (by default named like the flag).

    Its type (choices), shown default, range and help come from the field; ``short`` is another name
    (``"-s"``), ``note`` is added to the help, ``registry``
    (``"module.NAME"``) lists the registered names in it, ``scale`` says the option is in other units than the
    field (``--settle-ms`` of ``settle_s``: 1000; the command converts). The option's default is ``None``:
    only given values reach the schema. A true/false field's flag alone means True; ``is_flag=True`` makes it
    a plain flag, ``flag_value=False`` a flag that turns the field off (``--no-quarantine``).
    """
    dest = dest or flag.lstrip("-").replace("-", "_")
    field = schema.model_fields[dest]
    if "type" not in kw and not kw.get("is_flag"):
        kw["type"] = click_type(field.annotation)
        if isinstance(kw["type"], _Lenient) and kw["type"].kind is bool:
            kw.update(is_flag=False, flag_value=True)
    shown = None
    if not kw.get("is_flag"):
        default = None if field.is_required() else field.get_default(call_default_factory=True)
        words = [w for w in (shown_default(default, scale), range_words(field)) if w]
        shown = "; ".join(words) or None
    names = [flag, dest] if short is None else [short, flag, dest]
    return click.option(*names, default=None, cls=SchemaOption, registry=registry, shown_default=shown,
                        help=" ".join(filter(None, [field.description, note])), **kw)


def option_flags(ctx: click.Context | None = None) -> dict[str, str]:
    """``{parameter name: its longest flag}`` of the running command: what :meth:`Schema.from_options` names."""
    ctx = ctx or click.get_current_context()
    return {p.name: max(p.opts, key=len) for p in ctx.command.params if p.name and p.opts}
