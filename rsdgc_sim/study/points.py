"""The store of finished points: one small JSON file per point, written atomically as the
point completes, keyed by what its numbers depend on, and an index of the last run's points.

A *point* is one variant of the sweep at one grid point (workers, bandwidth, latency): the
rows of every compressor there. Its key hashes the point's resolved scenario (without its
``name`` and ``train`` sections, which the simulation does not read), the profile's content
and the package version, so an unchanged rerun finds every point, a changed field or a
re-measured profile finds none of the points it touches, and a new release recomputes.

The point files make a study resumable (each is there as soon as its point is done); the
*index* (``index.json``, every point of the last run that finished, key -> rows) makes an
unchanged rerun fast: one file read instead of one per point (1,000 point files take 0.3-0.4
s to open on this VM, the index 20 ms). It is written at the end of a run whose points it
did not all hold, never by an unchanged rerun. A key's rows depend on the key alone (the key
hashes every input and the version), so an index left by another scenario is harmless: its
rows are used for the keys it has, checked as a point file's are, and the others are looked
up one file each.

>>> store = PointStore("out/points")                  # doctest: +SKIP
>>> store.get(key) or store.put(key, point, rows)     # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import __version__

if TYPE_CHECKING:  # types only
    from ..profile.schema import Profile
    from ..scenario import Scenario

#: the layout of one point file (a file of another layout is not reused); 2: rows carry
#: ``iteration_s_low``/``_high`` and ``speedup_vs_dense_low``/``_high``
POINT_FORMAT = 2
#: the index of the last run's points, in the store's folder
INDEX_NAME = "index.json"


def _digest(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def profile_identity(profile: Profile) -> str:
    """A hash of the profile's whole content (its cache key names what it was measured
    from, not what was measured: a re-measured profile must not reuse old points)."""
    return hashlib.sha256(profile.model_dump_json().encode("utf-8")).hexdigest()[:32]


def point_key(scenario: Scenario, profile_id: str) -> str:
    """The key of a one-point scenario simulated with the profile ``profile_id``. The
    scenario's ``profile`` section is left out: how the profile was obtained (warm-up,
    iterations, a file, pinned or not) matters only through the profile itself, which
    ``profile_id`` names."""
    resolved = scenario.model_dump(mode="json", exclude={"name", "train", "sweep", "profile"})
    return _digest({"scenario": resolved, "profile": profile_id, "version": __version__,
                    "format": POINT_FORMAT})[:32]


def valid_rows(rows: Any, labels: Sequence[str] | None = None) -> bool:
    """Whether ``rows`` are the rows of one point as this version writes them
    (:func:`rsdgc_sim.report.results.run_problem` finds nothing in any), one per compressor
    (``labels``, in order, when given)."""
    from ..report.results import run_problem

    if not isinstance(rows, list) or not rows:
        return False
    if labels is not None and [r.get("compressor") if isinstance(r, dict) else None
                               for r in rows] != list(labels):
        return False
    return all(run_problem(r) is None for r in rows)


class PointStore:
    """Finished points under ``root`` (``OUT/points``), one ``<key>.json`` each."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def index(self) -> dict[str, Any]:
        """The index's rows by key ({} when it is missing, unreadable, of another version
        or not a mapping of keys to lists); each entry is checked when it is used."""
        from ..data_file import InvalidFile, read_json_data

        try:
            data = read_json_data(self.root / INDEX_NAME)
        except (InvalidFile, OSError):
            return {}
        if (not isinstance(data, dict) or data.get("format") != POINT_FORMAT
                or data.get("version") != __version__
                or not isinstance(points := data.get("points"), dict)):
            return {}
        return points

    def put_index(self, rows_by_key: dict[str, list[dict[str, Any]]]) -> Path:
        """Write the index of these points (atomically, no fsync: see :meth:`put`)."""
        from ..files import write_json_atomic

        return write_json_atomic(self.root / INDEX_NAME, {
            "format": POINT_FORMAT, "version": __version__, "points": rows_by_key},
            durable=False)

    def get(self, key: str, labels: Sequence[str] | None = None,
            index: dict[str, Any] | None = None) -> list[dict[str, Any]] | None:
        """The stored rows of the point (from ``index`` when it holds the key, else from its
        file), or None when it is missing, unreadable, from another version, or not rows
        this version writes (hand-edited: wrong labels, a negative or non-finite time, a
        string for a number, nesting, a FIFO or a device in its place); then it is computed
        again and overwritten. ``labels``: the compressor labels the point must hold, in
        order."""
        from ..data_file import InvalidFile, read_json_data

        if index and valid_rows(rows := index.get(key), labels):
            return rows
        try:
            data = read_json_data(self.path(key))
        except (InvalidFile, OSError):
            return None
        if (not isinstance(data, dict) or data.get("format") != POINT_FORMAT
                or data.get("version") != __version__ or data.get("key") != key
                or not valid_rows(data.get("rows"), labels)):
            return None
        return data["rows"]

    def put(self, key: str, point: dict[str, Any], rows: list[dict[str, Any]]) -> Path:
        """Store a finished point (atomically: an interrupted write leaves no file). No
        fsync (a quarter of a 1,000-point study's time on this VM): a file a power cut
        spoils is not valid JSON, so :meth:`get` skips it and the point is simulated again."""
        from ..files import write_json_atomic

        return write_json_atomic(self.path(key), {
            "format": POINT_FORMAT, "version": __version__, "key": key, "point": point,
            "rows": rows}, durable=False)
