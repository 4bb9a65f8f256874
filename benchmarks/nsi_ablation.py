"""NSI ablation: which score makes RS-DGC (``nsi``) train best, against dense, top-k and DGC
at equal wire bytes.

The NSI score set of the compressor study (``benchmarks/compressor_study.py --set nsi``):
the same runs, options and table (compared with top-k), kept under this name for the
commands in docs/compressors.md.

    python benchmarks/nsi_ablation.py                      # full: 2 data sets x 3 seeds
    python benchmarks/nsi_ablation.py --seeds 0 --steps 60 --datasets synthetic   # quick
    python benchmarks/nsi_ablation.py --jobs 2             # two runs at a time
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compressor_study import main as study_main  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """The compressor study's ``--set nsi``, with this file's options."""
    args = sys.argv[1:] if argv is None else list(argv)
    return study_main(["--set", "nsi", *args], prog="nsi_ablation.py")


if __name__ == "__main__":
    raise SystemExit(main())
