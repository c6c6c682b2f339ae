"""A person's fix of a word: kept in the store, found by search, carried by exports and
by a new transcript of the note (real notes, the real models, the real CLI)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import SAMPLES, json_lines, private_home, run_cli

from transcribe.store import Store
from transcribe.writers import FORMATS, render

NOTE = "PTT-20240312-WA0007.opus"  # "Hi Sam, it's me. I'm running about ten minutes late..."
FIXED = "Samwise Quirkwell"  # a name no model hears, so a match can only be the fix


@pytest.fixture
def kept(tmp_path, home) -> tuple[Path, Path]:
    """A TRANSCRIBE_HOME whose store holds the base model's transcript of NOTE; its path."""
    data = private_home(tmp_path / "home", home)
    note = tmp_path / NOTE
    shutil.copy(SAMPLES / NOTE, note)
    result = run_cli(str(note), env={"TRANSCRIBE_HOME": str(data)})
    assert result.returncode == 0, result.stderr
    return data, note


def fix_first_segment(data: Path) -> tuple[int, str]:
    """Fix "Sam" in the note's first segment, as the TUI does; return the job and the
    model's text of that segment."""
    store = Store.open_default(data / "data")
    try:
        [job] = store.jobs()
        first = store.transcript(job.id).segments[0]
        assert "Sam" in first.text
        store.correct(job.id, first.start, first.end, first.text.replace("Sam", FIXED, 1))
    finally:
        store.close()
    return job.id, first.text


def test_a_fix_survives_a_restart_with_the_models_text_beside_it(kept):
    data, _ = kept
    job_id, model_text = fix_first_segment(data)
    store = Store.open_default(data / "data")  # a new connection: what a restart reads
    try:
        transcript = store.transcript(job_id)
        first = transcript.segments[0]
        assert transcript.corrected and FIXED in first.text and FIXED in transcript.text
        assert first.model_text == model_text
        assert all(s.model_text is None for s in transcript.segments[1:])
        [hit] = store.search("quirkwell")
        assert hit.job.id == job_id
    finally:
        store.close()


def test_the_cli_search_finds_the_fix_and_its_json_says_corrected(kept):
    data, note = kept
    fix_first_segment(data)
    result = run_cli("search", "Quirkwell", "--json", env={"TRANSCRIBE_HOME": str(data)})
    assert result.returncode == 0, result.stderr
    [hit] = json_lines(result.stdout)
    assert hit["file"] == str(note.resolve()) and hit["corrected"] is True
    assert "Quirkwell" in hit["snippet"]
    other = run_cli("search", "meeting", "--json", env={"TRANSCRIBE_HOME": str(data)})
    assert json_lines(other.stdout)[0]["corrected"] is True, "the whole note is corrected"


def test_exports_carry_the_fixed_text_and_json_the_models_too(kept):
    data, _ = kept
    job_id, model_text = fix_first_segment(data)
    store = Store.open_default(data / "data")
    try:
        transcript = store.transcript(job_id)
    finally:
        store.close()
    for fmt in FORMATS:
        assert FIXED in render(transcript, fmt), fmt
    exported = json.loads(render(transcript, "json"))
    assert exported["corrected"] is True
    assert exported["segments"][0]["model_text"] == model_text
    assert "model_text" not in exported["segments"][-1] or len(exported["segments"]) == 1


def test_a_fix_outlives_a_new_transcript_by_another_model_until_dropped(kept):
    data, note = kept
    job_id, _ = fix_first_segment(data)
    env = {"TRANSCRIBE_HOME": str(data)}
    again = run_cli("-m", "tiny.en", "--json", str(note), env=env)
    assert again.returncode == 0, again.stderr
    [printed] = json_lines(again.stdout)  # the CLI's JSON too: the fix, marked
    assert printed["corrected"] is True and FIXED in printed["text"]
    assert any("Sam" in s.get("model_text", "") for s in printed["segments"])
    store = Store.open_default(data / "data")
    try:
        transcript = store.transcript(job_id)
        assert transcript.model == "tiny.en"
        assert transcript.corrected and FIXED in transcript.text
        fixed = next(s for s in transcript.segments if FIXED in s.text)
        assert fixed.start < 1.0 and "Sam" in fixed.model_text, fixed
        # the rest of the note is tiny.en's, once: the fix did not repeat its words
        assert transcript.text.lower().count("meeting") == 1, transcript.text
        assert [h.job.id for h in store.search("quirkwell")] == [job_id]
        store.drop_corrections(job_id)
        assert FIXED not in store.transcript(job_id).text
        assert store.search("quirkwell") == []
    finally:
        store.close()


def test_a_store_of_an_older_version_takes_fixes(tmp_path):
    """tests/data/store-v1.db (made before corrections were kept) holds the German note's
    English translation: opened, it takes a fix, which search finds."""
    path = tmp_path / "transcribe.db"
    shutil.copy(Path(__file__).parent / "data" / "store-v1.db", path)
    store = Store(path)
    try:
        [job] = store.jobs()
        first = store.transcript(job.id, "translate").segments[0]
        store.correct(job.id, first.start, first.end, "Good morning, Quirkwell.", "translate")
        [hit] = store.search("quirkwell")
        assert hit.job.id == job.id and hit.summary["corrected"]
        assert store.transcript(job.id).corrected
    finally:
        store.close()


def test_a_fix_makes_a_watched_notes_files_owed_again(kept):
    """The watcher writes owed files every 2 s: the .txt beside a watched note gets the fix."""
    data, note = kept
    store = Store.open_default(data / "data")
    try:
        [job] = store.jobs()
        store.owe_outputs(str(note), job.id, str(note.parent), {"formats": ["txt"]})
        [owed] = store.owed_outputs()
        store.outputs_written(owed)
        assert store.owed_outputs() == []
        first = store.transcript(job.id).segments[0]
        store.correct(job.id, first.start, first.end, FIXED)
        [again] = store.owed_outputs()
        assert again.path == str(note)
        assert FIXED in store.transcript(again.job_id, again.options.get("task")).text
    finally:
        store.close()


def test_fixes_map_onto_a_new_transcripts_segments_by_time():
    """How fixes land on another model's segments (the README's rule), case by case."""
    from transcribe.corrections import Correction, apply
    from transcribe.transcript import Segment, Transcript, join_segments

    def made(*parts):
        segments = [Segment(start, end, text) for start, end, text in parts]
        return Transcript("n.ogg", join_segments(segments), "en", 9.0, segments, "local",
                          "tiny.en")

    fixes = [Correction(0.0, 3.2, "Hi Samwise."), Correction(6.0, 7.0, "Bye.")]
    # the new model cut the first stretch in two, the second at slightly other times:
    # each fix's segments become one with its text, the model's text beside it
    new = apply(made((0.0, 1.4, "Hi"), (1.4, 3.0, "Sam."), (3.0, 6.1, "Call me."),
                     (6.1, 7.1, "By.")), fixes)
    assert [(s.start, s.end, s.text, s.model_text) for s in new.segments] == [
        (0.0, 3.0, "Hi Samwise.", "Hi Sam."), (3.0, 6.1, "Call me.", None),
        (6.1, 7.1, "Bye.", "By.")]
    assert new.text == "Hi Samwise. Call me. Bye." and new.corrected
    # one long new segment over both fixes and more: it is neither's (3.2 and 1 of its
    # 7.5 s are inside them), so each fix is a segment of its own and the model's text stays
    longer = apply(made((0.0, 7.5, "Hi Sam. Call me. By.")), fixes)
    assert [(s.start, s.text, s.model_text) for s in longer.segments] == [
        (0.0, "Hi Sam. Call me. By.", None), (0.0, "Hi Samwise.", ""), (6.0, "Bye.", "")]
    assert apply(made((0.0, 3.0, "Hi Sam.")), []).corrected is False
