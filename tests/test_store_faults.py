"""The store's own trouble is never a note's: a store another process holds locked, a full
data disk, a job left running by a process whose pid now names another one."""

from __future__ import annotations

import logging
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import ROOT, SAMPLES, private_home
from servers import API_KEY, RawServer, http_response
from test_watch import jobs, watcher

import transcribe.store as store_module
from transcribe import Settings, Transcriber
from transcribe.audio import file_sha256
from transcribe.store import Store

NOTE = "PTT-20240312-WA0007.opus"
OTHER = "voicemail-8k.wav"


def recording_server() -> RawServer:
    """A provider that counts what is sent to it and refuses it all."""
    def reply(server, peer, headers) -> None:
        peer.send(http_response("500 Internal Server Error", b'{"error": {"message": "no"}}'))
    return RawServer(reply)


def cloud_settings(home: Path, url: str) -> Settings:
    return Settings.load({"TRANSCRIBE_HOME": str(home), "TRANSCRIBE_CLOUD_ALLOW": "1",
                          "TRANSCRIBE_CLOUD_BASE_URL": url, "TRANSCRIBE_CLOUD_MODEL": "whisper-1",
                          "TRANSCRIBE_CLOUD_API_KEY": API_KEY})


def locker(db: Path) -> sqlite3.Connection:
    """Another process's hold on the store: its write lock, taken and kept."""
    con = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    con.execute("BEGIN EXCLUSIVE")
    return con


def test_a_store_held_locked_neither_fails_a_good_note_nor_uploads_it(tmp_path, home,
                                                                      monkeypatch):
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_S", 1.0)  # SQLite's wait: 30 s, shortened
    store = Store(tmp_path / "data" / "transcribe.db")  # the TUI's: not patient
    job, _ = store.add_job(file_sha256(SAMPLES / NOTE), str(SAMPLES / NOTE), 1)
    store.claim(job.id)
    store.start(job.id)
    with recording_server() as server:
        transcriber = Transcriber(cloud_settings(home, server.url))
        transcriber.local.load()
        held = locker(store.path)
        try:
            transcript = transcriber.transcribe(
                SAMPLES / NOTE, on_progress=store.progress_callback(job.id, every_s=0))
        finally:
            held.execute("COMMIT")
            held.close()
            transcriber.close()
    assert server.sent == [], "nothing may be uploaded for the store's trouble"
    assert transcript.engine == "local" and "Sam" in transcript.text
    assert store.finish(job.id, transcript) == "done"
    assert store.job(job.id).attempts == 1


def test_a_patient_store_waits_for_a_lock_held_past_sqlites_wait(tmp_path, monkeypatch,
                                                                 caplog):
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_S", 0.3)
    monkeypatch.setattr(store_module, "RETRY_S", 0.2)
    store = Store(tmp_path / "transcribe.db", patient=True)
    held = locker(store.path)
    release = threading.Timer(2.0, lambda: held.execute("COMMIT"))
    release.start()
    try:
        with caplog.at_level(logging.WARNING, "transcribe.store"):
            job, created = store.add_job("a" * 64, str(SAMPLES / NOTE), 1)
    finally:
        release.join()
        held.close()
    assert created and store.job(job.id).state == "pending"
    waits = [r.getMessage() for r in caplog.records if "holds it locked" in r.getMessage()]
    assert len(waits) == 1, caplog.text
    assert "can be written again" in caplog.text


@pytest.fixture
def data_disk(tmp_path, home):
    """A home whose data folder (the store) is a 4 MB tmpfs (root only, as the CI runs);
    the watcher's log beside the home, off that disk."""
    data = private_home(tmp_path / "home", home)
    disk = data / "data"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (not root)")
    yield data, disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path) -> Path:
    """Fill the disk to its last byte; return the filler."""
    filler = disk / "filler"
    with filler.open("ab", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    return filler


def test_a_full_data_disk_makes_the_watcher_wait_and_costs_no_attempt(tmp_path, data_disk):
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    data, disk = data_disk
    log = tmp_path / "watch.log"
    shutil.copy(SAMPLES / NOTE, inbox / NOTE)
    filler = fill(disk)  # full from the start: no store can be made
    with watcher(inbox, out, data) as proc:
        wait_until(lambda: "disk is full" in log.read_text(), proc, log)
        time.sleep(3)
        assert proc.poll() is None, log.read_text()
        filler.unlink()
        wait_until(lambda: [r["state"] for r in jobs(data)] == ["done"], proc, log)
        assert jobs(data)[0]["attempts"] == 1
        # full again while a note is being transcribed: its transcript waits for space
        shutil.copy(SAMPLES / OTHER, inbox / OTHER)
        wait_until(lambda: any(r["started"] for r in jobs(data)), proc, log)
        filler = fill(disk)
        waits = log.read_text().count("disk is full")
        wait_until(lambda: log.read_text().count("disk is full") > waits, proc, log)
        time.sleep(3)
        assert proc.poll() is None, log.read_text()
        filler.unlink()
        wait_until(lambda: [r["state"] for r in jobs(data)] == ["done", "done"], proc, log)
    rows = jobs(data)
    assert [r["attempts"] for r in rows] == [1, 1]
    assert "Traceback" not in log.read_text()
    assert (out / "inbox" / (Path(OTHER).stem + ".txt")).exists()


def wait_until(predicate, proc, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"watcher exited with {proc.returncode}: {log.read_text()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out: {log.read_text()}")
        time.sleep(0.2)


CLAIM = """
import sys, time
from transcribe.audio import file_sha256
from transcribe.store import Store
store = Store(sys.argv[1])
job, _ = store.add_job(file_sha256(sys.argv[2]), sys.argv[2], 1, state="running")
store.start(job.id)
print(job.id, flush=True)
time.sleep(600)
"""


def left_running_by_a_reused_pid(db: Path, note: Path, strangers: list) -> int:
    """A process takes a note's job and is killed -9; its pid then names a stranger, a
    live process started since with nothing to do with the store (what pid reuse does
    after a kill -9). Return the job's id."""
    owner = subprocess.Popen([sys.executable, "-c", CLAIM, str(db), str(note)],
                             stdout=subprocess.PIPE, text=True, cwd=ROOT)
    job_id = int(owner.stdout.readline())
    owner.kill()
    owner.wait()
    strangers.append(subprocess.Popen(["sleep", "600"]))
    with sqlite3.connect(db) as con:
        con.execute("UPDATE jobs SET pid=? WHERE id=?", (strangers[-1].pid, job_id))
    return job_id


def test_a_job_left_running_under_a_reused_pid_is_taken_back(tmp_path, home):
    inbox, out, elsewhere = tmp_path / "inbox", tmp_path / "out", tmp_path / "elsewhere"
    inbox.mkdir()
    elsewhere.mkdir()
    data = private_home(tmp_path / "home", home)
    log = tmp_path / "watch.log"
    db = data / "data" / "transcribe.db"
    Store(db).close()
    notes = [elsewhere / NOTE, elsewhere / OTHER]  # (the TUI's: outside the watched folder)
    for note in notes:
        shutil.copy(SAMPLES / note.name, note)
    strangers: list[subprocess.Popen] = []
    try:
        first = left_running_by_a_reused_pid(db, notes[0], strangers)  # before the watcher
        with watcher(inbox, out, data) as proc:
            wait_until(lambda: state(db, first) == "done", proc, log, timeout=300)
            second = left_running_by_a_reused_pid(db, notes[1], strangers)  # while it runs
            wait_until(lambda: state(db, second) == "done", proc, log)
    finally:
        for stranger in strangers:
            stranger.kill()
            stranger.wait()
    assert log.read_text().count("interrupted job(s) back in the queue") == 2


def state(db: Path, job_id: int) -> str:
    with sqlite3.connect(db) as con:
        return con.execute("SELECT state FROM jobs WHERE id=?", (job_id,)).fetchone()[0]
