"""Damaged copies of the sample notes, made the ways real files get damaged.

Seeded, so a failing variant can be made again by name. Used by the fuzz test.
"""

from __future__ import annotations

import random
import struct
from pathlib import Path


def _flip_bits(data: bytearray, rng: random.Random, lo: int, hi: int, count: int) -> None:
    hi = max(lo + 1, min(hi, len(data)))
    for _ in range(count):
        i = rng.randrange(lo, hi)
        data[i] ^= 1 << rng.randrange(8)


def truncated(data: bytes, rng: random.Random) -> bytes:
    return data[:rng.randrange(1, len(data))]


def flip_header(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    _flip_bits(out, rng, 0, 512, rng.randint(1, 4))
    return bytes(out)


def flip_body(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    _flip_bits(out, rng, len(data) // 4, len(data), rng.randint(1, 40))
    return bytes(out)


def zeroed_stretch(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    start = rng.randrange(len(data) // 8, len(data))
    length = rng.randint(64, max(65, len(data) // 5))
    out[start:start + length] = bytes(min(length, len(data) - start))
    return bytes(out)


def bogus_granules(data: bytes, rng: random.Random) -> bytes:
    """Ogg pages whose granule positions (bytes 6-13 of each page header) lie."""
    out = bytearray(data)
    pages = [i for i in range(len(out) - 14) if out[i:i + 4] == b"OggS"]
    for i in rng.sample(pages, k=max(1, len(pages) // 3)):
        value = rng.choice([0, 2**63 - 1, 2**64 - 1, rng.randrange(2**40)])
        out[i + 6:i + 14] = struct.pack("<Q", value)
    return bytes(out)


def broken_moov(data: bytes, rng: random.Random) -> bytes:
    """An MP4 whose moov atom lies about its size or has garbage inside."""
    out = bytearray(data)
    at = out.find(b"moov")
    if at < 4:
        return flip_header(data, rng)
    if rng.random() < 0.5:
        out[at - 4:at] = struct.pack(">I", rng.choice([0, 1, 9, 2**31, rng.randrange(2**32)]))
    else:
        _flip_bits(out, rng, at, at + 2000, rng.randint(5, 60))
    return bytes(out)


def spliced(data: bytes, rng: random.Random) -> bytes:
    """A stretch of the file repeated elsewhere, as a bad copy does."""
    a, b = sorted(rng.sample(range(len(data)), 2))
    at = rng.randrange(len(data))
    return data[:at] + data[a:b] + data[at:]


DAMAGES = {
    "trunc": truncated,
    "fliphead": flip_header,
    "flipbody": flip_body,
    "zeros": zeroed_stretch,
    "splice": spliced,
}
OGG_DAMAGES = {"granule": bogus_granules}
MP4_DAMAGES = {"moov": broken_moov}


def damaged_variants(samples: list[Path], seed: int, per_kind: int,
                     kinds: int | None = None) -> dict[str, bytes]:
    """{file name: bytes} for `per_kind` variants of each damage kind of each sample
    (of `kinds` kinds drawn at random per sample, when given)."""
    rng = random.Random(seed)
    variants: dict[str, bytes] = {}
    for sample in samples:
        data = sample.read_bytes()
        found = dict(DAMAGES)
        if data[:4] == b"OggS":
            found.update(OGG_DAMAGES)
        if data[4:8] == b"ftyp":
            found.update(MP4_DAMAGES)
        stem = sample.stem.replace(" ", "_")
        chosen = sorted(rng.sample(sorted(found), kinds)) if kinds else sorted(found)
        for kind in chosen:
            damage = found[kind]
            for n in range(per_kind):
                variants[f"{stem}.{kind}{n}{sample.suffix}"] = damage(data, rng)
    return variants
