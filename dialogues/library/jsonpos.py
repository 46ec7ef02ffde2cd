"""JSON reading that remembers where things were, so errors can name a line."""

from __future__ import annotations

import json
import json.scanner
from dataclasses import dataclass
from typing import Any


@dataclass
class Located:
    """A parsed JSON document and the line on which each of its objects and arrays starts."""

    value: Any
    text: str
    _starts: dict[int, int]

    def line_of(self, node: Any, default: int = 1) -> int:
        offset = self._starts.get(id(node))
        return default if offset is None else line_at(self.text, offset)

    def line_of_literal(self, literal: Any, after: Any) -> int:
        """Line of the first occurrence of `literal` (as JSON) after the start of container `after`."""
        start = self._starts.get(id(after), 0)
        found = self.text.find(json.dumps(literal, ensure_ascii=False), start)
        return line_at(self.text, found if found >= 0 else start)


def line_at(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def loads_located(text: str) -> Located:
    """json.loads, plus the start offset of every object and array (raises json.JSONDecodeError)."""
    starts: dict[int, int] = {}
    decoder = json.JSONDecoder()
    parse_object, parse_array = decoder.parse_object, decoder.parse_array

    def tracked_object(s_and_end: tuple[str, int], *args: Any) -> tuple[Any, int]:
        value, end = parse_object(s_and_end, *args)
        starts[id(value)] = s_and_end[1] - 1
        return value, end

    def tracked_array(s_and_end: tuple[str, int], *args: Any) -> tuple[Any, int]:
        value, end = parse_array(s_and_end, *args)
        starts[id(value)] = s_and_end[1] - 1
        return value, end

    decoder.parse_object = tracked_object  # type: ignore[method-assign]
    decoder.parse_array = tracked_array  # type: ignore[method-assign]
    # The C scanner ignores these hooks; the pure-Python one calls them.
    decoder.scan_once = json.scanner.py_make_scanner(decoder)  # type: ignore[attr-defined]
    return Located(decoder.decode(text), text, starts)
