"""Delimited text extracts (CSV, semicolon, tab, pipe), streamed in Arrow batches.

Suppliers' files arrive in whatever their SMSO's export tool wrote: UTF-8 with or without a
BOM, UTF-16, Windows-1252; title lines above the header; a trailer record at the end; rows
with a field too many. Every value is read as a string: MPANs and serials lose digits as
numbers.
"""

from __future__ import annotations

import codecs
import csv
import mmap
import re
from collections.abc import Iterator, Sequence
from itertools import islice
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from migrate.errors import InputError
from migrate.extract.base import ReadAccount, UnreadableRow, match_header
from migrate.extract.cp1252 import UndefinedByte, Utf8Stream

DELIMITERS = (",", ";", "\t", "|")
HEADER_SEARCH_ROWS = 50
SAMPLE_BYTES = 1 << 16
SCAN_BYTES = 1 << 23
# Bytes parsed into one batch: 8 MB (~70,000 rows of a typical extract) halves the calls per
# row of 4 MB (a tenth of a second at 1M rows) and holds a few such batches in memory.
BLOCK_BYTES = 1 << 23
LINE_BREAK = re.compile(r"\r\n|\r|\n")
# Lines a quoted value may span (an address, a note): one spanning more is taken for a stray
# quote, which turns the rows after it into the text of one value (the mapping can allow more).
MAX_VALUE_LINES = 20
# Encodings in which a text can be found by its bytes, lines ending at CR or LF bytes.
BYTE_SEARCHABLE = {"utf-8", "utf-8-sig", "cp1252", "latin-1", "iso8859-1", "ascii", "iso8859-15"}


def _blank_rows(batch: pa.RecordBatch) -> pa.BooleanArray:
    """Rows of a blank line, which leaves every field empty: the other fields are looked at
    only where the first is empty."""
    blank = pc.equal(pc.binary_length(batch.column(0)), 0)
    if pc.any(blank).as_py():
        for column in batch.columns[1:]:
            blank = pc.and_(blank, pc.equal(pc.binary_length(column), 0))
    return blank


def _line_count(path: Path) -> int:
    """The file's lines (ended by CR, LF or CRLF), the last one counted whether or not a
    line break ends it."""
    lines, last = 0, b""
    with path.open("rb") as handle:
        while chunk := handle.read(SCAN_BYTES):
            lines += chunk.count(b"\n") + chunk.count(b"\r") - chunk.count(b"\r\n")
            last = chunk
    return lines + (not last.endswith((b"\n", b"\r")))


def _has_line_break(data: pa.Buffer) -> bool:
    view = np.frombuffer(data, dtype=np.uint8)
    return bool(np.any((view == 10) | (view == 13)))


def _contains(path: Path, needle: bytes) -> bool:
    """Whether the file holds these bytes anywhere: one memchr pass over the mapped file."""
    with path.open("rb") as handle:
        if path.stat().st_size == 0:
            return False
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return data.find(needle) >= 0


# What a skipped line may hold and still be blank: spaces and control characters (0x1A ends
# a file in DOS tools).
_NOT_TEXT = "".join(map(chr, range(0x21))) + "\x7f"


def _lines_spanned(text: str) -> int:
    """The lines a record's text covers: quoted line breaks make it several. A break that
    ends the text (a quote left open to the end of the file) starts no line."""
    return len(LINE_BREAK.findall(text.rstrip("\r\n"))) + 1


def detect_encoding(path: Path) -> str:
    """UTF-16 and UTF-8 by their BOM; otherwise UTF-8 if the whole file decodes, else cp1252.

    The whole file is scanned (at memory speed) because a sample can be clean while row
    900,000 holds a Windows-1252 'é'. A file neither decodes is refused with its line.
    """
    with path.open("rb") as handle:
        head = handle.read(4)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if len(head) >= 4 and head[1] == 0 and head[3] == 0 and head[0] != 0:
        return "utf-16-le"
    if len(head) >= 4 and head[0] == 0 and head[2] == 0 and head[1] != 0:
        return "utf-16-be"
    not_utf8 = _decodes(path, "utf-8")
    if not_utf8 is None:
        return "utf-8"
    utf8 = _first_non_ascii(path, not_utf8[0])
    if utf8 is not None:
        # Read as Windows-1252, every UTF-8 character before it would turn into two or three
        # wrong ones (Zürich as ZÃ¼rich), silently; read as UTF-8, this byte cannot be read.
        raise InputError(
            path,
            "mixes encodings: UTF-8 text (from offset "
            f"{utf8[0]}, line {utf8[1]}) and a byte that is not UTF-8 (offset {not_utf8[0]}, "
            f"line {not_utf8[1]}); either way part of it would be garbled. Fix the file, or "
            "set `encoding` in the mapping if you know which one it is",
            row=not_utf8[1],
        )
    # A byte Windows-1252 leaves undefined is met while reading: every byte from 0x80 is
    # looked at then, and a search of the whole file first took a tenth of a second more.
    return "cp1252"


def _decodes(path: Path, encoding: str) -> tuple[int, int] | None:
    """None if the file decodes; else the byte offset and line of the first bad byte."""
    decoder = codecs.getincrementaldecoder(encoding)()
    offset = 0
    lines = 1
    with path.open("rb") as handle:
        while chunk := handle.read(SCAN_BYTES):
            # Bytes of a character the last chunk ended inside: the decoder holds them, and
            # an error's position counts from them.
            held = len(decoder.getstate()[0])
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as error:
                start = error.start - held  # before this chunk if in the bytes held
                return offset + start, lines + chunk.count(b"\n", 0, max(start, 0))
            except UnicodeError:  # e.g. UTF-16 without its byte order mark
                return offset, lines
            offset += len(chunk)
            lines += chunk.count(b"\n")
    held = len(decoder.getstate()[0])
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return offset - held, lines  # a character cut off by the end of the file
    return None


def _first_non_ascii(path: Path, stop: int) -> tuple[int, int] | None:
    """The offset and line of the first byte from 0x80 before `stop`, if any: before the
    first byte that is not UTF-8, such a byte begins a well-formed UTF-8 character."""
    offset = 0
    lines = 1
    with path.open("rb") as handle:
        while offset < stop and (chunk := handle.read(min(SCAN_BYTES, stop - offset))):
            high = np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) >= 0x80)
            if len(high):
                first = int(high[0])
                return offset + first, lines + chunk.count(b"\n", 0, first)
            offset += len(chunk)
            lines += chunk.count(b"\n")
    return None


def _sample_lines(path: Path, encoding: str) -> list[str]:
    with path.open("r", encoding=encoding, errors="replace", newline="") as handle:
        text = handle.read(SAMPLE_BYTES)
    # Only CR, LF and CRLF end a line, as for the parser: str.splitlines also splits at
    # form feeds, U+2028 and the like, which would misplace the header.
    lines = LINE_BREAK.split(text)
    if lines[-1] == "":
        lines.pop()  # the break ending the last line starts no line of its own
    return lines[:HEADER_SEARCH_ROWS]


class DelimitedReader:
    """Streams a delimited file as batches of string columns, header found by name."""

    def __init__(
        self,
        path: Path,
        required: Sequence[str],
        *,
        encoding: str = "auto",
        delimiter: str = "auto",
        header_row: int | None = None,
        trailer: str | None = None,
        block_bytes: int = BLOCK_BYTES,
        max_value_lines: int = MAX_VALUE_LINES,
    ) -> None:
        self.path = path
        self._max_value_lines = max_value_lines
        self.account = ReadAccount()
        if path.stat().st_size == 0:
            raise InputError(path, "the file is empty")
        self._detected = encoding == "auto"
        self.encoding = detect_encoding(path) if self._detected else encoding
        # What detection did not decode whole must still decode before Arrow's reader meets
        # it unnumbered: a mapping's encoding, and UTF-16 known by its byte order mark (a
        # file cut off mid-character, a lone surrogate). Windows-1252 is checked as it is read.
        checked = not self._is_cp1252() and (not self._detected or "16" in self.encoding)
        failure = _decodes(path, self.encoding) if checked else None
        if failure is not None:
            problem = (
                f"does not decode as {self.encoding} (undecodable bytes at offset "
                f"{failure[0]}: a character cut short, or the file truncated)"
                if self._detected
                else f"does not decode as {encoding}, the mapping's encoding (undecodable "
                f"byte at offset {failure[0]}); check the file or set `encoding: auto`"
            )
            raise InputError(path, problem, row=failure[1])
        with path.open("rb") as handle:
            self._bom = handle.read(4).startswith(
                (codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
            )
        # RE2's pattern (the mapping checked it with RE2), matched by Arrow wherever it is asked.
        self._trailer = trailer or None
        self._block_bytes = block_bytes
        lines = _sample_lines(path, self.encoding)
        if not any(line.strip() for line in lines):
            raise InputError(path, "the file has no header row")
        self.delimiter, self._header_index, self.columns = self._find_header(
            lines, required, delimiter, header_row
        )
        # Byte search is exact where '"' is one byte; otherwise assume quotes.
        self._quoted = codecs.lookup(self.encoding).name not in BYTE_SEARCHABLE or _contains(
            path, b'"'
        )
        # Every record the parser skipped, in file order, and its first field (which of them
        # are trailers is known only once the end is reached).
        self._unreadable_text: list[str] = []
        self._unreadable_first: list[str] = []
        # Each one's record number in the file (header and title rows included), which the
        # parser knows when it parses on one thread.
        self._unreadable_number: list[int | None] = []
        self._emitted = 0
        self._last_kept = -1  # the ordinal of the last data record emitted
        # The lines the parser skipped: where each skipped record starts, and its lines.
        self._skipped_positions = np.empty(0, dtype=np.int64)
        self._skipped_spans = np.empty(0, dtype=np.int64)
        # Records whose quoted fields hold line breaks: their ordinals and extra lines.
        self._multiline: list[tuple[np.ndarray, np.ndarray]] = []

    def described(self) -> dict[str, object]:
        return {
            "format": "delimited",
            "encoding": self.encoding,
            "bom": self._bom,
            "delimiter": self.delimiter,
            "header_row": self._header_index + 1,
        }

    def _find_header(
        self,
        lines: list[str],
        required: Sequence[str],
        delimiter: str,
        header_row: int | None,
    ) -> tuple[str, int, list[str]]:
        """Try each candidate delimiter; the header is the first line naming all columns."""
        delimiters = DELIMITERS if delimiter == "auto" else (delimiter,)
        if header_row is not None:
            lines = lines[header_row - 1 : header_row]
        wanted = {name.strip().casefold() for name in required}
        failures: list[tuple[int, InputError]] = []
        for candidate in delimiters:
            rows = [next(csv.reader([line], delimiter=candidate), []) for line in lines]
            try:
                index, names = match_header(self.path, rows, required, where="of the file")
            except InputError as error:
                # The delimiter that splits out the most required names says what is wrong
                # (a missing or repeated column), not the first one tried.
                named = max(
                    (
                        len(wanted & {c.strip().lstrip("\ufeff").casefold() for c in row})
                        for row in rows
                    ),
                    default=0,
                )
                # Kept without its traceback: the traceback's frames would hold every frame
                # above this one, with their locals, until the cyclic collector ran (the
                # whole ingest's batches, 400 MB at 1M rows, in `migrate plan`).
                failures.append((named, error.with_traceback(None)))
                continue
            return candidate, index + (header_row - 1 if header_row else 0), names
        raise max(failures, key=lambda failure: failure[0])[1]

    def _on_invalid_row(self, row: pacsv.InvalidRow) -> str:
        self._unreadable_text.append(row.text)
        self._unreadable_number.append(row.number)
        self._unreadable_first.append(self._first_field(row.text) if self._trailer else "")
        return "skip"

    def _first_field(self, text: str) -> str:
        """The trailer pattern is for the first field, as on rows of the header's width."""
        fields = next(csv.reader([text], delimiter=self.delimiter), [])
        return fields[0] if fields else ""

    def batches(self) -> Iterator[tuple[pa.RecordBatch, np.ndarray]]:
        # Windows-1252 goes to the parser as UTF-8 by our own transcoding, which is faster
        # than Arrow's and leaves the interpreter's lock to the threads that normalise.
        stream = Utf8Stream(self.path.open("rb")) if self._is_cp1252() else None
        try:
            yield from self._parsed(stream)
        finally:
            if stream is not None:
                stream.close()
        self._locate_unreadable()
        self._refuse_runaway_values()

    def _is_cp1252(self) -> bool:
        return codecs.lookup(self.encoding).name == "cp1252"

    def _parsed(self, stream: Utf8Stream | None) -> Iterator[tuple[pa.RecordBatch, np.ndarray]]:
        reader = self._open(stream)
        if reader is None:
            return
        # Batches are held back until the next is read: only the rows that end the file may
        # be trailers, and only the reader knows which batch is the last. Held: the last batch
        # read, after any runs of rows before it that may all be trailers (a file's trailer
        # records may be split between batches). Rows with data after them are passed on.
        held: list[tuple[pa.RecordBatch, np.ndarray]] = []
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            except UndefinedByte as error:
                raise self._undecodable(error.offset) from None
            except pa.ArrowException as error:
                if "straddl" in str(error):  # a record longer than the parser's block
                    size = self._block_bytes
                    most = f"{size // 2**20} MB" if size >= 2**20 else f"{size:,} bytes"
                    raise InputError(
                        self.path,
                        f"holds a record (a line, or a quoted value) longer than {most}, the "
                        f"most one record may hold, somewhere after its first "
                        f"{self._emitted:,} records",
                    ) from None
                raise InputError(
                    self.path, f"cannot be read as {self.encoding}: {error}"
                ) from error
            if not batch.num_rows:
                continue
            ordinals = np.arange(self._emitted, self._emitted + batch.num_rows, dtype=np.int64)
            self._emitted += batch.num_rows
            if self._quoted:
                self._note_line_breaks(batch, ordinals)
            if held and (settled := self._settled(held[-1][0])):
                *before, (newest, numbers) = held
                for part in before:
                    yield from self._kept(*part, last=False)
                yield from self._kept(newest.slice(0, settled), numbers[:settled], last=False)
                held = [(newest.slice(settled), numbers[settled:])]
            held.append((batch, ordinals))
        # The runs held before the last batch end the file if the last batch holds nothing
        # but such rows too; otherwise data follows them.
        ends_in_data = bool(held) and self._settled(held[-1][0]) > 0
        for index, part in enumerate(held):
            yield from self._kept(*part, last=index == len(held) - 1 or not ends_in_data)

    def _settled(self, batch: pa.RecordBatch) -> int:
        """The batch's rows up to its last one that cannot be a trailer (neither blank nor
        with the pattern on its first field): the rows after it may end the file."""
        if self._trailer is None or not batch.num_rows:
            return batch.num_rows
        if not self._maybe_trailers(batch.slice(batch.num_rows - 1))[0]:  # the usual case
            return batch.num_rows
        data = np.flatnonzero(~self._maybe_trailers(batch))
        return int(data[-1]) + 1 if len(data) else 0

    def _maybe_trailers(self, batch: pa.RecordBatch) -> np.ndarray:
        """Rows that are blank or have the trailer pattern on their first field, matched by
        the same engine (RE2) as the batch's data rows are."""
        assert self._trailer is not None
        matches = pc.match_substring_regex(batch.column(0), self._trailer)
        return pc.or_(matches, _blank_rows(batch)).to_numpy(zero_copy_only=False)

    def _kept(
        self, batch: pa.RecordBatch, ordinals: np.ndarray, *, last: bool
    ) -> Iterator[tuple[pa.RecordBatch, np.ndarray]]:
        if not batch.num_rows:
            return
        keep = self._data_rows(batch, ordinals, last=last)
        if keep is not None:
            batch = batch.filter(keep)
            ordinals = ordinals[keep.to_numpy(zero_copy_only=False)]
        if batch.num_rows:
            self._last_kept = int(ordinals[-1])
            yield batch, ordinals

    def _open(self, stream: Utf8Stream | None) -> pacsv.CSVStreamingReader | None:
        try:
            return pacsv.open_csv(
                self.path if stream is None else stream,
                # One thread: the parser then numbers the records it skips. It is fed and
                # read by this thread either way; the normalising threads do the rest.
                read_options=pacsv.ReadOptions(
                    use_threads=False,
                    encoding=self.encoding if stream is None else "utf8",
                    skip_rows=self._header_index + 1,
                    column_names=self.columns,
                    block_size=self._block_bytes,
                ),
                parse_options=pacsv.ParseOptions(
                    delimiter=self.delimiter,
                    ignore_empty_lines=False,
                    # Only a quoted field can hold a line break: without a quote in the
                    # file, the faster parser that splits at every break is exact.
                    newlines_in_values=self._quoted,
                    invalid_row_handler=self._on_invalid_row,
                ),
                convert_options=pacsv.ConvertOptions(
                    column_types=dict.fromkeys(self.columns, pa.string()),
                    strings_can_be_null=False,
                    quoted_strings_can_be_null=False,
                ),
            )
        except UndefinedByte as error:
            raise self._undecodable(error.offset) from None
        except pa.ArrowException as error:
            if self._header_is_last_line():
                return None  # header only, without a line break after it: no data rows
            raise InputError(self.path, f"cannot be read: {error}") from error

    def _undecodable(self, offset: int) -> InputError:
        """A byte Windows-1252 leaves undefined, met while reading: named by offset and line."""
        with self.path.open("rb") as handle:
            line = 1 + handle.read(offset).count(b"\n")
        if self._detected:
            problem = (
                "cannot be decoded as UTF-8, UTF-16 or Windows-1252 (undecodable byte at "
                f"offset {offset}); set `encoding` in the mapping"
            )
        else:
            problem = (
                f"does not decode as {self.encoding}, the mapping's encoding (undecodable byte "
                f"at offset {offset}); check the file or set `encoding: auto`"
            )
        return InputError(self.path, problem, row=line)

    def _header_is_last_line(self) -> bool:
        with self.path.open("r", encoding=self.encoding, newline="") as handle:
            lines = list(islice(handle, self._header_index + 2))
        return len(lines) == self._header_index + 1 and not lines[-1].endswith(("\r", "\n"))

    def _note_line_breaks(self, batch: pa.RecordBatch, ordinals: np.ndarray) -> None:
        """Remember records that span lines (a quoted field holding CR, LF or CRLF)."""
        extra = None
        for column in batch.columns:
            data = column.buffers()[2]  # the characters of every value, scanned in place
            if data is None or not _has_line_break(data):
                continue
            breaks = pc.count_substring_regex(column, "\r\n|\r|\n").to_numpy(zero_copy_only=False)
            extra = breaks if extra is None else extra + breaks
        if extra is not None:
            spans = np.flatnonzero(extra)
            self._multiline.append((ordinals[spans], extra[spans].astype(np.int64)))

    def _data_rows(
        self, batch: pa.RecordBatch, ordinals: np.ndarray, *, last: bool
    ) -> pa.BooleanArray | None:
        """Drop blank lines and a trailer that happens to have the header's width. A trailer
        ends the file: a row that matches the pattern with data after it is data (a site
        called EOF-7 is not a trailer), so only the last batch's tail is looked at, and in it
        only the rows after the last data row the parser skipped."""
        blank = _blank_rows(batch)
        drop = blank
        n_blank = pc.sum(blank).as_py() or 0
        n_trailer = 0
        if self._trailer is not None and last:
            matches = pc.match_substring_regex(batch.column(0), self._trailer)
            matches = pc.and_not(matches, blank).to_numpy(zero_copy_only=False)
            body = np.flatnonzero(~matches & ~blank.to_numpy(zero_copy_only=False))
            tail = body[-1] + 1 if len(body) else 0
            trailer = matches & (np.arange(batch.num_rows) >= tail)
            trailer &= ordinals >= self._emitted_before_skipped_data()
            n_trailer = int(trailer.sum())
            drop = pc.or_(drop, pa.array(trailer))
        if not n_blank and not n_trailer:
            return None
        self.account.blank_rows += n_blank
        self.account.trailer_rows += n_trailer
        return pc.invert(drop)

    def _skipped_trailer_like(self) -> list[bool]:
        """Whether each skipped record has the trailer pattern on its first field, asked of
        the same engine (RE2) as the parsed rows are."""
        if self._trailer is None or not self._unreadable_first:
            return [False] * len(self._unreadable_first)
        first = pa.array(self._unreadable_first, pa.string())
        return pc.match_substring_regex(first, self._trailer).to_pylist()

    def _emitted_before_skipped_data(self) -> int:
        """The records emitted before the last record the parser skipped that is data (not
        blank, not like a trailer): no record before it can be a trailer."""
        first_data_line = self._header_index + 2
        trailer_like = self._skipped_trailer_like()
        for index in reversed(range(len(self._unreadable_text))):
            if trailer_like[index] or not self._unreadable_text[index].strip(_NOT_TEXT):
                continue
            number = self._unreadable_number[index]
            # Unnumbered, it cannot be placed: the batch's own rows decide, as before.
            return 0 if number is None else number - first_data_line - index
        return 0

    def _locate_unreadable(self) -> None:
        """Place the rows the parser skipped; only runs when there were some.

        Each one's line follows from its record number: the records before it, and the lines
        by which those spanning several (quoted line breaks) add to them. A skipped line
        holding nothing but spaces or control characters (a DOS end-of-file mark) is a
        blank line. A skipped row that looks like a trailer is one only if it ends the file
        (after the last data row, with only trailers and blank lines after it): anywhere else
        it is a data row cut short, quarantined like any other.
        """
        texts = self._unreadable_text
        if not texts:
            return
        first_data_line = self._header_index + 2
        spans = [_lines_spanned(text) for text in texts]
        found = self._skipped_lines(first_data_line, spans)
        located = [(line, span) for line, span in zip(found, spans, strict=True) if line]
        self._skipped_positions = np.array([line for line, _ in located], dtype=np.int64)
        self._skipped_positions -= first_data_line
        self._skipped_spans = np.array([span for _, span in located], dtype=np.int64)
        last_data = (
            int(self.source_rows(np.array([self._last_kept]))[0]) if self._last_kept >= 0 else 0
        )
        blank = [not text.strip(_NOT_TEXT) for text in texts]
        trailer_like = self._skipped_trailer_like()
        trailer = [False] * len(texts)
        for index in reversed(range(len(texts))):
            if blank[index]:
                continue
            line = found[index]
            if not trailer_like[index] or (line is not None and line <= last_data):
                break
            trailer[index] = True
        self.account.trailer_rows += sum(trailer)
        self.account.blank_rows += sum(blank)
        for index, (line, text) in enumerate(zip(found, texts, strict=True)):
            if blank[index] or trailer[index]:
                continue
            try:
                cells = tuple(next(csv.reader([text], delimiter=self.delimiter), []))
            except csv.Error:
                cells = (text,)
            detail = f"{len(cells)} fields where the header has {len(self.columns)}"
            if line is None:  # the parser did not number it: kept, at row 0
                detail = "a record the parser could not split; its line is not known"
            self.account.unreadable.append(UnreadableRow(line or 0, detail, cells))

    def _refuse_runaway_values(self) -> None:
        """Refuse the file if a record spans more lines than a value may: a stray quote opens
        a value that runs on over the rows after it, which are then read as its text, not
        as rows, and the count of rows read still balances. The first such record is named
        by its lines (read or skipped, whichever comes first in the file)."""
        limit = self._max_value_lines
        found: list[tuple[int, int]] = []  # (first line, lines spanned)
        if self._multiline:
            ordinals = np.concatenate([o for o, _ in self._multiline])
            spans = np.concatenate([e for _, e in self._multiline]) + 1
            over = np.flatnonzero(spans > limit)
            if len(over):
                first = int(self.source_rows(ordinals[over[:1]])[0])
                found.append((first, int(spans[over[0]])))
        for line, span in zip(self._skipped_positions, self._skipped_spans, strict=True):
            if span > limit:
                found.append((int(line) + self._header_index + 2, int(span)))
                break
        if not found:
            return
        first, span = min(found)
        # A value left open to the end of the file holds the file's last line break too.
        span = min(span, _line_count(self.path) - first + 1)
        raise InputError(
            self.path,
            f"a quoted value starting on this line runs over {span:,} lines, to line "
            f'{first + span - 1:,}: most likely a stray quote (") that turned the rows after '
            "it into the text of one value. Fix the file; if a value really spans more than "
            f"{limit} lines, set source.max_value_lines in the mapping",
            row=first,
        )

    def _skipped_lines(self, first_data_line: int, spans: list[int]) -> list[int | None]:
        """The first line of each skipped record (spanning `spans` lines): its place among
        the data records, moved down by the extra lines of the records before it, emitted or
        skipped."""
        spanning, extra = self._emitted_extra_lines()
        found: list[int | None] = []
        skipped_extra = 0  # extra lines of the skipped records so far
        for index, (number, span) in enumerate(zip(self._unreadable_number, spans, strict=True)):
            if number is None:
                found.append(None)
                continue
            record = number - first_data_line  # among the data records, from 0
            emitted_before = record - index
            emitted_extra = int(extra[np.searchsorted(spanning, emitted_before, side="left")])
            found.append(first_data_line + record + emitted_extra + skipped_extra)
            skipped_extra += span - 1
        return found

    def _emitted_extra_lines(self) -> tuple[np.ndarray, np.ndarray]:
        """The ordinals of the emitted records that span lines, and the running total of
        their extra lines (extra[k]: those of the first k)."""
        if not self._multiline:
            return np.empty(0, np.int64), np.zeros(1, np.int64)
        spanning = np.concatenate([o for o, _ in self._multiline])
        extra = np.concatenate([[0], np.cumsum(np.concatenate([e for _, e in self._multiline]))])
        return spanning, extra

    def source_rows(self, ordinals: np.ndarray) -> np.ndarray:
        """The file line of each emitted record (its first line, if it spans several),
        stepping over the lines of earlier records that span lines and the lines the parser
        skipped."""
        lines = np.asarray(ordinals, dtype=np.int64)
        if self._multiline:
            spanning, extra = self._emitted_extra_lines()
            lines = lines + extra[np.searchsorted(spanning, lines, side="left")]
        # A skipped record stands before an emitted one when it starts before it, counted in
        # the lines of emitted records only; each moves it down by the lines it spans.
        spans = np.concatenate([[0], np.cumsum(self._skipped_spans)])
        before = np.searchsorted(self._skipped_positions - spans[:-1], lines, side="right")
        return lines + spans[before] + self._header_index + 2
