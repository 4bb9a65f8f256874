"""Writing result files atomically: a crash never leaves a half-written file behind; and
checking, before any work, that the outputs can be written at all."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .errors import OutputError


def shown(path: str | Path, limit: int = 160) -> str:
    """``path`` for a message: whole when short, else its start and end around ``...``
    with its length (a 9 KB path is named, never dumped)."""
    text = str(path)
    if len(text) <= limit:
        return text
    half = (limit - 5) // 2
    return f"{text[:half]}...{text[-half:]} ({len(text):,} characters)"


def make_dirs(path: Path) -> None:
    """``mkdir -p`` without recursion: the missing folders from the top down (pathlib's
    ``mkdir(parents=True)`` recurses once per level, and a path 2,000 folders deep exceeds
    Python's recursion limit)."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir()
        except FileExistsError:
            if not d.is_dir():
                raise


def _try_write_in(folder: Path, what: str) -> None:
    try:
        fd, tmp = tempfile.mkstemp(prefix=".rsdgc-check.", dir=folder)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise OutputError(f"{what} {shown(folder)}: cannot write there: {e.strerror or e}") from None


def check_writable_dir(path: str | Path, what: str = "output folder") -> Path:
    """Make sure ``path`` is (or can be made) a folder we can write files in; creates it.
    Raises OutputError naming it otherwise. Call before the work whose results go there."""
    p = Path(path)
    try:
        if p.exists() and not p.is_dir():
            raise OutputError(f"{what} {shown(p)}: exists and is not a folder")
        make_dirs(p)
    except OSError as e:
        raise OutputError(f"{what} {shown(p)}: cannot create it: {e.strerror or e}") from None
    except ValueError as e:  # a NUL byte
        raise OutputError(f"{what} {shown(repr(str(p)))}: {e}") from None
    _try_write_in(p, what)
    return p


def check_writable_file(path: str | Path, what: str = "output file",
                        suffixes: tuple[str, ...] = ()) -> Path:
    """Make sure file ``path`` can be written (its folder exists or can be made, it is not a
    folder, its suffix is one of ``suffixes`` when given). Raises OutputError otherwise."""
    p = Path(path)
    if suffixes and p.suffix.lower() not in suffixes:
        raise OutputError(f"{what} {shown(p)}: use one of the suffixes {', '.join(suffixes)}")
    try:
        if p.is_dir():
            raise OutputError(f"{what} {shown(p)}: is a folder")
    except (OSError, ValueError) as e:
        raise OutputError(f"{what} {shown(repr(str(p)))}: {e}") from None
    check_writable_dir(p.parent if str(p.parent) else ".", f"folder of the {what}")
    return p

def _temp_beside(path: Path, data: bytes, durable: bool) -> str:
    """``data`` in a new temporary file in ``path``'s folder, with the usual file mode
    (fsync'ed when ``durable``); its name. A failure is one OutputError naming ``path``, and
    leaves no temporary file."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise OutputError(f"cannot write {shown(path)}: {e.strerror or e}") from None
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual file mode
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if durable:
                os.fsync(f.fileno())
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise OutputError(f"cannot write {shown(path)}: {e.strerror or e}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def _rename(tmp: str, path: Path) -> None:
    try:
        os.replace(tmp, path)
    except OSError as e:
        raise OutputError(f"cannot write {shown(path)}: {e.strerror or e}") from None


def write_bytes_atomic(path: str | Path, data: bytes, durable: bool = True) -> Path:
    """Write to a temporary file in the same folder, then rename it over ``path``; a failure
    is one OutputError naming the file (nothing half-written is left). ``durable=False``
    skips the fsync: the file survives the process (Ctrl-C, a crash) but maybe not a power
    cut, for files that are checked when read and remade when bad (the point store)."""
    p = Path(path)
    try:
        make_dirs(p.parent)
    except OSError as e:
        raise OutputError(f"cannot write {shown(p)}: {e.strerror or e}") from None
    tmp = _temp_beside(p, data, durable)
    try:
        _rename(tmp, p)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return p


def write_text_atomic(path: str | Path, text: str, durable: bool = True) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"), durable)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _non_finite(data: Any, where: str = "") -> str | None:
    """The path (``runs[3].final_loss``) of the first non-finite number in ``data``."""
    if isinstance(data, float) and not math.isfinite(data):
        return where or "the value"
    if isinstance(data, Mapping):
        for k, v in data.items():
            if (hit := _non_finite(v, f"{where}.{k}" if where else str(k))) is not None:
                return hit
    elif isinstance(data, list | tuple):
        for i, v in enumerate(data):
            if (hit := _non_finite(v, f"{where}[{i}]")) is not None:
                return hit
    return None


#: what JSON writes of a container without a nested container as one C-encoder call
_CONTAINERS = (dict, list, tuple)


def _indented(data: Any, level: int, out: list[str]) -> None:
    """Append ``json.dumps(data, indent=2, allow_nan=False)`` (at nesting ``level``) to
    ``out``, byte for byte, with the C encoder doing the work: the standard library encodes
    indented JSON in pure Python, 4x slower (0.4 s of an unchanged 1,000-point study's 2 s
    rerun went to results.json). A run of scalar items is one C call whose item separator
    carries the newline and indentation; nested containers recurse."""
    if not isinstance(data, _CONTAINERS) or not data:
        out.append(json.dumps(data, allow_nan=False))
        return
    inner = "\n" + "  " * (level + 1)
    sep = "," + inner
    is_dict = isinstance(data, dict)
    out.append("{" if is_dict else "[")
    items = list(data.items()) if is_dict else list(data)
    first, i = True, 0
    while i < len(items):
        j = i
        while j < len(items) and not isinstance(items[j][1] if is_dict else items[j], _CONTAINERS):
            j += 1
        out.append(inner if first else sep)
        first = False
        if j > i:  # scalars i..j-1 in one call, without its brackets
            run = dict(items[i:j]) if is_dict else items[i:j]
            out.append(json.dumps(run, separators=(sep, ": "), allow_nan=False)[1:-1])
            i = j
            continue
        if is_dict:  # one nested container
            out.append(json.dumps({items[i][0]: 0})[1:-4] + ": ")
        _indented(items[i][1] if is_dict else items[i], level + 1, out)
        i += 1
    out.append("\n" + "  " * level + ("}" if is_dict else "]"))


def json_bytes(data: Any, name: str = "JSON") -> bytes:
    """``data`` as indented JSON (exactly ``json.dumps(data, indent=2)``); a non-finite
    number (which JSON cannot hold) is one OutputError naming ``name`` and the field."""
    try:
        out: list[str] = []
        _indented(data, 0, out)
        return ("".join(out) + "\n").encode()
    except ValueError:
        where = _non_finite(data)
        raise OutputError(f"{name}: {where} is not a finite number (JSON cannot hold it); "
                          f"nothing was written") from None


def csv_bytes(rows: Iterable[Mapping[str, Any]], columns: list[str]) -> bytes:
    """``rows`` as CSV with a header of ``columns`` (other keys left out)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for row in rows:
        w.writerow(row)
    return buf.getvalue().encode("utf-8")


def write_json_atomic(path: str | Path, data: Any, durable: bool = True) -> Path:
    return write_bytes_atomic(path, json_bytes(data, str(path)), durable)


def write_csv_atomic(path: str | Path, rows: Iterable[Mapping[str, Any]], columns: list[str]) -> Path:
    return write_bytes_atomic(path, csv_bytes(rows, columns))


def write_files_atomic(files: Mapping[Path, bytes], what: str = "output file",
                       remove: Iterable[Path] = ()) -> list[Path]:
    """Write a set of files all or nothing: every path is checked first (not a folder, its
    folder writable), every file is written to a temporary file beside it, and only when
    all of them are complete are they renamed into place, so an error leaves the previous
    set untouched (one OutputError naming the file). ``remove``: files of the previous set
    that this one no longer has (stale outputs), checked with the others and deleted only
    once every new file is in place."""
    stale = [Path(p) for p in remove if Path(p) not in files]
    for path in [*files, *stale]:
        check_writable_file(path, what)
    temps: list[tuple[str, Path]] = []
    try:
        for path, data in files.items():
            temps.append((_temp_beside(path, data, durable=True), path))
        for tmp, path in temps:
            _rename(tmp, path)
    finally:
        for tmp, _ in temps:
            Path(tmp).unlink(missing_ok=True)
    for path in stale:
        try:
            path.unlink(missing_ok=True)
        except OSError as e:
            raise OutputError(f"{shown(path)}: cannot remove this stale {what} "
                              f"({e.strerror or e})") from None
    return list(files)
