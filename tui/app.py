"""The inbox: every voice note transcribed, whichever way it came in, live."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from datetime import date, datetime
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Header, Input, Static

from transcribe.errors import TranscribeError
from transcribe.notify import Notifier, clock, note_of
from transcribe.settings import Settings
from transcribe.store import HIGHLIGHT, Job, SearchError, Store

REFRESH_S = 0.5  # how often the store is asked whether it changed (store.version)
# Rows read at a time, inbox or search; more as the user scrolls near the end. With the
# old single read of 500 rows, laid out twice, the first screen took 2.1 s at 50,000 notes
# (0.8 s with one note); with a page of 100, laid out once, 1.2 s, most of the rest the
# store's open (2 cores at load 12, 3-20 s notes; `python -m bench --bigstore`).
PAGE = 100
COLUMNS = (("when", "When", 12), ("from", "From", 11), ("length", "Len", 5),
           ("lang", "Lang", 4), ("engine", "Engine", 6), ("status", "Status", 8),
           ("text", "Text", None))
FROM_WIDTH = next(width for key, _, width in COLUMNS if key == "from")
# Quitting waits this long for the note under way to stop at its next progress report
# (every piece, at most 30 s of audio: 2-6 s of base int8 on 2 cores).
STOP_WAIT_S = 30.0

EMPTY = """\
[b]No voice notes yet.[/b]

  [b]a[/b]  add a file or a folder to transcribe now
  [b]r[/b]  record a note from the microphone
  [b]s[/b]  settings: model, language, watched folders, cloud consent

Or let the background service fill this inbox:
  [i]transcribe watch ~/VoiceNotes[/i]
"""


class InboxTable(DataTable):
    """The inbox's table, which says when its last rows come into view (by the cursor or
    by scrolling), so that the next page can be read."""

    class NearEnd(Message):
        """The last screenful of rows is in view."""

    filling = False  # rows are being put in: the cursor and scrolling are not the user's

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        self._near_end()

    def watch_cursor_coordinate(self, old_coordinate, new_coordinate) -> None:
        super().watch_cursor_coordinate(old_coordinate, new_coordinate)
        self._near_end()

    def _near_end(self) -> None:
        screenful = self.size.height
        if self.filling or not self.row_count or not screenful:
            return
        if (self.cursor_row >= self.row_count - screenful
                or self.scroll_y >= self.max_scroll_y - screenful):
            self.post_message(self.NearEnd())


class TranscribeApp(App):
    """`transcribe tui`: browse, search, add, record; the core does the work."""

    CSS_PATH = "app.tcss"
    TITLE = "transcribe"
    SUB_TITLE = "voice notes to text, on this machine"
    BINDINGS = [
        Binding("slash", "focus_search", "Search", key_display="/"),
        Binding("a", "add_files", "Add"),
        Binding("f", "filter_chat", "Chat", show=False),  # in the help; the footer is full
        Binding("r", "record", "Record"),
        Binding("s", "settings", "Settings"),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("escape", "clear_search", "Clear", show=False),
        Binding("q", "quit", "Quit"),
    ]

    # (init=False: on_mount reads the inbox once, not once more per watcher)
    query_text: reactive[str] = reactive("", init=False)
    chat: reactive[str | None] = reactive(None, init=False)  # this chat's notes only

    def __init__(self, settings: Settings | None = None, open_job: int | None = None) -> None:
        super().__init__()
        self.settings = settings or Settings.load()
        self._open_job = open_job  # a note to open at start (a desktop notification's)
        self._notes = Notifier(self.settings.notify, self._clicked)
        self.store = Store.open_default(self.settings.paths.data_dir)
        self._transcriber = None
        self._transcriber_lock = threading.Lock()
        self._rows: list[tuple] = []
        self._wanted = PAGE  # rows to show: a page more each time the user nears the end
        self._more = False  # whether the store has rows past those shown
        self._refresh_timer: Timer | None = None
        self._seen_version: tuple | None = None  # the store's, and the day, at the last read
        self._stop = threading.Event()  # quitting: the work under way goes back to the queue
        self._busy = 0  # workers using the store
        self._idle = threading.Condition()

    # -- layout --------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="main"):
            yield Input(placeholder="Search all transcripts (/ to focus, Esc to clear)",
                        id="search")
            yield Static("", id="message")
            yield InboxTable(id="inbox", cursor_type="row", zebra_stripes=True)
            yield Static(EMPTY, id="empty")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#inbox", DataTable)
        for key, label, width in COLUMNS:
            table.add_column(label, key=key, width=width or self._text_width())
        self.refresh_inbox()
        self._refresh_timer = self.set_interval(REFRESH_S, self.refresh_if_changed)
        table.focus()
        if self._open_job is not None:
            self.open_job(self._open_job)
        self._resume_queue()

    async def action_quit(self) -> None:
        """Stop the note under way (it goes back to the queue, for the next TUI or
        watcher), then quit."""
        self._stop.set()
        if self._busy:
            self.notify("stopping: the note being transcribed goes back to the queue")
            await asyncio.to_thread(self._wait_idle)
        self.exit()

    def on_unmount(self) -> None:
        self._stop.set()
        self._wait_idle()
        self._notes.close()
        self.store.close()

    def _wait_idle(self) -> None:
        with self._idle:
            self._idle.wait_for(lambda: self._busy == 0, timeout=STOP_WAIT_S)

    @contextlib.contextmanager
    def _working(self):
        with self._idle:
            self._busy += 1
        try:
            yield
        finally:
            with self._idle:
                self._busy -= 1
                self._idle.notify_all()

    # -- the inbox -----------------------------------------------------------------------

    def refresh_if_changed(self) -> None:
        """The timer's tick: re-read the inbox only when the store changed (or the day did:
        today's notes show their time, older ones their date)."""
        if self._version() != self._seen_version:
            self.refresh_inbox()

    def _version(self) -> tuple:
        return self.store.version(), date.today()

    def refresh_inbox(self) -> None:
        """Re-read the rows shown (a page, or as many as the user scrolled to); redraw only
        what changed."""
        self._seen_version = self._version()  # before reading: a change during it is seen
        message = ""
        if self.query_text.strip():
            rows, message = self._search_rows()
        else:
            rows = [_inbox_row(job, text, summary) for job, text, summary
                    in self.store.inbox(limit=self._wanted, chat=self.chat)]
            self._more = len(rows) == self._wanted
        if self.chat is not None:
            message = f"chat: {self.chat} (f: another)" + (f" · {message}" if message else "")
        self.query_one("#message", Static).update(message)
        filtered = bool(self.query_text.strip()) or self.chat is not None
        self.query_one("#empty", Static).display = not rows and not filtered
        self.query_one("#inbox", DataTable).display = bool(rows) or filtered
        self._show_rows(rows)

    def _search_rows(self) -> tuple[list[tuple], str]:
        """The search's rows shown, and how many notes match in all."""
        try:
            total = self.store.count_matches(self.query_text, chat=self.chat)
            hits = self.store.search(self.query_text, limit=self._wanted, chat=self.chat)
        except SearchError as e:
            self._more = False
            return [], str(e)
        self._more = len(hits) < total
        rows = [_search_row(hit.job, hit.snippet, hit.summary) for hit in hits]
        return rows, f"{total:,} match{'es' if total != 1 else ''}"

    def _show_rows(self, rows: list[tuple]) -> None:
        """Put `rows` in the table: the cells that changed changed in place when the same
        notes are shown (a note's progress: the view stays where the user scrolled), the
        new ones added below when the rows shown are still the first ones (the next page),
        else the table redrawn, the selected note kept."""
        if rows == self._rows:
            return
        table = self.query_one("#inbox", InboxTable)
        shown, self._rows = self._rows, rows
        if [job_id for job_id, _ in shown] == [job_id for job_id, _ in rows]:
            self._change_cells(table, shown, rows)
            return
        if shown and rows[:len(shown)] == shown:
            self._add_rows(table, rows[len(shown):])
            return
        selected = self.selected_job_id()
        self._add_rows(table, rows, anew=True)
        if selected is not None:
            for index, (job_id, _) in enumerate(rows):
                if job_id == selected:
                    table.move_cursor(row=index)
                    break

    def _add_rows(self, table: InboxTable, rows: list[tuple], *, anew: bool = False) -> None:
        """Add `rows` below the table's (in place of them, `anew`)."""
        width = self._text_width()
        table.filling = True
        try:
            if anew:
                table.clear()
            for job_id, cells in rows:
                table.add_row(*_clipped(cells, width), key=str(job_id))
        finally:
            table.filling = False

    def _change_cells(self, table: InboxTable, shown: list[tuple], rows: list[tuple]) -> None:
        """The same notes as `shown`, in the same order: change the cells that changed."""
        width = self._text_width()
        for (job_id, before), (_, after) in zip(shown, rows):
            if before != after:
                for (column, _, _), old, new, cell in zip(COLUMNS, before, after,
                                                          _clipped(after, width)):
                    if old != new:
                        table.update_cell(str(job_id), column, cell)

    @on(InboxTable.NearEnd)
    def load_more(self) -> None:
        """The user nears the last row shown: read the next page, if there is one."""
        if self._more and len(self._rows) >= self._wanted:
            self._wanted += PAGE
            self.refresh_inbox()

    def show_job(self, job_id: int) -> None:
        """Select a job's row and scroll it into view (a note just added may sort
        anywhere: its place is its sent time; the pages down to it are read)."""
        position = None if self.query_text.strip() else \
            self.store.inbox_position(job_id, chat=self.chat)
        if position is not None and position >= self._wanted:
            self._wanted = (position // PAGE + 1) * PAGE
        self.refresh_inbox()
        for index, (row_job, _) in enumerate(self._rows):
            if row_job == job_id:
                self.query_one("#inbox", DataTable).move_cursor(row=index, scroll=True)
                return

    def on_resize(self) -> None:
        """The text column takes the rest of the width, so nothing scrolls sideways. (The
        first resize, as the app starts, leaves the width the rows were clipped to.)"""
        table = self.query_one("#inbox", DataTable)
        width = self._text_width()
        if "text" in table.columns and table.columns["text"].width != width:
            table.columns["text"].width = width
            self._rows = []
            self.refresh_inbox()

    def _text_width(self) -> int:
        fixed = sum(width for _, _, width in COLUMNS if width)
        padding = 2 * len(COLUMNS) + 6  # cell padding, and room for the scrollbar
        return max(10, self.size.width - fixed - padding)

    def selected_job_id(self) -> int | None:
        table = self.query_one("#inbox", DataTable)
        if not table.row_count:
            return None
        key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return int(key.value) if key.value is not None else None

    @on(DataTable.RowSelected, "#inbox")
    def open_transcript(self, event: DataTable.RowSelected) -> None:
        self.open_job(int(event.row_key.value))

    def open_job(self, job_id: int) -> None:
        """Select a note and open its transcript."""
        from .screens import TranscriptScreen

        job = self.store.job(job_id)
        if job is not None:
            self.show_job(job_id)
            self.push_screen(TranscriptScreen(job, self.query_text))

    def _clicked(self, job_id: int | None) -> None:
        """A desktop notification of ours was clicked (in the notifier's thread)."""
        if job_id is not None:
            self.call_from_thread(self.open_job, job_id)

    # -- search --------------------------------------------------------------------------

    @on(Input.Changed, "#search")
    def search_changed(self, event: Input.Changed) -> None:
        self.query_text = event.value

    def watch_chat(self) -> None:
        if self.is_mounted:
            self._wanted = PAGE
            self.refresh_inbox()

    def watch_query_text(self) -> None:
        if self.is_mounted:
            self._wanted = PAGE
            self.refresh_inbox()

    @on(Input.Submitted, "#search")
    def search_submitted(self) -> None:
        self.query_one("#inbox", DataTable).focus()

    def action_focus_search(self) -> None:
        self.query_one("#search", Input).focus()

    def action_clear_search(self) -> None:
        search = self.query_one("#search", Input)
        search.value = ""
        self.query_one("#inbox", DataTable).focus()

    # -- actions ---------------------------------------------------------------------------

    INBOX_ACTIONS = frozenset({"focus_search", "add_files", "record", "settings",
                               "clear_search", "filter_chat"})

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The inbox's keys work on the inbox only, not over a note or a dialog."""
        if action in self.INBOX_ACTIONS and len(self.screen_stack) > 1:
            return False
        return True

    def action_add_files(self) -> None:
        from .screens import AddFilesScreen

        self.push_screen(AddFilesScreen(), self.transcribe_paths)

    def action_filter_chat(self) -> None:
        from .screens import ChatFilterScreen

        chats = self.store.chats()
        if not chats:
            self.notify("No chats yet: press a to add a chat export (WhatsApp, Telegram, Signal, Instagram, Messenger, Discord, iMessage)", timeout=4)
            return
        self.push_screen(ChatFilterScreen(chats, self.chat), self._chat_chosen)

    def _chat_chosen(self, choice: tuple[str | None] | None) -> None:
        if choice is not None:  # None: cancelled; (None,): every chat
            self.chat = choice[0]

    def action_record(self) -> None:
        from .screens import RecordScreen

        self.push_screen(RecordScreen(self.settings.paths.data_dir / "recordings"),
                         lambda path: self.transcribe_paths([path] if path else []))

    def action_settings(self) -> None:
        from .screens import SettingsScreen

        self.push_screen(SettingsScreen(self.settings), self._settings_saved)

    def action_help(self) -> None:
        from .screens import HelpScreen

        self.push_screen(HelpScreen())

    def _settings_saved(self, settings: Settings | None) -> None:
        if settings is not None:
            self.settings = settings
            with self._transcriber_lock:
                if self._transcriber is not None:
                    self._transcriber.close()
                self._transcriber = None

    # -- work ------------------------------------------------------------------------------

    def transcriber(self, **overrides):
        """The app's transcriber (the model loads once), or a one-off with overrides."""
        from transcribe.pipeline import Transcriber

        if overrides:
            return Transcriber(self.settings.with_overrides(**overrides))
        with self._transcriber_lock:
            if self._transcriber is None:
                self._transcriber = Transcriber(self.settings)
            return self._transcriber

    def transcribe_paths(self, paths: list[Path] | None) -> None:
        if paths:
            self._transcribe_in_background(list(paths))

    @work(thread=True, group="transcribe", exclusive=False)
    def _resume_queue(self) -> None:
        """The notes a TUI queued and did not finish (it quit, or died) are done now.
        A watched folder's notes are the watcher's: it writes their transcript files."""
        with self._working():
            self.store.recover()
            waiting = [job.id for job in self.store.jobs(("pending",)) if job.root is None]
            if waiting:
                self._run_jobs(sorted(waiting))

    def _run_jobs(self, job_ids: list[int]) -> None:
        from transcribe import jobs

        for index, job_id in enumerate(job_ids):
            if self._stop.is_set():
                return
            try:
                transcript = jobs.run(self.store, self.transcriber(), job_id, stop=self._stop)
            except jobs.Stopped:
                return
            except TranscribeError as e:
                self.notify(str(e), severity="error", timeout=8)
                continue
            job = self.store.job(job_id)
            if transcript is None:
                self.notify(f"{Path(job.path).name}: {job.error}", severity="error", timeout=8)
            if transcript is not None or job.error:  # (None, no error: the watcher took it)
                self._notes.add(note_of(job, transcript, job.error, self.settings.notify),
                                more=index < len(job_ids) - 1)
        if not self._stop.is_set():
            self.call_from_thread(self.refresh_inbox)

    @work(thread=True, group="transcribe", exclusive=False)
    def _transcribe_in_background(self, paths: list[Path]) -> None:
        with self._working():
            self._add_and_run(paths)

    def _add_and_run(self, paths: list[Path]) -> None:
        queued = []
        shown = None  # the first note added (or found already there) gets selected
        for path in paths:
            try:
                added = self._enqueue(path)
            except TranscribeError as e:
                self.notify(str(e), severity="error", timeout=8)
                continue
            for job, created in added:
                if created:
                    queued.append(job.id)
                shown = shown if shown is not None else job.id
        if self._stop.is_set():
            return
        self.call_from_thread(self.refresh_inbox)
        if shown is not None:
            self.call_from_thread(self.show_job, shown)
        self._run_jobs(queued)

    def _enqueue(self, path: Path) -> list[tuple[Job, bool]]:
        """A job for each voice note of `path`: a note, a folder of notes, or a chat export
        (zip or folder), whose notes keep their chat, sender and sent time."""
        from transcribe import chats, jobs

        if chats.is_export(path):
            keep = self.settings.paths.data_dir / "chats"
            name, added, problems = jobs.enqueue_chat(self.store, path, keep, self.settings)
            for problem in problems[:3]:
                self.notify(problem, severity="warning", timeout=8)
            new = sum(created for _, created in added)
            self.notify(f"chat {name}: {len(added)} voice note(s), {new} new", timeout=6)
            return added
        added = []
        for note in jobs.audio_files(path):
            try:
                job, created = jobs.enqueue(self.store, note, self.settings)
            except TranscribeError as e:
                self.notify(str(e), severity="error", timeout=8)
                continue
            if not created:
                self.notify(f"{note.name}: already in the inbox", timeout=4)
            added.append((job, created))
        return added

    @work(thread=True, group="transcribe", exclusive=False)
    def retranscribe(self, job_id: int, model: str | None, engine: str,
                     language: str | None = None) -> None:
        with self._working():
            self._retranscribe(job_id, model, engine, language)

    def _retranscribe(self, job_id: int, model: str | None, engine: str,
                      language: str | None) -> None:
        from transcribe import jobs

        overrides = {"model": model} if model and model != self.settings.model else {}
        if language != self.settings.language:
            overrides["language"] = language or "auto"
        transcriber = self.transcriber(**overrides)
        try:
            transcript = jobs.run(self.store, transcriber, job_id, engine=engine, requeue=True,
                                  stop=self._stop)
        except jobs.Stopped:
            return
        except TranscribeError as e:
            self.notify(str(e), severity="error", timeout=8)
            return
        finally:
            if overrides:
                transcriber.close()
        if transcript is None:
            self.notify(f"re-transcribing failed: {self.store.job(job_id).error}",
                        severity="error", timeout=8)
        else:
            self.notify(f"re-transcribed with {transcript.engine} {transcript.model}")
        self.call_from_thread(self.refresh_inbox)


def _summary_cells(summary: dict | None) -> tuple[str, str, str]:
    """The Len, Lang and Engine cells."""
    if not summary:
        return "", "", ""
    language = "" if summary.get("no_speech") else summary.get("language") or ""
    return (clock(summary["duration"]), language,
            "☁cloud" if summary["engine"] == "cloud" else "local")


def _inbox_row(job: Job, text: str | None, summary: dict | None) -> tuple[int, tuple]:
    status = _status(job)
    first_line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    if summary and summary["no_speech"]:
        first_line = "(no speech)"
    elif job.state == "failed" and job.error:
        first_line = f"{Path(job.path).name}: {job.error}"  # which file, and why
    elif job.state == "pending" and job.error:
        first_line = job.error  # what it waits for
    return job.id, (_when(job.sent_at), _clip(_source(job), FROM_WIDTH),
                    *_summary_cells(summary), status, first_line[:200])


def _search_row(job: Job, snippet: str, summary: dict | None) -> tuple[int, tuple]:
    text = Text()
    parts = snippet.split(HIGHLIGHT[0])
    text.append(parts[0])
    for part in parts[1:]:
        hit, _, rest = part.partition(HIGHLIGHT[1])
        text.append(hit, style="bold reverse")
        text.append(rest)
    return job.id, (_when(job.sent_at), _clip(_source(job), FROM_WIDTH),
                    *_summary_cells(summary), _status(job), text)


def _clipped(cells: tuple, width: int) -> tuple:
    """A row's cells, its text (the last) clipped to the text column's `width`."""
    return (*cells[:-1], _clip(cells[-1], width))


def _clip(text, width: int):
    if isinstance(text, Text):
        text = text.copy()
        text.truncate(width, overflow="ellipsis")
        return text
    return text if len(text) <= width else text[:width - 1] + "…"


def _status(job: Job) -> str:
    if job.state == "running":
        return f"{(job.progress or 0):.0%}"
    return {"waiting_cloud": "⏳ cloud", "done": "✓ done", "failed": "✗ failed",
            "pending": "queued"}.get(job.state, job.state)


def _when(sent_at: str | None, today: date | None = None) -> str:
    """Like a mail client: the time today, day and time this year, the date before."""
    if not sent_at:
        return ""
    try:
        when = datetime.fromisoformat(sent_at)
    except ValueError:
        return sent_at[:12]
    today = today or date.today()
    has_time = len(sent_at) > 10
    if has_time and when.date() == today:
        return when.strftime("%H:%M")
    if when.year == today.year:
        return when.strftime("%d %b %H:%M" if has_time else "%d %b")
    return when.strftime("%Y-%m-%d")


def _source(job: Job) -> str:
    """Who sent a chat's voice note; else the app or the folder a note came from."""
    if job.sender:
        return job.sender
    if job.app:
        return job.app
    return Path(job.root).name if job.root else Path(job.path).parent.name


def run(open_job: int | None = None) -> None:
    TranscribeApp(open_job=open_job).run()
