"""The README's quoted outputs are the code's (`make docs`, `docs/regenerate.py`): every
marked block (the teaching scenarios, which simulate committed profiles) is what its
commands print now."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_quotes_what_the_commands_print(tmp_path):
    """Regenerating a README whose quoted break-even drifted by one worker gives back the
    README as committed: its blocks are exactly the commands' output, and a drifted
    number would be caught (`docs/regenerate.py --check` exits 1 on it)."""
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        import regenerate
    finally:
        sys.path.remove(str(ROOT / "docs"))
    text = (ROOT / "README.md").read_text()
    drifted = text.replace("74 workers stops paying off", "75 workers stops paying off", 1)
    assert drifted != text
    assert regenerate.regenerate(drifted, tmp_path) == text
