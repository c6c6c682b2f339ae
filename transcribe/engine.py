"""The local engine: faster-whisper on a quantized CTranslate2 model.

Silence is not speech. Plain Whisper turns seconds of silence into "You" or
"Thank you.", so the bundled Silero VAD runs first: a note with no speech in it
never reaches the model, and any segment the model places where the VAD heard
no speech is dropped. The model itself still hears the whole note, pauses
included: a note that fits Whisper's window is decoded whole, and a longer one
is cut at its longest pauses (`pieces.py`), because joining only the VAD's
speech chunks was measured to cost words and to mislead language detection on
short notes.

Whatever the path, the text is checked for loops (`quality.py`): a loop that
survives decoding the window again is cut out, and the transcript is marked
low-confidence with a note saying why. `split = false` hands the whole note to
faster-whisper's own `transcribe()` instead.
"""

from __future__ import annotations

import logging
import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Callable

from .audio import Audio, AudioStream
from .errors import ModelError
from .models import ResolvedModel, hub_cache, resolve
from .quality import (ALREADY_SAID, COMPRESSION_RATIO_MAX, already_said, compression_ratio,
                      looks_looped, remove_loops, says, says_a_sentence_twice,
                      sentence_said_twice, word_keys)
from .settings import Settings
from .speech import Speech
from .transcript import Segment, Transcript, join_segments, mean_logprob

log = logging.getLogger(__name__)

# A note needs this much speech, by the VAD's count, to be sent to the model.
MIN_SPEECH_S = 0.25
# Whisper's own rule for a silent window, applied per segment after decoding.
NO_SPEECH_PROB = 0.6
NO_SPEECH_LOGPROB = -1.0
# Below this duration-weighted mean log-probability a transcript is marked
# low-confidence (the cloud policy uses the mark).
LOW_CONFIDENCE_LOGPROB = -1.0
# Text decoded for speech the model passed over is kept only above this mean
# log-probability (Whisper's own line for a failed decode).
UNHEARD_LOGPROB_MIN = -1.0
# A piece (a whole short note too) or a stretch shorter than this is encoded padded
# to a whole window, as stock pads every window (`_encoded`). With only
# `pieces.MARGIN_S` after it, "Yes." (espeak-ng, 0.9 s) came back at temperature 0
# as "D.S. D.S. D.S. ..." (eight times), and then as whatever a sampled temperature
# drew ("D.S.", "ds.", "Yes."), run after run; padded, "Yes." at temperature 0.
# On 37 real notes of 1-3 s cut from the FLEURS dev set (`bench/shortnotes.py`, AMD
# EPYC, 2 cores): 45.6 % WER with the margin, 40.0 % padded, stock 45.3 % ("Hoy en
# día las personas, hoy en día las personas, ..." with the margin). "ask not"
# (1.7 s) came back as "is not" (mean log-probability -1.03, not kept) unpadded,
# as "ASK NOT!" (-0.79) padded.
PADDED_BELOW_S = 5.0
# Speech is taken as said by a segment when its words, placed, cover this much of
# it. DTW stretches a segment's first word back over a sentence passed over (cut
# to twice the median word, 0.7 s of 7.9 s there); said speech is mostly words.
WORDS_COVER_MIN = 0.25
# Unless only this many of its words, or fewer, are placed on it, and the speech,
# decoded on its own, says none of them: DTW stretched "The", the first word of a
# sentence said after a 2 s pause, back over "ask not" said alone before it (jfk
# between two FLEURS clips), and "ask not" was lost.
FEW_WORDS = 2
# Below this probability the detected language is reported as unsure.
LANGUAGE_UNSURE_BELOW = 0.5
# Below LANGUAGE_UNSURE_BELOW + 0.2, up to this many runners-up (each at least a
# quarter as probable as the first) are tried on the first piece.
SECOND_LANGUAGES = 2

# on_progress(done, total, segments): seconds of the note done, of `total` (the length
# it claims, while it is being read); `segments`, those that have just become final,
# in order. The engine sends all three; `pipeline.Transcriber` also takes a callback of
# the first two only.
ProgressCallback = Callable[[float, float, list[Segment]], None]

# oneDNN, inside CTranslate2, keeps the kernels it compiled for every input shape
# it has met, up to 1024. Windows cut at pauses all differ in length, so on a long
# note that cache grew by 4 MB a block, without end (10 minutes: +55 MB). Without
# it, a 4-minute note ran in the same CPU time (18-19 s on one thread, twice each).
# Set before CTranslate2 is first loaded; a value the user set is kept.
for _name in ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "DNNL_PRIMITIVE_CACHE_CAPACITY"):
    os.environ.setdefault(_name, "0")
# CTranslate2 runs on GNU OpenMP, whose idle threads spin before they sleep, and
# each thread that calls the model has a pool of its own: the CLI and the watcher
# load the model on one thread and decode on another. A cold `transcribe` of a
# 10 s note (2 cores, shared, load 11-16) took 8.8-34 s and 3.5-14.9 s of CPU so,
# and 2.9-3.1 s and 0.9-1.0 s of CPU with waiting threads asleep (warm decoding
# on one thread moved by 3 % of CPU, within its noise). Set before CTranslate2
# is first loaded; a value the user set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

_models: dict[tuple, object] = {}
_models_lock = threading.Lock()
# One WhisperModel serves every thread of the process; its calls are serialised
# (two cores gain nothing from overlap).
_decode_lock = threading.Lock()
# The length in seconds of the note each thread's engine has in hand; the hand-off
# server answers "busy" rather than queue a short note behind a long one.
_in_hand: dict[int, float] = {}


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

    def __init__(self, settings: Settings, *, download: bool = True) -> None:
        self.settings = settings
        self.download = download  # False: a hub model only from the hub cache
        self._resolved: ResolvedModel | None = None

    @property
    def resolved(self) -> ResolvedModel:
        if self._resolved is None:
            self._resolved = resolve(self.settings.model, self.settings.paths.models_dir,
                                     download=self.download)
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

    def transcribe(self, audio: Audio | AudioStream, file: str,
                   on_progress: ProgressCallback | None = None) -> Transcript:
        """The note's transcript; `audio` is read once, block by block (`blocks.py`)."""
        settings = self.settings
        with _holding(audio):
            found = self._decode_blocks(audio, file, on_progress)
        if found is None:
            log.info("%s: no speech found by the VAD", file)
            self.load()  # a missing model is still an error, not a silent success
            return self._transcript(file, audio, [], settings.language, None, no_speech=True)
        segments, language, probability = found
        notes = []
        if looks_looped(segments):
            segments, notes = remove_loops(segments)
            if any(compression_ratio(s.text) > COMPRESSION_RATIO_MAX for s in segments):
                notes.append("the text still repeats itself after the loops were cut out")
            notes = [f"low confidence: {note}" for note in notes]
            log.warning("%s: the model looped; the repeats were cut out", file)
            log.debug("%s: %s", file, "; ".join(notes))  # they quote the text: -vv only
        transcript = self._transcript(file, audio, segments, language, probability,
                                      no_speech=not join_segments(segments))
        if notes:
            transcript.low_confidence = transcript.looped = True
            transcript.notes.extend(notes)
        return transcript

    def _decode_blocks(self, audio: Audio | AudioStream, file: str,
                       on_progress: ProgressCallback | None):
        """The note block by block (`blocks.py`), each by `_decode_pieces`, or with
        `split = false` by faster-whisper's own `transcribe()` (`_decode_stock`);
        a note of up to two minutes is one block. None when no block holds
        enough speech to decode."""
        from .blocks import blocks

        decode_block = self._decode_pieces if self.settings.split else self._decode_stock
        decoding = _Decoding()
        segments: list[Segment] = []
        clocked = _clocked(on_progress, audio)
        for block in blocks(audio.chunks()):
            if block.speech.total < MIN_SPEECH_S:
                log.debug("%s: no speech in %.1f-%.1f s", file, block.offset, block.end)
            else:
                whisper = self.load()
                with _decode_lock:
                    segments += decode_block(whisper, block, decoding, file, clocked)
            if clocked is not None:
                clocked(block.end, [])
            del block  # before the next is read: two blocks are never held at once
            _give_back_memory()
        if decoding.language is None:
            return None
        return segments, decoding.language, decoding.probability

    def _decode_pieces(self, whisper, block, decoding: _Decoding, file: str,
                       on_progress: Callable[[float, list[Segment]], None] | None
                       ) -> list[Segment]:
        """One block window by window (`pieces.py`): uncut if it fits one window,
        else cut at its longest pauses, each piece prompted with the text before it
        (across blocks too). The language is found in the first block with speech.

        A piece whose text loops is decoded again padded to the whole window, as
        stock would, without a prompt; whatever still loops is left to
        `transcribe()`, which cuts it out and says so."""
        from .pieces import WindowDecoder

        settings = self.settings
        decoder = WindowDecoder(whisper, block.samples, settings, block.offset,
                                block.speech.shifted(-block.offset))
        pieces = block.pieces
        encoded = {}
        candidates = []
        first = decoding.language is None
        if first and not decoder.multilingual:
            decoding.language, decoding.probability = "en", 1.0
        elif first and settings.language is not None:
            decoding.language, decoding.probability = settings.language, 1.0  # as faster-whisper
        elif first:
            ranked = self._detect_language(decoder, pieces, encoded)
            (decoding.language, decoding.probability), candidates = (ranked[0],
                                                                     _close_runners_up(ranked))
        language = decoding.language
        segments: list[Segment] = []
        for index, piece in enumerate(pieces):
            code = encoded.pop(index) if index in encoded else _encoded(decoder, piece)
            if first and index == 0 and candidates:
                decoded, tokens, language, probability = self._likeliest_language(
                    decoder, piece, code, file, [(language, decoding.probability), *candidates])
                decoding.language, decoding.probability = language, probability
            else:
                decoded, tokens = _decoded(decoder, piece, code, language, decoding.previous,
                                           file)
            if looks_looped(decoded) or says_a_sentence_twice(decoded):
                log.info("%s: the text at %.1f-%.1f s loops; decoding it again padded to a "
                         "whole window", file, block.offset + piece.start,
                         block.offset + piece.end)
                again, again_tokens = decoder.decode(piece, decoder.encode(piece, padded=True),
                                                     language)
                if _replaces(again, decoded):
                    decoded, tokens = again, again_tokens
            if _silent_padded(decoder, piece, decoded, language, decoding.previous):
                log.info("%s: the text at %.1f-%.1f s is dropped: the model was unsure of "
                         "it, and hears silence in the window padded as stock pads it",
                         file, block.offset + piece.start, block.offset + piece.end)
                log.debug("%s: dropped: %r", file, join_segments(decoded)[:80])  # words: -vv only
                decoded = []
            else:
                decoded, tokens = self._decode_unheard(decoder, piece, block, decoded, tokens,
                                                       language, file)
                decoding.previous = tokens
            decoded = _heard(decoded, block.speech, file)
            segments.extend(decoded)
            if on_progress is not None:
                on_progress(block.offset + piece.end, decoded)
        return segments

    @staticmethod
    def _decode_unheard(decoder, piece, block, decoded: list[Segment], tokens: list[int],
                        language: str, file: str) -> tuple[list[Segment], list[int]]:
        """The piece's text with the speech the model passed over decoded on its
        own (`pieces.unheard`), after each segment that ran across a long pause
        is placed where its words are (`_placed`).

        Each stretch is decoded without a prompt. Prompted with the text before
        it, the model said that text again over speech it could not make out
        ("there were no ambulance as reported in the news" twice, on a lecture
        of real clips): 36.6 % WER there against 35.0 % without, the same on the
        dev set and on joined clips. It is decoded at temperature 0 only: where
        that text fails Whisper's checks, a sampled temperature's text that
        clears them is a lucky draw, not evidence ("So, December 20th,俺 1993,
        aval said that" kept on the lecture in one run of several). Text for a
        word or two's worth of speech, or speech the VAD heard only faintly, is
        kept only where the model, too, hears speech (`_doubt`). (`piece` is on
        the block's clock; the segments and `block.speech` on the note's.)"""
        from .pieces import CLEAR_SPEECH_S, Piece, unheard

        offset = block.offset
        on_note = Piece(offset + piece.start, offset + piece.end, piece.speech_s)
        decoded, said = _placed(decoder, decoded, block.speech, language, file)
        for gap in unheard(on_note, said, block.speech):
            latest = all(seg.end <= gap.start for seg in decoded)
            local = Piece(gap.start - offset, gap.end - offset, gap.speech_s)
            slight = gap.speech_s < CLEAR_SPEECH_S
            code = _encoded(decoder, local)
            more, more_tokens = decoder.decode(local, code, language, fallback=False)
            doubt = _doubt(more, decoded, slight)
            own = _another_language(decoder, code, language) if doubt else None
            if own is not None:
                again, again_tokens = decoder.decode(local, code, own, fallback=False)
                if _doubt(again, decoded, slight) is None:
                    log.info("%s: the speech at %.1f-%.1f s is in %s, not %s", file,
                             gap.start, gap.end, own, language)
                    more, more_tokens, doubt = again, again_tokens, None
            log.info("%s: no text for the %sspeech at %.1f-%.1f s; decoded on its own%s",
                     file, "short or faint " if slight else "", gap.start, gap.end,
                     f"; not kept: {doubt}" if doubt else "")
            log.debug("%s: decoded on its own: %r", file,  # what was said: -vv only
                      " ".join(seg.text for seg in more)[:80])
            if doubt:
                continue
            decoded = sorted(decoded + more, key=lambda seg: seg.start)
            if latest:
                tokens = tokens + more_tokens
        return decoded, tokens

    @staticmethod
    def _likeliest_language(decoder, piece, code, file: str,
                            languages: list[tuple[str, float]]) -> tuple:
        """When detection is torn between `languages` (language, probability; the
        detected one first), the first piece is decoded in each, and the text the
        model finds likelier decides (the espeak-ng German note hears Latin at 0.54
        and German at 0.21; decoded, German wins).

        Each is decoded at temperature 0 only, and the likeliest text that passes
        Whisper's checks there (`_passes`) wins. Decoded in full, with Whisper's
        fallback to sampled temperatures for a failed text, a 7 s snatch of music
        took 23 s in Khmer alone, looping at every temperature.

        When none passes, the language `_language_when_none_passes` finds is
        decoded in full over the piece padded to 30 s, the stock way: over the
        piece as encoded, a tune's text looped at every temperature, then again
        when decoded padded as a loop is (60 s for 7 s); padded, Whisper's
        fallback stops at a window it takes for silence (14 s)."""
        tried = []
        for language, probability in languages:
            decoded, tokens = decoder.decode(piece, code, language, fallback=False)
            passes, score = _passes(decoded), mean_logprob(decoded)
            score = float("-inf") if score is None else score
            log.info("%s: language unsure; %s scores %.2f%s", file, language, score,
                     "" if passes else " (fails Whisper's checks)")
            tried.append((passes, score, decoded, tokens, language, probability))
        passes, _, decoded, tokens, language, probability = max(tried, key=lambda t: t[:2])
        if not passes:
            padded = decoder.encode(piece, padded=True)
            language, probability, why = _language_when_none_passes(decoder, padded, tried)
            log.info("%s: language unsure; no text passes; %s (%s) is decoded in full, "
                     "padded as stock pads it", file, language, why)
            decoded, tokens = decoder.decode(piece, padded, language)
        return decoded, tokens, language, probability

    def _detect_language(self, decoder, pieces, encoded: dict) -> list[tuple[str, float]]:
        """The user's languages (any, if none are set), most probable first, over
        the first pieces' speech, each piece weighted by how much speech it holds."""
        from .pieces import LANGUAGE_SPEECH_S

        totals: dict[str, float] = {}
        heard = 0.0
        for index, piece in enumerate(pieces):
            encoded[index] = _encoded(decoder, piece)
            scores = _allowed(decoder.language_scores(encoded[index]), self.settings.languages)
            for code, p in scores.items():
                totals[code] = totals.get(code, 0.0) + p * piece.speech_s
            heard += piece.speech_s
            if heard >= LANGUAGE_SPEECH_S:
                break
        return sorted(((code, total / heard) for code, total in totals.items()),
                      key=lambda item: -item[1])

    def _decode_stock(self, whisper, block, decoding: _Decoding, file: str,
                      on_progress: Callable[[float, list[Segment]], None] | None
                      ) -> list[Segment]:
        """faster-whisper's own `transcribe()` on one block, in the language
        heard in the blocks before (none yet: detected here). The user's
        languages, when set, are chosen among as on the window path."""
        from .pieces import WindowDecoder, to_segment

        settings = self.settings
        language = decoding.language or settings.language
        if language is None and settings.languages and whisper.model.is_multilingual:
            decoder = WindowDecoder(whisper, block.samples, settings)
            language = self._detect_language(decoder, block.pieces, {})[0][0]
        segments_iter, info = whisper.transcribe(
            block.samples,
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
            found = _heard([to_segment(seg, block.offset)], block.speech, file)
            segments += found
            if on_progress is not None:
                on_progress(block.offset + seg.end, found)
        if decoding.language is None:
            decoding.language, decoding.probability = info.language, info.language_probability
        return segments

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
        # Said in JSON and the TUI, not as a warning line: the note itself is fine.
        transcript.language_unsure = (language_probability is not None
                                      and language_probability < LANGUAGE_UNSURE_BELOW)
        return transcript


def _load_whisper(model: ResolvedModel, location: str, device: str, compute_type: str,
                  threads: int, models_dir) -> object:
    from faster_whisper import WhisperModel

    log.info("loading model %s (%s) on %s as %s, %d threads", model.name, location,
             device, compute_type, threads)
    try:
        return WhisperModel(location, device=device, compute_type=compute_type,
                            cpu_threads=threads,
                            download_root=str(hub_cache(models_dir)) if model.source == "hub"
                            else None)
    except Exception as e:  # faster-whisper, CTranslate2 and the hub raise many kinds
        if model.source == "hub":
            from .models import hub_unavailable_message

            raise ModelError(hub_unavailable_message(model.name, type(e).__name__)) from None
        raise ModelError(f"model {model.name!r} at {location} cannot be loaded: "
                         f"{e}") from None


def _close_runners_up(ranked: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """The languages worth a decoding of their own when detection is unsure."""
    top = ranked[0][1]
    if top >= LANGUAGE_UNSURE_BELOW + 0.2:
        return []
    return [(code, p) for code, p in ranked[1:SECOND_LANGUAGES + 1] if p >= top / 4]


@dataclass
class _Decoding:
    """What carries from one block of a note to the next."""

    language: str | None = None
    probability: float | None = None
    previous: list[int] = field(default_factory=list)  # the last piece's tokens: the prompt


def longest_note_in_hand() -> float:
    """The length of the longest note another thread of this process is transcribing
    (a note whose length is unknown counts as endless); 0 when there is none."""
    me = threading.get_ident()
    return max((s for thread, s in list(_in_hand.items()) if thread != me), default=0.0)


@contextmanager
def _holding(audio: Audio | AudioStream):
    thread = threading.get_ident()
    _in_hand[thread] = audio.expected if audio.expected is not None else float("inf")
    try:
        yield
    finally:
        _in_hand.pop(thread, None)


def _clocked(on_progress: ProgressCallback | None, audio
             ) -> Callable[[float, list[Segment]], None] | None:
    """Progress at a point of the note, against the length it claims (or more, when
    it turns out longer: a file's claim is only a claim)."""
    if on_progress is None:
        return None
    furthest = 0.0

    def report(done: float, segments: list[Segment]) -> None:
        nonlocal furthest  # never backwards, by a rounding of a cut to samples either
        furthest = max(furthest, done)
        on_progress(furthest, max(audio.expected or 0.0, furthest), segments)

    return report


def _give_back_memory() -> None:
    """Hand the heap a block freed back to the system (glibc keeps it for reuse
    otherwise, and the block's arrays, freed by threads of their own, were not
    reused: RSS grew by about 10 MB per block on a 10-minute note)."""
    if _libc is not None:
        _libc.malloc_trim(0)


def _load_libc():
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim  # glibc only
        return libc
    except (OSError, AttributeError):
        return None


_libc = _load_libc()


def _replaces(again: list[Segment], decoded: list[Segment]) -> bool:
    """Whether a window's text decoded again padded (`again`) is to replace the
    text that looped or said a sentence twice (`decoded`): it does neither, and,
    where `decoded` only said a sentence twice, it still says that sentence.
    "Yes." said twice, 0.8 s after a real sentence, was decoded "Yes. Yes.", and
    again padded as the sentence alone: the repeat was the speaker's, and a text
    that drops the sentence is no evidence it was said once."""
    if looks_looped(again) or says_a_sentence_twice(again):
        return False
    return looks_looped(decoded) or says(again, sentence_said_twice(decoded))


def _allowed(scores: dict[str, float], languages: tuple[str, ...]) -> dict[str, float]:
    """Language probabilities among the user's `languages` only (all, if none
    are set), summing to 1."""
    if not languages:
        return scores
    scores = {code: p for code, p in scores.items() if code in languages}
    total = sum(scores.values()) or 1.0
    return {code: p / total for code, p in scores.items()}


def _language_when_none_passes(decoder, padded, tried: list[tuple]) -> tuple[str, float, str]:
    """The language to decode the first piece in, with Whisper's fallback, when
    no language's text passed at temperature 0 (`tried`: passes, score,
    segments, tokens, language, probability, per language), and why. `padded`
    is the piece encoded padded to 30 s.

    The one stock faster-whisper detects, over the piece padded to 30 s, when
    the model is sure of it (LANGUAGE_UNSURE_BELOW or more): a 1.8 s cut of a
    FLEURS sentence ("20th century research has shown that") heard Korean,
    Japanese and English as encoded, all three failed, and the likeliest failed
    text was Japanese, "20 20 20"; padded, the model hears English. A German cut
    went to Yiddish ("1963 6") the same way.

    Else the likeliest text that is not repetition past Whisper's compression
    line: the espeak-ng German note under noise at 10 dB is Thai (0.27) to the
    padded detection, while its German text, cut short by a loop ("Brutenmorgen,
    mass-pake-… k-k-k-k"), scored -0.72 against English's -1.20; a tune's
    "1.0.0.0.0…" scores -0.19."""
    heard, p = _allowed_best(decoder.language_scores(padded), decoder.settings.languages)
    sound = [(score, language, probability)
             for _, score, decoded, _, language, probability in tried
             if score > float("-inf")
             and compression_ratio(join_segments(decoded)) <= COMPRESSION_RATIO_MAX]
    if p >= LANGUAGE_UNSURE_BELOW or not sound:
        return heard, p, f"heard in the window padded as stock pads it, {p:.2f}"
    score, language, probability = max(sound)
    return language, probability, f"its text the likeliest, {score:.2f}"


def _allowed_best(scores: dict[str, float], languages: tuple[str, ...]) -> tuple[str, float]:
    """The most probable of the user's `languages` (of all, if none are set)."""
    return max(_allowed(scores, languages).items(), key=lambda item: item[1])


def _another_language(decoder, encoded, language: str) -> str | None:
    """The language the model hears in a stretch of speech (`encoded`) when it
    is sure of it (probability LANGUAGE_UNSURE_BELOW or more) and it is not the
    note's `language`, among the user's languages; None when the user set one
    language. A note in Portuguese, then English: decoded in Portuguese, the
    English sentence, passed over, came out unsure and was lost."""
    settings = decoder.settings
    if not decoder.multilingual or settings.language is not None:
        return None
    heard, p = _allowed_best(decoder.language_scores(encoded), settings.languages)
    return heard if heard != language and p >= LANGUAGE_UNSURE_BELOW else None


def _encoded(decoder, piece):
    """The encoder output `piece` is decoded from: over the piece and
    `pieces.MARGIN_S` after it, or, shorter than PADDED_BELOW_S, padded to the
    whole window as stock pads it."""
    return decoder.encode(piece, padded=piece.duration < PADDED_BELOW_S)


def _decoded(decoder, piece, code, language: str, previous: list[int], file: str
             ) -> tuple[list[Segment], list[int]]:
    """The piece's text the stock way when `code` is padded to the whole window
    (`_encoded`). Else its text at temperature 0 over the piece and
    `pieces.MARGIN_S`, when that passes Whisper's checks (`_passes`) or says
    nothing, and the stock way when it fails: encoded padded, with Whisper's
    fallback to sampled temperatures.

    Over the margin only, the model fails where it would not, padded, and the
    fallback then keeps whatever a sampled temperature draws, a different text
    run after run ("Yes." came back "D.S. D.S. D.S. ..." at temperature 0, then
    "D.S.", "ds." or "Yes."; a 2.9 s cut of a FLEURS sentence, "20th century
    research has shown that" twice and more). A text that passes is kept as it
    is: padded, a 2.9 s French cut looped where its text over the margin did
    not."""
    if piece.duration < PADDED_BELOW_S:
        return decoder.decode(piece, code, language, previous)
    decoded, tokens = decoder.decode(piece, code, language, previous, fallback=False)
    if not decoded or _passes(decoded):
        return decoded, tokens
    log.info("%s: the text at %.1f-%.1f s fails Whisper's checks at temperature 0; decoding "
             "it padded as stock pads it", file, decoder.offset + piece.start,
             decoder.offset + piece.end)
    return decoder.decode(piece, decoder.encode(piece, padded=True), language, previous)


def _passes(decoded: list[Segment]) -> bool:
    """Whether text decoded at temperature 0 passes Whisper's own checks, which
    send it on to the sampled temperatures when it fails: a mean log-probability
    of -1 or more, and no more repetition than a compression ratio of 2.4."""
    logprob = mean_logprob(decoded)
    return logprob is not None and logprob >= NO_SPEECH_LOGPROB and not _repeats(decoded)


def _repeats(decoded: list[Segment]) -> bool:
    return (looks_looped(decoded)
            or compression_ratio(join_segments(decoded)) > COMPRESSION_RATIO_MAX)


def _silent_padded(decoder, piece, decoded: list[Segment], language: str,
                   previous: list[int]) -> bool:
    """Whether stock faster-whisper would drop the piece's text as silence:
    the model was unsure of it (mean log-probability under -1), and it takes the
    window, padded to 30 s as stock pads it, for silence (no-speech probability
    over 0.6). Encoded with `pieces.MARGIN_S` of padding only, a 7 s snatch of
    music came out "I'll see you next time." (-1.22, no-speech probability
    0.54), where stock, hearing silence, wrote nothing."""
    logprob = mean_logprob(decoded)
    if logprob is None or logprob >= NO_SPEECH_LOGPROB:
        return False
    padded = decoder.encode(piece, padded=True)
    return decoder.no_speech_prob(padded, language, previous) > NO_SPEECH_PROB


def _doubt(more: list[Segment], decoded: list[Segment], slight: bool = False) -> str | None:
    """Why the text decoded for speech the model seemed to pass over is not to be
    trusted, if it is not: there is none, it loops, the model was unsure of it
    (stretches it had skipped are often noise or a word or two), or it is in the
    piece's text already (the segments' times were off, not the text). Over
    `slight` speech (short or faint), also when the model takes any of it for
    silence (Whisper's own no-speech probability)."""
    if not join_segments(more):
        return "the model said nothing"
    if _repeats(more):
        return "it loops"
    logprob = mean_logprob(more)
    if logprob is not None and logprob < UNHEARD_LOGPROB_MIN:
        return f"the model was unsure of it (mean log-probability {logprob:.2f})"
    if slight and any(seg.no_speech_prob > NO_SPEECH_PROB for seg in more):
        return "the model heard no speech in it"
    said = already_said(join_segments(more), join_segments(decoded))
    if said >= ALREADY_SAID:
        return f"{said:.0%} of its words are in the text already"
    return None


def _placed(decoder, decoded: list[Segment], speech: Speech, language: str, file: str
            ) -> tuple[list[Segment], list[tuple[float, float]]]:
    """`decoded` with each segment that runs across a long pause cut to the
    speech its words were said over, and where the text was said (start, end).

    Whisper may time a segment from its window's start, over a sentence it
    passed over, to the end of the one it said: on a lecture of real clips with
    pauses of 1.5 s, 23.4-43.4 s said only what was spoken from 33.7 s, and the
    sentence at 25.2-32.2 s was lost, as it is with stock faster-whisper.
    Placed where its words are, the segment leaves that speech to be decoded
    (`_decode_unheard`). Not done when translating: English words have no place
    in speech of another language."""
    from .pieces import across_pauses

    placed, said = [], []
    for seg in decoded:
        runs = across_pauses(seg.start, seg.end, speech.spans)
        heard = runs
        if len(runs) > 1 and decoder.settings.task == "transcribe":
            words = decoder.word_times(seg, language)
            heard = [run for run in runs if _covered(run, words) >= WORDS_COVER_MIN
                     and not _misplaced(decoder, run, words, language)]
        if not heard or len(heard) == len(runs):
            placed.append(seg)
            said.append((seg.start, seg.end))
            continue
        log.info("%s: the text at %.1f-%.1f s was said over %s only", file, seg.start, seg.end,
                 ", ".join(f"{start:.1f}-{end:.1f} s" for start, end in heard))
        said += heard
        placed.append(replace(seg, start=max(seg.start, heard[0][0]),
                              end=min(seg.end, heard[-1][1])))
    return placed, said


def _covered(run: tuple[float, float], words: list[tuple[float, float, str]]) -> float:
    """How much of `run` the `words` (start, end, word) were placed over, 0 to 1."""
    start, end = run
    inside = sum(max(0.0, min(end, w_end) - max(start, w_start)) for w_start, w_end, _ in words)
    return inside / (end - start)


def _misplaced(decoder, run: tuple[float, float], words: list[tuple[float, float, str]],
               language: str) -> bool:
    """Whether the words placed on `run` are a word or two the alignment
    stretched over speech that says something else: `run` decoded on its own
    (without a prompt) says none of them. Speech that decodes to nothing keeps
    its words."""
    from .pieces import Piece

    start, end = run
    placed = [word for w_start, w_end, word in words if start < (w_start + w_end) / 2 < end]
    if len(placed) > FEW_WORDS:
        return False
    local = Piece(start - decoder.offset, end - decoder.offset, end - start)
    own, _ = decoder.decode(local, decoder.encode(local), language)
    heard = set(word_keys(join_segments(own)))
    return bool(heard) and not heard & set(word_keys(" ".join(placed)))


def _heard(raw: list[Segment], speech: Speech, file: str) -> list[Segment]:
    """`raw` without the segments placed where the VAD heard no speech, and the
    others without the silence they were stretched over."""
    segments = []
    for seg in raw:
        if _is_hallucination(seg, speech):
            log.debug("%s: dropped %.1f-%.1f %r", file, seg.start, seg.end, seg.text)
            continue
        segments.append(_fitted(seg, speech))
    return segments


def _fitted(seg: Segment, speech: Speech) -> Segment:
    """`seg` from the first speech the VAD heard in it to the last. After a long
    silence Whisper starts its first segment near the window's start: JFK said at
    29:00 of a silent 30-minute note was timed from 28:46, 14 s early."""
    start, end = speech.fitted(seg.start, seg.end)
    if (start, end) == (seg.start, seg.end):
        return seg
    words = seg.words
    if words:
        words = tuple(replace(w, start=min(max(w.start, start), end),
                              end=min(max(w.end, start), end)) for w in words)
    return replace(seg, start=start, end=end, words=words)


def _is_hallucination(seg, speech: Speech) -> bool:
    """Whether `seg` is text where nobody spoke: no words (empty, or only
    punctuation: "…" for a snatch of music), silence by Whisper's own rule, or
    away from any speech the VAD heard. Near speech it heard only faintly, it
    must be neither unsure nor taken for silence."""
    if not word_keys(seg.text):
        return True
    silent, unsure = seg.no_speech_prob > NO_SPEECH_PROB, seg.avg_logprob < NO_SPEECH_LOGPROB
    if silent and unsure:
        return True
    if speech.near(seg.start, seg.end):
        return False
    return silent or unsure or not speech.near_faint(seg.start, seg.end)
