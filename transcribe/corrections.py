"""A person's corrections of a transcript, laid over the model's text.

A correction is the text a person gave one stretch of a note (a segment's start
and end, in seconds). The store keeps the model's transcript as it was made and
the corrections beside it; what everyone reads (the TUI, search, exports, the
watcher's files) is the model's transcript with the corrections laid over it by
`apply`. Each corrected segment keeps the model's words in `model_text`.

A new transcript of the note (another model, another engine) gets the same
corrections, mapped by time: a new segment belongs to the correction it overlaps
most, when at least half of the segment lies inside the correction's stretch. A
correction's segments become one segment with the corrected text (the model's
text of all of them kept as its `model_text`). A correction no new segment lies
mostly inside (the new model cut the speech into longer segments) becomes a
segment of its own at its time, beside the model's: the person's words are never
dropped by a re-transcription, only by `Store.drop_corrections`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .transcript import Segment, Transcript, join_segments

# A segment belongs to a correction when at least this share of it lies inside the
# correction's stretch. Half: base and tiny.en cut a note's sentences at the same pauses
# give or take 0.2-0.4 s (sample_audio's notes), far less than half a segment.
INSIDE_MIN = 0.5


@dataclass(frozen=True)
class Correction:
    start: float
    end: float
    text: str


def overlap(a_start: float, a_end: float, b_start: float, b_end: float) -> float:
    """Seconds two stretches share (0 when they do not touch)."""
    return max(0.0, min(a_end, b_end) - max(a_start, b_start))


def same_stretch(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether two stretches are the same one, as a person pointing at a segment means
    it: they share at least half of the shorter. (A segment edited again after a new
    transcript moved its ends by a fraction of a second replaces the older correction.)"""
    shorter = max(min(a[1] - a[0], b[1] - b[0]), 0.01)
    return overlap(*a, *b) >= INSIDE_MIN * shorter


def apply(transcript: Transcript, corrections: list[Correction]) -> Transcript:
    """`transcript` with `corrections` laid over its segments (see the module's docstring);
    the transcript itself when there are none."""
    if not corrections:
        return transcript
    owners = [_owner(seg, corrections) for seg in transcript.segments]
    segments: list[Segment] = []
    placed: set[int] = set()
    for seg, owner in zip(transcript.segments, owners):
        if owner is None:
            segments.append(seg)
        elif owner not in placed:
            placed.add(owner)
            members = [s for s, o in zip(transcript.segments, owners) if o == owner]
            segments.append(_corrected(members, corrections[owner].text))
    for k, correction in enumerate(corrections):
        if k not in placed:
            segments.append(Segment(correction.start, correction.end, correction.text,
                                    model_text=""))
    segments.sort(key=lambda s: s.start)
    return dataclasses.replace(transcript, segments=segments, text=join_segments(segments),
                               corrected=True)


def uncorrected(transcript: Transcript) -> Transcript:
    """The model's text of a corrected transcript (each corrected segment's `model_text`
    back in place; a correction that was a segment of its own is left out)."""
    if not transcript.corrected:
        return transcript
    segments = [seg if seg.model_text is None
                else dataclasses.replace(seg, text=seg.model_text, model_text=None)
                for seg in transcript.segments if seg.model_text != ""]
    return dataclasses.replace(transcript, segments=segments, text=join_segments(segments),
                               corrected=False)


def _owner(seg: Segment, corrections: list[Correction]) -> int | None:
    """The correction `seg` belongs to: the one it overlaps most, if it lies mostly inside."""
    shared = [overlap(seg.start, seg.end, c.start, c.end) for c in corrections]
    best = max(range(len(corrections)), key=shared.__getitem__)
    length = max(seg.end - seg.start, 0.01)
    return best if shared[best] > 0 and shared[best] >= INSIDE_MIN * length else None


def _corrected(members: list[Segment], text: str) -> Segment:
    """One segment over `members` with the person's text; the model's kept beside it.
    (No word timings: the model's words are not the person's.)"""
    return Segment(members[0].start, max(s.end for s in members), text,
                   model_text=join_segments(members))
