"""Load YAML into plain data while remembering the line of every value."""

from __future__ import annotations

from typing import Any

import yaml

from windows.errors import SpecError

Path = tuple[Any, ...]


def load_with_lines(text: str, source: str) -> tuple[Any, dict[Path, int]]:
    """Parse YAML ``text``; return the data and a map from each value's path to its 1-based line."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        raise SpecError(f"{source}{where}: not valid YAML: {problem}.") from None
    lines: dict[Path, int] = {}
    if root is None:
        return None, lines
    constructor = yaml.SafeLoader("")

    def convert(node: yaml.Node, path: Path) -> Any:
        lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = constructor.construct_object(key_node, deep=True)
                if key in out:
                    raise SpecError(f"{source} line {key_node.start_mark.line + 1}: key {key!r} appears twice.")
                out[key] = convert(value_node, (*path, key))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [convert(item, (*path, i)) for i, item in enumerate(node.value)]
        return constructor.construct_object(node, deep=True)

    return convert(root, ()), lines
