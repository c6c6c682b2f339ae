"""Where the bundled Silero VAD hears speech in a stretch of audio."""

from __future__ import annotations

from dataclasses import dataclass

from .audio import SAMPLE_RATE

# A segment further than this from any VAD speech is taken for a hallucination.
SPEECH_MARGIN_S = 0.5


@dataclass(frozen=True)
class Speech:
    """Where the VAD heard speech, in seconds."""

    spans: list[tuple[float, float]]

    @property
    def total(self) -> float:
        return sum(end - start for start, end in self.spans)

    def within(self, start: float, end: float) -> float:
        """Seconds of speech between `start` and `end`."""
        return sum(max(0.0, min(end, s_end) - max(start, s_start))
                   for s_start, s_end in self.spans)

    def near(self, start: float, end: float, margin: float = SPEECH_MARGIN_S) -> bool:
        return any(start < s_end + margin and end > s_start - margin
                   for s_start, s_end in self.spans)

    def fitted(self, start: float, end: float,
               margin: float = SPEECH_MARGIN_S) -> tuple[float, float]:
        """`start`-`end` without the silence at either end that is longer than
        `margin`: from the first speech heard in it to the last."""
        heard = [(s_start, s_end) for s_start, s_end in self.spans
                 if s_start < end and s_end > start]
        if not heard:
            return start, end
        first, last = heard[0][0], heard[-1][1]
        return (first if first - start > margin else start,
                last if end - last > margin else end)

    def shifted(self, offset: float, until: float | None = None) -> Speech:
        """The spans moved by `offset` seconds, those past `until` (before moving) cut off."""
        spans = [(start, end if until is None else min(end, until))
                 for start, end in self.spans if until is None or start < until]
        return Speech([(start + offset, end + offset) for start, end in spans])


def detect_speech(samples) -> Speech:
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    stamps = get_speech_timestamps(samples, VadOptions(min_silence_duration_ms=500,
                                                       speech_pad_ms=200))
    return Speech([(t["start"] / SAMPLE_RATE, t["end"] / SAMPLE_RATE) for t in stamps])
