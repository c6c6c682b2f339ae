"""A note's segments as lines to select, fix and (`tui.screens.TranscriptScreen`) play."""

from __future__ import annotations

from rich.markup import escape
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

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

    def __init__(self, segment: Segment, task: str, index: int) -> None:
        super().__init__(classes="segment")
        self.segment, self.note_task, self.index = segment, task, index

    def show(self, model_text: bool) -> None:
        seg = self.segment
        stamp = f"[dim]{clock(seg.start)} → {clock(seg.end)}[/dim]"
        if seg.model_text is None:
            text = (f"[yellow]{escape(seg.text)}[/yellow]" if seg.avg_logprob < UNSURE_LOGPROB
                    else escape(seg.text))
        elif model_text:
            text = f"[dim]model:[/dim] [i]{escape(seg.model_text) or '(nothing)'}[/i]"
        else:
            text = f"{escape(seg.text)} [dim]✎ fixed[/dim]"
        self.update(f"{stamp}  {text}")


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
            yield Label("[dim]Enter keeps it (the model's text stays beside it) · Esc cancels"
                        "[/dim]")

    @on(Input.Submitted)
    def keep(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)


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
