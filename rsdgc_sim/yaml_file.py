"""Reading a user's YAML file (scenario, topology) safely: every problem is one
:class:`~rsdgc_sim.errors.ScenarioFileError` naming the file.

On top of ``yaml.safe_load``:

* the path must name a regular file of at most ``MAX_FILE_BYTES`` (not a directory, FIFO or
  device such as ``/dev/zero``, which would hang or never end), in UTF-8
  (:func:`rsdgc_sim.data_file.read_text`);
* a key given twice in one mapping is an error naming the key and both lines (YAML itself
  lets the last one win silently);
* a document whose aliases expand to more than ``MAX_NODES`` nodes (an "alias bomb": a few
  lines that stand for billions of values) is refused before anything is built from it, and
  so is nesting deeper than ``MAX_DEPTH``;
* integers longer than Python's limit on digits are reported, not raised as tracebacks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .data_file import InvalidFile, read_text
from .errors import ScenarioFileError

MAX_FILE_BYTES = 1 << 20
MAX_NODES = 100_000
MAX_DEPTH = 100


class _Loader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: the base class reports it
                break
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {_short(key)} is given twice (lines {first} and {line})",
                    key_node.start_mark)
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_size(root: yaml.Node) -> None:
    """Refuse a node graph whose expansion (aliases counted every time they are used)
    exceeds MAX_NODES nodes or MAX_DEPTH levels; linear in the number of distinct nodes."""
    sizes: dict[int, int] = {}
    depths: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if key in sizes and not done:
            continue
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        if not done:
            sizes[key] = -1  # on the stack
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in sizes)
            continue
        total, depth = 1, 1
        for c in children:
            s = sizes.get(id(c), 1)
            total += max(s, 1)
            depth = max(depth, depths.get(id(c), 1) + 1)
        sizes[key], depths[key] = total, depth
        if total > MAX_NODES:
            raise ValueError(f"its aliases expand to more than {MAX_NODES:,} values")
        if depth > MAX_DEPTH:
            raise ValueError(f"it nests deeper than {MAX_DEPTH} levels")


def parse_yaml(text: str, source: str) -> Any:
    """Parse one YAML document (see the module docstring); errors name ``source``."""
    loader = None
    try:
        loader = _Loader(text)  # its reader refuses control characters and NUL bytes here
        node = loader.get_single_node()
        if node is None:
            return None
        _check_size(node)
        return loader.construct_document(node)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ScenarioFileError(f"{source}: invalid YAML{where}: {problem}") from None
    except RecursionError:
        raise ScenarioFileError(f"{source}: nested too deeply to read") from None
    except ValueError as e:  # size checks, integers with too many digits
        raise ScenarioFileError(f"{source}: cannot read: {_short(str(e), 200)}") from None
    finally:
        if loader is not None:
            loader.dispose()


def read_yaml_file(path: str | Path) -> Any:
    """Read and parse a YAML file; every problem is one ScenarioFileError naming it."""
    p = Path(path)
    name = str(p).replace("\0", "\\0")
    name = name if len(name) <= 200 else name[:197] + "..."
    try:
        text = read_text(p, MAX_FILE_BYTES, what="a YAML file")
    except InvalidFile as e:
        raise ScenarioFileError(f"{name}: {e}") from None
    return parse_yaml(text, name)


__all__ = ["MAX_DEPTH", "MAX_FILE_BYTES", "MAX_NODES", "parse_yaml", "read_yaml_file"]
