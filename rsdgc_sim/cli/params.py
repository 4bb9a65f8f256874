"""Parameter types shared by the command-line modules (click)."""

from __future__ import annotations

import click


class SafePath(click.Path):
    """``click.Path`` that reports a NUL byte or an over-long name as a usage error (click's
    own check would raise ValueError from ``os.stat``, a traceback)."""

    def convert(self, value, param, ctx):
        text = str(value)
        if "\0" in text:
            self.fail("the path contains a NUL byte", param, ctx)
        try:
            return super().convert(value, param, ctx)
        except (OSError, ValueError) as e:
            self.fail(f"{text[:200]!r}: {getattr(e, 'strerror', None) or e}", param, ctx)


__all__ = ["SafePath"]
