"""The Textual app driven as a person would, over a store filled by really transcribing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REFERENCES, ROOT, SAMPLES, private_home, run_cli
from textual.widgets import DataTable, Input, Static

from transcribe.settings import Settings
from tui.app import TranscribeApp
from tui.screens import SettingsScreen

NOTES = ["PTT-20240312-WA0007.opus", "audio_2024-03-12_18-45-02.ogg", "recording-de.webm",
         "silence.opus"]
FIXED_MTIME = 1_700_000_000  # 2023-11-14: notes without a date in their name sort last


@pytest.fixture(scope="module")
def filled_home(tmp_path_factory, home) -> Path:
    """A TRANSCRIBE_HOME whose store holds real transcripts of the sample notes."""
    root = tmp_path_factory.mktemp("tui")
    data = private_home(root / "home", home)
    notes = root / "notes"
    notes.mkdir()
    for name in NOTES:
        shutil.copy(SAMPLES / name, notes / name)
        os.utime(notes / name, (FIXED_MTIME, FIXED_MTIME))
    result = run_cli(*[str(notes / n) for n in NOTES], env={"TRANSCRIBE_HOME": str(data), "TZ": "UTC"},
                     timeout=900)
    assert result.returncode == 0, result.stderr
    return data


@pytest.fixture(scope="module")
def fixed_home(tmp_path_factory, home) -> Path:
    """A TRANSCRIBE_HOME whose store holds fixed transcripts of the sample notes (their
    reference texts), for snapshots: the model's words differ between CPU kinds (AVX2
    and AVX-512 gave "half past seven" and "half past 7" for the Telegram note)."""
    from datetime import datetime, timezone

    from transcribe.audio import decode, file_sha256
    from transcribe.messaging import origin
    from transcribe.store import Store
    from transcribe.transcript import Segment, Transcript

    root = tmp_path_factory.mktemp("tui-fixed")
    data = private_home(root / "home", home)
    notes = root / "notes"
    notes.mkdir()
    store = Store.open_default(data / "data")
    for name in NOTES:
        path = notes / name
        shutil.copy(SAMPLES / name, path)
        os.utime(path, (FIXED_MTIME, FIXED_MTIME))
        text, language = REFERENCES[name]["text"], REFERENCES[name]["language"]
        duration = decode(path).duration
        segments = [Segment(0.0, round(duration - 1.0, 1), text, -0.2, 0.01)] if text else []
        transcript = Transcript(file=str(path), text=text, language=language, duration=duration,
                                segments=segments, engine="local", model="base",
                                no_speech=not text, language_probability=0.98 if text else None)
        where = origin(path, FIXED_MTIME)
        sent_at = where.sent_at if where.from_name else datetime.fromtimestamp(
            FIXED_MTIME, tz=timezone.utc).isoformat(timespec="seconds")
        store.record(str(path), file_sha256(path), path.stat().st_size, transcript,
                     sent_at=sent_at, app=where.app)
    store.close()
    return data


def private_copy(filled: Path, tmp_path: Path, monkeypatch) -> Path:
    """A private copy of a filled store for one test, so tests do not see each other.

    HOME is where the notes are and the clock is UTC, so what the screens show
    (~/notes/..., times) is the same on every run, as snapshots need.
    """
    data = tmp_path / "home"
    shutil.copytree(filled, data, symlinks=True)
    monkeypatch.setenv("TRANSCRIBE_HOME", str(data))
    monkeypatch.setenv("HOME", str(filled.parent))
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    return data


@pytest.fixture
def app_home(filled_home, tmp_path, monkeypatch) -> Path:
    """A private copy of the store filled by the real model: for tests of behaviour."""
    yield private_copy(filled_home, tmp_path, monkeypatch)
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def snap_home(fixed_home, tmp_path, monkeypatch) -> Path:
    """A private copy of the store of fixed transcripts: for snapshots, the same on every CPU."""
    yield private_copy(fixed_home, tmp_path, monkeypatch)
    monkeypatch.undo()
    time.tzset()


def rows(app: TranscribeApp) -> list[list[str]]:
    table = app.query_one("#inbox", DataTable)
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


async def open_whatsapp_note(app: TranscribeApp, pilot) -> None:
    """Open the note that came in from WhatsApp (the PTT sample) from the inbox."""
    index = next(i for i, r in enumerate(rows(app)) if r[1] == "WhatsApp")
    app.query_one("#inbox", DataTable).move_cursor(row=index)
    await pilot.press("enter")
    await pilot.pause()


async def test_inbox_lists_every_note_newest_first(app_home):
    app = TranscribeApp(Settings.load())
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        shown = rows(app)
        assert len(shown) == 4
        assert [r[:2] for r in shown[:2]] == [["2024-03-12", "Telegram"],
                                              ["2024-03-12", "WhatsApp"]]
        assert all(r[0] == "2023-11-14" for r in shown[2:])
        by_source = {r[1]: r for r in shown}
        assert by_source["WhatsApp"][6].startswith("Hi Sam")
        assert by_source["Telegram"][3] == "en" and by_source["Telegram"][4] == "local"
        assert any(r[6] == "(no speech)" for r in shown)
        assert all(r[5] == "✓ done" for r in shown)
        assert not app.query_one("#empty", Static).display


async def test_search_highlights_and_survives_a_malformed_query(app_home):
    app = TranscribeApp(Settings.load())
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("slash", *"paket")
        await pilot.pause()
        [row] = rows(app)
        assert "Paket" in row[6]
        cell = app.query_one("#inbox", DataTable).get_row_at(0)[6]
        assert any("reverse" in str(span.style) for span in cell.spans), "the match is marked"
        assert "1 match" in str(app.query_one("#message", Static).render())
        app.query_one("#search", Input).value = '"never closed'
        await pilot.pause()
        assert "not closed" in str(app.query_one("#message", Static).render())
        assert rows(app) == []
        await pilot.press("escape")
        await pilot.pause()
        assert len(rows(app)) == 4


async def test_a_note_opens_with_timestamps_copy_and_export(app_home):
    app = TranscribeApp(Settings.load())
    async with app.run_test(size=(120, 30)) as pilot:
        await open_whatsapp_note(app, pilot)
        meta = str(app.screen.query_one("#meta", Static).render())
        assert "PTT-20240312-WA0007.opus" in meta and "local · base" in meta
        segments = [str(s.render()) for s in app.screen.query(".segment")]
        assert segments and segments[0].startswith("00:00.0 →") and "Sam" in segments[0]
        await pilot.press("c")
        assert app.clipboard.startswith("Hi Sam")
        await pilot.press("e")
        await pilot.pause()
        app.screen.query_one("#folder", Input).value = str(app_home / "exports")
        await pilot.click("#fmt-srt")
        await pilot.pause()
        exported = app_home / "exports" / "PTT-20240312-WA0007.srt"
        assert exported.read_text().startswith("1\n00:00:00,000 --> ")
        assert any(f"saved {exported}" in n.message for n in app._notifications)
        await pilot.press("escape")
        assert app.query_one("#inbox", DataTable)


async def test_adding_a_file_transcribes_it_into_the_inbox(app_home):
    app = TranscribeApp(Settings.load())
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("a")
        await pilot.pause()
        app.screen.query_one("#path", Input).value = str(SAMPLES / "voicemail-8k.wav")
        await pilot.press("enter")
        for _ in range(300):
            await pilot.pause(0.1)
            if any("call me back" in r[6] for r in rows(app)):
                break
        new = next(r for r in rows(app) if "call me back" in r[6])
        assert new[5] == "✓ done" and new[3] == "en"
        assert len(rows(app)) == 5


async def test_a_missing_path_is_said_in_the_dialog(app_home):
    app = TranscribeApp(Settings.load())
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("a")
        await pilot.pause()
        app.screen.query_one("#path", Input).value = "/no/such/note.ogg"
        await pilot.press("enter")
        await pilot.pause()
        assert "no such file" in str(app.screen.query_one("#problem", Static).render())


async def test_cloud_consent_is_a_deliberate_saved_choice(app_home):
    app = TranscribeApp(Settings.load())
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("s")
        await pilot.pause()
        consent = app.screen.query_one("#consent", Static)
        assert "No audio leaves this machine" in str(consent.render())
        await pilot.click("#cloud")
        await pilot.pause()
        assert "api.openai.com" in str(consent.render())
        app.screen.query_one("#language", Input).value = "de"
        await pilot.click("#save")
        await pilot.pause()
    saved = Settings.load()
    assert saved.cloud.allow is True and saved.language == "de"
    assert "allow = true" in (app_home / "config" / "config.toml").read_text()


async def test_first_run_is_a_friendly_empty_inbox(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSCRIBE_HOME", str(tmp_path))
    app = TranscribeApp(Settings.load())
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        empty = app.query_one("#empty", Static)
        assert empty.display and "No voice notes yet" in str(empty.render())
        await pilot.press("question_mark")
        await pilot.pause()
        assert "re-transcribe" in app.screen.query_one("Markdown").source
        await pilot.press("escape")
        await pilot.press("q")


def test_times_read_like_a_mail_client():
    from datetime import date

    from tui.app import _when

    today = date(2026, 11, 26)
    assert _when("2026-11-26T08:32:06+00:00", today) == "08:32"
    assert _when("2026-03-12T18:45:02", today) == "12 Mar 18:45"
    assert _when("2026-03-12", today) == "12 Mar"
    assert _when("2024-03-12T18:45:02", today) == "2024-03-12"
    assert _when(None, today) == ""


def test_snapshot_inbox(snap_home, snap_compare):
    assert snap_compare(TranscribeApp(Settings.load()), terminal_size=(100, 24))


def test_snapshot_transcript(snap_home, snap_compare):
    async def open_whatsapp(pilot):
        table = pilot.app.query_one("#inbox", DataTable)
        table.move_cursor(row=next(i for i, r in enumerate(rows(pilot.app))
                                   if r[1] == "WhatsApp"))
        await pilot.press("enter")
        await pilot.pause()

    assert snap_compare(TranscribeApp(Settings.load()), terminal_size=(100, 24),
                        run_before=open_whatsapp)


def test_snapshot_settings(snap_home, snap_compare):
    assert snap_compare(TranscribeApp(Settings.load()), press=["s"], terminal_size=(80, 24))


def test_snapshot_first_run(tmp_path, monkeypatch, snap_compare):
    monkeypatch.setenv("TRANSCRIBE_HOME", str(tmp_path))
    assert snap_compare(TranscribeApp(Settings.load()), terminal_size=(80, 24))


# -- recording, in a process of its own: PortAudio reads the ALSA setup when it starts ------

RECORD_DRIVER = r'''
import asyncio, json, sys
from tui.app import TranscribeApp
from tui.screens import SettingsScreen

async def main():
    app = TranscribeApp()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("r")
        await pilot.pause(0.5)
        status = str(app.screen.query_one("#status").render())
        started = not app.screen.query_one("#toggle").disabled
        start_shown = app.screen.query_one("#toggle").display
        if started:
            await pilot.click("#toggle")
            await pilot.pause(1.5)
            await pilot.click("#toggle")
            for _ in range(600):
                await pilot.pause(0.1)
                rows = [[str(c) for c in app.query_one("#inbox").get_row_at(i)]
                        for i in range(app.query_one("#inbox").row_count)]
                if any("Sam" in r[6] for r in rows):
                    break
        else:
            rows = []
        errors = [job.error for job in app.store.jobs() if job.error]
        print(json.dumps({"status": status, "started": started, "rows": rows,
                          "errors": errors, "start_shown": start_shown}))

asyncio.run(main())
'''


def drive_record(env: dict, prefix: list[str] | None = None) -> dict:
    result = subprocess.run([*(prefix or []), sys.executable, "-c", RECORD_DRIVER],
                            capture_output=True, text=True, cwd=ROOT, timeout=300,
                            env=dict(os.environ, **env))
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_recording_from_the_tui_lands_in_the_inbox(tmp_path, home):
    from test_record import microphone, portaudio_present

    if not portaudio_present():
        pytest.skip("libportaudio2 is not installed (.ci/run installs it)")
    from transcribe.audio import decode

    env = microphone(tmp_path, decode(SAMPLES / "PTT-20240312-WA0007.opus").samples, 48000)
    data = private_home(tmp_path / "home", home)
    env["TRANSCRIBE_HOME"] = str(data)
    seen = drive_record(env)
    assert seen["started"], seen["status"]
    [row] = seen["rows"]
    assert row[5] == "✓ done", seen["errors"]
    assert "Sam" in row[6]
    assert list((data / "data" / "recordings").glob("recording-*.ogg"))


def test_without_portaudio_the_record_screen_says_how_to_fix_it(tmp_path, home):
    from test_record import without_portaudio

    seen = drive_record({"TRANSCRIBE_HOME": str(tmp_path)}, without_portaudio())
    assert not seen["started"] and not seen["start_shown"], "no Start without a microphone"
    assert "Recording is not available" in seen["status"]
    assert "libportaudio2" in seen["status"]


async def test_a_wrong_language_is_refused_before_it_is_saved(app_home):
    app = TranscribeApp(Settings.load())
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("s")
        await pilot.pause()
        app.screen.query_one("#language", Input).value = "klingon"
        await pilot.click("#save")
        await pilot.pause()
        assert app.screen.query_one("#language", Input), "the settings stay open"
    assert not (app_home / "config" / "config.toml").exists()
    assert Settings.load().language is None


async def test_a_note_shows_its_transcript_and_its_translation(app_home):
    note = SAMPLES / "recording-de.webm"
    translated = run_cli("--task", "translate", str(note),
                         env={"TRANSCRIBE_HOME": str(app_home)})
    assert translated.returncode == 0, translated.stderr
    app = TranscribeApp(Settings.load())
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        index = next(i for i, r in enumerate(rows(app)) if "Paket" in r[6])
        assert len(rows(app)) == 4, "one note, not two"
        app.query_one("#inbox", DataTable).move_cursor(row=index)
        await pilot.press("enter")
        await pilot.pause()
        headings = [str(h.render()) for h in app.screen.query(".heading")]
        assert [h.split()[0] for h in headings] == ["Transcript", "English"]
        shown = [str(s.render()) for s in app.screen.query(".segment")]
        assert any("Paket" in s for s in shown) and any("help" in s.lower() for s in shown)
        meta = str(app.screen.query_one("#meta", Static).render())
        assert meta.splitlines()[-1].startswith("de"), meta  # "de? (language unsure...)" too


def screen_text(app) -> str:
    """The text on the terminal, line by line, as a person reads it."""
    import html
    import re

    lines: dict[float, list] = {}
    for m in re.finditer(r'<text class="[^"]*" x="([\d.]+)" y="([\d.]+)"[^>]*>(.*?)</text>',
                         app.export_screenshot(), re.S):
        lines.setdefault(float(m[2]), []).append((float(m[1]),
                                                  html.unescape(re.sub("<[^>]+>", "", m[3]))))
    text = "\n".join("".join(t for _, t in sorted(v)) for _, v in sorted(lines.items()))
    return text.replace("\xa0", " ")


async def test_search_results_show_length_language_and_engine(app_home):
    app = TranscribeApp(Settings.load())
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        inbox = {r[6][:12]: r for r in rows(app)}
        await pilot.press("slash", *"paket")
        await pilot.pause()
        [row] = rows(app)
        assert row[2:5] == ["0:07", "de", "local"]
        assert row[2:6] == inbox["Guten Morgen"][2:6]


async def test_a_file_added_is_selected_and_shown_wherever_it_sorts(app_home, tmp_path):
    old = tmp_path / "old-voicemail.wav"
    shutil.copy(SAMPLES / "voicemail-8k.wav", old)
    os.utime(old, (946_684_800, 946_684_800))  # 2000-01-01: it sorts last, below the fold
    app = TranscribeApp(Settings.load())
    async with app.run_test(size=(100, 12)) as pilot:
        await pilot.pause()
        table = app.query_one("#inbox", DataTable)
        assert table.cursor_row == 0
        await pilot.press("a")
        await pilot.pause()
        app.screen.query_one("#path", Input).value = str(old)
        await pilot.press("enter")
        for _ in range(100):
            await pilot.pause(0.1)
            if len(rows(app)) == 5:
                break
        await pilot.pause()
        assert rows(app)[-1][0] == "2000-01-01"
        assert table.cursor_row == 4, "the note just added is selected"
        assert "2000-01-01" in screen_text(app), "and scrolled into view"


async def test_the_help_says_how_to_close_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSCRIBE_HOME", str(tmp_path))
    app = TranscribeApp(Settings.load())
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        assert "Esc or ? to close" in screen_text(app)
        await pilot.press("escape")
        await pilot.pause()
        assert "Esc or ? to close" not in screen_text(app)


async def test_the_add_dialog_picks_a_note_from_a_tree_of_folders_and_notes(app_home, tmp_path,
                                                                          monkeypatch):
    from textual.widgets import DirectoryTree

    user = tmp_path / "user"
    (user / "voice").mkdir(parents=True)
    shutil.copy(SAMPLES / "voicemail-8k.wav", user / "voice" / "voicemail-8k.wav")
    (user / "voice" / "letter.txt").write_text("not a voice note\n")
    shutil.copy(SAMPLES / "silence.opus", user / "voice" / ".hidden.opus")
    monkeypatch.setenv("HOME", str(user))

    def labels(node) -> list[str]:
        return [str(child.label) for child in node.children]

    app = TranscribeApp(Settings.load())
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("a")
        tree = app.screen.query_one(DirectoryTree)
        for _ in range(50):
            await pilot.pause(0.1)
            if labels(tree.root):
                break
        assert labels(tree.root) == ["voice"]
        tree.focus()
        await pilot.press("down", "enter")
        for _ in range(50):
            await pilot.pause(0.1)
            if labels(tree.root.children[0]):
                break
        assert app.screen.query_one("#path", Input).value == str(user / "voice")
        assert labels(tree.root.children[0]) == ["voicemail-8k.wav"]
        await pilot.press("down", "enter")
        await pilot.pause()
        assert app.screen.query_one("#path", Input).value == str(user / "voice" /
                                                                 "voicemail-8k.wav")
        await pilot.press("enter")  # the Transcribe button has the focus now
        for _ in range(300):
            await pilot.pause(0.1)
            if any("call me back" in r[6] for r in rows(app)):
                break
        assert any("call me back" in r[6] and r[5] == "✓ done" for r in rows(app))


async def test_a_note_says_when_its_language_is_unsure_or_its_text_looped(snap_home, tmp_path):
    """The marks the engine sets (tested with the real model in test_accuracy.py and
    test_engine.py), as the note view shows them."""
    from transcribe.store import Store
    from transcribe.transcript import Segment, Transcript

    note = tmp_path / "PTT-20240313-WA0001.opus"
    shutil.copy(SAMPLES / "recording-de.webm", note)
    transcript = Transcript(
        file=str(note), text="Guten Morgen, das Paket ist heute angekommen.", language="de",
        duration=6.9, segments=[Segment(0.0, 5.0, "Guten Morgen, das Paket ist heute angekommen.")],
        engine="local", model="base", language_probability=0.23, language_unsure=True,
        low_confidence=True, looped=True,
        notes=["low confidence: removed 1 repeated copy of \u201cdas Paket ist heute\u201d"])
    store = Store.open_default(snap_home / "data")
    store.record(str(note), "f" * 64, note.stat().st_size, transcript,
                 sent_at="2024-03-13T09:00:00", app="WhatsApp")
    store.close()
    app = TranscribeApp(Settings.load())
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        index = next(i for i, r in enumerate(rows(app)) if "Paket" in r[6])
        app.query_one("#inbox", DataTable).move_cursor(row=index)
        await pilot.press("enter")
        await pilot.pause()
        meta = str(app.screen.query_one("#meta", Static).render())
    assert "de? (language unsure, p=0.23)" in meta
    assert "the model repeated itself; the repeats were cut out" in meta


async def test_my_languages_are_a_saved_setting_and_a_wrong_one_is_refused(app_home):
    app = TranscribeApp(Settings.load())
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("s")
        await pilot.pause()
        app.screen.query_one("#languages", Input).value = "pt, klingon"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, SettingsScreen)  # refused: still on the form
        app.screen.query_one("#languages", Input).value = "pt, English"
        await pilot.press("ctrl+s")
        await pilot.pause()
    assert Settings.load().languages == ("pt", "en")


async def _wait_for(pilot, condition, tries: int = 600) -> None:
    for _ in range(tries):
        await pilot.pause(0.1)
        if condition():
            return
    raise AssertionError("not shown in time")


async def test_a_chat_export_is_added_as_a_chat_with_senders_and_can_be_shown_alone(
        app_home, tmp_path):
    """`a` takes a zipped WhatsApp export and a Telegram export folder: their voice notes
    are transcribed into the inbox with the sender in "From" (a note already there gains
    its sender and is not transcribed again); `f` shows one chat's notes, search included,
    and every note again."""
    import zipfile

    chats = SAMPLES / "chats"
    export = tmp_path / "WhatsApp Chat with María.zip"
    with zipfile.ZipFile(export, "w") as z:
        for f in (chats / "whatsapp-android-12h").iterdir():
            z.write(f, f.name)
    app = TranscribeApp(Settings.load())
    async with app.run_test(size=(120, 30)) as pilot:
        for path, count in ((export, 5), (chats / "telegram-json", 6)):
            await pilot.press("a")
            await pilot.pause()
            app.screen.query_one("#path", Input).value = str(path)
            await pilot.press("enter")
            await _wait_for(pilot, lambda: len(rows(app)) == count and all(
                r[5] == "✓ done" for r in rows(app)))
        shown = rows(app)
        senders = sorted(r[1] for r in shown)
        assert senders.count("María") == 1 and senders.count("Alice") == 2, shown
        maria = next(r for r in shown if r[1] == "María")
        assert (maria[0], maria[3]) == ("2024-03-13", "es"), "sent time and language"
        assert {r[1] for r in shown} >= {"WhatsApp"}, "a note of no chat keeps its app"

        await pilot.press("f")
        await pilot.pause()
        options = app.screen.query_one("#chat-list")
        labels = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
        assert labels == ["(every note)", "María", "Sam"]
        options.highlighted = labels.index("Sam")
        await pilot.press("enter")
        await pilot.pause()
        assert sorted(r[1] for r in rows(app)) == ["Alice", "Alice"]
        assert "chat: Sam" in str(app.query_one("#message", Static).render())
        await pilot.press("slash", *"milk")
        await pilot.pause()
        assert [r[1] for r in rows(app)] == ["Alice"]
        app.query_one("#search", Input).value = "mañana"  # María's, in another chat
        await pilot.pause()
        assert rows(app) == []
        await pilot.press("escape")
        await pilot.press("f")
        await pilot.pause()
        app.screen.query_one("#chat-list").highlighted = 0
        await pilot.press("enter")
        await pilot.pause()
        assert len(rows(app)) == 6


def test_the_inbox_says_what_a_waiting_note_waits_for():
    """A note the watcher gave back because the model could not be used is
    pending with the reason; the inbox shows it where the text will be."""
    from tui.app import _inbox_row

    from transcribe.store import Job

    def row(state, error):
        job = Job(1, "0" * 64, "/notes/a.ogg", None, 10, state, 0, error, None, None, {}, None,
                  0.0, 0.0)
        return _inbox_row(job, None, None)[1][-1]

    waiting = "waiting for the model: no model.bin in /mnt/drive/whisper-base"
    assert row("pending", waiting) == waiting
    assert row("failed", "not audio") == "a.ogg: not audio"  # a failed row names its file
    assert row("pending", None) == ""


async def wait_for(pilot, condition, seconds: float = 300):
    for _ in range(int(seconds * 10)):
        if condition():
            return True
        await pilot.pause(0.1)
    return condition()


async def test_quitting_mid_note_puts_it_back_in_the_queue_and_the_next_tui_resumes_it(
        snap_home, tmp_path):
    """q while a long note is transcribing: no closed-database traceback, the job is back
    in the queue at once (not `running` for good), and the next TUI takes it up again."""
    from longnote import build

    from transcribe.store import Store

    note = tmp_path / "long.ogg"
    build(note, 150, [SAMPLES / "PTT-20240312-WA0007.opus",
                      SAMPLES / "audio_2024-03-12_18-45-02.ogg"])

    def job():
        store = Store.open_default(snap_home / "data")
        try:
            return next(j for j in store.jobs() if j.path == str(note))
        except StopIteration:
            return None
        finally:
            store.close()

    def under_way():
        current = job()
        return current is not None and current.state == "running" and (current.progress or 0) > 0

    app = TranscribeApp(Settings.load())
    async with app.run_test(size=(120, 30)) as pilot:
        app.transcribe_paths([note])
        assert await wait_for(pilot, under_way), job()
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code in (0, None)
    stopped = job()
    assert stopped.state == "pending" and stopped.attempts == 0, stopped
    time.sleep(3)
    assert job() == stopped, "nothing works on it once the TUI is gone"

    app = TranscribeApp(Settings.load())
    async with app.run_test(size=(120, 30)) as pilot:
        assert await wait_for(pilot, under_way), job()
        await pilot.press("q")
        await pilot.pause()
    assert job().state == "pending"


async def test_a_note_view_marks_the_search_and_reads_its_date(snap_home):
    """Opened from a search, the note's matching words are marked; its sent time is one
    readable form, not ISO text."""
    app = TranscribeApp(Settings.load())
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("slash", *"train")
        await pilot.pause()
        [row] = rows(app)
        app.query_one("#inbox", DataTable).focus()
        await pilot.press("enter")
        await pilot.pause()
        meta = str(app.screen.query_one("#meta", Static).render())
        assert "sent 2024-03-12 18:45 via Telegram" in meta, meta
        marked = [span for seg in app.screen.query(".segment")
                  for span in seg.render().spans if "reverse" in str(span.style)]
        assert marked, "the search's word is marked in the note"


async def test_inbox_rows_name_a_failed_file_and_no_language_without_speech(snap_home, tmp_path):
    broken = tmp_path / "broken.ogg"
    broken.write_bytes(b"OggS" + bytes(400))
    app = TranscribeApp(Settings.load())
    async with app.run_test(size=(140, 30)) as pilot:
        app.transcribe_paths([broken])
        assert await wait_for(pilot, lambda: any("broken.ogg" in r[6] for r in rows(app)), 60)
        failed = next(r for r in rows(app) if "broken.ogg" in r[6])
        assert failed[5] == "✗ failed" and failed[6].startswith("broken.ogg: ")
        silent = next(r for r in rows(app) if r[6] == "(no speech)")
        assert silent[3] == "", "no language for a note without speech"


async def test_a_note_being_transcribed_shows_how_far_it_is(snap_home):
    from transcribe.store import Store

    store = Store.open_default(snap_home / "data")
    job = next(j for j in store.jobs() if j.path.endswith("voicemail-8k.wav")) \
        if any(j.path.endswith("voicemail-8k.wav") for j in store.jobs()) else None
    if job is None:
        job, _ = store.add_job("9" * 64, str(SAMPLES / "voicemail-8k.wav"), 100)
    worker = subprocess.Popen(["sleep", "120"])  # a live process holds the job
    store.claim(job.id, worker.pid)
    store.set_progress(job.id, 0.39)
    store.close()
    from tui.screens import TranscriptScreen

    try:
        app = TranscribeApp(Settings.load())
        async with app.run_test(size=(120, 30)) as pilot:
            app.push_screen(TranscriptScreen(app.store.job(job.id)))
            await pilot.pause()
            meta = str(app.screen.query_one("#meta", Static).render())
            assert "transcribing: 39% done" in meta, meta
    finally:
        worker.kill()
        worker.wait()


async def test_a_note_being_transcribed_shows_its_words_as_they_come(snap_home, tmp_path):
    """The view of a note opened as it starts: its words appear under the state line, with
    the note's length, and grow while it is still being transcribed."""
    import re

    from longnote import build

    from tui.screens import TranscriptScreen

    clips = [f"fleurs-en-00{n}.ogg" for n in (5, 8, 9)]
    note = tmp_path / "long.ogg"
    build(note, 150, [SAMPLES / "real" / clip for clip in clips])
    references = json.loads((SAMPLES / "real" / "references.json").read_text())
    said = set(re.findall(r"\w+", " ".join(references[c]["text"] for c in clips).casefold()))

    app = TranscribeApp(Settings.load())
    async with app.run_test(size=(120, 30)) as pilot:
        app.transcribe_paths([note])

        def job():
            return next((j for j in app.store.jobs() if j.path == str(note)), None)

        assert await wait_for(pilot, lambda: job() is not None and job().state == "running")
        app.push_screen(TranscriptScreen(job()))

        def shown() -> list[str]:
            partial = app.screen.query(".partial")
            return re.findall(r"\w+", str(partial.first().render()).casefold()) \
                if partial else []

        await wait_for(pilot, lambda: len(shown()) >= 5 or job().state != "running")
        first = shown()
        assert len(first) >= 5 and job().state == "running", \
            f"words shown before the note is done: {first}, {job()}"
        assert sum(w in said for w in first) >= 0.6 * len(first), first
        meta = str(app.screen.query_one("#meta", Static).render())
        assert "transcribing: " in meta and " long" in meta, meta
        assert await wait_for(pilot, lambda: len(shown()) > len(first)
                              or job().state != "running")
        assert job().state == "running", "more words came while it was still transcribed"
        await pilot.press("escape", "q")
        await pilot.pause()


async def test_copy_uses_a_clipboard_tool_or_says_where_the_text_went(snap_home, tmp_path,
                                                                      monkeypatch):
    """No tool: the toast says OSC 52 and what to do if it did nothing. A tool (here a
    wl-copy on PATH that keeps what it is given): the text reaches it."""
    app = TranscribeApp(Settings.load())
    async with app.run_test(size=(120, 30)) as pilot:
        monkeypatch.setenv("PATH", str(tmp_path / "empty"))
        await pilot.press("enter")
        await pilot.pause()
        await pilot.press("c")
        assert any("OSC 52" in n.message for n in app._notifications)
        tools = tmp_path / "bin"
        tools.mkdir()
        (tools / "wl-copy").write_text(f"#!/bin/sh\ncat > {tmp_path / 'pasted'}\n")
        (tools / "wl-copy").chmod(0o755)
        monkeypatch.setenv("PATH", f"{tools}:/usr/bin:/bin")
        monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-test")
        await pilot.press("c")
        assert (tmp_path / "pasted").read_text() == app.clipboard
        assert any("(wl-copy)" in n.message for n in app._notifications)


async def test_re_transcribing_offers_a_language(snap_home):
    """t: the dialog takes a language (a name or a code); a wrong one is said there; the
    note is transcribed again in the language chosen."""
    from transcribe.store import Store

    app = TranscribeApp(Settings.load())
    async with app.run_test(size=(120, 30)) as pilot:
        await open_whatsapp_note(app, pilot)
        job_id = app.screen.job.id
        await pilot.press("t")
        await pilot.pause()
        app.screen.query_one("#language", Input).value = "Klingon"
        await pilot.click("#local")
        await pilot.pause()
        assert "Klingon" in str(app.screen.query_one("#problem", Static).render())
        language = app.screen.query_one("#language", Input)
        language.value = "Spanish"
        language.focus()
        await pilot.press("enter")  # Enter in the field is the primary button, Local model

        def spanish():
            kept = app.store.transcript(job_id)
            return kept is not None and kept.language == "es"

        assert await wait_for(pilot, spanish, 300)
    store = Store.open_default(snap_home / "data")
    assert store.job(job_id).state == "done"
    store.close()


async def test_a_fixed_word_is_kept_shown_beside_the_models_and_found_by_search(app_home):
    app = TranscribeApp(Settings.load())
    async with app.run_test(size=(120, 30)) as pilot:
        await open_whatsapp_note(app, pilot)
        first = str(app.screen.query(".segment").first().render())
        assert "Sam" in first
        await pilot.press("enter")  # fix the selected (first) segment
        await pilot.pause()
        fix = app.screen.query_one("#fix-text", Input)
        assert fix.value in first, "the dialog starts from the segment's text"
        fix.value = fix.value.replace("Sam", "Samwise Quirkwell", 1)
        await pilot.press("enter")
        await pilot.pause()
        first = str(app.screen.query(".segment").first().render())
        assert "Samwise Quirkwell" in first and "fixed" in first
        await pilot.press("m")  # the model's own text, on request
        await pilot.pause()
        model = str(app.screen.query(".segment").first().render())
        assert "model:" in model and "Quirkwell" not in model and "Sam" in model
        await pilot.press("escape", "slash", *"quirkwell")
        await pilot.pause()
        [row] = rows(app)
        assert row[1] == "WhatsApp" and "Quirkwell" in row[6]
        assert "1 match" in str(app.query_one("#message", Static).render())
