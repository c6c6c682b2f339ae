"""`transcribe watch` as a real process on a real folder, checked through its store."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import REFERENCES, ROOT, SAMPLES, private_home, run_cli
from wer import wer

SPEECH = ["PTT-20240312-WA0007.opus", "audio_2024-03-12_18-45-02.ogg", "New Recording 12.m4a",
          "voicemail-8k.wav"]


@pytest.fixture
def space(tmp_path, home):
    """A watched folder, an output folder and a store of their own; the model cache is shared."""
    inbox, out, data = tmp_path / "inbox", tmp_path / "out", tmp_path / "home"
    inbox.mkdir()
    return inbox, out, private_home(data, home)


@contextmanager
def watcher(inbox: Path, out: Path, data: Path, *extra: str, env: dict | None = None):
    """A real `transcribe watch` of `inbox` with its store in `data`, `env` on top
    of this process's environment; its log beside its home."""
    log = (data.parent / "watch.log").open("a")
    env = {**os.environ, **(env or {}), "TRANSCRIBE_HOME": str(data)}
    proc = subprocess.Popen([sys.executable, "-m", "transcribe", "watch", str(inbox), "-o",
                             str(out), "--settle", "0.5", "--grace", "2", "--poll", "0.2",
                             *extra], env=env, stderr=log, cwd=ROOT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()


def jobs(data: Path) -> list[dict]:
    db = data / "data" / "transcribe.db"
    if not db.exists():
        return []
    try:
        with sqlite3.connect(db) as con:
            con.row_factory = sqlite3.Row
            rows = con.execute("SELECT j.*, t.text, t.data FROM jobs j LEFT JOIN transcripts t "
                               "ON t.job_id = j.id ORDER BY j.id").fetchall()
    except sqlite3.OperationalError:  # the watcher is still creating the store
        return []
    return [dict(r) for r in rows]


def wait_for(predicate, data: Path, timeout: float = 180, proc=None) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = jobs(data)
        if predicate(rows):
            return rows
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"watcher exited with {proc.returncode}: "
                                 f"{(data.parent / 'watch.log').read_text()}")
        time.sleep(0.2)
    raise AssertionError(f"timed out; jobs: {[(r['path'], r['state']) for r in jobs(data)]}\n"
                         f"{(data.parent / 'watch.log').read_text()}")


def settled(n: int):
    return lambda rows: (len(rows) >= n
                         and all(r["state"] in ("done", "failed") for r in rows))


def by_name(rows: list[dict]) -> dict[str, dict]:
    return {Path(r["path"]).name: r for r in rows}


def test_copy_rename_and_slow_write_each_give_one_whole_transcript(space):
    inbox, out, data = space
    with watcher(inbox, out, data) as proc:
        shutil.copy(SAMPLES / SPEECH[0], inbox / SPEECH[0])
        # by rename: written under a temporary name, then moved into place
        tmp = inbox / (SPEECH[1] + ".part")
        shutil.copy(SAMPLES / SPEECH[1], tmp)
        time.sleep(1.5)
        tmp.rename(inbox / SPEECH[1])
        # slowly, in chunks, over several seconds
        data_bytes = (SAMPLES / SPEECH[2]).read_bytes()
        with (inbox / SPEECH[2]).open("wb") as f:
            for i in range(0, len(data_bytes), len(data_bytes) // 10 + 1):
                f.write(data_bytes[i:i + len(data_bytes) // 10 + 1])
                f.flush()
                time.sleep(0.3)
        rows = by_name(wait_for(settled(3), data, proc=proc))
    assert set(rows) == set(SPEECH[:3])
    for name, row in rows.items():
        assert row["state"] == "done" and row["attempts"] == 1, row
        assert wer(REFERENCES[name]["text"], row["text"]) <= 0.15, row["text"]
        txt = out / "inbox" / (Path(name).stem + ".txt")
        assert txt.read_text().strip() == row["text"]
    assert by_name(jobs(data))[SPEECH[0]]["app"] == "WhatsApp"
    assert by_name(jobs(data))[SPEECH[0]]["sent_at"] == "2024-03-12"
    assert by_name(jobs(data))[SPEECH[1]]["sent_at"] == "2024-03-12T18:45:02"
    assert (SAMPLES / SPEECH[2]).read_bytes() == (inbox / SPEECH[2]).read_bytes()


def test_duplicates_once_and_a_reused_name_again(space):
    inbox, out, data = space
    with watcher(inbox, out, data) as proc:
        shutil.copy(SAMPLES / SPEECH[3], inbox / "note.wav")
        wait_for(settled(1), data, proc=proc)
        shutil.copy(SAMPLES / SPEECH[3], inbox / "copy of note.wav")   # same audio
        (inbox / "sub").mkdir()
        shutil.copy(SAMPLES / SPEECH[3], inbox / "sub" / "note.wav")   # same audio again
        time.sleep(3)
        assert len(jobs(data)) == 1
        (inbox / "note.wav").unlink()
        shutil.copy(SAMPLES / "New Recording 12.m4a", inbox / "note.wav")  # new audio, old name
        rows = wait_for(settled(2), data, proc=proc)
    assert len(rows) == 2
    assert "call me back" in rows[0]["text"] and "milk" in rows[1]["text"]
    assert "milk" in (out / "inbox" / "note.txt").read_text()


def test_bad_files_fail_once_with_a_reason_and_the_rest_go_on(space):
    inbox, out, data = space
    (inbox / "empty.opus").touch()
    (inbox / "letter.ogg").write_text("not audio at all\n")
    shutil.copy(SAMPLES / SPEECH[3], inbox / SPEECH[3])
    with watcher(inbox, out, data) as proc:
        rows = by_name(wait_for(settled(3), data, proc=proc))
        time.sleep(2)
        again = by_name(jobs(data))
    assert rows["empty.opus"]["state"] == "failed" and "empty" in rows["empty.opus"]["error"]
    assert rows["letter.ogg"]["state"] == "failed"
    assert "not an audio file" in rows["letter.ogg"]["error"]
    assert rows[SPEECH[3]]["state"] == "done"
    assert {n: r["attempts"] for n, r in again.items()} == {n: 1 for n in again}
    assert (inbox / "empty.opus").exists() and (inbox / "letter.ogg").read_text()
    status = run_cli("status", env={"TRANSCRIBE_HOME": str(data)})
    assert "failed: 2" in status.stdout and "done: 1" in status.stdout
    assert "letter.ogg  (not an audio file" in status.stdout


def test_kill_9_mid_backlog_then_restart_transcribes_each_note_once(space):
    inbox, out, data = space
    # 12 files, 4 distinct notes: each sample three times under different names
    for i in range(3):
        for sample in SPEECH:
            shutil.copy(SAMPLES / sample, inbox / f"{i}-{sample}")
    with watcher(inbox, out, data) as proc:
        wait_for(lambda rows: any(r["state"] == "done" for r in rows)
                 and any(r["state"] == "running" for r in rows), data, proc=proc)
        proc.kill()
        proc.wait()
    before = jobs(data)
    assert any(r["state"] == "running" for r in before)
    with watcher(inbox, out, data) as proc:
        rows = wait_for(lambda rows: len(rows) == 4 and all(r["state"] == "done" for r in rows),
                        data, proc=proc)
    assert len(rows) == 4
    assert all(r["attempts"] <= 2 for r in rows)
    # each copy gets its files, written from its note's one transcript
    txts = sorted(p for p in (out / "inbox").glob("*.txt"))
    assert len(txts) == 12, txts
    store_texts = {r["text"] for r in rows}
    assert {p.read_text().strip() for p in txts} == store_texts
    assert not list((out / "inbox").glob(".*.tmp"))


def test_start_on_a_folder_that_already_holds_notes_with_folder_settings(space):
    inbox, out, data = space
    (inbox / "english").mkdir()
    shutil.copy(SAMPLES / SPEECH[0], inbox / SPEECH[0])
    shutil.copy(SAMPLES / SPEECH[3], inbox / "english" / SPEECH[3])
    (inbox / "english" / ".transcribe.toml").write_text('language = "en"\nformats = "txt,srt"\n')
    with watcher(inbox, out, data) as proc:
        rows = by_name(wait_for(settled(2), data, proc=proc))
    forced = json.loads(rows[SPEECH[3]]["data"])
    detected = json.loads(rows[SPEECH[0]]["data"])
    assert forced["language"] == "en" and forced["language_probability"] == 1
    assert detected["language_probability"] < 1
    assert (out / "inbox" / "english" / "voicemail-8k.srt").exists()
    assert not (out / "inbox" / "PTT-20240312-WA0007.srt").exists()


def test_a_second_watcher_on_the_same_store_refuses(space):
    inbox, out, data = space
    with watcher(inbox, out, data) as first:
        time.sleep(2)
        assert first.poll() is None
        second = run_cli("watch", str(inbox), "-o", str(out),
                         env={"TRANSCRIBE_HOME": str(data)}, timeout=60)
    assert second.returncode == 6
    assert "another `transcribe watch` already runs" in second.stderr


def test_notes_kept_local_while_offline_go_to_the_cloud_when_it_is_back(space, home):
    from servers import API_KEY, asr_server, free_port

    from transcribe.models import resolve

    inbox, out, data = space
    port = free_port()
    model = "faster-whisper:" + resolve("tiny.en", home / "cache" / "models").location
    env = {"TRANSCRIBE_CLOUD_ALLOW": "1", "TRANSCRIBE_CLOUD_BASE_URL": f"http://127.0.0.1:{port}/v1",
           "TRANSCRIBE_CLOUD_MODEL": model, "TRANSCRIBE_CLOUD_API_KEY": API_KEY,
           "TRANSCRIBE_CLOUD_LOW_CONFIDENCE_LOGPROB": "0", "TRANSCRIBE_CLOUD_OFFLINE_TTL_S": "0.5",
           "TRANSCRIBE_WATCH_CLOUD_RETRY_S": "1"}
    os.environ.update(env)
    try:
        shutil.copy(SAMPLES / SPEECH[0], inbox / SPEECH[0])
        with watcher(inbox, out, data) as proc:
            [row] = wait_for(lambda rows: rows and rows[0]["state"] == "waiting_cloud", data,
                             proc=proc)
            local = json.loads(row["data"])
            assert local["engine"] == "local" and local["cloud_pending"] is True
            assert (out / "inbox" / "PTT-20240312-WA0007.txt").read_text().strip()
            with asr_server(data.parent, port=port):
                [row] = wait_for(lambda rows: rows[0]["state"] == "done", data, proc=proc)
    finally:
        for key in env:
            os.environ.pop(key, None)
    cloud = json.loads(row["data"])
    assert cloud["engine"] == "cloud" and cloud["provider"] == "127.0.0.1"
    assert "low-confidence" in cloud["cloud_reason"]
    assert wer(REFERENCES[SPEECH[0]]["text"], cloud["text"]) <= 0.2
    assert (out / "inbox" / "PTT-20240312-WA0007.txt").read_text().strip() == cloud["text"]


def test_a_long_note_reports_progress_while_it_runs(space):
    import numpy as np

    from transcribe.audio import decode

    inbox, out, data = space
    pieces = [decode(SAMPLES / name).samples for name in SPEECH] * 2
    samples = np.concatenate(pieces)  # about 55 s of speech: two windows, several segments
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    import wave

    with wave.open(str(inbox / "long.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(pcm.tobytes())
    seen = []
    with watcher(inbox, out, data) as proc:
        def progressing(rows):
            seen.extend(r["progress"] for r in rows if r["state"] == "running")
            return rows and rows[0]["state"] == "done"

        wait_for(progressing, data, proc=proc)
    assert any(p and 0 < p < 1 for p in seen), seen


def _service_ready(data: Path, proc) -> Path:
    sock = data / "data" / "engine.sock"
    log = data.parent / "watch.log"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and "loading model" not in log.read_text():
        assert proc.poll() is None, log.read_text()
        time.sleep(0.1)
    assert sock.exists(), log.read_text()
    return sock


def test_the_cli_hands_a_note_to_the_running_watcher(space):
    inbox, out, data = space
    note = SAMPLES / "PTT-20240312-WA0007.opus"
    env = {"TRANSCRIBE_HOME": str(data)}
    with watcher(inbox, out, data) as proc:
        sock = _service_ready(data, proc)
        assert sock.stat().st_mode & 0o777 == 0o600
        result = run_cli("-v", "--no-store", "--format", "json", str(note), env=env)
        assert result.returncode == 0, result.stderr
        transcript = json.loads(result.stdout)
        assert wer(REFERENCES[note.name]["text"], transcript["text"]) <= 0.15
        assert transcript["engine"] == "local" and transcript["model"] == "base"
        assert transcript["segments"] and transcript["file"] == str(note)
        assert "transcribed by the running service" in result.stderr
        assert "loading model" not in result.stderr  # the CLI never loaded one
        assert f"transcribing {note} for pid" in (data.parent / "watch.log").read_text()
        # A note the service would need another model for is transcribed by the CLI.
        other = run_cli("-v", "--no-store", "--compute-type", "float32", str(note), env=env)
        assert other.returncode == 0, other.stderr
        assert "the running service declined" in other.stderr
        assert "loading model" in other.stderr
        assert wer(REFERENCES[note.name]["text"], other.stdout) <= 0.15
    assert not sock.exists(), "the watcher removes its socket when it stops"


def test_the_cli_transcribes_itself_when_the_service_is_gone_or_hangs_up(space):
    import socket
    import threading

    _, _, data = space
    note = SAMPLES / "voicemail-8k.wav"
    env = {"TRANSCRIBE_HOME": str(data)}
    sock_path = data / "data" / "engine.sock"
    sock_path.parent.mkdir(parents=True, exist_ok=True)
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(sock_path))  # what a watcher killed with -9 leaves: nobody listens
    stale.close()
    result = run_cli("-v", "--no-store", str(note), env=env)
    assert result.returncode == 0, result.stderr
    assert "did not answer" in result.stderr and "loading model" in result.stderr
    assert wer(REFERENCES[note.name]["text"], result.stdout) <= 0.15

    sock_path.unlink()
    server = socket.socket(socket.AF_UNIX)  # a service that dies mid-request
    server.bind(str(sock_path))
    server.listen(1)

    def hang_up():  # after taking the whole request, as if it died transcribing
        conn, _ = server.accept()
        with conn, conn.makefile("rb") as reader:
            request = json.loads(reader.readline())
            assert len(reader.read(4 * request["samples"])) == 4 * request["samples"]

    thread = threading.Thread(target=hang_up)
    thread.start()
    result = run_cli("-v", "--no-store", str(note), env=env)
    thread.join(10)
    server.close()
    assert result.returncode == 0, result.stderr
    assert "hung up" in result.stderr and "loading model" in result.stderr
    assert wer(REFERENCES[note.name]["text"], result.stdout) <= 0.15


def test_a_dropped_note_is_picked_up_by_notification_and_one_from_before_at_start(space):
    inbox, out, data = space
    shutil.copy(SAMPLES / SPEECH[3], inbox / "before.wav")  # arrived while it was stopped
    # an hour between polls: only a notification explains a pickup of the second note
    with watcher(inbox, out, data, "--poll", "3600", "--rescan", "3600") as proc:
        wait_for(settled(1), data, proc=proc)
        (inbox / "sub").mkdir()
        shutil.copy(SAMPLES / SPEECH[2], inbox / "sub" / "after.m4a")
        rows = by_name(wait_for(settled(2), data, proc=proc))
    assert rows["before.wav"]["state"] == "done" and "call me back" in rows["before.wav"]["text"]
    assert rows["after.m4a"]["state"] == "done" and "milk" in rows["after.m4a"]["text"]


@pytest.mark.parametrize("cloud", ["not allowed", "allowed, offline"])
def test_a_model_that_cannot_be_used_costs_no_note_an_attempt(space, home, tmp_path, cloud):
    """The model is a folder on a drive not mounted yet (no model.bin in it).
    Notes wait for it, none failed and none charged an attempt, however long it
    takes, and `transcribe status` says what they wait for; once the model is
    there, each is transcribed. Before, every note was failed for good after
    three tries five seconds apart. The same when the cloud may be asked but
    cannot be reached: neither fault is the notes'."""
    from servers import free_port

    from transcribe import Settings
    from transcribe.engine import LocalEngine

    inbox, out, data = space
    env = {}
    if cloud != "not allowed":
        env = {"TRANSCRIBE_CLOUD_ALLOW": "1", "TRANSCRIBE_CLOUD_API_KEY": "test-key",
               "TRANSCRIBE_CLOUD_BASE_URL": f"http://127.0.0.1:{free_port()}/v1"}
    model = tmp_path / "drive" / "whisper-base"
    model.mkdir(parents=True)
    for name in SPEECH[:2]:
        shutil.copy(SAMPLES / name, inbox / name)
    with watcher(inbox, out, data, env={"TRANSCRIBE_MODEL": str(model), **env}) as proc:
        wait_for(lambda rows: len(rows) == 2, data, proc=proc)
        log = data.parent / "watch.log"
        deadline = time.monotonic() + 60
        while "the model cannot be used" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        time.sleep(12)  # past the first retry
        waiting = jobs(data)
        assert [(r["state"], r["attempts"]) for r in waiting] == [("pending", 0)] * 2, waiting
        assert log.read_text().count("the model cannot be used") == 1, log.read_text()
        status = run_cli("status", env={"TRANSCRIBE_HOME": str(data)})
        assert "pending" in status.stdout and "(waiting for the model: " in status.stdout, \
            status.stdout  # the reason is not in the watcher's log alone
        here = Path(LocalEngine(Settings.load({"TRANSCRIBE_HOME": str(home)})).resolved.location)
        for part in here.iterdir():  # the drive is mounted: the model is there
            shutil.copy(part, model / part.name)
        rows = wait_for(settled(2), data, timeout=300, proc=proc)
    assert [r["state"] for r in rows] == ["done", "done"], rows
    assert all(r["text"] for r in rows) and "can be used again" in log.read_text()
    assert not any(r["error"] for r in rows), rows
