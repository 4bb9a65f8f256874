"""Quantities with units, converted once, at load time, to SI base units.

* bandwidth -> bytes per second: ``"10Gbit/s"`` = 1.25e9, ``"1.25GB/s"``, ``"100Mbit/s"``,
  ``"800Mbps"``, ``"1GiB/s"``;
* duration -> seconds: ``"5us"``, ``"1.5ms"``, ``"2s"``, ``"100ns"``;
* size -> bytes: ``"25MiB"`` = 26214400, ``"100MB"`` = 1e8, ``"512KiB"``, ``"8kbit"``.

Bandwidths and durations a user writes carry their unit: the schema's types
(:data:`Bandwidth`, :data:`Duration`, :data:`LinkBandwidth`, :data:`LinkLatency`) and the
command-line options refuse a bare number (``latency: 5`` is not read as 5 s), with one
line suggesting ``5us`` / ``5ms`` / ``10Gbit/s``. The parse functions called from Python take
a plain number as already in the base unit (bytes/s, s, bytes) unless ``unit_required``;
sizes may always be plain bytes. Anything else raises :class:`~rsdgc_sim.errors.UnitError`
naming the field and the accepted forms. Decimal prefixes are powers of 1000, binary ones
(Ki, Mi, Gi, Ti) powers of 1024; ``b``/``bit`` are bits, ``B`` bytes.
"""

from __future__ import annotations

import functools
import math
import re
from typing import Annotated

from pydantic import BeforeValidator, Field, WithJsonSchema

from .errors import UnitError

_PREFIX = {
    "": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
    "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40,
}
_NUM = r"(?P<num>[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)"
_PFX = r"(?P<pfx>Ki|Mi|Gi|Ti|k|K|M|G|T)?"
_SIZE_RE = re.compile(rf"^{_NUM}\s*{_PFX}(?P<unit>B|bytes?|b|bits?)$")
_BW_RE = re.compile(rf"^{_NUM}\s*{_PFX}(?:(?P<unit>B|bytes?|b|bits?)/s|(?P<ps>bps|Bps))$")
# divisors (not factors), so that "5us" is exactly 5 / 1e6 == 5e-06
_TIME_DIV = {"s": 1.0, "ms": 1e3, "us": 1e6, "µs": 1e6, "ns": 1e9, "min": 1 / 60.0}
_TIME_RE = re.compile(rf"^{_NUM}\s*(?P<unit>min|ms|us|µs|ns|s)$")

BANDWIDTH_FORMS = "a number in bytes/s or e.g. '10Gbit/s', '1.25GB/s', '100Mbit/s', '800Mbps', '1GiB/s'"
DURATION_FORMS = "a number in seconds or e.g. '5us', '1.5ms', '2s', '100ns'"
#: what a schema field or an option takes (a unit is required there)
BANDWIDTH_UNIT_FORMS = "a bandwidth with its unit, e.g. '10Gbit/s', '1.25GB/s', '100Mbit/s', '1GiB/s'"
DURATION_UNIT_FORMS = "a duration with its unit, e.g. '5us', '1.5ms', '2s', '100ns'"
#: how a bare number is written with a unit, in the error that refuses it
_UNIT_EXAMPLES = {"bandwidth": ("Gbit/s", "GB/s"), "duration": ("us", "ms")}
SIZE_FORMS = "a number in bytes or e.g. '25MiB', '100MB', '512KiB', '8kbit'"


def _plain(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _bits(unit: str | None) -> bool:
    return unit is not None and unit.startswith("b") and not unit.startswith("byte")


def _fail(field: str, value: object, forms: str) -> UnitError:
    where = f"{field}: " if field else ""
    return UnitError(f"{where}cannot read {value!r}; expected {forms}")


@functools.lru_cache(maxsize=4096)
def _match(text: str, pattern: re.Pattern, convert) -> float | None:
    """``convert(match)`` of ``pattern`` on ``text``, None without a match (memoised: a
    sweep of 100,000 scenarios reads the same few quantities over and over)."""
    m = pattern.match(text.strip())
    return None if m is None else convert(m)


def _no_unit(field: str, value: object, kind: str) -> UnitError:
    """A bare number where a unit is required: one line with the number written with
    units (``5`` -> ``5us or 5ms``; ``10`` -> ``10Gbit/s or 10GB/s``)."""
    where = f"{field}: " if field else ""
    text = str(value).strip()
    if len(text) > 20:
        text = "5" if kind == "duration" else "10"
    a, b = _UNIT_EXAMPLES[kind]
    return UnitError(f"{where}{value!r} has no unit; write the {kind} with one, e.g. "
                     f"{text}{a} or {text}{b}")


def _parse(value: object, field: str, pattern: re.Pattern, forms: str, convert,
           unit_kind: str | None = None) -> float:
    """A plain number as is (refused when ``unit_kind`` names what must carry a unit);
    else ``convert(match)`` of ``pattern``; finite or an error."""
    x = _plain(value)
    if x is not None and unit_kind is not None:
        if not math.isfinite(x):
            raise _fail(field, value, forms)
        raise _no_unit(field, value, unit_kind)
    if x is None:
        x = _match(value, pattern, convert) if isinstance(value, str) else None
        if x is None:
            raise _fail(field, value, forms)
    if not math.isfinite(x):
        raise _fail(field, value, forms)
    return x


def _bandwidth(m: re.Match) -> float:
    x = float(m["num"]) * _PREFIX[m["pfx"] or ""]
    bits = m["ps"] == "bps" if m["ps"] else _bits(m["unit"])
    return x / 8.0 if bits else x


def _duration(m: re.Match) -> float:
    return float(m["num"]) / _TIME_DIV[m["unit"]]


def _size(m: re.Match) -> float:
    x = float(m["num"]) * _PREFIX[m["pfx"] or ""]
    return x / 8.0 if _bits(m["unit"]) else x


def parse_bandwidth(value: object, field: str = "", *, unit_required: bool = False) -> float:
    """Bandwidth in bytes per second. ``parse_bandwidth("10Gbit/s") == 1.25e9``; with
    ``unit_required`` a bare number (``10``, ``"10"``) is a UnitError."""
    if unit_required:
        return _parse(value, field, _BW_RE, BANDWIDTH_UNIT_FORMS, _bandwidth, "bandwidth")
    return _parse(value, field, _BW_RE, BANDWIDTH_FORMS, _bandwidth)


def parse_duration(value: object, field: str = "", *, unit_required: bool = False) -> float:
    """Duration in seconds. ``parse_duration("5us") == 5e-6``; with ``unit_required`` a
    bare number (``5``, ``"5"``) is a UnitError."""
    if unit_required:
        return _parse(value, field, _TIME_RE, DURATION_UNIT_FORMS, _duration, "duration")
    return _parse(value, field, _TIME_RE, DURATION_FORMS, _duration)


def bandwidth_text(bps: float) -> str:
    """A bandwidth in bytes/s written with its unit, read back exactly:
    ``parse_bandwidth(bandwidth_text(x), unit_required=True) == x`` (for data that was
    validated once, in SI units, and is validated again: a sweep's variants)."""
    return f"{float(bps)!r}B/s"


def duration_text(s: float) -> str:
    """A duration in seconds written with its unit, read back exactly (as
    :func:`bandwidth_text`)."""
    return f"{float(s)!r}s"


def parse_size(value: object, field: str = "") -> float:
    """Size in bytes. ``parse_size("25MiB") == 26214400``."""
    return _parse(value, field, _SIZE_RE, SIZE_FORMS, _size)


def _pydantic(parse, forms: str, number_ok: bool) -> tuple[BeforeValidator, WithJsonSchema]:
    def validator(value: object) -> float:
        try:
            return parse(value)
        except UnitError as e:  # pydantic adds the field path; keep only the reason
            raise ValueError(str(e)) from None

    schema: dict = ({"anyOf": [{"type": "number"}, {"type": "string"}]} if number_ok
                    else {"type": "string"})
    schema["description"] = forms
    return BeforeValidator(validator), WithJsonSchema(schema)


#: Annotated float types for pydantic models: values are converted once, at load time;
#: a bandwidth or a duration must carry its unit
_BW, _DUR, _SIZE = (
    _pydantic(functools.partial(parse_bandwidth, unit_required=True), BANDWIDTH_UNIT_FORMS,
              number_ok=False),
    _pydantic(functools.partial(parse_duration, unit_required=True), DURATION_UNIT_FORMS,
              number_ok=False),
    _pydantic(parse_size, SIZE_FORMS, number_ok=True),
)
Bandwidth = Annotated[float, _BW[0], _BW[1]]
Duration = Annotated[float, _DUR[0], _DUR[1]]
Size = Annotated[float, _SIZE[0], _SIZE[1]]

#: bounds of a link, wherever one is given (scenario cluster, topology parameters and files,
#: the collective command), so that no simulated time overflows: 1 byte/s to 1 PB/s, and a
#: latency of at most an hour
MIN_BANDWIDTH = 1.0
MAX_BANDWIDTH = 1e15
MAX_LATENCY = 3600.0
LinkBandwidth = Annotated[Bandwidth, Field(ge=MIN_BANDWIDTH, le=MAX_BANDWIDTH)]
LinkLatency = Annotated[Duration, Field(ge=0, le=MAX_LATENCY)]


def format_bandwidth(bps: float) -> str:
    """Bytes/s -> a short human string in bits/s: ``1.25e9 -> '10Gbit/s'``."""
    bits = bps * 8.0
    for pfx, f in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if bits >= f:
            return f"{bits / f:g}{pfx}bit/s"
    return f"{bits:g}bit/s"


def format_duration(s: float) -> str:
    """Seconds -> a short human string: ``0.0123 -> '12.3ms'``."""
    a = abs(s)
    if a >= 1 or a == 0:
        return f"{s:.4g}s"
    if a >= 1e-3:
        return f"{s * 1e3:.4g}ms"
    if a >= 1e-6:
        return f"{s * 1e6:.4g}us"
    return f"{s * 1e9:.4g}ns"


def format_size(n: float) -> str:
    """Bytes -> a short human string with binary prefixes: ``26214400 -> '25MiB'``."""
    for pfx, f in (("Ti", 2.0**40), ("Gi", 2.0**30), ("Mi", 2.0**20), ("Ki", 2.0**10)):
        if abs(n) >= f:
            return f"{n / f:.4g}{pfx}B"
    return f"{n:.4g}B"
