"""A note's segments as lines to select, fix and (`tui.screens.TranscriptScreen`) play."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from transcribe.errors import TranscribeError
from transcribe.transcript import Segment

# A segment the model was unsure of (its mean log-probability below this) is shown yellow.
UNSURE_LOGPROB = -1.0


class SegmentLine(Static, can_focus=True):
    """One segment: its times and text; the person's text when corrected, or the model's
    when asked (`m`). Up and down select the segment before or after; left and right do
    too, and move the playback with them (the screen's `select` and `jump`)."""

    BINDINGS = [Binding("up", "screen.select(-1)", show=False),
                Binding("down", "screen.select(1)", show=False),
                Binding("left", "screen.jump(-1)", show=False),
                Binding("right", "screen.jump(1)", show=False)]

    def __init__(self, segment: Segment, task: str, index: int,
                 marked: re.Pattern | None = None) -> None:
        super().__init__(classes="segment")
        self.segment, self.note_task, self.index = segment, task, index
        self.marked = marked  # the inbox search's words, marked in the text

    def show(self, model_text: bool) -> None:
        seg = self.segment
        stamp = f"[dim]{clock(seg.start)} → {clock(seg.end)}[/dim]"
        if seg.model_text is None:
            said = self._said(seg.text)
            text = f"[yellow]{said}[/yellow]" if seg.avg_logprob < UNSURE_LOGPROB else said
        elif model_text:
            text = f"[dim]model:[/dim] [i]{escape(seg.model_text) or '(nothing)'}[/i]"
        else:
            text = f"{self._said(seg.text)} [dim]✎ fixed[/dim]"
        self.update(f"{stamp}  {text}")

    def _said(self, text: str) -> str:
        said = escape(text)
        if self.marked is not None:
            said = self.marked.sub(lambda m: f"[b reverse]{m.group(0)}[/b reverse]", said)
        return said


class FixScreen(ModalScreen[str | None]):
    """The text of one segment, to fix; Enter keeps it, Esc leaves it as it was."""

    BINDINGS = [Binding("escape", "dismiss", "Cancel")]

    def __init__(self, segment: Segment) -> None:
        super().__init__()
        self.segment = segment

    def compose(self) -> ComposeResult:
        seg = self.segment
        with Vertical(classes="dialog", id="fix") as box:
            box.border_title = f"Fix {clock(seg.start)} → {clock(seg.end)}"
            yield Input(seg.text, id="fix-text")
            if seg.model_text is not None:
                yield Label(f"[dim]model's text:[/dim] {escape(seg.model_text) or '(nothing)'}")
            yield Label("[dim]Enter keeps it (the model's text stays beside it: m shows it)"
                        " · Esc cancels[/dim]")

    @on(Input.Submitted)
    def keep(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)


class Playback(Static):
    """The note's playback, and its one status line: where it plays, paused, or why it
    cannot play (no PortAudio, no output device). The note is decoded for it the first
    time it plays, in a thread (an hour's note takes seconds)."""

    @dataclass
    class Moved(Message):
        """Playback is at `position` (s), about every `TICK_S`; `playing`: not paused
        nor at its end."""

        position: float
        playing: bool

    TICK_S = 0.1

    def __init__(self, path: str) -> None:
        super().__init__(id="play-status")
        self.path = path
        self.player = None
        self.display = False

    def play_from(self, seconds: float) -> None:
        if self.player is None:
            self.say(f"opening {Path(self.path).name} to play it…")
            self._open(seconds)
        else:
            self.player.play(seconds)

    def toggle(self) -> None:
        """Pause, or play on."""
        if self.player is None:
            return
        if self.player.playing:
            self.player.pause()
        else:
            self.player.play()
        self._tick()

    def seek(self, seconds: float) -> None:
        if self.player is not None:
            self.player.seek(seconds)
            self._tick()

    def say(self, text: str) -> None:
        self.display = True
        self.update(text)

    @work(thread=True, exclusive=True)
    def _open(self, start: float) -> None:
        from transcribe.player import Player

        try:
            player = Player.of_file(self.path)
        except TranscribeError as e:
            self.app.call_from_thread(self.say, f"[b]Cannot play this note:[/b] {escape(str(e))}")
            return
        self.app.call_from_thread(self._opened, player, start)

    def _opened(self, player, start: float) -> None:
        if not self.is_attached:  # the note was closed while it was decoded
            player.close()
            return
        self.player = player
        player.play(start)
        self._tick()
        self.set_interval(self.TICK_S, self._tick)

    def _tick(self) -> None:
        player = self.player
        position = player.position
        if player.playing:
            state = "▶ playing"
        elif player.paused:
            state = "⏸ paused (space plays on)"
        else:
            state = "■ played to the end (p plays the selected segment)"
        self.say(f"{state}  {clock(position)} / {clock(player.duration)}")
        self.post_message(self.Moved(position, player.playing))

    def on_unmount(self) -> None:
        if self.player is not None:
            self.player.close()


def fix_of(segment: Segment, text: str) -> str | None:
    """What a person's edit of `segment` asks: the text to keep ("" when nothing was said:
    a line the model made up), or None when it is the model's own text again (any
    correction is dropped)."""
    text = " ".join(text.split())
    model = segment.text if segment.model_text is None else segment.model_text
    return None if text == " ".join(model.split()) else text


def clock(seconds: float) -> str:
    minutes, secs = divmod(seconds, 60)
    return f"{int(minutes):02d}:{secs:04.1f}"
