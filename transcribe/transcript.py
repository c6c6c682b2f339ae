"""The result every way in passes around: plain dataclasses, like faster-whisper's."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Word:
    start: float
    end: float
    word: str
    probability: float


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0
    words: tuple[Word, ...] | None = None
    model_text: str | None = None  # the model's text of a segment a person corrected


@dataclass
class Transcript:
    """What a voice note said, and what made the text."""

    file: str
    text: str
    language: str | None
    duration: float
    segments: list[Segment]
    engine: str  # "local" or "cloud"
    model: str
    no_speech: bool = False
    language_probability: float | None = None
    language_unsure: bool = False  # detected with a probability below one half
    task: str = "transcribe"
    low_confidence: bool = False
    looped: bool = False  # the model repeated itself; the repeats were cut out (see notes)
    provider: str | None = None
    cloud_reason: str | None = None
    cloud_pending: bool = False
    notes: list[str] = field(default_factory=list)
    truncated: bool = False  # the file stops before its declared end: text as far as it goes
    damaged: bool = False  # corrupt stretches of the file were skipped
    corrected: bool = False  # a person corrected segments (`corrections`)

    @property
    def mean_logprob(self) -> float | None:
        return mean_logprob(self.segments)

    def to_dict(self, *, words: bool = False) -> dict:
        """Plain Python values only, ready for `json.dumps`.

        The engine's numbers can be NumPy scalars (faster-whisper's word
        timestamps come as numpy.float64, and a comparison of them gives a
        numpy.bool, which `json` refuses), so every one is turned back into
        Python's own type here, the one place every writer goes through."""
        data = _plain(asdict(self))
        data["duration"] = round(data["duration"], 3)
        for seg in data["segments"]:
            seg["start"] = round(seg["start"], 3)
            seg["end"] = round(seg["end"], 3)
            seg["avg_logprob"] = round(seg["avg_logprob"], 4)
            seg["no_speech_prob"] = round(seg["no_speech_prob"], 4)
            if not words or seg["words"] is None:
                seg.pop("words")
            if seg["model_text"] is None:  # only a corrected segment has the model's text
                seg.pop("model_text")
        return data


def _plain(value):
    """`value` with NumPy scalars (anything with `.item()`) made Python numbers and bools."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if type(value) in (str, int, float, bool, type(None)):
        return value
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def mean_logprob(segments) -> float | None:
    """Duration-weighted mean of segments' average log-probabilities (ours or
    faster-whisper's: anything with start, end and avg_logprob); None for none."""
    weights = [max(s.end - s.start, 0.01) for s in segments]
    if not weights:
        return None
    return sum(s.avg_logprob * w for s, w in zip(segments, weights)) / sum(weights)


def join_segments(segments: list[Segment]) -> str:
    return " ".join(s.text.strip() for s in segments if s.text.strip())


def transcript_from_dict(data: dict) -> Transcript:
    """The inverse of `Transcript.to_dict`."""
    segments = [Segment(s["start"], s["end"], s["text"], s.get("avg_logprob", 0.0),
                        s.get("no_speech_prob", 0.0),
                        tuple(Word(**w) for w in s["words"]) if s.get("words") else None,
                        s.get("model_text"))
                for s in data.get("segments", [])]
    fields = {k: v for k, v in data.items() if k != "segments"}
    return Transcript(segments=segments, **fields)
