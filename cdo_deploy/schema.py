"""Option schemas: frozen pydantic models whose validation errors are one-line ``CdoError``\\ s.

A :class:`Schema` declares its options once (types, ``Literal`` choices, ranges
with ``Field(ge=..., le=...)``, a ``description`` each) and that declaration is
the check: building one with an unknown key, a wrong type or a value out of
range raises a ``CdoError`` naming the key and what it takes, never pydantic's
multi-line ``ValidationError``. :func:`takes` words what a field takes; the
CLIs use it and the descriptions for their help.

Example:
    >>> from typing import Literal
    >>> from pydantic import Field
    >>> class Opts(Schema):
    ...     size: Int = Field(64, ge=32, multiple_of=16, description="Image side, px.")
    ...     mode: Literal["fast", "exact"] = "fast"
    >>> Opts(size=40)
    Traceback (most recent call last):
    ...
    cdo_deploy.errors.CdoError: option 'size' must be an integer >= 32, a multiple of 16, got 40
    >>> Opts(mdoe="fast")
    Traceback (most recent call last):
    ...
    cdo_deploy.errors.CdoError: unknown option 'mdoe' (did you mean mode?)
    >>> takes(Opts.model_fields["mode"])
    'one of fast, exact'
"""

from __future__ import annotations

import os
import types
import typing
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Mapping

import annotated_types as at
from pydantic import BaseModel, BeforeValidator, ConfigDict, Strict, ValidationError
from pydantic.fields import FieldInfo

from .errors import CdoError, did_you_mean

__all__ = ["Bool", "Float", "Int", "Names", "Schema", "Text", "range_words", "takes"]


def _number(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("a bool is not a number")
    return value  # ints and numeric strings (YAML 1.1 reads 2e-3, without a dot, as a string) become floats


def _names(value: Any) -> Any:
    return (value,) if isinstance(value, str) else value


def _text(value: Any) -> Any:
    return os.fspath(value) if isinstance(value, os.PathLike) else value


#: an int that is an int (not True, 2.5 or "3")
Int = Annotated[int, Strict()]
#: true or false only (not 1 or "yes")
Bool = Annotated[bool, Strict()]
#: a number: an int or a float, or a string that reads as one; never a bool
Float = Annotated[float, BeforeValidator(_number)]
#: a list of strings; one string is a list of one
Names = Annotated[tuple[str, ...], BeforeValidator(_names)]
#: a string; a ``pathlib.Path`` is taken as its string
Text = Annotated[str, BeforeValidator(_text)]

_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string", Path: "a path",
          tuple: "a list of strings", dict: "a mapping of name: value"}
# errors about the value, not its type: the message leaves out the value's type
_VALUE_ERRORS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal", "multiple_of",
                 "literal_error", "string_pattern_mismatch", "too_short", "too_long"}


def _words(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is Annotated:
        return _words(typing.get_args(hint)[0])
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in typing.get_args(hint))
    return _WORDS.get(origin or hint, getattr(hint, "__name__", str(hint)))


def _bounds(metadata: list[Any]) -> str:
    lo = next((m for m in metadata if isinstance(m, (at.Ge, at.Gt))), None)
    hi = next((m for m in metadata if isinstance(m, (at.Le, at.Lt))), None)
    step = next((m.multiple_of for m in metadata if isinstance(m, at.MultipleOf)), None)
    lo_v = None if lo is None else getattr(lo, "ge", getattr(lo, "gt", None))
    hi_v = None if hi is None else getattr(hi, "le", getattr(hi, "lt", None))
    if lo is not None and hi is not None:
        text = f" in {'[' if isinstance(lo, at.Ge) else '('}{lo_v}, {hi_v}{']' if isinstance(hi, at.Le) else ')'}"
    elif lo is not None:
        text = f" {'>=' if isinstance(lo, at.Ge) else '>'} {lo_v}"
    elif hi is not None:
        text = f" {'<=' if isinstance(hi, at.Le) else '<'} {hi_v}"
    else:
        text = ""
    return text + (f", a multiple of {step}" if step is not None else "")


def range_words(field: FieldInfo) -> str:
    """``field``'s range in words: ``">= 1"``, ``"in [0, 1]"``, ``">= 32, a multiple of 16"`` ("": none)."""
    return _bounds(field.metadata).lstrip(", ").strip()


def takes(field: FieldInfo) -> str:
    """What ``field`` takes, in words: ``"an integer >= 1 or null"``, ``"one of max, topk_mean"``; a field
    whose ``json_schema_extra`` has ``takes`` (a ``pattern``, say) says it in its own words."""
    extra = field.json_schema_extra
    if isinstance(extra, dict) and "takes" in extra:
        return str(extra["takes"])
    hint = field.annotation
    args = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    kinds = [a for a in args if a is not type(None)]
    text = " or ".join(_words(a) for a in kinds) + _bounds(field.metadata)
    return text + (" or null" if len(kinds) < len(args) else "")


# (flags, values as typed) of the command line being read by Schema.from_options
_COMMAND_LINE: ContextVar[tuple[Mapping[str, str], Mapping[str, Any]]] = ContextVar("_COMMAND_LINE",
                                                                                  default=({}, {}))


class Schema(BaseModel):
    """A frozen set of options: unknown keys, wrong types and values out of range are one-line ``CdoError``\\ s.

    Subclasses set ``_what`` (how a key is named in messages) or override :meth:`_label`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)  # defaults pass the same checks
    _what: ClassVar[str] = "option"

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as e:
            raise self._error(e, data) from None

    def replace(self, **changes: Any) -> Any:
        """A copy with ``changes``, validated like a new one (``model_copy(update=...)`` would not check)."""
        return type(self)(**{**dict(self), **changes})

    @classmethod
    def from_options(cls, values: Mapping[str, Any], flags: Mapping[str, str],
                     shown: Mapping[str, Any] | None = None) -> Any:
        """Build from a command line's ``values`` (by field name): an error names the flag of its key (``flags``:
        field name -> ``"--flag"``) and shows the value as typed (``shown``, where the command converted it,
        e.g. ms to s); ``"--max-batch must be an integer >= 1, got 0"``."""
        token = _COMMAND_LINE.set((flags, shown or {}))  # read by _error: __init__ runs in model_validate too
        try:
            return cls(**values)
        finally:
            _COMMAND_LINE.reset(token)

    @classmethod
    def _label(cls, key: str) -> str:
        """How a key is named in messages."""
        return f"{cls._what} {key!r}"

    @classmethod
    def _error(cls, e: ValidationError, data: Mapping[str, Any]) -> CdoError:
        """The first of ``e``'s errors as one line naming the key (its flag, under :meth:`from_options`) and
        what it takes."""
        flags, shown = _COMMAND_LINE.get()
        data = {**data, **shown}
        err = e.errors()[0]
        key = str(err["loc"][0]) if err["loc"] else ""
        if err["type"] == "extra_forbidden":
            return CdoError(f"unknown {cls._what} {key!r}{did_you_mean(key, cls.model_fields)}")
        if key not in cls.model_fields:
            return CdoError(f"{cls._what}s: {err['msg']}")
        value = data.get(key, err["input"])
        kind = "" if err["type"] in _VALUE_ERRORS else f" ({type(value).__name__})"
        label = flags[key] if key in flags else cls._label(key)
        return CdoError(f"{label} must be {takes(cls.model_fields[key])}, got {value!r}{kind}")
