"""Read the records of a corpus file as a stream, whatever its size: JSON Lines (one object per line), a JSON
array of objects, a single JSON object, or a zip holding such files (an omega-web export). Memory holds one record
at a time. Every problem names the file (the zip member too), the line and what is wrong; a bad line in JSON Lines
is reported and reading goes on with the next line, so that "skip bad records" can list every skipped line.
"""

from __future__ import annotations

import codecs
import json
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from django.conf import settings

from dialogues.library.sotopia import Problem, type_name

MAX_RECORD_BYTES = 16 * 1024 * 1024  # a line (record) longer than this is refused, not read into memory
_CHUNK = 1024 * 1024
_DECODER = json.JSONDecoder()


@dataclass(frozen=True)
class Item:
    """One record: where it starts, and the object (or the problem that kept it from being read)."""

    file: str
    line: int
    value: dict[str, Any] | None = None
    problem: Problem | None = None


class Reader:
    """The records of one file on disk, in order. `done` and `total` count bytes (uncompressed in a zip)."""

    def __init__(self, path: Path, name: str | None = None, *, max_record: int | None = None) -> None:
        self.path = Path(path)
        self.name = name or self.path.name
        self.max_record = max_record or MAX_RECORD_BYTES
        self.done = 0
        if zipfile.is_zipfile(self.path):
            with zipfile.ZipFile(self.path) as archive:
                self.members = _members(archive.infolist())
            self.total = sum(i.file_size for i in self.members)
        else:
            self.members = []
            self.total = self.path.stat().st_size

    def items(self, on_progress: Callable[[int, int], None] | None = None) -> Iterator[Item]:
        report = on_progress or (lambda done, total: None)
        if not self.members and zipfile.is_zipfile(self.path):
            yield Item(self.name, 0, problem=Problem(self.name, None, "(file)", "the zip holds no .jsonl or .json"))
            return
        limit = settings.OMEGA_CORPUS_MAX_UNCOMPRESSED_BYTES
        if self.members and self.total > limit:  # a zip bomb, or simply more than this installation reads
            message = (
                f"the zip expands to {self.total:,} bytes, more than the limit of {limit:,} "
                "(OMEGA_CORPUS_MAX_UNCOMPRESSED_MB): nothing was read"
            )
            yield Item(self.name, 0, problem=Problem(self.name, None, "(file)", message))
            return
        if self.members:
            with zipfile.ZipFile(self.path) as archive:
                for info in self.members:
                    with archive.open(info) as stream:
                        yield from self._stream(stream, f"{self.name}:{info.filename}", report)
        else:
            with self.path.open("rb") as stream:
                yield from self._stream(stream, self.name, report)

    def _stream(self, stream: IO[bytes], name: str, report: Callable[[int, int], None]) -> Iterator[Item]:
        head = stream.read(_CHUNK)
        first = head.lstrip(codecs.BOM_UTF8).lstrip()[:1]
        reader = _array if first == b"[" else _lines
        start = self.done
        for item, consumed in reader(_Rewound(head, stream), name, self.max_record):
            self.done = start + consumed
            report(self.done, self.total)
            yield item


FULL_MEMBERS = ("omega_tasks.jsonl", "omega_dialogues.jsonl")  # an omega-web export: tasks first
NOT_RECORDS = {"manifest.json", "dataset_info.json"}


def _members(infos: list[zipfile.ZipInfo]) -> list[zipfile.ZipInfo]:
    """The members to read: an omega-web export's full-fidelity files if it has them, else every .jsonl and
    .json file by name (not the manifest or LLaMA-Factory's dataset_info.json)."""
    base = {info.filename.rsplit("/", 1)[-1]: info for info in infos if not info.is_dir()}
    if FULL_MEMBERS[1] in base:
        return [base[name] for name in FULL_MEMBERS if name in base]
    chosen = [i for name, i in base.items() if name.endswith((".jsonl", ".json")) and name not in NOT_RECORDS]
    return sorted(chosen, key=lambda i: i.filename)


class _Rewound:
    """A byte stream with its first chunk (already read to sniff the format) put back in front."""

    def __init__(self, head: bytes, stream: IO[bytes]) -> None:
        self.head = head
        self.stream = stream

    def readline(self, limit: int) -> bytes:
        if self.head:
            cut = self.head.find(b"\n", 0, limit)
            if cut >= 0:
                line, self.head = self.head[: cut + 1], self.head[cut + 1 :]
                return line
            if len(self.head) >= limit:
                line, self.head = self.head[:limit], self.head[limit:]
                return line
            line, self.head = self.head, b""
            return line + self.stream.readline(limit - len(line))
        return self.stream.readline(limit)

    def read(self, size: int) -> bytes:
        if self.head:
            data, self.head = self.head[:size], self.head[size:]
            return data
        return self.stream.read(size)


def _size(n: int) -> str:
    return f"{n / (1024 * 1024):g} MB" if n >= 1024 * 1024 else f"{n:,} bytes"


def _decode_error(name: str, line: int, raw: bytes, exc: UnicodeDecodeError) -> Problem:
    column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
    return Problem(name, line, "(encoding)", f"not valid UTF-8: byte 0x{raw[exc.start]:02x} at column {column}")


def _as_record(name: str, line: int, value: Any) -> Item:
    if not isinstance(value, dict):
        return Item(
            name, line, problem=Problem(name, line, "(record)", f"expected a JSON object, got {type_name(value)}")
        )
    return Item(name, line, value)


def _lines(stream: _Rewound, name: str, max_record: int) -> Iterator[tuple[Item, int]]:
    """JSON Lines. A file whose first line is not a whole JSON value but which starts with `{` is read as one
    (pretty-printed) JSON object, as SOTOPIA's example files are."""
    consumed, number = 0, 0
    while True:
        raw = stream.readline(max_record + 1)
        if not raw:
            return
        number += 1
        consumed += len(raw)
        if len(raw) > max_record and not raw.endswith(b"\n"):
            while raw and not raw.endswith(b"\n"):  # skip the rest of the huge line without keeping it
                raw = stream.readline(_CHUNK)
                consumed += len(raw)
            problem = Problem(name, number, "(record)", f"line longer than {_size(max_record)}")
            yield Item(name, number, problem=problem), consumed
            continue
        if number == 1 and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8) :]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield Item(name, number, problem=_decode_error(name, number, raw, exc)), consumed
            continue
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            if number == 1 and text.strip() == "{":  # a pretty-printed object
                whole = _whole_document(text, stream, name, max_record, consumed)
                if whole is not None:
                    yield from whole
                    return
            yield (
                Item(
                    name,
                    number,
                    problem=Problem(name, number, "(json)", f"invalid JSON: {exc.msg} (column {exc.colno})"),
                ),
                consumed,
            )
            continue
        yield _as_record(name, number, value), consumed


def _whole_document(
    first: str, stream: _Rewound, name: str, max_record: int, consumed: int
) -> list[tuple[Item, int]] | None:
    """The file as one JSON object spread over lines; None if it is not one (then line errors are reported)."""
    rest = stream.read(max_record + 1)
    if len(rest) > max_record:
        return None
    raw = first.encode() + rest
    consumed += len(rest)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return [(Item(name, 1, problem=_decode_error(name, raw[: exc.start].count(b"\n") + 1, raw, exc)), consumed)]
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        problem = Problem(name, exc.lineno, "(json)", f"invalid JSON: {exc.msg} (column {exc.colno})")
        return [(Item(name, exc.lineno, problem=problem), consumed)]
    return [(_as_record(name, 1, value), consumed)]


def _array(stream: _Rewound, name: str, max_record: int) -> Iterator[tuple[Item, int]]:
    """A top-level JSON array, one element at a time. After an error the rest cannot be found reliably, so
    reading stops there with the problem."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    buffer, line, consumed, started = "", 1, 0, False
    eof = False

    def fill() -> bool:
        nonlocal buffer, consumed, eof
        raw = stream.read(_CHUNK)
        if not raw:
            eof = True
            buffer += decoder.decode(b"", final=True)
            return False
        consumed += len(raw)
        buffer += decoder.decode(raw)
        return True

    def skip_space() -> None:
        nonlocal buffer, line
        while True:
            stripped = buffer.lstrip()
            line += buffer[: len(buffer) - len(stripped)].count("\n")
            buffer = stripped
            if buffer or eof or not fill():
                return

    def fail(message: str, field: str = "(json)") -> tuple[Item, int]:
        return Item(name, line, problem=Problem(name, line, field, message)), consumed

    try:
        skip_space()
        if not buffer.startswith("["):
            yield fail("expected a JSON array")
            return
        buffer = buffer[1:]
        while True:
            skip_space()
            if buffer.startswith("]"):
                return
            if started:
                if not buffer.startswith(","):
                    yield fail("expected ',' or ']' between records")
                    return
                buffer = buffer[1:]
                skip_space()
            started = True
            while True:
                try:
                    value, end = _DECODER.raw_decode(buffer)
                    if end == len(buffer) and not eof and isinstance(value, int | float):
                        raise json.JSONDecodeError("number may go on", buffer, end)  # read on: it may be longer
                    if end > max_record:
                        yield fail(f"record longer than {_size(max_record)}", "(record)")
                        return
                    break
                except json.JSONDecodeError as exc:
                    incomplete = exc.pos >= len(buffer.rstrip()) or exc.msg.startswith("Unterminated string")
                    if eof or not incomplete:
                        line += buffer[: exc.pos].count("\n")
                        yield fail(f"invalid JSON: {exc.msg}")
                        return
                    if len(buffer) > max_record:
                        yield fail(f"record longer than {_size(max_record)}", "(record)")
                        return
                    fill()
            yield _as_record(name, line, value), consumed - len(buffer[end:].encode())
            line += buffer[:end].count("\n")
            buffer = buffer[end:]
    except UnicodeDecodeError as exc:
        yield fail(f"not valid UTF-8 (byte 0x{exc.object[exc.start]:02x})", "(encoding)")
