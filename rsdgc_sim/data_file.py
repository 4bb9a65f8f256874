"""Reading a user's data file safely: the one place that opens what a user names.

:func:`read_text` opens only a regular file (a directory, FIFO, socket or device is refused
from its ``stat``, and the open is non-blocking, so a FIFO that took the file's place can
never hang us), caps its size and decodes UTF-8; :func:`read_json_data` parses JSON on top
and refuses ``NaN``/``Infinity`` (which ``json.loads`` accepts) naming where they are.
Every problem is one :class:`InvalidFile` whose message the caller prefixes with the file.
"""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path
from typing import Any

from .strict import excerpt, loc_text

#: the largest data file read (profiles of VGG-19 with many compressors are a few MiB)
MAX_DATA_BYTES = 256 << 20


class InvalidFile(Exception):
    """Why a data file cannot be used; the message names no file (callers add it) and reads
    after "FILE is" (``not readable JSON: ...``) or, when ``field`` is set, starts with the
    field's location (``links[0].alpha_s: ...``). ``missing``: nothing is at the path."""

    def __init__(self, reason: str, missing: bool = False, field: str | None = None):
        super().__init__(reason)
        self.missing = missing
        self.field = field


_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device"),
          (stat.S_ISBLK, "a device"))


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def _first_non_finite(data: Any) -> tuple[tuple[Any, ...], float] | None:
    """The location and value of the first NaN or infinity in parsed JSON, or None."""
    stack: list[tuple[tuple[Any, ...], Any]] = [((), data)]
    while stack:
        loc, value = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            return loc, value
        if isinstance(value, dict):
            stack.extend((loc + (k,), v) for k, v in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend((loc + (i,), v) for i, v in reversed(list(enumerate(value))))
    return None


def _all_finite(data: Any) -> bool:
    """Whether parsed JSON holds no NaN or infinity (5x faster than
    :func:`_first_non_finite`, which then runs only to say where the bad number is: the
    walk took a third of reading 1,000 point files)."""
    stack, isfinite = [data], math.isfinite
    while stack:
        value = stack.pop()
        kind = type(value)
        if kind is float:
            if not isfinite(value):
                return False
        elif kind is dict:
            stack.extend(value.values())
        elif kind is list:
            stack.extend(value)
    return True


def _read_all(fd: int, limit: int) -> bytes:
    """At most ``limit`` bytes from ``fd``, to its end (plain ``os.read`` calls: a buffered
    file object cost 7x the read itself for a 3 KB point file)."""
    chunks, got = [], 0
    while got < limit:
        chunk = os.read(fd, min(limit - got, 1 << 24))
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def read_text(path: str | Path, max_bytes: int = MAX_DATA_BYTES, what: str = "a text file") -> str:
    """The UTF-8 text of regular file ``path``, at most ``max_bytes`` long (``what`` it
    should be, for messages: ``a directory, not a JSON file``)."""
    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        if os.path.lexists(p):
            raise InvalidFile("a symbolic link to nothing") from None
        raise InvalidFile("no such file", missing=True) from None
    except NotADirectoryError:  # a file where a folder of the path should be
        raise InvalidFile("no such file (a file is in the place of one of its folders)",
                          missing=True) from None
    except (OSError, ValueError) as e:  # permissions, a name too long, a NUL byte
        raise InvalidFile(f"unreadable: {getattr(e, 'strerror', None) or e}") from None
    if not stat.S_ISREG(st.st_mode):
        raise InvalidFile(f"{_kind(st.st_mode)}, not {what}")
    if st.st_size > max_bytes:
        raise InvalidFile(f"{st.st_size:,} bytes, more than the {max_bytes:,} read here")
    try:
        # O_NONBLOCK: should a FIFO have taken the file's place since the stat, open returns
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise InvalidFile(f"not a regular file, not {what}")
            raw = _read_all(fd, max_bytes + 1)
        finally:
            os.close(fd)
    except OSError as e:
        raise InvalidFile(f"unreadable: {e.strerror or e}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidFile(f"not UTF-8 text (byte {e.start})") from None


def read_json_data(path: str | Path) -> Any:
    """The parsed content of JSON file ``path``; every problem is one :class:`InvalidFile`.

    Only a regular file is opened (a directory, FIFO, socket or device is refused from its
    ``stat``, so a FIFO never blocks); the text must be UTF-8 JSON without ``NaN`` or
    ``Infinity`` anywhere (:func:`parse_json_data`).
    """
    return parse_json_data(read_text(path, what="a JSON file"))


def parse_json_data(text: str) -> Any:
    """``text`` (a JSON file's, read already) parsed, as :func:`read_json_data` parses it:
    every problem is one :class:`InvalidFile`; ``NaN`` or ``Infinity`` anywhere
    (``json.loads`` accepts them, and ``1e999`` reads as infinity) is reported with its
    location, e.g. ``devices[0].forward_s``."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise InvalidFile(f"not readable JSON: {e.msg} at line {e.lineno}, column {e.colno}") from None
    except RecursionError:
        raise InvalidFile("not readable JSON: nested too deeply") from None
    except ValueError as e:  # an integer with too many digits
        raise InvalidFile(f"not readable JSON: {excerpt(str(e), 120)}") from None
    if not _all_finite(data) and (bad := _first_non_finite(data)) is not None:
        where = loc_text(bad[0])
        raise InvalidFile(f"{where}: not a finite number (got {bad[1]})", field=where)
    return data


__all__ = ["MAX_DATA_BYTES", "InvalidFile", "parse_json_data", "read_json_data", "read_text"]
