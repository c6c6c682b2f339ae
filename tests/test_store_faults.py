"""The store's own trouble is never a note's: a store another process holds locked, a full
data disk, a job left running by a process whose pid now names another one."""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import ROOT, SAMPLES
from servers import API_KEY, RawServer, http_response

import transcribe.store as store_module
from transcribe import Settings, Transcriber
from transcribe.audio import file_sha256
from transcribe.store import Store

NOTE = "PTT-20240312-WA0007.opus"


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
