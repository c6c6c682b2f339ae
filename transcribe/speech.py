"""Where the bundled Silero VAD hears speech in a stretch of audio."""

from __future__ import annotations

import contextlib
import functools
import threading
from dataclasses import dataclass, field

import numpy as np

from .audio import SAMPLE_RATE

# A segment further than this from any VAD speech is taken for a hallucination.
SPEECH_MARGIN_S = 0.5
# Silero hears this many of its 32 ms windows at a time (9.6 s). faster-whisper's
# own runs take up to 10,000 (320 s), and hold about 0.4 MB for every second of
# them: 45 MB for a two-minute block, 11 MB this way.
VAD_RUN_WINDOWS = 300
# Where Silero is this sure, but not as sure as its 0.5 for speech, a word or two
# may have been said quietly. "ask not" (jfk), said alone after a pause of 2.5-6 s,
# peaks at 0.47-0.57; room noise, and white noise at up to 0.05, stay under 0.15.
FAINT_THRESHOLD = 0.3
# Silero grows sure of faint speech late: padded 0.2 s, as the spans are, "ask
# not" lost its first sound and came back as "It's not!".
FAINT_PAD_MS = 400
# A faint start is kept before a span of the VAD's shorter than this: a word or
# two ("not" was heard as a span of 0.7 s), not a sentence.
FAINT_LEAD_BEFORE_S = 1.5


@dataclass(frozen=True)
class Speech:
    """Where the VAD heard speech, in seconds; and, in `faint`, where it was
    unsure (FAINT_THRESHOLD or more, away from any span or leading into one)."""

    spans: list[tuple[float, float]]
    faint: list[tuple[float, float]] = field(default_factory=list)

    @property
    def total(self) -> float:
        return sum(end - start for start, end in self.spans)

    def within(self, start: float, end: float) -> float:
        """Seconds of speech between `start` and `end`."""
        return sum(max(0.0, min(end, s_end) - max(start, s_start))
                   for s_start, s_end in self.spans)

    def near(self, start: float, end: float, margin: float = SPEECH_MARGIN_S) -> bool:
        return overlaps(self.spans, start, end, margin)

    def near_faint(self, start: float, end: float, margin: float = SPEECH_MARGIN_S) -> bool:
        return overlaps(self.faint, start, end, margin)

    def fitted(self, start: float, end: float,
               margin: float = SPEECH_MARGIN_S) -> tuple[float, float]:
        """`start`-`end` without the silence at either end that is longer than
        `margin`: from the first speech heard in it, faintly too, to the last.
        (Clear speech only, "ask not" said after a pause, its "ask" faint, was
        timed from "not": "ask" was squeezed into its first 24 ms.)"""
        heard = sorted((s_start, s_end) for s_start, s_end in self.spans + self.faint
                       if s_start < end and s_end > start)
        if not heard:
            return start, end
        first, last = heard[0][0], max(s_end for _, s_end in heard)
        return (first if first - start > margin else start,
                last if end - last > margin else end)

    def shifted(self, offset: float, until: float | None = None) -> Speech:
        """The spans moved by `offset` seconds, those past `until` (before moving) cut off."""
        def moved(spans):
            kept = [(start, end if until is None else min(end, until))
                    for start, end in spans if until is None or start < until]
            return [(start + offset, end + offset) for start, end in kept]

        return Speech(moved(self.spans), moved(self.faint))


def overlaps(spans: list[tuple[float, float]], start: float, end: float,
             margin: float = 0.0) -> bool:
    """Whether any of `spans` overlaps `start`-`end`, or comes within `margin` of it."""
    return any(start < s_end + margin and end > s_start - margin for s_start, s_end in spans)


def detect_speech(samples) -> Speech:
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    model = _run_vad_in_short_stretches()
    options = dict(min_silence_duration_ms=500, speech_pad_ms=200)
    with model.lock:
        stamps = get_speech_timestamps(samples, VadOptions(**options))
        with model.replaying():  # the same probabilities, read with a lower threshold
            faint = get_speech_timestamps(samples, VadOptions(
                threshold=FAINT_THRESHOLD, **{**options, "speech_pad_ms": FAINT_PAD_MS}))
    spans = [(t["start"] / SAMPLE_RATE, t["end"] / SAMPLE_RATE) for t in stamps]
    faint = [(t["start"] / SAMPLE_RATE, t["end"] / SAMPLE_RATE) for t in faint]
    return Speech(spans, _outside(faint, spans))


def _outside(faint: list[tuple[float, float]], spans: list[tuple[float, float]]
             ) -> list[tuple[float, float]]:
    """The faint spans that overlap no span, and of those that lead into a short
    span, the part before it: Silero grows sure of a quiet phrase late ("ask
    not" said a second time, 4 s after a sentence, was heard as speech from
    "not" on, "ask" only faintly, and came back as "not"). Before a longer span
    the faint start is left out: kept there too, it moved where the sentences
    of a lecture of real clips were decoded from, and cost 1.9 points of WER."""
    kept = []
    for start, end in faint:
        overlapped = [(s_start, s_end) for s_start, s_end in spans
                      if start < s_end and end > s_start]
        if not overlapped:
            kept.append((start, end))
        elif start < overlapped[0][0] and overlapped[0][1] - overlapped[0][0] < FAINT_LEAD_BEFORE_S:
            kept.append((start, overlapped[0][0]))
    return kept


class _ShortRuns:
    """faster-whisper's Silero model, run VAD_RUN_WINDOWS windows at a time: the
    same probabilities (each run starts from the state and the context the last
    one left), in a fraction of the memory."""

    def __init__(self, model) -> None:
        self.session = model.session
        self.lock = threading.Lock()
        self._last: np.ndarray | None = None
        self._replay = False

    @contextlib.contextmanager
    def replaying(self):
        """Within it, a call gives the probabilities of the call before, unrun."""
        self._replay = True
        try:
            yield
        finally:
            self._replay = False

    def __call__(self, audio: np.ndarray, num_samples: int = 512,
                 context_size_samples: int = 64) -> np.ndarray:
        if self._replay and self._last is not None:
            return self._last
        windows = audio.reshape(-1, num_samples)
        # As faster-whisper does: the last window's tail is zeroed (its own
        # copy of the audio, padded), and the first window's context is silence.
        windows[-1, -context_size_samples:] = 0
        h = np.zeros((1, 1, 128), dtype=np.float32)
        c = np.zeros((1, 1, 128), dtype=np.float32)
        before = np.zeros((1, context_size_samples), dtype=np.float32)
        out = []
        for start in range(0, len(windows), VAD_RUN_WINDOWS):
            run = windows[start:start + VAD_RUN_WINDOWS]
            context = np.concatenate([before, run[:-1, -context_size_samples:]])
            probabilities, h, c = self.session.run(
                None, {"input": np.concatenate([context, run], axis=1), "h": h, "c": c})
            out.append(probabilities)
            before = run[-1:, -context_size_samples:]
        self._last = np.concatenate(out)
        return self._last


@functools.cache
def _run_vad_in_short_stretches() -> _ShortRuns:
    """faster-whisper's get_speech_timestamps() takes its model from
    get_vad_model(); from here on, that is the model in short runs."""
    from faster_whisper import vad

    model = _ShortRuns(vad.get_vad_model())
    vad.get_vad_model = lambda: model
    return model
