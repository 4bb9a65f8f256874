"""The one base of every schema a user's input goes through (scenarios, topology and
calibration files, profiles, simulation points) and the one formatter of its errors.

Strict: unknown keys are errors, a bool is not a number, a float is not an integer, a
string is not a number (unit fields parse their strings before this check), and
infinities and NaN are rejected.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, defer_build=True)


def excerpt(value: Any, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters: a bad value is named, never dumped."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def loc_text(loc: tuple[Any, ...]) -> str:
    """``("cluster", "bandwidth", 0)`` -> ``cluster.bandwidth[0]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _unwrap_model(ann: Any) -> type[BaseModel] | None:
    """The model class in an annotation (``Model``, ``list[Model]``, ``Model | None``...)."""
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for arg in getattr(ann, "__args__", ()) or ():
        if (found := _unwrap_model(arg)) is not None:
            return found
    return None


def _model_at(root: type[BaseModel] | None, loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model class that owns the field at ``loc`` (for 'allowed keys')."""
    cls: Any = root
    for part in loc:
        if isinstance(part, int):
            continue
        field = getattr(cls, "model_fields", {}).get(part)
        if field is None:
            return None
        cls = _unwrap_model(field.annotation)
        if cls is None:
            return None
    return cls


def _describe(err: dict[str, Any], root: type[BaseModel] | None) -> str:
    loc = tuple(err["loc"])
    typ = err["type"]
    if typ == "extra_forbidden":
        owner = _model_at(root, loc[:-1])
        allowed = f"; allowed: {', '.join(owner.model_fields)}" if owner else ""
        return f"{loc_text(loc)}: unknown key{allowed}"
    msg = err["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    if not loc:  # a check across fields: the message says where
        return msg
    if typ == "missing":
        return f"{loc_text(loc)}: required field is missing"
    given = err.get("input")
    shown = ("" if typ == "value_error" or isinstance(given, (dict, list))
             else f" (got {excerpt(given)})")
    return f"{loc_text(loc)}: {msg}{shown}"


def validation_message(e: ValidationError, root: type[BaseModel] | None = None) -> str:
    """A pydantic error as one line: ``path: reason; path: reason`` (unions report once per
    branch: the first reason for each path is kept). ``root``: the validated model, to list
    the allowed keys beside an unknown one."""
    seen: list[str] = []
    for err in e.errors():
        text = _describe(err, root)
        if not any(text.split(":")[0] == s.split(":")[0] for s in seen):
            seen.append(text)
    return "; ".join(seen)


__all__ = ["Strict", "excerpt", "loc_text", "validation_message"]
