"""Decode a note window by window, the way stock faster-whisper does, for less.

A voice note that fits Whisper's 30 s window is never cut. A longer note is cut
into pieces that each fit one window, at its longest pauses (`plan`), so no cut
falls inside a sentence while a pause between two sentences is there to take;
each piece is given the text before it as its prompt, as stock Whisper gives
its next window, so a sentence carries on across a cut.

Each window is then decoded by faster-whisper's own `generate_segments()`, with
its defaults (beam 5, the temperature fallback, the compression-ratio test),
so the text is stock faster-whisper's text in all but two things:

- The window is encoded once. Stock encodes a note's first window twice, once
  to detect the language and once to decode it.
- The window is encoded over the piece plus `MARGIN_S` of padding, not padded to
  30 s. On the FLEURS dev set (25 real notes in 5 languages, AVX-512 EPYC) a 3 s
  margin gave 14.3 % WER against stock's 16.1 %, at or below stock in every
  language; a 1 s margin gave 18.8 % (French 41 % against 28 %: with so little
  padding Whisper hears the note end abruptly), a 6 s margin 15.0 %. A piece
  under 5 s (a short note) is padded to 30 s as stock pads it: with the margin,
  "Yes." came back "D.S. D.S. D.S. ..." (`engine.PADDED_BELOW_S`).

A window whose text loops (`quality.py`) is decoded again padded to 30 s, as
stock would, without a prompt. `bench/` measures all of this against stock.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, fields

import numpy as np

from .audio import SAMPLE_RATE
from .speech import Speech, overlaps
from .transcript import Segment, Word, join_segments

FRAMES_PER_S = 100  # Whisper's mel frames
WINDOW_S = 30.0
MARGIN_S = 3.0
# A cut note's pieces are at most this long, so each fits a window with its margin.
PIECE_MAX_S = WINDOW_S - MARGIN_S
# A pause this long (as the VAD measures it) is taken for a clear
# break between sentences, as good a place to cut as any longer one.
SENTENCE_PAUSE_S = 2.0
# The rest of a piece after its first window is decoded only if the VAD hears
# more speech in it than the 0.2 s of padding it puts on each side of a span.
REST_SPEECH_S = 0.4
# Speech the VAD heard for this long (its padding included), clearly or faintly
# (`Speech.faint`), with no text over it, is decoded again: "ask not", said alone
# after a pause, was heard as 0.5 s and 0.7 s, clearly or faintly by the encoding.
UNHEARD_SPEECH_S = 0.5
# Less clear speech than this is a word or two at most, or a breath: the text
# decoded for it must be speech to the model too (`engine._doubt`).
CLEAR_SPEECH_S = 1.0
# Spans the VAD parts by less than this are one stretch of speech when measured
# against UNHEARD_SPEECH_S: it heard "ask" and "not" as 0.50 s and 0.69 s, 0.18 s apart.
WORD_PAUSE_S = 0.3
# A segment whose time runs across a pause this long, with speech on both sides,
# may say only one side: its words are placed to find out which (`engine._placed`).
# The longest pause inside a segment on the dev set is 1.2 s; the segments that
# passed over a sentence ran across pauses of 2.7-3.2 s.
LONG_PAUSE_S = 1.5
# Language detection listens to the first pieces until it has heard this much speech.
LANGUAGE_SPEECH_S = 90.0


@dataclass(frozen=True)
class Piece:
    start: float
    end: float
    speech_s: float  # how much of it the VAD heard as speech

    @property
    def duration(self) -> float:
        return self.end - self.start


def plan(samples: np.ndarray, spans: list[tuple[float, float]]) -> list[Piece]:
    """The note as one piece if it fits a window; else cut at its longest pauses.

    Among the cuts that keep every piece within PIECE_MAX_S, the shortest pause
    cut at is made as long as it can be (up to SENTENCE_PAUSE_S), and then the
    fewest pieces are made.
    A stretch longer than that with no pause at all is cut at its quietest
    50 ms. Pieces with no speech in them are left out."""
    return with_speech(cuts(samples, spans), spans)


def cuts(samples: np.ndarray, spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The edges of `plan`'s pieces, those without speech too."""
    duration = len(samples) / SAMPLE_RATE
    if duration <= WINDOW_S:
        return [(0.0, duration)]
    pauses = [((a_end + b_start) / 2, min(b_start - a_end, SENTENCE_PAUSE_S))
              for (_, a_end), (b_start, _) in zip(spans, spans[1:])]
    found = _with_quiet_cuts(samples, sorted(p for p in pauses if 0 < p[0] < duration),
                             duration)
    floor = _longest_feasible_floor(found, duration)
    return _fewest_pieces([c for c in found if c[1] >= floor], duration)


def with_speech(edges: list[tuple[float, float]], spans: list[tuple[float, float]]
                ) -> list[Piece]:
    """The pieces between `edges` that the VAD heard speech in."""
    pieces = []
    for start, end in edges:
        speech = Speech(spans).within(start, end)
        if speech > 0:
            pieces.append(Piece(start, end, speech))
    return pieces


def unheard(piece: Piece, said: list[tuple[float, float]], speech: Speech) -> list[Piece]:
    """The stretches of `piece` where the VAD heard speech, clearly or faintly,
    for UNHEARD_SPEECH_S or more and no text was said (`said`: where the text
    is, start to end), each up to the next text (or the piece's end).

    After a long pause Whisper may end its text for a window early, and the
    window's remaining speech is then never decoded: stock faster-whisper loses
    it too (seen on real notes joined with pauses of 1.5-3 s). A short reply
    said quietly after a pause ("ask not", cut from jfk) may be too faint for
    the VAD to call it speech, and is lost the same way. Speech with text over
    it does not count towards a stretch: the faint start of a sentence the
    model did say is not decoded again on its own."""
    gaps: list[Piece] = []
    heard = sorted(speech.spans + speech.faint)
    for index, (span_start, span_end) in enumerate(heard):
        start, end = max(span_start, piece.start), min(span_end, piece.end)
        if end <= start or (gaps and start < gaps[-1].end):
            continue
        if overlaps(said, start, end):
            continue
        reach = end  # with the spans that follow it a moment later ("ask" and "not")
        for next_start, next_end in heard[index + 1:]:
            if next_start - reach >= WORD_PAUSE_S or overlaps(said, next_start, next_end):
                break
            reach = max(reach, min(next_end, piece.end))
        if reach - start < UNHEARD_SPEECH_S:
            continue
        stop = min((s_start for s_start, _ in said if s_start >= end), default=piece.end)
        gaps.append(Piece(start, stop, speech.within(start, stop)))
    return gaps


def across_pauses(start: float, end: float, spans: list[tuple[float, float]]
                  ) -> list[tuple[float, float]]:
    """The speech heard between `start` and `end` as runs parted by pauses of at
    least LONG_PAUSE_S, each run holding CLEAR_SPEECH_S of speech or more; one
    run (or none) when no such pause parts it."""
    runs: list[list[float]] = []
    for s_start, s_end in spans:
        s_start, s_end = max(s_start, start), min(s_end, end)
        if s_end <= s_start:
            continue
        if runs and s_start - runs[-1][1] < LONG_PAUSE_S:
            runs[-1][1] = s_end
            runs[-1][2] += s_end - s_start
        else:
            runs.append([s_start, s_end, s_end - s_start])
    return [(run_start, run_end) for run_start, run_end, speech in runs
            if speech >= CLEAR_SPEECH_S]


def _reachable(cuts: list[tuple[float, float]], duration: float) -> bool:
    position, i = 0.0, 0
    while duration - position > PIECE_MAX_S:
        furthest = None
        while i < len(cuts) and cuts[i][0] - position <= PIECE_MAX_S:
            furthest = cuts[i][0]
            i += 1
        if furthest is None:
            return False
        position = furthest
    return True


def _longest_feasible_floor(cuts: list[tuple[float, float]], duration: float) -> float:
    """The longest pause length L such that cutting only at pauses of L or more
    still keeps every piece within PIECE_MAX_S."""
    lengths = sorted({length for _, length in cuts}, reverse=True)
    low, high = 0, len(lengths) - 1  # lengths[high] (the shortest) is always feasible
    while low < high:
        middle = (low + high) // 2
        if _reachable([c for c in cuts if c[1] >= lengths[middle]], duration):
            high = middle
        else:
            low = middle + 1
    return lengths[low] if lengths else 0.0


def _fewest_pieces(cuts: list[tuple[float, float]], duration: float) -> list[tuple[float, float]]:
    """Edges using the fewest of `cuts`, the longest pauses among equals."""
    points = [(0.0, 0.0), *cuts, (duration, 0.0)]
    best: list[tuple[int, float, int]] = [(0, 0.0, -1)]  # (pieces, -pause total, previous)
    for j in range(1, len(points)):
        options = []
        for i in range(j - 1, -1, -1):
            if points[j][0] - points[i][0] > PIECE_MAX_S and i < j - 1:
                break
            options.append((best[i][0] + 1, best[i][1] - points[j][1], i))
        best.append(min(options))
    chosen, j = [], len(points) - 1
    while j > 0:
        i = best[j][2]
        chosen.append((points[i][0], points[j][0]))
        j = i
    return chosen[::-1]


def _with_quiet_cuts(samples: np.ndarray, cuts: list[tuple[float, float]],
                     duration: float) -> list[tuple[float, float]]:
    """Add a cut at the quietest 50 ms wherever PIECE_MAX_S passes without a pause."""
    out, previous = [], 0.0
    for cut in [*cuts, (duration, 0.0)]:
        while cut[0] - previous > PIECE_MAX_S:
            previous = _quietest(samples, previous + PIECE_MAX_S / 2, previous + PIECE_MAX_S)
            out.append((previous, 0.0))
        if cut[0] < duration:
            out.append(cut)
        previous = cut[0]
    return out


def _quietest(samples: np.ndarray, start: float, end: float) -> float:
    """The middle of the quietest 50 ms between `start` and `end`; the last of
    equally quiet ones, so a long silence is cut where its speech begins."""
    hop = SAMPLE_RATE // 20
    first, last = int(start * SAMPLE_RATE), int(end * SAMPLE_RATE)
    frames = samples[first:last][: (last - first) // hop * hop].reshape(-1, hop)
    energy = (frames ** 2).mean(axis=1)
    quietest = int(np.flatnonzero(energy == energy.min())[-1])
    return (first + quietest * hop + hop // 2) / SAMPLE_RATE


class WindowDecoder:
    """One note's pieces through one model: encode, detect the language, decode."""

    def __init__(self, whisper, samples: np.ndarray, settings, offset: float = 0.0,
                 speech=None) -> None:
        self.whisper = whisper
        self.features = log_mel(whisper.feature_extractor, samples)
        # the VAD's `Speech` over `samples`, if they have been heard (on their own clock)
        self.speech = speech
        self.multilingual = whisper.model.is_multilingual
        self.settings = settings
        self.offset = offset  # where `samples` start in the note, in seconds

    def _frames(self, piece: Piece) -> np.ndarray:
        first = round(piece.start * FRAMES_PER_S)
        last = min(round(piece.end * FRAMES_PER_S), self.features.shape[1] - 1)
        return self.features[:, first:last + 1]

    def encode(self, piece: Piece, *, padded: bool = False):
        """The encoder output for `piece`: its frames and `MARGIN_S` of padding,
        or padded to the whole window as stock pads it."""
        frames = self._frames(piece)
        window = round(WINDOW_S * FRAMES_PER_S)
        length = window if padded else min(window, frames.shape[1] + round(MARGIN_S * FRAMES_PER_S))
        length += length % 2
        batch = np.zeros((frames.shape[0], length), dtype=np.float32)
        batch[:, : min(frames.shape[1], length)] = frames[:, :length]
        return self.whisper.encode(batch)

    def language_scores(self, encoded) -> dict[str, float]:
        """Every language's probability for one encoded piece."""
        ranked = self.whisper.model.detect_language(encoded)[0]
        return {token[2:-2]: probability for token, probability in ranked}

    def decode(self, piece: Piece, encoded, language: str,
               previous: list[int] | None = None, *, fallback: bool = True
               ) -> tuple[list[Segment], list[int]]:
        """faster-whisper's own decoding of one piece: its segments on the note's
        clock, and the tokens they came from.

        `previous`, the tokens of the piece before (timestamps included), is its
        prompt after any initial prompt, as stock Whisper prompts each window with
        the last. Given as plain text instead, it was seen to stop the model from
        placing timestamps: a 21 s piece came back as one segment.

        Without `fallback`, only the beam search at temperature 0 is run, not
        the sampled temperatures Whisper falls back to when that text fails its
        checks (`engine._passes`)."""
        from faster_whisper import WhisperModel

        settings = self.settings
        tokenizer = self._tokenizer(language)
        prompt = self._prompt(tokenizer, previous)
        options = stock_options(tokenizer, beam_size=settings.beam_size,
                                hotwords=settings.hotwords, initial_prompt=prompt or None,
                                word_timestamps=settings.word_timestamps,
                                **({} if fallback else {"temperatures": [0.0]}))
        segments, tokens = [], []
        model = _UntilSilence(self.whisper, piece, self.speech) if self.speech else self.whisper
        try:
            for seg in WhisperModel.generate_segments(model, self._frames(piece), tokenizer,
                                                      options, False, encoded):
                segment = to_segment(seg, self.offset + piece.start)
                if seg.seek > 0 and _said_before(segment, segments):
                    continue
                segments.append(segment)
                tokens += seg.tokens
        except _NothingLeft:
            pass
        return segments, tokens

    def no_speech_prob(self, encoded, language: str, previous: list[int] | None = None
                       ) -> float:
        """Whisper's probability that the window `encoded` holds no speech, from
        the first step of its decoding with the prompt `decode` would give it."""
        tokenizer = self._tokenizer(language)
        prompt = self.whisper.get_prompt(tokenizer, self._prompt(tokenizer, previous),
                                         hotwords=self.settings.hotwords)
        (result,) = self.whisper.model.generate(encoded, [prompt], max_length=len(prompt) + 1,
                                                return_no_speech_prob=True)
        return result.no_speech_prob

    def _tokenizer(self, language: str):
        from faster_whisper.tokenizer import Tokenizer

        return Tokenizer(self.whisper.hf_tokenizer, self.multilingual, task=self.settings.task,
                         language=language)

    def _prompt(self, tokenizer, previous: list[int] | None) -> list[int]:
        """The tokens before the window's own: any initial prompt, then `previous`."""
        initial = self.settings.initial_prompt
        prompt = tokenizer.encode(" " + initial.strip()) if initial else []
        return prompt + (previous or [])

    def word_times(self, segment: Segment, language: str) -> list[tuple[float, float, str]]:
        """Where each word of `segment` was said, as (start, end, word) on the
        note's clock: its text aligned against the audio under its time
        (faster-whisper's word timestamps, over the segment's own window). A
        word DTW stretches over the silence before it is cut to twice the median
        word's length, as faster-whisper cuts its words."""
        if segment.words:
            return [(word.start, word.end, word.word) for word in segment.words]
        tokenizer = self._tokenizer(language)
        start = max(0.0, segment.start - self.offset)
        piece = Piece(start, min(segment.end - self.offset, start + PIECE_MAX_S), 0.0)
        tokens = tokenizer.encode(" " + segment.text.strip())
        (words,) = self.whisper.find_alignment(tokenizer, [tokens], self.encode(piece),
                                               self._frames(piece).shape[1])
        if not words:
            return []
        longest = 2 * float(np.median([w["end"] - w["start"] for w in words])) or 1.0
        at = self.offset + piece.start
        return [(at + max(float(w["start"]), float(w["end"]) - longest), at + float(w["end"]),
                 w["word"]) for w in words]


def _said_before(segment: Segment, before: list[Segment]) -> bool:
    """Whether `segment`, from a window after a piece's first, mostly says the
    piece's text before it again (`quality.already_said`).

    Given that text as its prompt, the model said it again over speech it
    could not make out: "The hospital has followed protocol for infection of
    others..." a second time over a "Yes." said 2.5 s after the sentence (stock
    faster-whisper, one window, said it once). Dropped, it leaves that speech to
    be decoded on its own, without a prompt."""
    from .quality import ALREADY_SAID, already_said

    return already_said(segment.text, join_segments(before)) >= ALREADY_SAID


class _NothingLeft(Exception):
    pass


class _UntilSilence:
    """The model as `generate_segments()` sees it, except that it declines to
    decode a window after a piece's first when the rest of the piece is silent.

    Whisper may stop a window's text before the piece ends and leave the rest
    for another window, as stock leaves it for its next. Where that rest is a
    fraction of a second of silence, the model, given the text before as its
    prompt, says that text again: "die angemessenen Nutzung von Blogs. Die
    angemessenen Nutzung von Blogs." on a real German note, caught then by the
    loop check and decoded a third time."""

    def __init__(self, whisper, piece: Piece, speech) -> None:
        self._whisper, self._piece, self._speech = whisper, piece, speech

    def __getattr__(self, name):
        return getattr(self._whisper, name)

    def encode(self, window: np.ndarray):
        # faster-whisper pads the window's mel frames with zeros; no frame of sound is all zeros
        heard = np.flatnonzero(window.any(axis=0))
        rest = (heard[-1] + 1 if heard.size else 0) / FRAMES_PER_S
        if self._speech.within(self._piece.end - rest, self._piece.end) < REST_SPEECH_S:
            raise _NothingLeft
        return self._whisper.encode(window)


def log_mel(extractor, samples: np.ndarray, chunk_s: float = 20.0) -> np.ndarray:
    """faster-whisper's log-mel features of `samples`, bit for bit, computed
    `chunk_s` at a time.

    Its own extractor takes the STFT of the whole input at once: about 0.9 MB
    per second of audio (282 MB for 5 minutes, measured on this 2-core EPYC),
    where the features themselves are 32 kB per second. Each frame depends
    only on its own 400 samples, so the frames are made in chunks; only the
    clamp to 8 below the loudest frame needs them all."""
    hop, n_fft = extractor.hop_length, extractor.n_fft
    padded = np.pad(np.pad(samples.astype(np.float32), (0, hop)), n_fft // 2, mode="reflect")
    frames = len(samples) // hop + 1
    window = np.hanning(n_fft + 1)[:-1].astype("float32")
    step = max(1, round(chunk_s * FRAMES_PER_S))
    out = np.empty((extractor.mel_filters.shape[0], frames), dtype=np.float32)
    for first in range(0, frames, step):
        last = min(frames, first + step)
        stft = extractor.stft(padded[first * hop:(last - 1) * hop + n_fft], n_fft, hop,
                              window=window, center=False, return_complex=True)
        power = np.abs(stft.astype("complex64")) ** 2
        out[:, first:last] = np.log10(np.clip(extractor.mel_filters @ power, a_min=1e-10,
                                              a_max=None))
    np.maximum(out, out.max() - 8.0, out=out)
    out += 4.0
    out /= 4.0
    return out


def stock_options(tokenizer, **changes):
    """faster-whisper's `TranscriptionOptions` with the defaults its own
    `transcribe()` has, `changes` applied."""
    from faster_whisper import WhisperModel
    from faster_whisper.transcribe import TranscriptionOptions, get_suppressed_tokens

    defaults = {name: p.default
                for name, p in inspect.signature(WhisperModel.transcribe).parameters.items()}
    values = {f.name: defaults[f.name] for f in fields(TranscriptionOptions)
              if f.name in defaults}
    values["temperatures"] = list(defaults["temperature"])
    values.update(changes)
    values["suppress_tokens"] = get_suppressed_tokens(tokenizer, values["suppress_tokens"])
    return TranscriptionOptions(**values)


def to_segment(seg, offset: float = 0.0) -> Segment:
    """Our segment from faster-whisper's, its times moved by `offset` seconds."""
    words = None
    if seg.words is not None:
        words = tuple(Word(round(w.start + offset, 3), round(w.end + offset, 3), w.word,
                           round(w.probability, 4)) for w in seg.words)
    return Segment(round(seg.start + offset, 3), round(seg.end + offset, 3), seg.text.strip(),
                   seg.avg_logprob, seg.no_speech_prob, words)
