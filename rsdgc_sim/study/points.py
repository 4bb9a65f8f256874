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
did not all hold (or held in an index without a digest), never by an unchanged rerun. It
carries the SHA-256 of its points' text: while the text still has it, the rows are what
this version wrote (valid when written) and only their labels are checked; an index changed
since (by hand, by another tool) is read as any other and every entry is checked as a point
file's is. A key's rows depend on the key alone (the key hashes every input and the
version), so an index left by another scenario is harmless: its rows are used for the keys
it has, and the others are looked up one file each.

Beside them, ``checks.json`` holds the registry checks of the scenarios that runs of this
version loaded (:func:`rsdgc_sim.scenario.validate.lasting_checks`: a model, compressor,
generated topology at a worker count, collective... whose outcome depends on its key and
the package alone), so that `run` loads an unchanged scenario again without building its
topologies (nor importing the simulator); checks that read a user's file are not kept.

>>> store = PointStore("out/points")                  # doctest: +SKIP
>>> store.get(key) or store.put(key, point, rows)     # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import __version__

if TYPE_CHECKING:  # types only
    from ..profile.schema import Profile
    from ..scenario import GridPoint, Scenario

#: the layout of one point file (a file of another layout is not reused); 2: rows carry
#: ``iteration_s_low``/``_high`` and ``speedup_vs_dense_low``/``_high``
POINT_FORMAT = 2
#: the index of the last run's points, in the store's folder
INDEX_NAME = "index.json"
#: the scenario checks that runs of this version passed, in the store's folder
CHECKS_NAME = "checks.json"
#: the most checks kept there (past it, a run keeps its own only)
MAX_CHECKS = 10_000


#: writes the JSON text that keys hash: sorted keys, no spaces (made once: ``json.dumps``
#: with options makes an encoder per call)
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), allow_nan=False)


def _canonical(data: Any) -> str:
    """The JSON text that keys hash (sorted keys, no spaces)."""
    return _CANONICAL.encode(data)


def _digest(data: Any) -> str:
    return hashlib.sha256(_canonical(data).encode("utf-8")).hexdigest()


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


def one_point(scenario: Scenario, point: GridPoint) -> Scenario:
    """The scenario with its grid cut to one ``point`` (what a point's rows are simulated
    from, and what :func:`point_key` hashes)."""
    cl = scenario.cluster
    return scenario.model_copy(update={"cluster": cl.model_copy(update={
        "workers": [point.workers], "bandwidth": [point.bandwidth_bytes_per_s],
        "latency": [point.latency_s]})})


#: stand-ins for the grid values in the text that :func:`point_keys` hashes (if a scenario
#: holds one of them, each key is computed whole)
_MARKS = {"workers": "\x00rsdgc-workers-7f3a\x00", "bandwidth": "\x00rsdgc-bandwidth-7f3a\x00",
          "latency": "\x00rsdgc-latency-7f3a\x00"}


def point_keys(scenario: Scenario, profile_id: str) -> list[str]:
    """``point_key(one_point(scenario, p), profile_id)`` of every point ``p`` of the
    scenario's grid, in :meth:`~rsdgc_sim.scenario.Scenario.grid` order, without making
    the one-point scenarios: the scenario is written out once with stand-ins for its
    grid's three lists, and each point's text is that text with the point's values put in
    (the same characters, so the same keys: 1,000 points in milliseconds, not a tenth of a
    second)."""
    resolved = scenario.model_dump(mode="json", exclude={"name", "train", "sweep", "profile"})
    resolved["cluster"] = {**resolved["cluster"], **_MARKS}
    text = _canonical({"scenario": resolved, "profile": profile_id, "version": __version__,
                       "format": POINT_FORMAT})
    marks = {field: json.dumps(mark) for field, mark in _MARKS.items()}
    if any(text.count(m) != 1 for m in marks.values()):  # a stand-in among the values
        return [point_key(one_point(scenario, p), profile_id) for p in scenario.grid()]
    order = sorted(marks, key=lambda f: text.index(marks[f]))
    pieces, rest = [], text
    for field in order:
        head, _, rest = rest.partition(marks[field])
        pieces.append(head)
    cl = scenario.cluster  # the grid: their product, in this order (Scenario.grid)
    texts = {field: [_canonical([v]) for v in getattr(cl, field)] for field in _MARKS}
    keys = []
    for combo in itertools.product(texts["workers"], texts["bandwidth"], texts["latency"]):
        values = dict(zip(("workers", "bandwidth", "latency"), combo, strict=True))
        parts = [x for field, head in zip(order, pieces, strict=True)
                 for x in (head, values[field])]
        keys.append(hashlib.sha256(("".join(parts) + rest).encode("utf-8")).hexdigest()[:32])
    return keys


def _labelled(rows: list[dict[str, Any]], labels: Sequence[str] | None) -> bool:
    """Whether ``rows`` (dicts) are those of ``labels``, in order (any, when None)."""
    return labels is None or [r.get("compressor") for r in rows] == list(labels)


def valid_rows(rows: Any, labels: Sequence[str] | None = None) -> bool:
    """Whether ``rows`` are the rows of one point as this version writes them
    (:func:`rsdgc_sim.report.results.run_problem` finds nothing in any), one per compressor
    (``labels``, in order, when given)."""
    from ..report.results import run_problem

    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        return False
    return _labelled(rows, labels) and all(run_problem(r) is None for r in rows)


#: how :meth:`PointStore.put_index` begins the index, before the digest of its points' text
#: (the rest: :data:`_INDEX_MID`, that text, ``}``); still JSON, read as any other
_INDEX_HEAD = (f'{{"format": {POINT_FORMAT}, "version": {json.dumps(__version__)}, '
               f'"points_sha256": "')
_INDEX_MID = '", "points": '


def _verified_points(text: str) -> dict[str, Any] | None:
    """The points of an index written by :meth:`PointStore.put_index` with a digest, when
    its points' text still has that digest (every byte as this version wrote it: valid
    rows, finite numbers); None otherwise (another layout or version, or changed since)."""
    digest_end = len(_INDEX_HEAD) + 64
    if not (text.startswith(_INDEX_HEAD) and text.startswith(_INDEX_MID, digest_end)
            and text.endswith("}\n")):
        return None
    body = text[digest_end + len(_INDEX_MID):-2]
    if hashlib.sha256(body.encode("utf-8")).hexdigest() != text[len(_INDEX_HEAD):digest_end]:
        return None
    try:
        points = json.loads(body)
    except ValueError:  # not reached: the digest matched what json.dumps wrote
        return None
    return points if isinstance(points, dict) else None


class StoredIndex(dict):
    """The index's rows by key; ``verified``: its text is what this version wrote (its
    digest matched), so its rows are valid (:func:`valid_rows` held when it was written)
    and only their labels are checked."""

    def __init__(self, points: dict[str, Any] | None = None, verified: bool = False):
        super().__init__(points or {})
        self.verified = verified


class PointStore:
    """Finished points under ``root`` (``OUT/points``), one ``<key>.json`` each."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def index(self) -> StoredIndex:
        """The index's rows by key (empty when it is missing, unreadable, of another
        version or not a mapping of keys to lists); each entry is checked when it is used,
        wholly unless the index is :attr:`StoredIndex.verified`."""
        from ..data_file import InvalidFile, parse_json_data, read_text

        try:
            text = read_text(self.root / INDEX_NAME, what="a JSON file")
            if (points := _verified_points(text)) is not None:
                return StoredIndex(points, verified=True)
            points = _ours(parse_json_data(text), "points", dict)
        except (InvalidFile, OSError):
            return StoredIndex()
        return StoredIndex(points)

    def put_index(self, rows_by_key: dict[str, list[dict[str, Any]]]) -> Path:
        """Write the index of these points (atomically, no fsync: see :meth:`put`), with
        the digest of its points' text when every point's rows are what this version
        writes (:func:`valid_rows`): then the next run reads them without checking each
        (:attr:`StoredIndex.verified`)."""
        from ..files import write_bytes_atomic, write_json_atomic

        path = self.root / INDEX_NAME
        try:
            if not all(valid_rows(rows) for rows in rows_by_key.values()):
                raise ValueError("rows this version does not write")
            body = json.dumps(rows_by_key, separators=(",", ":"), allow_nan=False)
        except ValueError:  # no digest (a non-finite number: OutputError naming it)
            return write_json_atomic(path, {"format": POINT_FORMAT, "version": __version__,
                                            "points": rows_by_key}, durable=False)
        digest = hashlib.sha256(body.encode("utf-8")).hexdigest()
        return write_bytes_atomic(path, f"{_INDEX_HEAD}{digest}{_INDEX_MID}{body}}}\n".encode(),
                                  durable=False)

    def checks(self) -> set[tuple]:
        """The registry checks that earlier runs of this version passed
        (:func:`rsdgc_sim.scenario.validate.lasting_checks`), for loading the scenario
        again without them (no topology built, no simulator imported); empty when the
        file is missing, unreadable, of another version or not a list of checks."""
        from ..data_file import InvalidFile, read_json_data

        try:
            checks = _ours(read_json_data(self.root / CHECKS_NAME), "checks", list)
        except (InvalidFile, OSError):
            return set()
        if checks is None or not all(isinstance(c, list) and c and isinstance(c[0], str)
                                     for c in checks):
            return set()
        return {_as_tuple(c) for c in checks}

    def keep_checks(self, known: set[tuple], checked: set[tuple]) -> Path | None:
        """Add the checks of ``checked`` (the set a scenario was loaded with, filled) that
        a later run may skip (:func:`~rsdgc_sim.scenario.validate.lasting_checks`) and
        that ``known`` (:meth:`checks`, read before) lacks, to the file (atomically, no
        fsync: a spoilt file is not read, and its checks are only done again); past
        :data:`MAX_CHECKS`, this run's alone. None: nothing new, nothing written."""
        if checked <= known:
            return None
        from ..files import write_json_atomic
        from ..scenario.validate import lasting_checks

        new = set(lasting_checks(checked - known))
        if not new:
            return None
        keep = known | new if len(known | new) <= MAX_CHECKS else set(lasting_checks(checked))
        rows = sorted((_as_list(c) for c in keep), key=_digest)
        return write_json_atomic(self.root / CHECKS_NAME, {
            "format": POINT_FORMAT, "version": __version__, "checks": rows}, durable=False)

    def get(self, key: str, labels: Sequence[str] | None = None,
            index: dict[str, Any] | None = None) -> list[dict[str, Any]] | None:
        """The stored rows of the point (from ``index`` when it holds the key, else from its
        file), or None when it is missing, unreadable, from another version, or not rows
        this version writes (hand-edited: wrong labels, a negative or non-finite time, a
        string for a number, nesting, a FIFO or a device in its place); then it is computed
        again and overwritten. ``labels``: the compressor labels the point must hold, in
        order."""
        from ..data_file import InvalidFile, read_json_data

        if index and (rows := index.get(key)) is not None and (
                _labelled(rows, labels) if getattr(index, "verified", False)
                else valid_rows(rows, labels)):
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


def _ours(data: Any, field: str, kind: type) -> Any:
    """``data[field]`` when ``data`` is a file of this store's format and this version
    whose ``field`` is a ``kind``; else None."""
    if (isinstance(data, dict) and data.get("format") == POINT_FORMAT
            and data.get("version") == __version__ and isinstance(got := data.get(field), kind)):
        return got
    return None


def _as_tuple(value: Any) -> Any:
    """A check key read back from JSON: its lists as tuples again."""
    return tuple(_as_tuple(v) for v in value) if isinstance(value, list) else value


def _as_list(value: Any) -> Any:
    """A check key as JSON data: its tuples as lists."""
    return [_as_list(v) for v in value] if isinstance(value, tuple) else value
