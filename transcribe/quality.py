"""How a transcript is told to have gone wrong, and what is done about it.

Whisper's worst failure on real speech is a loop: a phrase the speaker said once
written two or three times ("nachdem der Bau 1963 erbaut worden war, nachdem der
Bau 1963 erbaut worden war, ..."), or a syllable repeated forty times
("engsengsengseng..."). A reader who meets one stops trusting every transcript,
so a loop is looked for in every result, across segment boundaries too: the
engine decodes such a window again another way, and a loop that survives that is
cut out and the transcript marked low-confidence, with a note saying why.

Whisper's own test for a failed decode, a gzip compression ratio over 2.4, is
kept beside it; it needs a long loop before it fires, which is why it is not
enough alone.
"""

from __future__ import annotations

import difflib
import re
import zlib
from dataclasses import dataclass, replace

from .transcript import Segment, join_segments

# A run of at least this many words said again right after itself is a loop.
# Speakers repeat a word or two ("no, no", "very very"), seldom four in a row
# word for word; the two loops seen on the FLEURS dev set were 7 and 8 words.
LOOP_MIN_WORDS = 4
# Shorter runs count as a loop only from this many copies on ("so so so so").
SHORT_LOOP_COPIES = 4
# Longer runs are not looked for: Whisper's loops are phrases, and the search
# costs this much per word.
LOOP_MAX_WORDS = 40
# Inside one word: a piece of 2 to 8 letters written this many times in a row.
CHAR_LOOP = re.compile(r"(\w{2,8}?)\1{5,}")
COMPRESSION_RATIO_MAX = 2.4
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
# Text decoded again for speech the model seemed to pass over is taken for a
# second copy when this share of its words is already in the text around it, in
# the same order, in runs of SAID_RUN_WORDS or more. A new sentence shares little
# but "of the" with the one before; a copy, most of its words.
ALREADY_SAID = 0.5
SAID_RUN_WORDS = 3


@dataclass(frozen=True)
class Loop:
    """Words `start` to `end` (indexes into the transcript's words) repeat the
    `size` words before them."""

    start: int
    end: int
    size: int


def compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def _key(word: str) -> str:
    return re.sub(r"[^\w]", "", word.casefold())


def find_loops(words: list[str]) -> list[Loop]:
    """Repeated runs of words, each given as the copies after the first one."""
    keys = [_key(w) for w in words]
    loops: list[Loop] = []
    i = 0
    while i < len(keys):
        found = None
        for size in range(1, min(LOOP_MAX_WORDS, (len(keys) - i) // 2) + 1):
            copies = 1
            while keys[i:i + size] == keys[i + copies * size:i + (copies + 1) * size]:
                copies += 1
            if copies > 1 and any(keys[i:i + size]) and (
                    size >= LOOP_MIN_WORDS or copies >= SHORT_LOOP_COPIES):
                found = Loop(i + size, i + copies * size, size)
                break
        if found is None:
            i += 1
        else:
            loops.append(found)
            i = found.end
    return loops


def word_keys(text: str) -> list[str]:
    """The words of `text`, case and punctuation aside."""
    return [key for key in map(_key, text.split()) if key]


def already_said(text: str, before: str) -> float:
    """The share of `text`'s words that `before` holds too, in the same order, in
    runs of SAID_RUN_WORDS words or more (case and punctuation aside)."""
    new, old = word_keys(text), word_keys(before)
    if not new:
        return 1.0
    blocks = difflib.SequenceMatcher(None, old, new, autojunk=False).get_matching_blocks()
    return sum(block.size for block in blocks if block.size >= SAID_RUN_WORDS) / len(new)


def has_char_loop(text: str) -> bool:
    return CHAR_LOOP.search(text) is not None


def looks_looped(segments: list[Segment]) -> bool:
    """A loop of words (across segments too), of letters inside a word, or a
    segment that compresses like a loop (Whisper's test, on each segment: a
    long note's whole text may repeat what was said minutes before)."""
    text = " ".join(s.text for s in segments)
    return (bool(find_loops(text.split())) or has_char_loop(text)
            or any(compression_ratio(s.text) > COMPRESSION_RATIO_MAX for s in segments))


def says_a_sentence_twice(segments: list[Segment]) -> bool:
    """Whether a sentence (or a segment) says word for word what the one before
    it said. Too short to be a loop ("Ask not. Ask not." over jfk's "ask not"
    said once), or said twice by the speaker: the window is decoded again to tell."""
    return bool(sentence_said_twice(segments))


def sentence_said_twice(segments: list[Segment]) -> list[str]:
    """The words (`word_keys`) of the first sentence said twice in a row, if any."""
    sentences = [word_keys(sentence) for segment in segments
                 for sentence in SENTENCE_END.split(segment.text)]
    return next((first for first, second in zip(sentences, sentences[1:])
                 if first and first == second), [])


def says(segments: list[Segment], words: list[str]) -> bool:
    """Whether the segments say `words` (`word_keys`), in a row."""
    said, size = word_keys(join_segments(segments)), len(words)
    return any(said[i:i + size] == words for i in range(len(said) - size + 1))


def remove_loops(segments: list[Segment]) -> tuple[list[Segment], list[str]]:
    """The segments with every repeated copy of a looped phrase cut out (the first
    copy stays), and a sentence for each cut, for the transcript's notes."""
    owners: list[int] = []
    words: list[str] = []
    for index, segment in enumerate(segments):
        for word in segment.text.split():
            owners.append(index)
            words.append(word)
    drop: set[int] = set()
    loops = find_loops(words)
    for loop in loops:
        drop.update(range(loop.start, loop.end))
    notes = [_loops_note(loops, words)] if loops else []
    kept: dict[int, list[str]] = {}
    for position, (owner, word) in enumerate(zip(owners, words)):
        if position not in drop:
            kept.setdefault(owner, []).append(word)
    out = []
    for index, segment in enumerate(segments):
        text = " ".join(kept.get(index, []))
        if CHAR_LOOP.search(text):
            text = CHAR_LOOP.sub(lambda m: m.group(1), text)
            notes.append("cut a run of repeated letters (the model looped)")
        if text:
            out.append(replace(segment, text=text))
    return out, notes


def _loops_note(loops: list[Loop], words: list[str]) -> str:
    """One sentence for every loop cut out of a transcript (a lecture may have
    a dozen: a line each made the warning hundreds of words long)."""
    copies = sum((loop.end - loop.start) // loop.size for loop in loops)
    first = loops[0]
    phrase = _clip(" ".join(words[first.start - first.size:first.start]))
    what = f"\u201c{phrase}\u201d" if len(loops) == 1 else \
        f"{len(loops)} phrases (the first: \u201c{phrase}\u201d)"
    return (f"removed {copies} repeated cop{'y' if copies == 1 else 'ies'} of {what} "
            "(the model looped)")


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "\u2026"
