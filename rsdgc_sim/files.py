"""Writing result files atomically: a crash never leaves a half-written file behind; and
checking, before any work, that the outputs can be written at all."""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .errors import OutputError


def _try_write_in(folder: Path, what: str) -> None:
    try:
        fd, tmp = tempfile.mkstemp(prefix=".rsdgc-check.", dir=folder)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise OutputError(f"{what} {folder}: cannot write there: {e.strerror or e}") from None


def check_writable_dir(path: str | Path, what: str = "output folder") -> Path:
    """Make sure ``path`` is (or can be made) a folder we can write files in; creates it.
    Raises OutputError naming it otherwise. Call before the work whose results go there."""
    p = Path(path)
    try:
        if p.exists() and not p.is_dir():
            raise OutputError(f"{what} {p}: exists and is not a folder")
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{what} {p}: cannot create it: {e.strerror or e}") from None
    except ValueError as e:  # a NUL byte
        raise OutputError(f"{what} {p!r}: {e}") from None
    _try_write_in(p, what)
    return p


def check_writable_file(path: str | Path, what: str = "output file",
                        suffixes: tuple[str, ...] = ()) -> Path:
    """Make sure file ``path`` can be written (its folder exists or can be made, it is not a
    folder, its suffix is one of ``suffixes`` when given). Raises OutputError otherwise."""
    p = Path(path)
    if suffixes and p.suffix.lower() not in suffixes:
        raise OutputError(f"{what} {p}: use one of the suffixes {', '.join(suffixes)}")
    try:
        if p.is_dir():
            raise OutputError(f"{what} {p}: is a folder")
    except (OSError, ValueError) as e:
        raise OutputError(f"{what} {p!r}: {e}") from None
    check_writable_dir(p.parent if str(p.parent) else ".", f"folder of the {what}")
    return p

def write_bytes_atomic(path: str | Path, data: bytes, durable: bool = True) -> Path:
    """Write to a temporary file in the same folder, then rename it over ``path``; a failure
    is one OutputError naming the file (nothing half-written is left). ``durable=False``
    skips the fsync: the file survives the process (Ctrl-C, a crash) but maybe not a power
    cut, for files that are checked when read and remade when bad (the point store)."""
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    except OSError as e:
        raise OutputError(f"cannot write {p}: {e.strerror or e}") from None
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual file mode
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, p)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise OutputError(f"cannot write {p}: {e.strerror or e}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p


def write_text_atomic(path: str | Path, text: str, durable: bool = True) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"), durable)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json_atomic(path: str | Path, data: Any, durable: bool = True) -> Path:
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False, allow_nan=False) + "\n",
                             durable)


def write_csv_atomic(path: str | Path, rows: Iterable[Mapping[str, Any]], columns: list[str]) -> Path:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for row in rows:
        w.writerow(row)
    return write_text_atomic(path, buf.getvalue())
