"""Words while you record: the text of what has been said so far, at each pause.

The recorder hands each captured block to `LiveText.feed`, which only appends it to
a list and returns: the decoding happens in a thread of its own, so however slow it
is, capture and encoding never wait for it (the capture queue cannot overflow
because of it). That thread resamples the blocks to 16 kHz, and every `CHECK_S` of
new audio asks the VAD (speech.py) where the speech is in the audio not yet decoded.
When the speech is followed by a pause (the VAD's own 0.5 s of silence), the audio
up to the pause is decoded by the local engine and its text handed to `on_text`;
what follows the pause waits for the next one. Someone who talks without a pause
for `MAX_PIECE_S` gets their piece decoded then, cut at its quietest moment.

This text is a preview: the recording is transcribed whole once it stops (the
saved file's transcript, the same as `transcribe FILE` gives), so nothing said
here can make the final text worse.

Memory stays bounded however long the recording: the audio held is the piece not
decoded yet (at most `MAX_PIECE_S`), plus what arrived while a piece was being
decoded; should the decoding fall more than `MAX_BEHIND_S` behind (a slow machine),
the oldest audio is skipped for the preview (it is in the file all the same) and
the text says so with an ellipsis.
"""

from __future__ import annotations

import logging
import threading
import time
from bisect import bisect_left
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .audio import SAMPLE_RATE, Audio

log = logging.getLogger(__name__)

# How much new audio makes the VAD look again: the pause's text comes at most this
# late after the VAD could hear the pause.
CHECK_S = 0.5
# Speech without a pause this long is decoded anyway (Whisper's window is 30 s).
MAX_PIECE_S = 25.0
# Audio waiting for the decoder beyond this is skipped for the preview.
MAX_BEHIND_S = 60.0
# Silence kept before a piece's speech, as the VAD pads its spans (speech.py).
LEAD_S = 0.3
# The live engine's threads: one, so the other of two cores is left to capture,
# encoding and the UI. `python -m bench --live`, 2 busy cores (load 15), 2 min of real
# notes with pauses: the capture queue held at most 7 of its 600 blocks (6 without live
# text), nothing dropped, and each pause's text came 2.0 s (median; worst 3.1 s) after
# the speech ended.
LIVE_THREADS = 1

TextCallback = Callable[[str], None]


@dataclass
class LiveStats:
    """What the benchmark reads: how late each piece's text came after its pause."""

    lags: list[float] = field(default_factory=list)  # seconds, pause heard -> text given
    skipped_s: float = 0.0  # audio the preview skipped because the decoder was behind


class LiveText:
    """Decodes a recording as it grows, piece by piece at its pauses."""

    def __init__(self, settings, on_text: TextCallback, engine=None) -> None:
        self.settings = settings.with_overrides(cpu_threads=LIVE_THREADS)
        self.on_text = on_text
        self.stats = LiveStats()
        self._engine = engine
        self._rate: int | None = None
        self._resampler = None
        self._inbox: list[np.ndarray] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pending = np.zeros(0, dtype=np.float32)  # 16 kHz, not decoded yet
        self._start = 0  # the pending audio's first sample, counted from the recording's start
        self._fed: deque[tuple[int, float]] = deque()  # (samples so far, when), for the lags
        self._language: str | None = settings.language
        self.texts: list[str] = []

    # -- the recorder's side ----------------------------------------------------------------

    def start(self, rate: int) -> None:
        """Capture runs at `rate` Hz from now on."""
        self._rate = rate
        self._thread = threading.Thread(target=self._run, name="live-text", daemon=True)
        self._thread.start()

    def feed(self, block: np.ndarray) -> None:
        """A captured block (int16 at the capture rate); never waits for the decoder."""
        with self._lock:
            self._inbox.append(block)
        self._wake.set()

    def close(self) -> None:
        """Stop: the piece being decoded is finished, the rest is left to the final text."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()

    # -- the decoder's thread ---------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._load()
            checked = 0
            while not self._stop.is_set():
                self._wake.wait(CHECK_S)
                self._wake.clear()
                self._take()
                if len(self._pending) - checked >= CHECK_S * SAMPLE_RATE:
                    self._decode_at_pause()
                    checked = len(self._pending)
                checked = min(checked, len(self._pending))
        except Exception as e:  # noqa: BLE001 - the preview's trouble is never the recording's
            log.warning("no live text: %s: %s", type(e).__name__, e)

    def _load(self) -> None:
        import av

        from .engine import LocalEngine

        self._resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        if self._engine is None:
            self._engine = LocalEngine(self.settings)
        self._engine.load()

    def _take(self) -> None:
        """Move what the recorder fed into the pending audio, at 16 kHz."""
        import av

        with self._lock:
            blocks, self._inbox = self._inbox, []
        for block in blocks:
            frame = av.AudioFrame.from_ndarray(block.reshape(1, -1).astype(np.int16),
                                               format="s16", layout="mono")
            frame.sample_rate, frame.pts = self._rate, None
            out = [f.to_ndarray().reshape(-1) for f in self._resampler.resample(frame)]
            if out:
                self._pending = np.concatenate([self._pending, *out])
        if blocks:
            self._fed.append((self._start + len(self._pending), time.monotonic()))
        behind = len(self._pending) - int(MAX_BEHIND_S * SAMPLE_RATE)
        if behind > 0:
            self._drop(behind)
            self.stats.skipped_s += behind / SAMPLE_RATE
            self._say("…")

    def _decode_at_pause(self) -> None:
        """Decode the pending audio up to its last pause, if its speech has one."""
        from .speech import detect_speech

        spans = detect_speech(self._pending).spans
        length = len(self._pending) / SAMPLE_RATE
        if not spans:
            self._drop(max(0, len(self._pending) - int(LEAD_S * SAMPLE_RATE)))
            return
        # The VAD ends a span only after 0.5 s of silence: a span that ends before
        # the audio does is followed by a pause.
        paused = [end for _, end in spans if end < length - 0.05]
        if paused:
            self._decode(int(paused[-1] * SAMPLE_RATE))
        elif length >= MAX_PIECE_S:
            self._decode(_quietest(self._pending, len(self._pending) // 2))

    def _decode(self, cut: int) -> None:
        piece, heard_at = self._pending[:cut], self._when_fed(self._start + cut)
        transcript = self._engine.transcribe(Audio(piece, SAMPLE_RATE, "pcm"), "live")
        self._drop(cut)
        if heard_at is not None:
            self.stats.lags.append(time.monotonic() - heard_at)
        text = "" if transcript.no_speech else transcript.text.strip()
        if text:
            self._keep_language(transcript)
            self._say(text)

    def _keep_language(self, transcript) -> None:
        """The first language heard surely stays: a short piece alone can be misheard."""
        if self._language is None and (transcript.language_probability or 0) >= 0.8:
            self._language = transcript.language
            self._engine.settings = self._engine.settings.with_overrides(language=self._language)

    def _drop(self, count: int) -> None:
        self._pending = self._pending[count:]
        self._start += count
        while self._fed and self._fed[0][0] <= self._start:
            self._fed.popleft()

    def _when_fed(self, sample: int) -> float | None:
        """When the audio up to `sample` had been fed (the pause heard), or None."""
        index = bisect_left([n for n, _ in self._fed], sample)
        return self._fed[index][1] if index < len(self._fed) else None

    def _say(self, text: str) -> None:
        self.texts.append(text)
        try:
            self.on_text(text)
        except Exception as e:  # noqa: BLE001 - a display's trouble is not the decoder's
            log.warning("live text not shown: %s: %s", type(e).__name__, e)


def _quietest(samples: np.ndarray, after: int, window: int = SAMPLE_RATE // 10) -> int:
    """Where, after sample `after`, the quietest 0.1 s of `samples` begins."""
    tail = samples[after:]
    count = len(tail) // window
    if count == 0:
        return len(samples)
    energy = np.square(tail[:count * window].reshape(count, window)).mean(axis=1)
    return after + int(np.argmin(energy)) * window
