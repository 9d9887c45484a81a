"""DICOM at the byte level: the constants, deterministic UIDs, and a template file cut into pieces.

The generator writes one file per corpus with pydicom and renders every other file from its bytes (see
``Template``), because pydicom per file would make a 100,000-file corpus take minutes instead of seconds.
"""

from __future__ import annotations

import hashlib
import io
import struct
from dataclasses import dataclass
from typing import Any

UID_ROOT = "1.2.826.0.1.3680043.8.498"  # pydicom's root; the rest of each UID is derived from the seed
MR_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_MR_STORAGE = "1.2.840.10008.5.1.4.1.1.4.1"
EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"

LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}


def make_uid(seed: int, *parts: object) -> str:
    """Deterministic UID under UID_ROOT: a 2.25-style 128-bit integer from the seed and the parts."""
    digest = hashlib.blake2b(repr((seed, *parts)).encode(), digest_size=12).digest()
    return f"{UID_ROOT}.{int.from_bytes(digest, 'big') + 1}"


# --------------------------------------------------------------------------------------------------
# Byte templates: a file written once by pydicom, cut at the elements that change per file
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Var:
    name: str
    tag: int
    vr: str


def encode_element(tag: int, vr: str, value: bytes | str) -> bytes:
    """Explicit VR little endian encoding of one element (value padded to even length)."""
    raw = value.encode("ascii") if isinstance(value, str) else value
    if len(raw) % 2:
        raw += b"\0" if vr in ("UI", "OB", "UN") else b" "
    bvr = vr.encode("ascii")
    group, elem = tag >> 16, tag & 0xFFFF
    if bvr in LONG_VRS:
        return struct.pack("<HH2s2xI", group, elem, bvr, len(raw)) + raw
    return struct.pack("<HH2sH", group, elem, bvr, len(raw)) + raw


@dataclass(frozen=True)
class Template:
    """Preamble+meta and dataset pieces; str items are variable names, bytes items are literal."""

    meta: list[bytes | str]
    body: list[bytes | str]
    vars: dict[str, Var]

    def render(self, values: dict[str, bytes | str]) -> bytes:
        meta = b"".join(p if isinstance(p, bytes) else self._enc(p, values) for p in self.meta)
        body = b"".join(p if isinstance(p, bytes) else self._enc(p, values) for p in self.body)
        group_length = encode_element(0x00020000, "UL", struct.pack("<I", len(meta)))
        return b"\0" * 128 + b"DICM" + group_length + meta + body

    def _enc(self, name: str, values: dict[str, bytes | str]) -> bytes:
        v = self.vars[name]
        return encode_element(v.tag, v.vr, values[name])


def cut_template(data: bytes, placeholders: dict[str, tuple[Var, bytes | str]]) -> Template:
    """Split pydicom output ``data`` at each placeholder element (each must occur exactly once).

    Works because every container holding a variable element has undefined length (and the file meta
    group length is recomputed on render).
    """
    assert data[128:132] == b"DICM"
    gl_tag, gl_vr, gl_len = struct.unpack_from("<I2sH", data, 132)
    assert gl_tag == 0x00000002 and gl_vr == b"UL" and gl_len == 4, "expected a file meta group length"
    meta_len = struct.unpack_from("<I", data, 140)[0]
    meta_start, body_start = 144, 144 + meta_len
    cuts: list[tuple[int, int, str]] = []
    for key, (var, value) in placeholders.items():
        enc = encode_element(var.tag, var.vr, value)
        pos = data.find(enc)
        if pos < 0 or data.find(enc, pos + 1) >= 0:
            raise RuntimeError(f"placeholder for {key} not found exactly once")
        cuts.append((pos, pos + len(enc), key))
    cuts.sort()
    meta: list[bytes | str] = []
    body: list[bytes | str] = []
    prev = meta_start
    for start, end, key in cuts:
        if start < prev:
            raise RuntimeError("overlapping placeholders")
        target = meta if start < body_start else body
        if prev < body_start <= start:  # crossing from meta into the body
            meta.append(data[prev:body_start])
            prev = body_start
        target.append(data[prev:start])
        target.append(key)
        prev = end
    if prev < body_start:
        meta.append(data[prev:body_start])
        prev = body_start
    body.append(data[prev:])
    return Template(meta=[p for p in meta if p != b""], body=[p for p in body if p != b""],
                    vars={k: v for k, (v, _) in placeholders.items()})


def write_dataset_bytes(ds: Any) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def set_undefined_length(seq_elem: Any) -> None:
    """Mark a sequence element and all its items (recursively) as undefined length."""
    seq_elem.is_undefined_length = True
    for item in seq_elem.value:
        item.is_undefined_length_sequence_item = True
        for sub in item:
            if sub.VR == "SQ":
                set_undefined_length(sub)
