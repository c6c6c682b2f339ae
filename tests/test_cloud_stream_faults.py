"""A hostile look at the streamed cloud uploads: providers that lie, parts that fail
after others went up, notes that change while they are read, and long silences.

The real command against servers on loopback: open-asr-server where it can behave as
needed, a bare-socket server (`servers.RawServer`) for answers no real server gives.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

import pytest
from conftest import SAMPLES, json_lines, run_cli
from servers import RawServer, free_port, http_response
from test_cloud import upload_log
from test_cloud_stream import Counted, _silence_then_speech
from test_watch import space, wait_for, watcher  # noqa: F401 - space is a fixture

from transcribe.audio import decode
from transcribe.cloud import prepare_uploads

NOTE = SAMPLES / "PTT-20240312-WA0007.opus"  # 8.4 s, 13.8 kB: sent as it is
SPLIT_LIMIT = 9000  # the same note in 3 Opus parts
KEY = "test-key-5e2a"


def cloud_env(home, url: str, **extra: str) -> dict:
    return {"TRANSCRIBE_HOME": str(home), "TRANSCRIBE_CLOUD_ALLOW": "1",
            "TRANSCRIBE_CLOUD_BASE_URL": url, "TRANSCRIBE_CLOUD_API_KEY": KEY, **extra}


def answering(body: dict):
    """A provider that answers every upload with `body`."""
    data = json.dumps(body).encode()

    def reply(server, peer, headers) -> None:
        peer.send(http_response("200 OK", data))
    return reply


# --- a provider that lies ------------------------------------------------------------

LYING_TIMES = {"text": "early late", "language": "english", "duration": 9999,
               "segments": [{"start": 40.0, "end": 999.0, "text": "late"},
                            {"start": -5.0, "end": 1.0, "text": "early"}]}


def test_a_providers_times_stay_inside_the_part_they_came_from(tmp_path):
    """Each of 3 parts is answered with a segment before its start and one running
    900 s past it, out of order: each comes back inside its own part, in time order,
    and none after the note's end (before, 'late' sat at 40-999 s of an 8.4 s note,
    ahead of the next part's 'early')."""
    with RawServer(answering(LYING_TIMES)) as server:
        result = run_cli("--json", "--engine", "cloud", str(NOTE),
                         env=cloud_env(tmp_path, server.url,
                                       TRANSCRIBE_CLOUD_MAX_UPLOAD_BYTES=str(SPLIT_LIMIT)))
    assert result.returncode == 0, result.stderr
    [t] = json_lines(result.stdout)
    audio = decode(NOTE)
    parts = list(prepare_uploads(NOTE, audio, SPLIT_LIMIT))
    assert len(parts) >= 2 and len(upload_log(tmp_path)) == len(parts)
    assert t["duration"] == pytest.approx(audio.duration, abs=0.01)
    assert t["text"] == " ".join(["early late"] * len(parts))
    segments = t["segments"]
    for n, part in enumerate(parts):
        early, late = segments[2 * n:2 * n + 2]
        assert early["start"] == pytest.approx(part.offset, abs=1e-3)
        assert part.offset <= late["start"] <= late["end"] <= part.offset + part.seconds + 1e-3
    starts = [s["start"] for s in segments]
    assert starts == sorted(starts)
    assert all(0 <= s["start"] <= s["end"] <= t["duration"] for s in segments)


def test_a_whole_note_sent_as_it_is_keeps_its_segments_within_it(tmp_path):
    """Sent as it is, a note has no length until it has been read: its segments end
    where it does."""
    with RawServer(answering(LYING_TIMES)) as server:
        result = run_cli("--json", "--engine", "cloud", str(NOTE),
                         env=cloud_env(tmp_path, server.url))
    assert result.returncode == 0, result.stderr
    [t] = json_lines(result.stdout)
    assert t["text"] == "early late" and t["language"] == "en"
    assert [(s["start"], s["end"]) for s in t["segments"]] == \
        [(0.0, 1.0), (t["duration"], t["duration"])]


@pytest.mark.parametrize("body, why", [
    ({"text": "a", "segments": [{"start": None, "end": 2, "text": "a"}]},
     "a segment's time is null"),
    ({"text": "a", "segments": [{"start": "zero", "end": 2, "text": "a"}]},
     "a segment's time is \"zero\""),
    ({"text": "a", "segments": ["a", "b"]}, "its segments are not a list of segments"),
    ({"text": "a", "segments": {"start": 0}}, "its segments are not a list of segments"),
    ({"text": None}, None),
])
def test_an_answer_that_is_not_a_transcription_is_one_clear_line(tmp_path, body, why):
    """Before, each of these was an 'internal error' (exit 70) asking the user to
    report a bug of ours; and a text of null came back as the word 'None'."""
    with RawServer(answering(body)) as server:
        result = run_cli("--engine", "cloud", str(NOTE), env=cloud_env(tmp_path, server.url))
    assert result.returncode == 4, result.stderr
    assert result.stdout == ""
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"error: {NOTE}: 127.0.0.1: the answer is not a transcription")
    assert why is None or why in first
    [entry] = upload_log(tmp_path)
    assert entry["outcome"].startswith("failed: 127.0.0.1: the answer is not a transcription")


def test_a_language_that_is_not_a_name_is_left_unsaid(tmp_path):
    body = {"text": "hello", "language": 5, "duration": "long"}
    with RawServer(answering(body)) as server:
        result = run_cli("--json", "--engine", "cloud", str(NOTE),
                         env=cloud_env(tmp_path, server.url))
    assert result.returncode == 0, result.stderr
    [t] = json_lines(result.stdout)
    assert t["text"] == "hello" and t["language"] is None
    assert t["segments"][0]["start"] == 0.0


# --- a note that changes while it is uploaded --------------------------------------------

def rewriting(note: Path, new: Path, body: dict, *, how: str):
    """A provider that answers `body`; when the first part arrives, a sync client
    writes `new` over `note`: in place (the same file, truncated and written) or
    by renaming a finished copy over it."""
    data = json.dumps(body).encode()
    done = threading.Event()

    def reply(server, peer, headers) -> None:
        if not done.is_set():
            done.set()
            if how == "in place":
                shutil.copyfile(new, note)
            else:
                shutil.copyfile(new, note.with_name(".partial"))
                os.replace(note.with_name(".partial"), note)
        peer.send(http_response("200 OK", data))
    return reply


@pytest.mark.parametrize("how", ["in place", "renamed over"])
def test_a_note_rewritten_while_it_goes_up_is_one_clear_line(tmp_path, how):
    """Two and a half minutes (read as a stream, not held whole) in parts of about 20 s;
    a sync client writes another version over it as the first part arrives. Before,
    the command said nothing: in place, the parts after that were cut from the new
    version (or stopped where it ended) and made one transcript with the old one's
    first part; renamed over, the reading that re-reads a part too large took the
    new file. Now: exit 1, one line that says what happened, no transcript."""
    note, new = tmp_path / "note.wav", tmp_path / "new.wav"
    _silence_then_speech(note, 5, 140, after_s=5)
    _silence_then_speech(new, 1, 20)
    with RawServer(rewriting(note, new, {"text": "words"}, how=how)) as server:
        result = run_cli("--json", "--engine", "cloud", str(note),
                         env=cloud_env(tmp_path / "home", server.url,
                                       TRANSCRIBE_CLOUD_MAX_UPLOAD_BYTES="60000"))
    assert result.stdout == "", "no transcript mixes two versions of a note"
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines()[0] == (
        f"error: {note}: changed while it was being transcribed (a sync client or a "
        "download still writing it?); transcribe it again")
    assert note.read_bytes() == new.read_bytes(), "the user's file is the sync client's"


def test_a_note_rewritten_while_it_waited_for_the_cloud_keeps_its_own_result(space):
    """The watcher keeps a note's local result while offline and asks the cloud later.
    If a sync client wrote another version over it meanwhile, that later ask is about
    another note: before, the cloud's answer for the new version was stored as the
    old version's transcript (and written over its file). Now the old job keeps its
    local result, and the new version is a job of its own that gets its own answer."""
    inbox, out, data = space
    port = free_port()
    env = {**cloud_env(data, f"http://127.0.0.1:{port}/v1"),
           "TRANSCRIBE_CLOUD_LOW_CONFIDENCE_LOGPROB": "0",  # every local result goes up
           "TRANSCRIBE_CLOUD_OFFLINE_TTL_S": "0.5", "TRANSCRIBE_WATCH_CLOUD_RETRY_S": "1"}
    note = inbox / "note.ogg"
    shutil.copy(NOTE, note)
    with watcher(inbox, out, data, env=env) as proc:
        [old] = wait_for(lambda rows: rows and rows[0]["state"] == "waiting_cloud", data,
                         proc=proc)
        shutil.copyfile(SAMPLES / "audio_2024-03-12_18-45-02.ogg", note)  # in place
        wait_for(lambda rows: len(rows) == 2 and rows[1]["state"] == "waiting_cloud", data,
                 proc=proc)
        answer = {"text": "the cloud's words", "language": "english"}
        with RawServer(answering(answer), port=port):
            rows = wait_for(lambda rows: all(r["state"] == "done" for r in rows), data,
                            proc=proc)
    first, second = (json.loads(r["data"]) for r in rows)
    assert rows[0]["sha256"] == old["sha256"]
    assert first["engine"] == "local" and first["text"] == json.loads(old["data"])["text"]
    assert second["engine"] == "cloud" and second["text"] == "the cloud's words"
    assert (out / "inbox" / "note.txt").read_text().strip() == "the cloud's words"


# --- long silences and changing density ---------------------------------------------------

def test_speech_after_silence_is_not_read_again_for_every_part(tmp_path):
    """The parts' length came from the whole note's rate where it went over the limit,
    here in the silence; every later part of speech was over, and each was read
    again from the file's start to halve it: the readings grow with the note times
    its parts (17 for these 5 minutes, 36 for 12). Now each part is sized from the
    one before: 6."""
    note = tmp_path / "note.wav"
    _silence_then_speech(note, 60, 240)
    stream = Counted(note)
    parts = list(prepare_uploads(note, stream, 60_000))
    assert all(len(p.data) <= 60_000 for p in parts)
    assert sum(p.seconds for p in parts) == pytest.approx(stream.duration, abs=0.01)
    assert stream.readers <= 8, (stream.readers, [round(p.seconds) for p in parts])


# --- a part that fails after others went up -------------------------------------------

@pytest.mark.parametrize("status", ["400 Bad Request", "413 Payload Too Large"])
def test_a_part_refused_after_others_went_up_says_so(tmp_path, status):
    """Parts 1 and 2 are answered, part 3 is refused: no transcript of two thirds of
    the note, and the line says that parts went up (and were paid for) for nothing;
    before, it read as if nothing had been sent."""
    answered = []

    def reply(server, peer, headers) -> None:
        answered.append(headers)
        if len(answered) <= 2:
            peer.send(http_response("200 OK", b'{"text": "fine"}'))
        else:
            peer.send(http_response(status, b'{"error": {"message": "not this one"}}'))
    with RawServer(reply) as server:
        result = run_cli("--json", "--engine", "cloud", str(NOTE),
                         env=cloud_env(tmp_path, server.url,
                                       TRANSCRIBE_CLOUD_MAX_UPLOAD_BYTES=str(SPLIT_LIMIT)))
    assert result.returncode == 4, result.stderr
    assert result.stdout == ""
    first = result.stderr.splitlines()[0]
    assert f"HTTP {status[:3]}: not this one" in first
    assert first.endswith("(after 2 part(s) of the note had gone up: no transcript is made "
                          "of some parts only)"), first
    outcomes = [e["outcome"] for e in upload_log(tmp_path)]
    assert outcomes[:2] == ["ok", "ok"] and outcomes[2].startswith("failed: 127.0.0.1: ")
    assert len(outcomes) == 3, "nothing after the refused part"


def test_the_notes_language_is_the_one_most_of_its_words_were_heard_in(tmp_path):
    """A part of silence comes back as 'english' with no words, the next one in German,
    the last as 'english' with one word: the note is German (before, the first
    part's language stood, words or not)."""
    answers = [{"text": "", "language": "english"},
               {"text": "Guten Morgen, hier ist Anna. Bis morgen.", "language": "german"},
               {"text": "ok", "language": "english"}]
    asked = []

    def reply(server, peer, headers) -> None:
        asked.append(headers)
        answer = answers[min(len(asked), len(answers)) - 1]
        peer.send(http_response("200 OK", json.dumps(answer).encode()))
    with RawServer(reply) as server:
        result = run_cli("--json", "--engine", "cloud", str(NOTE),
                         env=cloud_env(tmp_path, server.url,
                                       TRANSCRIBE_CLOUD_MAX_UPLOAD_BYTES=str(SPLIT_LIMIT)))
    assert result.returncode == 0, result.stderr
    [t] = json_lines(result.stdout)
    assert len(asked) == 3
    assert t["language"] == "de", t


def test_a_note_deleted_while_its_parts_go_up_says_how_far_it_got(tmp_path):
    """A part over the limit is read again from the file; deleted as the first part
    arrived, the note cannot be. Before, the line said 'no such file' as if nothing
    had been sent."""
    note = tmp_path / "note.wav"
    _silence_then_speech(note, 90, 60, after_s=10)

    def reply(server, peer, headers) -> None:
        if note.exists():
            note.unlink()
        peer.send(http_response("200 OK", b'{"text": "fine"}'))
    with RawServer(reply) as server:
        result = run_cli("--json", "--engine", "cloud", str(note),
                         env=cloud_env(tmp_path / "home", server.url,
                                       TRANSCRIBE_CLOUD_MAX_UPLOAD_BYTES="60000"))
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    assert result.stderr.splitlines()[0] == (
        f"error: {note}: no such file (after 1 part(s) of the note had gone up: no "
        "transcript is made of some parts only)")


def test_a_note_is_hashed_once_for_the_cloud_and_not_at_all_when_it_stays_here(
        home, monkeypatch):
    """The change check and the upload log share one SHA-256 of the note; a note
    whose local result is kept (cloud allowed, jfk heard confidently) is not read
    again for one. Before, each cloud note was read twice more, each note kept
    here once more."""
    import transcribe.cloud
    import transcribe.pipeline
    from transcribe import Settings, Transcriber

    real, hashed = transcribe.pipeline.file_sha256, []

    def counted(path, *args, **kwargs):
        hashed.append(Path(path).name)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(transcribe.pipeline, "file_sha256", counted)
    monkeypatch.setattr(transcribe.cloud, "file_sha256", counted)
    jfk = SAMPLES / "real" / "jfk-PTT-20240101-WA0001.opus"
    with RawServer(answering({"text": "ask not"})) as server:
        settings = Settings.load({**os.environ, **cloud_env(home, server.url)})
        transcriber = Transcriber(settings)
        try:
            assert transcriber.transcribe(NOTE, engine="cloud").text == "ask not"
            assert hashed == [NOTE.name]
            hashed.clear()
            kept = transcriber.transcribe(jfk)
            assert kept.engine == "local" and "ask not what your country" in kept.text
            assert hashed == []
        finally:
            transcriber.close()
