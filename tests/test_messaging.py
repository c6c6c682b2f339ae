"""Which app sent a note, and when, from the file names messaging apps use."""

from __future__ import annotations

import os

import pytest

from transcribe.messaging import origin


@pytest.mark.parametrize("name,app,sent", [
    ("PTT-20240101-WA0001.opus", "WhatsApp", "2024-01-01"),
    ("AUD-20231231-WA0042.m4a", "WhatsApp", "2023-12-31"),
    ("audio_2024-01-01_12-00-00.ogg", "Telegram", "2024-01-01T12:00:00"),
    ("signal-2024-01-01-120000.aac", "Signal", "2024-01-01T12:00:00"),
    ("signal-2024-02-29-23-59-58-123.aac", "Signal", "2024-02-29T23:59:58"),
])
def test_app_and_time_from_the_name(tmp_path, name, app, sent):
    found = origin(tmp_path / name, mtime=0)
    assert (found.app, found.sent_at, found.from_name) == (app, sent, True)


@pytest.mark.parametrize("name,app", [("New Recording 12.m4a", "Voice Memos"),
                                      ("PTT-20241399-WA0001.opus", None),
                                      ("memo.mp3", None)])
def test_otherwise_the_files_mtime(tmp_path, name, app):
    path = tmp_path / name
    path.write_bytes(b"x")
    os.utime(path, (1_700_000_000, 1_700_000_000))
    found = origin(path)
    assert found.app == app and not found.from_name
    assert found.sent_at.startswith("2023-11-14")
