"""Decode a note as pieces cut at its pauses, all pieces in one batch.

A voice note is short, and stock faster-whisper spends most of its time on
work that does not depend on it: it pads every window to 30 s, encodes the
first window twice when it detects the language, and decodes one token at a
time for the whole window. Here the note is cut at the middle of the pauses
the VAD heard into pieces of about `PIECE_TARGET_S`, every piece is encoded
over its own length plus `MARGIN_S` of silence (CTranslate2 takes inputs
shorter than 30 s; with no margin the decoder was seen to repeat itself), and
the pieces are decoded side by side: a 26 s note takes about 25 decoding steps
instead of about 75, and each step costs little more than one for a single
piece. The whole note is still heard, pauses included; only where it is cut
changes.

Each piece is decoded with a narrow beam first. A piece the model is unsure
of is decoded again with the full beam, and a piece that still looks wrong
(repetition, low confidence, no words where the VAD heard speech) is handed
back to the caller, which decodes it the stock way. `bench/` measures all of
this against stock faster-whisper.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .audio import SAMPLE_RATE
from .transcript import Segment

FRAMES_PER_S = 100  # Whisper's mel frames; the encoder halves them
# Pieces aim at this length; a stretch of speech with no pause is cut at its
# quietest point only past PIECE_MAX_S (a piece must fit Whisper's 30 s window).
PIECE_TARGET_S = 10.0
PIECE_MAX_S = 28.0
MARGIN_S = 1.0
# Pieces are encoded and decoded in groups of up to this much audio: progress is
# reported after each group (one decoding call gives no word of its own until it
# ends), and on a 60 s note groups of 30 s cost within noise of one group.
GROUP_S = 30.0
# Hypotheses x frames per generate() call. The decoder keeps cross-attention keys
# for every hypothesis, so this bounds memory: about what stock beam 5 holds on a
# 30 s window.
BATCH_FRAMES = 7500
# The first pass searches with this beam (or `beam_size`, if smaller). Greedy
# search lost two words of a recorded memo ("start the meeting" -> "start
# ameding") that a beam of 2 kept, for about 5 % more time; a beam of 5 cost
# 25-40 % more.
FIRST_PASS_BEAM = 2
# A piece below this mean log-probability after the first pass is decoded again
# with the full beam (`beam_size`).
BEAM_BELOW_LOGPROB = -0.5
# Enough tokens for fast speech with timestamps; a piece stuck repeating itself
# stops here instead of at Whisper's 448.
TOKENS_PER_S = 12
TOKENS_FLOOR = 32
# The guard. Whisper's own compression-ratio threshold for a failed decode; and
# a piece still below -0.7 mean log-probability after the full beam goes the
# stock way (padded window, temperature fallback). Whisper's own -1.0 let a
# noisy note's piece at -0.74 through, four words worse than stock; every clean
# sample piece scored above -0.6.
COMPRESSION_RATIO_MAX = 2.4
LOGPROB_MIN = -0.7
# A piece with this much speech and no words is taken for a failed decode.
WORDLESS_SPEECH_S = 1.0


@dataclass(frozen=True)
class Piece:
    start: float
    end: float
    speech_s: float  # how much of it the VAD heard as speech

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass
class Decoded:
    piece: Piece
    segments: list[Segment]  # on the note's clock
    text: str
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float

    @property
    def looks_wrong(self) -> bool:
        if not self.text:
            return self.piece.speech_s >= WORDLESS_SPEECH_S
        return (self.compression_ratio > COMPRESSION_RATIO_MAX
                or self.avg_logprob < LOGPROB_MIN
                or self.repeats)

    @property
    def repeats(self) -> bool:
        """A segment said again word for word right after itself: Whisper's loop on
        the quiet end of a piece (seen once at beam 2, too short a loop for the
        compression ratio to notice)."""
        texts = [s.text.lower().strip(" .!?,") for s in self.segments]
        return any(a == b for a, b in zip(texts, texts[1:]))


def plan(samples: np.ndarray, spans: list[tuple[float, float]]) -> list[Piece]:
    """Cut the note at the middle of its pauses into balanced pieces.

    The number of pieces is what `PIECE_TARGET_S` asks for; within that number
    the longest piece is made as short as the pauses allow, because the batch
    is encoded at the length of its longest piece. Pieces with no speech in
    them are left out."""
    duration = len(samples) / SAMPLE_RATE
    cuts = [(a_end + b_start) / 2 for (_, a_end), (b_start, _) in zip(spans, spans[1:])]
    cuts = _cut_long_stretches(samples, sorted(c for c in cuts if 0 < c < duration), duration)
    at_target = _greedy(cuts, duration, PIECE_TARGET_S)
    count = len(at_target)
    low, high = duration / count, max(PIECE_TARGET_S, _longest(at_target))
    for _ in range(20):  # the shortest longest piece that still needs only `count`
        middle = (low + high) / 2
        if len(_greedy(cuts, duration, middle)) <= count:
            high = middle
        else:
            low = middle
    edges = _greedy(cuts, duration, high)
    pieces = []
    for start, end in edges:
        speech = sum(max(0.0, min(end, s_end) - max(start, s_start)) for s_start, s_end in spans)
        if speech > 0:
            pieces.append(Piece(start, end, speech))
    return pieces


def groups(pieces: list[Piece]) -> list[list[Piece]]:
    """Consecutive pieces, up to GROUP_S of audio in each group (at least one piece)."""
    out: list[list[Piece]] = []
    for piece in pieces:
        if out and piece.end - out[-1][0].start <= GROUP_S:
            out[-1].append(piece)
        else:
            out.append([piece])
    return out


def _greedy(cuts: list[float], duration: float, limit: float) -> list[tuple[float, float]]:
    """Pieces taking the furthest cut within `limit` each time (or the nearest one
    past it, when a stretch has none)."""
    edges, start, i = [], 0.0, 0
    while duration - start > limit:
        j = i
        while j < len(cuts) and cuts[j] - start <= limit:
            j += 1
        if j > i:
            end, i = cuts[j - 1], j
        elif i < len(cuts):
            end, i = cuts[i], i + 1
        else:
            break
        edges.append((start, end))
        start = end
    edges.append((start, duration))
    return edges


def _longest(edges: list[tuple[float, float]]) -> float:
    return max(end - start for start, end in edges)


def _cut_long_stretches(samples: np.ndarray, cuts: list[float], duration: float) -> list[float]:
    """Add a cut at the quietest 50 ms wherever PIECE_MAX_S passes without a pause."""
    out, previous = [], 0.0
    for cut in [*cuts, duration]:
        while cut - previous > PIECE_MAX_S:
            previous = _quietest(samples, previous + PIECE_MAX_S / 2, previous + PIECE_MAX_S)
            out.append(previous)
        if cut < duration:
            out.append(cut)
        previous = cut
    return out


def _quietest(samples: np.ndarray, start: float, end: float) -> float:
    hop = SAMPLE_RATE // 20
    first, last = int(start * SAMPLE_RATE), int(end * SAMPLE_RATE)
    frames = samples[first:last][: (last - first) // hop * hop].reshape(-1, hop)
    return (first + int(np.argmin((frames ** 2).mean(axis=1))) * hop + hop // 2) / SAMPLE_RATE


class PieceDecoder:
    """One note's pieces through one model: encode, detect the language, decode."""

    def __init__(self, whisper, task: str, initial_prompt: str | None = None,
                 hotwords: str | None = None) -> None:
        from faster_whisper.tokenizer import Tokenizer

        self.whisper = whisper
        self.multilingual = whisper.model.is_multilingual
        self._tokenizer = lambda language: Tokenizer(whisper.hf_tokenizer, self.multilingual,
                                                     task=task, language=language)
        self.initial_prompt = initial_prompt
        self.hotwords = hotwords

    def encode(self, features: np.ndarray, pieces: list[Piece]) -> np.ndarray:
        """Encoder output for `pieces`, each cut from the note's mel `features`
        and followed by zeros up to the longest piece plus the margin."""
        import ctranslate2

        spans = [(round(p.start * FRAMES_PER_S), round(p.end * FRAMES_PER_S)) for p in pieces]
        spans = [(a, min(b, features.shape[1] - 1)) for a, b in spans]
        length = max(b - a for a, b in spans) + round(MARGIN_S * FRAMES_PER_S)
        length = min(3000, length + length % 2)
        batch = np.zeros((len(pieces), features.shape[0], length), dtype=np.float32)
        for row, (a, b) in enumerate(spans):
            batch[row, :, : min(b - a, length)] = features[:, a: a + min(b - a, length)]
        return np.array(self.whisper.model.encode(ctranslate2.StorageView.from_array(batch)))

    def detect_language(self, encoded: np.ndarray, pieces: list[Piece]) -> tuple[str, float]:
        """The language most likely over all pieces, each weighted by its speech."""
        import ctranslate2

        totals: dict[str, float] = {}
        ranks = self.whisper.model.detect_language(ctranslate2.StorageView.from_array(encoded))
        for piece, ranked in zip(pieces, ranks):
            for token, probability in ranked:
                totals[token[2:-2]] = totals.get(token[2:-2], 0.0) + probability * piece.speech_s
        weight = sum(p.speech_s for p in pieces)
        language = max(totals, key=totals.__getitem__)
        return language, totals[language] / weight

    def decode(self, encoded: np.ndarray, pieces: list[Piece], language: str,
               beam_size: int) -> list[Decoded]:
        """Decode every piece at temperature 0, in batches within BATCH_FRAMES."""
        import ctranslate2

        from faster_whisper.transcribe import get_suppressed_tokens

        tokenizer = self._tokenizer(language)
        prompt = self._prompt(tokenizer)
        suppress = list(get_suppressed_tokens(tokenizer, [-1]))
        frames = encoded.shape[1]
        per_call = max(1, BATCH_FRAMES // (frames * beam_size))
        results: list[Decoded] = []
        for first in range(0, len(pieces), per_call):
            group = pieces[first:first + per_call]
            longest = max(p.duration for p in group)
            outputs = self.whisper.model.generate(
                ctranslate2.StorageView.from_array(
                    np.ascontiguousarray(encoded[first:first + len(group)])),
                [prompt] * len(group),
                beam_size=beam_size,
                max_length=min(448, len(prompt) + TOKENS_FLOOR
                               + math.ceil(TOKENS_PER_S * longest)),
                return_scores=True,
                return_no_speech_prob=True,
                suppress_blank=True,
                suppress_tokens=suppress,
                max_initial_timestamp_index=50,
            )
            for piece, output in zip(group, outputs):
                results.append(self._decoded(tokenizer, piece, output))
        return results

    def _prompt(self, tokenizer) -> list[int]:
        prompt = []
        if self.initial_prompt or self.hotwords:
            words = " ".join(w.strip() for w in (self.hotwords, self.initial_prompt) if w)
            prompt = [tokenizer.sot_prev, *tokenizer.encode(" " + words)[-223:]]
        return prompt + list(tokenizer.sot_sequence)

    def _decoded(self, tokenizer, piece: Piece, output) -> Decoded:
        from faster_whisper.transcribe import get_compression_ratio

        tokens = output.sequences_ids[0]
        # CTranslate2 scores a sequence by its summed log-probability over its length
        # (length_penalty 1); this is faster-whisper's per-token average.
        avg_logprob = output.scores[0] * len(tokens) / (len(tokens) + 1)
        segments = []
        for start, end, text_tokens in _timed_runs(tokens, tokenizer, piece.duration):
            text = tokenizer.decode(text_tokens).strip()
            if text:
                segments.append(Segment(round(piece.start + start, 3),
                                        round(piece.start + end, 3), text,
                                        avg_logprob, output.no_speech_prob))
        text = " ".join(s.text for s in segments)
        return Decoded(piece, segments, text, avg_logprob, output.no_speech_prob,
                       get_compression_ratio(text) if text else 0.0)


def _timed_runs(tokens: list[int], tokenizer, duration: float):
    """(start, end, text tokens) for each run of text between timestamp tokens,
    in seconds from the start of the piece."""
    begin = tokenizer.timestamp_begin
    start, text, last_end = None, [], 0.0
    for token in tokens:
        if token >= begin:
            time = min((token - begin) * 0.02, duration)
            if time >= duration and not text:
                break  # what starts past the piece's audio is in the silent margin
            if text:
                yield (start if start is not None else last_end), max(time, start or 0.0), text
                text, start, last_end = [], None, time
            else:
                start = time
        elif token < tokenizer.eot:
            text.append(token)
    if text:
        yield (start if start is not None else last_end), duration, text
