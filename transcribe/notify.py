"""Desktop notifications: a note is transcribed (or failed), and the desktop says so.

Through `desktop-notifier` (an optional dependency, imported only when a notification
is to be sent): the freedesktop notification service on the session D-Bus on Linux,
the Notification Center on macOS (only from an app bundle: elsewhere the library has
no way in, and that is said once), WinRT toasts on Windows.

- `notify = "text"` (the default) shows who sent the note and from which app when
  that is known, its length and its first words; `"title"` the same without a word
  of the note (a screen others can see); `"off"` nothing. A watched folder's
  `.transcribe.toml` can set its own.
- A burst (a chat export, a backlog) is one summary: a note is held `QUIET_S` for
  the next one, and for as long as more notes wait in the queue (at most
  `HOLD_MAX_S`, so a long backlog is still summed up now and then).
- No desktop session (a server, SSH, a systemd unit without a session bus): no
  error, one log line, nothing sent.
- Activating a notification opens the TUI on that note (a summary: on the inbox) in
  a terminal: `$TERMINAL`, else the first terminal emulator found.

The notifications go out from a thread of their own, with its own asyncio loop (the
library is asyncio's, and a click arrives as a D-Bus signal that loop must be there
to hear); the caller only hands notes over and never waits.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .audio import _clock

log = logging.getLogger(__name__)

# A finished note waits this long for the next of its burst. A chat export or a copied
# folder is queued at one walk; its notes then finish one after another with the queue
# never empty, so only the gap after the last one matters: 2 s is more than the
# watcher's own gap between two notes (a walk and a store write) and little enough
# that a single note still feels announced at once.
QUIET_S = 2.0
# A backlog still being transcribed is summed up at least this often: 30 notes of 2 s
# took 5 min on 2 cores shared with other work (1 s a note when they are idle), and a
# chat export is hundreds, so a burst is seldom cut in two.
HOLD_MAX_S = 1800.0
FIRST_WORDS = 100  # characters of the text a notification shows
SUMMARY_LINES = 3  # notes named in a summary; the rest are counted
SEND_TIMEOUT_S = 5.0  # a notification service that does not answer is given up on


@dataclass(frozen=True)
class Note:
    """A note that was just transcribed (text set) or failed (error set)."""

    job_id: int | None
    name: str  # the file's name
    who: str | None = None  # "Alice (WhatsApp)", "WhatsApp"; None when not known
    duration: float | None = None
    text: str | None = None
    error: str | None = None
    mode: str = "text"


def note_of(job, transcript=None, error: str | None = None, mode: str = "text") -> Note:
    """The Note of a store Job and its Transcript (or the reason it failed)."""
    who = job.sender or job.app
    if job.sender and job.app:
        who = f"{job.sender} ({job.app})"
    text = None
    if transcript is not None:
        text = "" if transcript.no_speech else transcript.text.strip()
    return Note(job.id, Path(job.path).name, who,
                transcript.duration if transcript is not None else None, text, error, mode)


def clock(seconds: float | None) -> str:
    """A length as m:ss ("" when not known)."""
    return "" if seconds is None else _clock(seconds)


def first_words(text: str, limit: int = FIRST_WORDS) -> str:
    """The start of a text, cut at a word and marked when cut."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0] or text[:limit]
    return cut.rstrip(",.;:!?") + "…"


def message(notes: list[Note]) -> tuple[str, str] | None:
    """The (title, body) that announces these notes; None when none of them wants one."""
    notes = [n for n in notes if n.mode != "off"]
    if not notes:
        return None
    if len(notes) == 1:
        return _single(notes[0])
    return _summary(notes)


def _single(note: Note) -> tuple[str, str]:
    if note.error is not None:
        return f"Could not transcribe {note.name}", note.error
    title = " · ".join(part for part in (note.who or note.name, clock(note.duration)) if part)
    body = note.name if note.who else ""
    if note.mode == "text":
        body = "\n".join(part for part in (_words(note), body) if part)
    return title, body


def _words(note: Note) -> str:
    return first_words(note.text) if note.text else "(no speech)"


def _summary(notes: list[Note]) -> tuple[str, str]:
    failed = sum(note.error is not None for note in notes)
    done = len(notes) - failed
    title = f"{done} voice note{'s' if done != 1 else ''} transcribed" if done else ""
    if failed:
        title += (", " if title else "") + f"{failed} could not be transcribed"
    lines = [_line(note) for note in notes[:SUMMARY_LINES]]
    if len(notes) > SUMMARY_LINES:
        lines.append(f"and {len(notes) - SUMMARY_LINES} more")
    return title, "\n".join(lines)


def _line(note: Note) -> str:
    head = " · ".join(part for part in (note.who or note.name, clock(note.duration)) if part)
    if note.error is not None:
        return f"{note.name}: {note.error}"
    return f"{head}: {_words(note)}" if note.mode == "text" else head


class Notifier:
    """Hands finished notes to the desktop, a burst as one summary.

    `open_note(job_id)` is what activating a notification does (job_id None: a
    summary's); by default the TUI is opened on that note in a terminal."""

    def __init__(self, mode: str = "text", open_note: Callable[[int | None], None] | None = None,
                 quiet_s: float = QUIET_S, hold_max_s: float = HOLD_MAX_S) -> None:
        self.mode = mode
        self.open_note = open_note or open_in_tui
        self.quiet_s, self.hold_max_s = quiet_s, hold_max_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._desktop = None  # the DesktopNotifier, once it can be used
        self._ready: asyncio.Future | None = None
        self._held: list[Note] = []
        self._first_held = 0.0
        self._flush_at: asyncio.TimerHandle | None = None
        self._failing = False  # the last notification could not be delivered (said once)

    def start(self) -> None:
        """Find the desktop (said in one line when there is none); idempotent."""
        if self._thread is not None:
            return
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="notify",
                                        daemon=True)
        self._thread.start()
        self._ready = asyncio.run_coroutine_threadsafe(self._connect(), self._loop)

    def add(self, note: Note, more: bool = False) -> None:
        """A note finished; `more`: others wait in the queue behind it (a burst)."""
        if note.mode == "off":
            return
        self.start()
        self._loop.call_soon_threadsafe(self._hold, note, more)

    def close(self, timeout: float = SEND_TIMEOUT_S) -> None:
        """Send what is held, then stop the thread."""
        if self._loop is None:
            return
        flushed = asyncio.run_coroutine_threadsafe(self._flush_now(), self._loop)
        try:
            flushed.result(timeout)
        except Exception as e:  # noqa: BLE001 - stopping: a late notification is not worth more
            log.debug("notifications not sent at exit: %s", e)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        self._loop = self._thread = None

    # -- in the notifier's thread -------------------------------------------------------

    async def _connect(self) -> None:
        try:
            from desktop_notifier import DesktopNotifier
            from desktop_notifier.backends.dummy import DummyNotificationCenter
            from desktop_notifier.main import get_backend_class
        except ImportError:
            log.info("desktop notifications off: desktop-notifier is not installed "
                     "(pip install desktop-notifier)")
            return
        logging.getLogger("desktop_notifier").addFilter(_quiet_failures)
        if get_backend_class() is DummyNotificationCenter:
            log.info("desktop notifications off: no notification service this program can "
                     "reach here (macOS lets only app bundles in)")
            return
        desktop = DesktopNotifier(app_name="transcribe")
        try:
            await asyncio.wait_for(desktop.get_capabilities(), SEND_TIMEOUT_S)
        except Exception as e:  # noqa: BLE001 - no session bus, no notification service
            log.info("desktop notifications off: no desktop session (%s)",
                     str(e) or type(e).__name__)
            return
        self._desktop = desktop

    def _hold(self, note: Note, more: bool) -> None:
        now = self._loop.time()
        if not self._held:
            self._first_held = now
        self._held.append(note)
        deadline = self._first_held + self.hold_max_s
        if not more:
            deadline = min(deadline, now + self.quiet_s)
        if self._flush_at is not None:
            self._flush_at.cancel()
        self._flush_at = self._loop.call_at(
            deadline, lambda: self._loop.create_task(self._flush_now()))

    async def _flush_now(self) -> None:
        if self._flush_at is not None:
            self._flush_at.cancel()
            self._flush_at = None
        notes, self._held = self._held, []
        said = message(notes)
        if said is None:
            return
        await asyncio.wrap_future(self._ready)
        if self._desktop is None:
            return
        job_id = notes[0].job_id if len(notes) == 1 else None
        await self._send(*said, job_id)

    async def _send(self, title: str, body: str, job_id: int | None) -> None:
        delivered = []
        try:
            await asyncio.wait_for(self._desktop.send(
                title, body, on_dispatched=lambda: delivered.append(True),
                on_clicked=lambda: self._clicked(job_id)), SEND_TIMEOUT_S)
        except Exception as e:  # noqa: BLE001 - the library raises little, but never ours
            log.debug("notification not sent: %s", e)
        if not delivered and not self._failing:
            log.warning("a desktop notification could not be delivered (the notification "
                        "service went away?); said once")
        elif delivered and self._failing:
            log.info("desktop notifications are delivered again")
        self._failing = not delivered

    def _clicked(self, job_id: int | None) -> None:
        try:
            self.open_note(job_id)
        except Exception as e:  # noqa: BLE001 - a click must never end the notifier
            log.warning("cannot open the TUI: %s: %s", type(e).__name__, e)


def _quiet_failures(record: logging.LogRecord) -> bool:
    """desktop-notifier logs each failed notification with a traceback; the Notifier
    says it once itself."""
    return record.getMessage() != "Notification failed"


# Terminal emulators and how each is told to run a command, in the order tried.
TERMINALS = (("x-terminal-emulator", "-e"), ("gnome-terminal", "--"), ("konsole", "-e"),
             ("xfce4-terminal", "-x"), ("kitty", None), ("alacritty", "-e"), ("foot", None),
             ("wezterm", "start --"), ("xterm", "-e"))


def tui_command(job_id: int | None) -> list[str]:
    return [sys.executable, "-m", "transcribe", "tui",
            *(["--note", str(job_id)] if job_id is not None else [])]


def terminal_command(command: list[str], environ=None) -> list[str] | None:
    """`command` run in a new terminal window: `$TERMINAL -e ...`, else the first
    terminal emulator found; None when there is none."""
    environ = os.environ if environ is None else environ
    if environ.get("TERMINAL"):
        return [environ["TERMINAL"], "-e", *command]
    for name, flag in TERMINALS:
        if shutil.which(name):
            return [name, *(flag.split() if flag else []), *command]
    return None


def open_in_tui(job_id: int | None) -> None:
    """Open `transcribe tui` on a note (None: the inbox) in a terminal of its own."""
    command = tui_command(job_id)
    if sys.platform == "win32":
        subprocess.Popen(command, creationflags=subprocess.CREATE_NEW_CONSOLE)
        return
    in_terminal = terminal_command(command)
    if in_terminal is None:
        log.info("no terminal emulator found to open the TUI in (set $TERMINAL)")
        return
    subprocess.Popen(in_terminal, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL, start_new_session=True)
