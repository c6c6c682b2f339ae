"""A long note in blocks of a few minutes, cut only where `pieces.plan` cuts.

The engine never holds a whole long note: the audio arrives in chunks as it is
decoded (`audio.AudioStream`), and is gathered into blocks of `BLOCK_S`. Each
block is VAD-checked and planned on its own (`pieces.plan`); its pieces up to
the last cut are handed on, and the audio after that cut, which `plan` would
cut again later with more audio to go on, is carried into the next block. So
every cut falls at a pause that `plan` chose, and a note no longer than one
block is one block: it is read, cut and decoded exactly as it was whole.

Two minutes was chosen for memory, when the Silero VAD over a block took about
0.4 MB per second of it (50 MB for two minutes, 124 MB for five, measured on a
2-core EPYC; it now runs 9.6 s at a time, `speech.VAD_RUN_WINDOWS`), and a 60 s
note's whole feature extraction took 56 MB.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np

from .audio import SAMPLE_RATE
from .pieces import WINDOW_S, Piece, cuts, with_speech
from .speech import Speech, detect_speech

BLOCK_S = 120.0


@dataclass(frozen=True)
class Block:
    """A stretch of the note and the pieces to decode in it."""

    samples: np.ndarray  # up to the block's last cut
    offset: float  # where it starts in the note, in seconds
    speech: Speech  # where the VAD heard speech in it, on the note's clock
    pieces: list[Piece]  # on the block's clock (add `offset` for the note's)
    last: bool

    @property
    def end(self) -> float:
        return self.offset + len(self.samples) / SAMPLE_RATE


def blocks(chunks: Iterable[np.ndarray], block_s: float = BLOCK_S) -> Iterator[Block]:
    """The note's blocks, in order, from its audio in chunks of any size."""
    if block_s <= WINDOW_S:
        raise ValueError(f"a block must be longer than a window ({WINDOW_S} s)")
    size = int(block_s * SAMPLE_RATE)
    source = iter(chunks)
    ahead = next(source, None)
    carry = np.zeros(0, dtype=np.float32)
    offset = 0
    while True:
        samples, ahead = _filled(size, carry, ahead, source)
        del carry
        last = ahead is None
        speech = detect_speech(samples)
        edges = cuts(samples, speech.spans)
        if not last:
            edges = edges[:-1]  # the audio after the last cut waits for the next block
        end = len(samples) if last else round(edges[-1][1] * SAMPLE_RATE)
        start_s = offset / SAMPLE_RATE
        yield Block(samples[:end], start_s,
                    speech.shifted(start_s, until=None if last else end / SAMPLE_RATE),
                    with_speech(edges, speech.spans), last)
        if last:
            return
        carry = samples[end:].copy()
        del samples, speech, edges  # the next block's buffer is made after this one's is freed
        offset += end


def _filled(size: int, carry: np.ndarray, ahead: np.ndarray | None,
            source: Iterator[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
    """`carry` and then chunks, up to `size` samples, copied into one buffer (not
    gathered and joined, which held the block twice); and what is left of the
    chunk at hand, None at the note's end."""
    buffer = np.empty(max(size, len(carry)), dtype=np.float32)
    held = len(carry)
    buffer[:held] = carry
    while ahead is not None and held < size:
        take = min(len(ahead), size - held)
        buffer[held:held + take] = ahead[:take]
        held += take
        ahead = ahead[take:] if take < len(ahead) else next(source, None)
    return buffer[:held], ahead
