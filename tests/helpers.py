"""Helpers shared by the bad-input tests (not tests themselves)."""

from __future__ import annotations

import re
import threading
import time


def one_line_error(result, pattern: str, t0: float, limit_s: float = 10.0,
                   stdout_empty: bool = False) -> str:
    """A click result that is a user's mistake done right: exit code 2 within ``limit_s`` of
    ``t0``, no traceback, exactly one short line on stderr matching ``pattern``; returns it."""
    assert time.perf_counter() - t0 < limit_s
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, lines
    assert len(lines[0]) < 600, lines[0][:600]
    assert re.search(pattern, lines[0]), lines[0]
    if stdout_empty:
        assert result.stdout == ""
    return lines[0]


def within(seconds: float, fn):
    """fn()'s result, or a test failure if it has not returned after ``seconds`` (a FIFO
    opened for reading blocks until a writer comes)."""
    out: dict = {}

    def target():
        try:
            out["value"] = fn()
        except BaseException as e:  # re-raised below, in the test's thread
            out["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"still blocked after {seconds} s"
    if "error" in out:
        raise out["error"]
    return out["value"]
