"""A note being transcribed keeps its text decoded so far in the store, for any reader
(the TUI's note view) to show while it grows; gone once the note is done."""

from __future__ import annotations

import re
import sqlite3
import threading

from conftest import SAMPLES
from longnote import build

from transcribe.audio import file_sha256
from transcribe.store import Store


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text.casefold())


def in_order(part: list[str], whole: list[str]) -> int:
    """How many of `part`'s words are found in `whole`, in their order."""
    found, at = 0, 0
    for word in part:
        try:
            at = whole.index(word, at) + 1
        except ValueError:
            continue
        found += 1
    return found


def test_a_running_note_keeps_its_text_so_far_and_drops_it_when_done(tmp_path, transcriber):
    note = tmp_path / "long.ogg"
    build(note, 90, [SAMPLES / "real" / f"fleurs-en-00{n}.ogg" for n in (5, 8, 9)])
    store = Store(tmp_path / "transcribe.db")
    job, _ = store.add_job(file_sha256(note), str(note), note.stat().st_size)
    store.claim(job.id)
    store.start(job.id)
    made = []
    work = threading.Thread(target=lambda: made.append(transcriber.transcribe(
        note, on_progress=store.progress_callback(job.id, every_s=0))))
    reader = Store(store.path)  # another connection, as the TUI's in its own process
    seen = []
    work.start()
    while work.is_alive():
        partial = reader.partial(job.id)
        if partial and partial[0] and (not seen or seen[-1] != partial):
            seen.append(partial)
        work.join(0.2)
    [transcript] = made
    assert len(seen) >= 2, f"the text grew while the note was decoded: {len(seen)} reads"
    final = words(transcript.text)
    for text, length in seen:
        assert abs(length - transcript.duration) < 1, (length, transcript.duration)
        part = words(text)
        assert len(part) <= len(final)
        assert in_order(part, final) >= 0.9 * len(part), (text, transcript.text)
    assert len(words(seen[-1][0])) > len(words(seen[0][0])), "it grows"
    store.finish(job.id, transcript)
    assert reader.partial(job.id) is None
    db = sqlite3.connect(store.path)
    assert db.execute("SELECT partial, length_s FROM jobs").fetchall() == [(None, None)]
    db.close()
    reader.close()
    store.close()
