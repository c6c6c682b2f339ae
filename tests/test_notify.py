"""Desktop notifications from the real watcher, through a real session D-Bus
(`dbus-daemon --session`) to a notification service that records what it is sent."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import wave
from pathlib import Path

import numpy as np
import pytest
from conftest import REFERENCES, ROOT, SAMPLES
from test_tui import app_home, filled_home  # noqa: F401 - fixtures
from test_watch import settled, space, wait_for, watcher  # noqa: F401 - space is a fixture

from transcribe.audio import decode
from transcribe.notify import QUIET_S, Note, message

pytestmark = pytest.mark.skipif(shutil.which("dbus-daemon") is None,
                                reason="no dbus-daemon (Debian's dbus package)")


@pytest.fixture
def session_bus(tmp_path):
    """A session bus of our own: its address, as a desktop session sets it."""
    daemon = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--print-address"],
                              stdout=subprocess.PIPE, text=True)
    address = daemon.stdout.readline().strip()
    yield address
    daemon.terminate()
    daemon.wait(10)


class Desktop:
    """The notification service on the bus: what it was sent, and a click."""

    def __init__(self, record: Path, clicks: Path) -> None:
        self.record, self.clicks = record, clicks

    def sent(self) -> list[dict]:
        return [json.loads(line) for line in self.record.read_text().splitlines()]

    def wait(self, count: int, timeout: float = 60) -> list[dict]:
        """The notifications, once `count` came and no more in twice the burst window."""
        deadline = time.monotonic() + timeout
        while len(self.sent()) < count and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2 * QUIET_S + 1)
        return self.sent()

    def click(self, notification: dict) -> None:
        with self.clicks.open("a") as f:
            f.write(f"{notification['id']}\n")


@pytest.fixture
def desktop(session_bus, tmp_path):
    record, clicks = tmp_path / "notifications.jsonl", tmp_path / "clicks.txt"
    service = subprocess.Popen([sys.executable, str(ROOT / "tests" / "notification_server.py"),
                                str(record), str(clicks)],
                               env={**os.environ, "DBUS_SESSION_BUS_ADDRESS": session_bus})
    deadline = time.monotonic() + 30
    while not record.exists():
        assert service.poll() is None and time.monotonic() < deadline, "no notification service"
        time.sleep(0.1)
    yield Desktop(record, clicks)
    service.terminate()
    service.wait(10)


def _env(session_bus: str, tmp_path: Path, **more: str) -> dict:
    """A desktop session's environment; $TERMINAL a script that records what it runs."""
    terminal = tmp_path / "terminal"
    terminal.write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path / 'terminal.log'}\n")
    terminal.chmod(0o755)
    return {"DBUS_SESSION_BUS_ADDRESS": session_bus, "TERMINAL": str(terminal), **more}


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def test_a_dropped_note_gives_one_notification_with_its_sender_and_first_words(
        space, session_bus, desktop, tmp_path):
    inbox, out, data = space
    name = "PTT-20240312-WA0007.opus"
    with watcher(inbox, out, data, env=_env(session_bus, tmp_path)) as proc:
        shutil.copy(SAMPLES / name, inbox / name)
        rows = wait_for(settled(1), data, proc=proc)
        sent = desktop.wait(1)
        assert len(sent) == 1, sent
        shown = sent[0]
        assert "WhatsApp" in shown["summary"] and re.search(r"\d:\d\d", shown["summary"])
        assert name in shown["body"]
        first = _words(rows[0]["text"])[:3]
        assert first and " ".join(first) in " ".join(_words(shown["body"])), (first, shown)
        assert set(_words(REFERENCES[name]["text"])) & set(_words(shown["body"]))

        desktop.click(shown)  # the desktop's "default" action: the TUI on that note
        clicked = tmp_path / "terminal.log"
        deadline = time.monotonic() + 20
        while not clicked.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert clicked.exists(), "clicking opened nothing"
        assert clicked.read_text().split()[-4:] == ["transcribe", "tui", "--note",
                                                    str(rows[0]["id"])]


def test_a_folder_set_to_title_sends_no_word_of_the_note(space, session_bus, desktop, tmp_path):
    inbox, out, data = space
    name = "PTT-20240312-WA0007.opus"
    (inbox / ".transcribe.toml").write_text('notify = "title"\n')
    with watcher(inbox, out, data, env=_env(session_bus, tmp_path)) as proc:
        shutil.copy(SAMPLES / name, inbox / name)
        rows = wait_for(settled(1), data, proc=proc)
        sent = desktop.wait(1)
    assert len(sent) == 1, sent
    said = set(_words(sent[0]["summary"] + " " + sent[0]["body"]))
    heard = {w for w in _words(rows[0]["text"]) if len(w) > 2}
    assert heard and not said & heard, (said & heard, sent)
    assert "WhatsApp" in sent[0]["summary"] and name in sent[0]["body"]


def _thirty_notes(folder: Path) -> None:
    """30 distinct short notes: 2 s of a real one, from 30 offsets 0.2 s apart. (30 copies
    of sample_audio/yes.wav, padded apart, took 1 to 236 s each: the model hears "D.S. DS."
    in its 0.9 s and the engine tries hard; these take 0.2-1.6 s, 2 busy cores.)"""
    speech = decode(SAMPLES / "PTT-20240312-WA0007.opus").samples
    folder.mkdir()
    for i in range(30):
        cut = speech[int(i * 0.2 * 16000):int((i * 0.2 + 2.0) * 16000)]
        with wave.open(str(folder / f"note-{i:02d}.wav"), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(16000)
            w.writeframes((np.clip(cut, -1, 1) * 32767).astype("<i2").tobytes())


@pytest.mark.timeout(1500)  # 30 notes: 4 min on 2 cores shared with other work, 10+ at worst
def test_thirty_notes_at_once_give_one_summary(space, session_bus, desktop, tmp_path):
    inbox, out, data = space
    _thirty_notes(tmp_path / "export")
    # (English named: cut mid-word, a note's language is unsure and decoded in several)
    env = _env(session_bus, tmp_path, TRANSCRIBE_LANGUAGE="en")
    with watcher(inbox, out, data, env=env) as proc:
        time.sleep(1)  # the watcher is listening
        (tmp_path / "export").rename(inbox / "export")  # as an unzipped chat export lands
        wait_for(settled(30), data, proc=proc, timeout=1200)
        sent = desktop.wait(1)
    assert len(sent) == 1, [s["summary"] for s in sent]
    assert sent[0]["summary"].startswith("30 voice notes transcribed"), sent[0]
    assert "and 27 more" in sent[0]["body"]


def test_without_a_session_bus_the_watcher_works_and_says_so_once(space, tmp_path):
    inbox, out, data = space
    env = {k: v for k, v in os.environ.items() if k not in ("DBUS_SESSION_BUS_ADDRESS", "DISPLAY")}
    name = "PTT-20240312-WA0007.opus"
    with watcher(inbox, out, data, env=env) as proc:
        shutil.copy(SAMPLES / name, inbox / name)
        wait_for(settled(1), data, proc=proc)
        time.sleep(2 * QUIET_S + 1)  # the note's notification would have gone by now
        assert proc.poll() is None
    log = (data.parent / "watch.log").read_text()
    said = [line for line in log.splitlines() if "notification" in line.lower()]
    assert len(said) == 1 and "desktop notifications off" in said[0], log
    assert "Traceback" not in log


def test_a_summary_names_the_first_notes_and_counts_the_failed():
    notes = [Note(1, "a.opus", "Alice (WhatsApp)", 12.0, "Hello there, see you at eight"),
             Note(2, "b.opus", None, 61.0, ""),
             Note(3, "c.opus", None, None, None, error="not audio"),
             Note(4, "d.opus", None, 3.0, "Hidden", mode="title"),
             Note(5, "e.opus", None, 3.0, "Off", mode="off")]
    title, body = message(notes)
    assert title == "3 voice notes transcribed, 1 could not be transcribed"
    assert body.splitlines() == ["Alice (WhatsApp) · 0:12: Hello there, see you at eight",
                                 "b.opus · 1:01: (no speech)", "c.opus: not audio",
                                 "and 1 more"]
    assert message(notes[4:]) is None
    assert message(notes[2:3]) == ("Could not transcribe c.opus", "not audio")


async def test_the_tui_opened_from_a_notification_shows_that_note(app_home):
    from textual.widgets import Static

    from transcribe.settings import Settings
    from transcribe.store import Store
    from tui.app import TranscribeApp

    store = Store.open_default(app_home / "data")
    job = next(j for j in store.jobs() if j.app == "WhatsApp")
    store.close()
    app = TranscribeApp(Settings.load(), open_job=job.id)  # `transcribe tui --note ID`
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        meta = str(app.screen.query_one("#meta", Static).render())
        assert "PTT-20240312-WA0007.opus" in meta
