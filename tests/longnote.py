"""Long notes made of real speech, for the memory tests and `python -m bench --memory`.

Clips are laid end to end with pauses between them, round and round until the
note is as long as asked, and written as 16 kHz Ogg/Opus (180 minutes at
16 kbit/s is about 22 MB), a block at a time: the note is never in memory whole.
One clip can be placed to start at a given time, to straddle a point of interest.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PAUSE_S = 1.5
BITRATE = 16000


@dataclass(frozen=True)
class Placed:
    name: str
    start: float
    end: float


def build(path: Path, seconds: float, clips: list[Path], *, marker: Path | None = None,
          marker_at: float | None = None, opening: Path | None = None,
          closing: Path | None = None, pause_s: float = PAUSE_S) -> list[Placed]:
    """Write a note of about `seconds` to `path`; return where each clip went.

    With `marker`, that clip starts at `marker_at` seconds (the clips before it
    are followed by silence up to there). `opening` and `closing` are said once,
    first and last."""
    from transcribe.audio import SAMPLE_RATE, decode

    def load(clip: Path) -> tuple[str, np.ndarray]:
        return clip.name, _int16(decode(clip).samples)

    filler = itertools.cycle([load(clip) for clip in clips])
    sequence = itertools.chain([load(opening)] if opening else [], filler)
    ending = load(closing) if closing else None
    stop = int(seconds * SAMPLE_RATE) - (len(ending[1]) if ending else 0)
    pause = np.zeros(int(pause_s * SAMPLE_RATE), dtype=np.int16)
    placed: list[Placed] = []
    encoder = _Opus(path)
    position = 0

    def say(name: str, samples: np.ndarray) -> None:
        nonlocal position
        placed.append(Placed(name, position / SAMPLE_RATE, (position + len(samples)) / SAMPLE_RATE))
        encoder.write(samples)
        encoder.write(pause)
        position += len(samples) + len(pause)

    try:
        while position < stop:
            name, samples = next(sequence)
            if marker is not None and marker_at is not None:
                start = int(marker_at * SAMPLE_RATE)
                if position + len(samples) + len(pause) > start:
                    encoder.write(np.zeros(max(0, start - position), dtype=np.int16))
                    position = max(position, start)
                    name, samples = load(marker)
                    marker = None
            say(name, samples)
        if ending:
            say(*ending)
    finally:
        encoder.close()
    return placed


class _Opus:
    """16 kHz mono int16 blocks to Ogg/Opus at libopus's fastest setting (2.5x
    faster than its default, which took 1.4 s per minute of audio here)."""

    def __init__(self, path: Path) -> None:
        import av

        self._container = av.open(str(path), "w", format="ogg")
        self._stream = self._container.add_stream("libopus", rate=16000, layout="mono",
                                                  options={"compression_level": "0"})
        self._stream.bit_rate = BITRATE

    def write(self, block: np.ndarray) -> None:
        import av

        if block.size:
            frame = av.AudioFrame.from_ndarray(block.reshape(1, -1), format="s16",
                                               layout="mono")
            frame.sample_rate, frame.pts = 16000, None
            self._mux(frame)

    def close(self) -> None:
        self._mux(None)
        self._container.close()

    def _mux(self, frame) -> None:
        for packet in self._stream.encode(frame):
            self._container.mux(packet)


def _int16(samples: np.ndarray) -> np.ndarray:
    return (np.clip(samples, -1.0, 1.0) * 32767).astype(np.int16)
