"""A store of more notes than one page: search says how many match and pages through all of
them, and the inbox reads a page at a time, more as the user scrolls (CLI, store, TUI)."""

from __future__ import annotations

import time
from contextlib import closing
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from conftest import REFERENCES, SPEECH, json_lines, private_home, run_cli
from test_tui import private_copy, rows
from textual.coordinate import Coordinate

from transcribe.settings import Settings
from transcribe.store import Store
from transcribe.transcript import Segment, Transcript
from tui.app import PAGE, REFRESH_S, TranscribeApp

NOTES = 360
TEXTS = [REFERENCES[name]["text"] for name in SPEECH]  # six texts, in en, es and de
LANGUAGES = [REFERENCES[name]["language"] for name in SPEECH]
# "please" is in two of the six texts (the meeting and the voicemail): 120 notes, more
# than the TUI's page; "Paket" in the German one, whose notes also have an English
# translation, "package": a note matched twice is still one match.
PLEASE = 2 * NOTES // len(TEXTS)
GERMAN = NOTES // len(TEXTS)
TRANSLATION = "Good morning, the package arrived today. Thank you very much for your help."


def _transcript(path: str, text: str, language: str, task: str = "transcribe") -> Transcript:
    # the sample notes' reference texts, not the model's: the counts must not depend on
    # the words a CPU kind gives (the model's work is tested elsewhere)
    return Transcript(file=path, text=text, language=language, duration=5.0,
                      segments=[Segment(0.0, 4.5, text, -0.2, 0.01)], engine="local",
                      model="base", task=task)


@pytest.fixture(scope="module")
def big_home(tmp_path_factory, home) -> Path:
    """A TRANSCRIBE_HOME whose store holds NOTES notes, made through the Store API; pairs
    of notes share a sent time (ties), and every 12th has none (it sorts last)."""
    data = private_home(tmp_path_factory.mktemp("bigstore") / "home", home)
    store = Store.open_default(data / "data")
    first = datetime(2024, 3, 1, 8, 0)
    for i in range(NOTES):
        path = f"/home/someone/VoiceNotes/note-{i:03d}.opus"
        text, language = TEXTS[i % len(TEXTS)], LANGUAGES[i % len(TEXTS)]
        sent = None if i % 12 == 11 else (first + timedelta(hours=i // 2)).isoformat()
        sha = f"{i:064x}"
        job = store.record(path, sha, 1000 + i, _transcript(path, text, language),
                           sent_at=sent, app="WhatsApp")
        if language == "de":
            store.record(path, sha, 1000 + i, _transcript(path, TRANSLATION, "en", "translate"),
                         sent_at=sent, app="WhatsApp")
        if i % 4 == 0:
            store.set_chat(job.id, "Sam", "Alice" if i % 8 == 0 else "Bob")
    store.close()
    return data


@pytest.fixture
def store(big_home):
    store = Store.open_default(big_home / "data")
    yield store
    store.close()


def _pages(search, size: int) -> list[list]:
    pages, offset = [], 0
    while page := search(offset, size):
        pages.append(page)
        offset += size
    return pages


def test_search_counts_every_match_and_its_pages_cover_each_once(store):
    expected = {job.id for job, text, _ in store.inbox(limit=NOTES) if "please" in text.lower()}
    assert len(expected) == PLEASE
    assert store.count_matches("please") == PLEASE

    pages = _pages(lambda offset, size: store.search("please", limit=size, offset=offset), 25)
    assert [len(p) for p in pages] == [25, 25, 25, 25, 20]
    found = [hit.job.id for page in pages for hit in page]
    assert len(found) == len(set(found)), "a note came twice"
    assert set(found) == expected, "a note was skipped"
    ranks = [hit.rank for page in pages for hit in page]
    assert ranks == sorted(ranks), "the pages follow each other, best first"
    assert all("\x02please\x03" in hit.snippet.lower() for page in pages for hit in page)


def test_a_note_matched_by_transcript_and_translation_is_one_match(store):
    assert store.count_matches("paket OR package") == GERMAN
    pages = _pages(lambda offset, size: store.search("paket OR package", limit=size,
                                                      offset=offset), 7)
    found = [hit.job.id for page in pages for hit in page]
    assert len(found) == len(set(found)) == GERMAN


def test_the_count_follows_the_chat_and_sender_filters(store):
    in_chat = {job.id for job, text, _ in store.inbox(limit=NOTES, chat="Sam")
               if "please" in text.lower()}
    assert 0 < len(in_chat) < PLEASE
    assert store.count_matches("please", chat="sam") == len(in_chat)
    assert {h.job.id for h in store.search("please", limit=NOTES, chat="SAM")} == in_chat
    from_alice = store.search("please", limit=NOTES, chat="Sam", sender="alice")
    assert store.count_matches("please", chat="Sam", sender="ALICE") == len(from_alice) > 0


def test_the_inbox_pages_follow_each_other_newest_first(store):
    everything = store.inbox(limit=NOTES + 10)
    assert len(everything) == NOTES
    pages = _pages(lambda offset, size: store.inbox(limit=size, offset=offset), 50)
    assert [job.id for page in pages for job, _, _ in page] == [job.id for job, _, _ in
                                                                 everything]
    sent = [job.sent_at or "" for job, _, _ in everything]
    assert sent == sorted(sent, reverse=True) and sent[-1] == ""
    for index in (0, 1, 99, 100, 259, NOTES - 1):
        assert store.inbox_position(everything[index][0].id) == index
    chat = store.inbox(limit=NOTES, chat="Sam")
    assert store.inbox_position(chat[7][0].id, chat="Sam") == 7
    assert store.inbox_position(next(j.id for j, _, _ in everything if j.chat is None),
                                chat="Sam") is None


def test_the_cli_says_how_many_match_and_pages_through_them(big_home):
    env = {"TRANSCRIBE_HOME": str(big_home)}
    found = []
    for offset in range(0, PLEASE + 30, 30):
        result = run_cli("search", "--json", "-n", "30", "--offset", str(offset), "please",
                         env=env)
        assert result.returncode == 0, result.stderr
        page = json_lines(result.stdout)
        assert len(page) == min(30, max(0, PLEASE - offset))
        assert all((h["total"], h["offset"], h["limit"]) == (PLEASE, offset, 30) for h in page)
        found += [h["job"] for h in page]
    assert len(found) == len(set(found)) == PLEASE

    plain = run_cli("search", "please", env=env)
    assert plain.stdout.count("**please**") + plain.stdout.count("**Please**") >= 20
    assert len(plain.stdout.splitlines()) == 2 * 20  # the default page: 20 notes, 2 lines each
    assert f"matches 1-20 of {PLEASE}; the next 20: --offset 20" in plain.stderr

    last = run_cli("search", "please", "--offset", str(PLEASE - 5), env=env)
    assert f"matches {PLEASE - 4}-{PLEASE} of {PLEASE}" in last.stderr
    assert "--offset" not in last.stderr, "no next page to offer"
    count = run_cli("search", "please", "-n", "0", env=env)
    assert count.stdout == "" and f"{PLEASE} matches" in count.stderr
    past = run_cli("search", "--json", "please", "--offset", str(PLEASE), env=env)
    assert past.stdout == "" and f"none past --offset {PLEASE}" in past.stderr
    bad = run_cli("search", "please", "--offset", "-3", env=env)
    assert bad.returncode == 2 and "--offset" in bad.stderr


@pytest.fixture
def app_home(big_home, monkeypatch) -> Path:
    monkeypatch.setenv("TRANSCRIBE_HOME", str(big_home))
    return big_home


def _message(app: TranscribeApp) -> str:
    return str(app.query_one("#message").render())


async def test_the_tui_search_says_how_many_match_and_loads_more_on_scroll(app_home):
    app = TranscribeApp(Settings.load())
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("slash", *"please")
        await pilot.pause()
        assert f"{PLEASE} matches" in _message(app)
        assert len(rows(app)) == PAGE < PLEASE
        await pilot.press("enter", "ctrl+end")  # to the table, and its last row
        await pilot.pause()
        shown = rows(app)
        assert len(shown) == PLEASE
        assert len({r[6] for r in shown}) > 1 and all("please" in r[6].lower() for r in shown)


async def test_the_tui_inbox_loads_a_page_and_the_next_as_the_user_scrolls(app_home):
    with closing(Store.open_default(app_home / "data")) as store:
        everything = [job.id for job, _, _ in store.inbox(limit=NOTES)]
    app = TranscribeApp(Settings.load())
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        table = app.query_one("#inbox")
        assert len(rows(app)) == PAGE
        table.scroll_end(animate=False)  # the mouse wheel's way: the cursor stays
        await pilot.pause()
        assert len(rows(app)) == 2 * PAGE
        for _ in range(NOTES // PAGE + 2):  # the keyboard's way, page after page
            await pilot.press("ctrl+end")
            await pilot.pause()
        assert _shown_ids(app) == everything, "every note once, in order"
        assert table.cursor_row == NOTES - 1


async def test_a_note_far_down_the_inbox_is_shown_and_selected(app_home):
    with closing(Store.open_default(app_home / "data")) as store:
        far = store.inbox(limit=1, offset=3 * PAGE // 2 + 7)[0][0]
    app = TranscribeApp(Settings.load())
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        app.show_job(far.id)
        await pilot.pause()
        assert app.selected_job_id() == far.id
        assert app.query_one("#inbox").cursor_row == 3 * PAGE // 2 + 7


def _shown_ids(app: TranscribeApp) -> list[int]:
    table = app.query_one("#inbox")
    return [int(table.coordinate_to_cell_key(Coordinate(row, 0)).row_key.value)
            for row in range(table.row_count)]


@pytest.fixture
def own_home(big_home, tmp_path, monkeypatch) -> Path:
    """A private copy of the big store, for a test that changes it."""
    yield private_copy(big_home, tmp_path, monkeypatch)
    monkeypatch.undo()
    time.tzset()


async def test_a_note_in_progress_changes_its_row_and_the_view_stays_where_it_was(own_home):
    """A running note's progress changes the store every half second: its row follows,
    and the rows the user scrolled to stay in view."""
    data = own_home
    app = TranscribeApp(Settings.load())
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        table = app.query_one("#inbox")
        table.scroll_to(y=40, animate=False)  # the wheel's way: the cursor stays on row 0
        await pilot.pause()
        job_id = _shown_ids(app)[45]
        other = Store.open_default(data / "data")  # as the watcher would, in its process
        other.requeue(job_id)
        other.claim(job_id)
        other.set_progress(job_id, 0.42)
        other.close()
        for _ in range(50):
            await pilot.pause(REFRESH_S)
            if rows(app)[45][5] == "42%":
                break
        assert rows(app)[45][5] == "42%"
        assert table.scroll_y == 40 and table.cursor_row == 0
