"""Inflating a deflated dataset (Deflated Explicit VR Little Endian), never past what a header needs.

Deflate packs a run of zeros about a thousand to one, so a 1 MB file can hold a dataset that
inflates to 1 GiB: inflating it whole (as pydicom does, and as the fast path once did) costs
gigabytes of memory and seconds per file. Every reader of a deflated file (the fast path's window,
the pydicom fallback, the content check) inflates through `Inflater`, on demand and never past
`MAX_INFLATED_HEADER_BYTES`; a header that does not end within it raises `HeaderTooLarge`.
"""

from __future__ import annotations

import os
import zlib

MIB = 1 << 20
#: The most of a deflated dataset any reader inflates: the one cap, for every reader.
#: The survey needs the elements before the pixel data, and only as far as the last tag it reads.
#: Those are kilobytes in most files; the largest known are enhanced multi-frame headers, whose
#: per-frame functional groups take a few kilobytes a frame (the tests' 5,000-frame MR holds 3 MB
#: of them), so tens of thousands of frames stay well within 64 MiB. Beyond it a header is not
#: plausible, and the cap keeps a worker's peak near 64 MiB above its baseline, whatever the file.
MAX_INFLATED_HEADER_BYTES = 64 * MIB
#: Compressed bytes read from the file at a time: never the whole rest of the file.
_INPUT_STEP = 64 * 1024
#: Inflated bytes asked of zlib per call: bounds the transient copy, and what a damaged stream loses
#: before the damage (zlib drops the output of the call that fails).
_OUTPUT_STEP = 64 * 1024
#: The least inflated at once: a typical header in one step.
_FIRST_STEP = 64 * 1024


class HeaderTooLarge(Exception):
    """The dataset goes on past the inflation cap and the header has not ended (no header values in it)."""

    def __init__(self) -> None:
        super().__init__(f"deflated dataset: the header does not end within its first "
                         f"{MAX_INFLATED_HEADER_BYTES // MIB} MiB inflated (the limit)")


class Inflater:
    """The raw deflate stream at `offset` of a file, inflated into `buffer` as far as asked, up to the cap.

    `buffer` starts with `head` (the fast path keeps the preamble and meta there, so that file
    offsets address it directly); the cap counts only what is inflated after it. The buffer is
    grown in place, so readers may hold on to it.
    """

    def __init__(self, fd: int, offset: int, end: int, head: bytes = b"") -> None:
        self.buffer = bytearray(head)
        self._head = len(head)
        self._fd, self._next_in, self._end = fd, offset, end
        self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)
        self._pending = b""  # compressed bytes read but not yet inflated
        self.ended = False  # the stream's end marker was reached
        self.finished = False  # nothing more will come: ended, the compressed bytes ran out (a cut file), or damage
        self._damage: str | None = None  # zlib's complaint, raised only to a reader that needs bytes past it

    @property
    def inflated(self) -> int:
        return len(self.buffer) - self._head

    def extend_to(self, length: int) -> None:
        """Inflate until `buffer` holds `length` bytes, or the stream ends first.

        Raises HeaderTooLarge when that needs more than the cap and the stream has more; zlib.error
        when the stream is damaged before `length` (damage further on is no concern of a header read).
        """
        if length <= len(self.buffer):
            return
        if self.finished:
            if self._damage is not None:
                raise zlib.error(self._damage)
            return
        # Doubling what is held keeps growth linear; one byte past the cap proves the stream goes past it.
        cap_end = self._head + MAX_INFLATED_HEADER_BYTES + 1
        target = min(max(length, self._head + 2 * self.inflated, self._head + _FIRST_STEP), cap_end)
        while len(self.buffer) < target and not self.finished:
            if not self._pending and self._next_in < self._end:
                self._pending = os.pread(self._fd, min(_INPUT_STEP, self._end - self._next_in), self._next_in)
                # A file that shrank since its size was taken ends where its bytes do.
                self._next_in = self._next_in + len(self._pending) if self._pending else self._end
            # With no input left zlib may still hold output (a match cut short by the last step's limit).
            try:
                out = self._inflate.decompress(self._pending, min(target - len(self.buffer), _OUTPUT_STEP))
            except zlib.error as exc:
                self._damage, self.finished = str(exc), True
                break
            self._pending = self._inflate.unconsumed_tail
            self.buffer += out
            if self._inflate.eof:
                self.ended = self.finished = True
            elif not out and not self._pending and self._next_in >= self._end:
                self.finished = True  # the file ends before the stream does: it was cut
        if self.inflated > MAX_INFLATED_HEADER_BYTES:
            raise HeaderTooLarge
        if self._damage is not None and length > len(self.buffer):
            raise zlib.error(self._damage)
