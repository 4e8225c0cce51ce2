"""Task YAML text to plain data, with the line and column of every field for error messages.

The text is composed once into PyYAML's node tree (SafeLoader: no Python tags), walked to record
where each dotted field (``resources.any_of[1].accelerators``) starts, then constructed.
"""

from __future__ import annotations

from typing import Any

import yaml

from flopex.errors import SpecInvalid

# Bounds on what one task file may make us walk; aliases count each time they are used, so a
# "billion laughs" file stops here instead of exhausting memory.
MAX_NODES = 250_000
MAX_DEPTH = 64
_MERGE_TAG = "tag:yaml.org,2002:merge"

Marks = dict[str, tuple[int, int]]


def load_yaml(text: str) -> tuple[Any, Marks]:
    """Parse task YAML into plain data and 1-based (line, column) marks keyed by dotted field."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is None:
            raise SpecInvalid("task YAML is empty", details={"field": None})
        marks: Marks = {"": (node.start_mark.line + 1, node.start_mark.column + 1)}
        _Walk(marks).node(node, "", 0)
        data = yaml.SafeLoader("").construct_document(node)
    except yaml.MarkedYAMLError as exc:
        raise _yaml_error(exc) from None
    except yaml.YAMLError as exc:
        raise SpecInvalid(f"invalid YAML: {exc}", details={"field": None}) from None
    except RecursionError:
        raise _too_deep("") from None
    return data, marks


def _yaml_error(exc: yaml.MarkedYAMLError) -> SpecInvalid:
    problem = exc.problem or "cannot parse"
    if exc.context and not exc.context.startswith("while"):  # "expected a single document"
        problem = f"{exc.context}, {problem}"
    mark = exc.problem_mark or exc.context_mark
    if mark is None:
        return SpecInvalid(f"invalid YAML: {problem}", details={"field": None})
    line, column = mark.line + 1, mark.column + 1
    return SpecInvalid(
        f"invalid YAML at line {line}, column {column}: {problem}",
        details={"field": None, "line": line, "column": column},
    )


def _too_deep(path: str) -> SpecInvalid:
    return SpecInvalid(
        f"{path or 'task YAML'}: nested more than {MAX_DEPTH} levels deep",
        details={"field": path or None},
    )


class _Walk:
    """Records the start of each field, refuses duplicate keys, and bounds the work done."""

    def __init__(self, marks: Marks) -> None:
        self.marks = marks
        self.visited = 0

    def node(self, node: yaml.Node, path: str, depth: int) -> None:
        self.visited += 1
        if self.visited > MAX_NODES:
            raise SpecInvalid(
                f"task YAML is too large: more than {MAX_NODES} values "
                "(aliases count each time they are used)",
                details={"field": None},
            )
        if depth > MAX_DEPTH:
            raise _too_deep(path)
        if isinstance(node, yaml.MappingNode):
            self._mapping(node, path, depth)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self._mark(f"{path}[{index}]", item, merged=False)
                self.node(item, f"{path}[{index}]", depth + 1)

    def _mapping(self, node: yaml.MappingNode, path: str, depth: int) -> None:
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:  # `<<: *base` merges base's keys into this mapping
                self._merged(value_node, path, depth)
                continue
            key = str(key_node.value)
            child = f"{path}.{key}" if path else key
            line = key_node.start_mark.line + 1
            if key in seen:
                raise SpecInvalid(
                    f"{child}: duplicate key (first at line {seen[key]})",
                    details={
                        "field": child,
                        "line": line,
                        "column": key_node.start_mark.column + 1,
                    },
                )
            seen[key] = line
            self._mark(child, key_node, merged=False)
            self.node(value_node, child, depth + 1)

    def _merged(self, value: yaml.Node, path: str, depth: int) -> None:
        sources = value.value if isinstance(value, yaml.SequenceNode) else [value]
        for source in sources:
            if not isinstance(source, yaml.MappingNode):
                continue  # the constructor reports a bad merge with its own mark
            for key_node, value_node in source.value:
                child = f"{path}.{key_node.value}" if path else str(key_node.value)
                self._mark(child, key_node, merged=True)  # an explicit key wins
                self.node(value_node, child, depth + 1)

    def _mark(self, path: str, node: yaml.Node, *, merged: bool) -> None:
        at = (node.start_mark.line + 1, node.start_mark.column + 1)
        if merged:
            self.marks.setdefault(path, at)
        else:
            self.marks[path] = at


def locate(error: SpecInvalid, marks: Marks) -> SpecInvalid:
    """Add the line and column of the error's field to its details: where the field is, or for
    a missing one where its nearest enclosing mapping starts."""
    if "line" in error.details:
        return error
    path = error.details.get("field") or ""
    while path not in marks and path:
        path = _parent(path)
    if path in marks:
        error.details["line"], error.details["column"] = marks[path]
    return error


def _parent(path: str) -> str:
    """``a.b[2]`` -> ``a.b`` -> ``a`` -> ``""``."""
    if path.endswith("]") and "[" in path:
        return path[: path.rindex("[")]
    return path.rpartition(".")[0]
