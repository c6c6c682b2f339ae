"""The screens pushed over the inbox: a transcript, add files, a chat, record, settings,
help."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Iterable

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import (Button, Checkbox, DirectoryTree, Footer, Header, Input, Label,
                             Markdown, OptionList, ProgressBar, Select, Static)
from textual.widgets.option_list import Option

from transcribe.errors import TranscribeError
from transcribe.languages import language_code, unknown_language
from transcribe.messaging import sent_for_people
from transcribe.notify import clock
from transcribe.settings import Settings, check_formats, save_settings, url_host
from transcribe.store import Job
from transcribe.writers import FORMATS, render, write_atomic

from .note import FixScreen, Playback, SegmentLine, fix_of


class TranscriptScreen(Screen):
    """One note: segments with timestamps, marks, which engine made it."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("c", "copy", "Copy text"),
        Binding("e", "export", "Export"),
        Binding("t", "retranscribe", "Re-transcribe"),
        Binding("enter", "fix", "Fix"),
        Binding("m", "model_text", "Model's text", show=False),  # in the help: footer's full
        Binding("d", "drop_fix", "Drop fix", show=False),  # in the help
        Binding("p", "play", "Play"),
        Binding("space", "pause", "Pause", show=False),
    ]

    def __init__(self, job: Job, query: str = "") -> None:
        super().__init__()
        self.job = job
        self.marked = _search_terms(query)  # the inbox's search: its words are marked here
        self._seen_version: tuple[int, int] | None = None
        self.selected = 0  # the segment selected (`SegmentLine.index`)
        self.model_text = False  # corrected segments show the model's text
        self.played_task: str | None = None  # whose segments playback highlights

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="transcript"):
            yield Static(id="meta")
            yield Vertical(id="segments")
        yield Playback(self.job.path)
        yield Footer()

    def on_mount(self) -> None:
        self._seen_version = self.app.store.version()
        self.show()
        self.set_interval(0.5, self._follow)

    def _follow(self) -> None:
        """Show the note again when its job changed; ask the store only if it did."""
        version = self.app.store.version()
        if version == self._seen_version:
            return
        self._seen_version = version
        job = self.app.store.job(self.job.id)
        if job is not None and (job.state, job.updated_at, job.progress) != (
                self.job.state, self.job.updated_at, self.job.progress):
            self.job = job
            self.show()

    def show(self) -> None:
        kept = self.app.store.transcripts(self.job.id)
        meta = [f"[b]{_escape(Path(self.job.path).name)}[/b]",
                f"[dim]{_escape(_home_relative(self.job.path))}[/dim]"]
        if self.job.sent_at:
            meta.append(f"sent {sent_for_people(self.job.sent_at)}" + (f" via {self.job.app}"
                                                      if self.job.app else ""))
        segments = self.query_one("#segments", Vertical)
        segments.remove_children()
        if not kept:
            partial = self.app.store.partial(self.job.id)  # None unless it is running
            meta.append(f"[i]{_escape(_state_line(self.job, partial))}[/i]")
            self.query_one("#meta", Static).update("\n".join(meta))
            if partial and partial[0]:  # the text decoded so far, growing as the note is
                segments.mount(Static(_escape(partial[0]), classes="segment partial"))
            return
        transcript = kept[0]
        language = transcript.language or "?"
        if transcript.language_unsure:
            language = (f"[b yellow]{language}? (language unsure, "
                        f"p={transcript.language_probability or 0:.2f})[/b yellow]")
        meta.append(f"{language} · {transcript.duration:.1f} s · {_made_by(transcript)}")
        marks = []
        if transcript.no_speech:
            marks.append("[b]no speech[/b]")
        if transcript.looped:
            marks.append("[b yellow]low confidence: the model repeated itself; the repeats "
                         "were cut out[/b yellow]")
        elif transcript.low_confidence:
            marks.append("[b yellow]low confidence[/b yellow]")
        if transcript.cloud_pending:
            marks.append("[b]waiting for the cloud[/b]")
        if marks:
            meta.append(" · ".join(marks))
        self.query_one("#meta", Static).update("\n".join(meta))
        shown = 0
        for transcript in kept:
            if len(kept) > 1:  # the note in its language, and its English translation
                title = ("English translation" if transcript.task == "translate"
                         else f"Transcript ({transcript.language or '?'})")
                segments.mount(Static(f"[b]{title}[/b] [dim]{_made_by(transcript)}[/dim]",
                                      classes="heading"))
            shown = self._mount_segments(segments, transcript, shown)
        self.call_after_refresh(self.action_select, 0)

    def _mount_segments(self, segments: Vertical, transcript, shown: int) -> int:
        """Mount the transcript's segment lines, numbered from `shown`; return how many
        lines there are now."""
        for seg in transcript.segments:
            line = SegmentLine(seg, transcript.task, shown, self.marked)
            segments.mount(line)
            line.show(self.model_text)
            shown += 1
        if not transcript.segments:
            segments.mount(Static("[i](no speech in this note)[/i]", classes="segment"))
        return shown

    def lines(self) -> list[SegmentLine]:
        """The segment lines shown, in order (not those a new `show` is removing)."""
        return sorted((line for line in self.query(SegmentLine) if line.is_attached),
                      key=lambda line: line.index)

    def action_select(self, step: int) -> None:
        """Select the segment `step` after the selected one (0: the selected one again)."""
        lines = self.lines()
        if lines:
            self.selected = max(0, min(self.selected + step, len(lines) - 1))
            lines[self.selected].focus()

    def selected_line(self) -> SegmentLine | None:
        lines = self.lines()
        return lines[self.selected] if self.selected < len(lines) else None

    def action_fix(self) -> None:
        line = self.selected_line()
        if line is not None:
            self.app.push_screen(FixScreen(line.segment),
                                 lambda text: self._fixed(line, text))

    def _fixed(self, line: SegmentLine, text: str | None) -> None:
        if text is None:
            return
        kept = fix_of(line.segment, text)
        seg = line.segment
        if kept is None:
            self.app.store.drop_corrections(self.job.id, line.note_task,
                                            stretch=(seg.start, seg.end))
        else:
            self.app.store.correct(self.job.id, seg.start, seg.end, kept, line.note_task)
        self.show()

    def action_drop_fix(self) -> None:
        line = self.selected_line()
        if line is not None and line.segment.model_text is not None:
            seg = line.segment
            self.app.store.drop_corrections(self.job.id, line.note_task,
                                            stretch=(seg.start, seg.end))
            self.show()
            self.notify("the model's text is back")

    def action_play(self) -> None:
        """Play the note from the selected segment."""
        line = self.selected_line()
        if line is not None:
            self.played_task = line.note_task
            self.query_one(Playback).play_from(line.segment.start)

    def action_pause(self) -> None:
        self.query_one(Playback).toggle()

    def action_jump(self, step: int) -> None:
        """Select the segment `step` after the selected one; playback goes there too."""
        self.action_select(step)
        line = self.selected_line()
        if line is not None:
            self.query_one(Playback).seek(line.segment.start)

    @on(Playback.Moved)
    def follow_playback(self, event: Playback.Moved) -> None:
        """Highlight the segment being played (and select it, while it plays: paused,
        the selection is the person's to move)."""
        lines = [line for line in self.lines() if line.note_task == self.played_task]
        playing = next((line for line in reversed(lines)
                        if line.segment.start <= event.position), None)
        for line in lines:
            line.set_class(line is playing, "playing")
        if event.playing and playing is not None and playing.index != self.selected:
            self.selected = playing.index
            playing.focus()

    def action_model_text(self) -> None:
        self.model_text = not self.model_text
        for line in self.query(SegmentLine):
            line.show(self.model_text)

    def action_copy(self) -> None:
        transcript = self.app.store.transcript(self.job.id)
        if transcript is None or not transcript.text:
            self.notify("nothing to copy", severity="warning")
            return
        self.app.copy_to_clipboard(transcript.text)  # OSC 52: works over ssh, if allowed
        tool = copy_with_system_tool(transcript.text)
        if tool:
            self.notify(f"copied the text to the clipboard ({tool})")
        else:
            self.notify("sent the text to the terminal's clipboard (OSC 52); if pasting "
                        "gives nothing, the terminal ignores it: export it with e instead",
                        timeout=8)

    def action_export(self) -> None:
        self.app.push_screen(ExportScreen(Path(self.job.path).stem), self._export)

    def _export(self, choice: tuple[str, Path] | None) -> None:
        transcript = self.app.store.transcript(self.job.id)
        if choice is None or transcript is None:
            return
        fmt, folder = choice
        target = folder / f"{Path(self.job.path).stem}.{fmt}"
        try:
            write_atomic(target, render(transcript, fmt, words=True))
        except OSError as e:
            self.notify(f"cannot write {target}: {e.strerror or e}", severity="error", timeout=8)
            return
        self.notify(f"saved {target}", timeout=8)

    def action_retranscribe(self) -> None:
        self.app.push_screen(RetranscribeScreen(self.app.settings), self._retranscribe)

    def _retranscribe(self, choice: tuple[str, str, str | None] | None) -> None:
        if choice is not None:
            model, engine, language = choice
            self.app.retranscribe(self.job.id, model, engine, language)
            self.notify("re-transcribing…")


class ExportScreen(ModalScreen[tuple[str, Path] | None]):
    """A format and the folder to save in (the home folder unless changed)."""

    BINDINGS = [Binding("escape", "dismiss", "Cancel")]

    def __init__(self, stem: str, folder: Path | None = None) -> None:
        super().__init__()
        self.stem, self.folder = stem, folder or Path.home()

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="export"):
            yield Label(f"Export {_escape(self.stem)} into this folder, as")
            yield Input(str(self.folder), id="folder")
            with Horizontal(classes="buttons"):
                for fmt in FORMATS:
                    yield Button(fmt, id=f"fmt-{fmt}")
            yield Static("", id="problem")

    @on(Button.Pressed)
    def chosen(self, event: Button.Pressed) -> None:
        folder = Path(self.query_one("#folder", Input).value.strip() or "~").expanduser()
        if folder.exists() and not folder.is_dir():
            self.query_one("#problem", Static).update(f"[red]{_escape(str(folder))}: not a "
                                                      "folder[/red]")
            return
        self.dismiss((event.button.id.removeprefix("fmt-"), folder.resolve()))


class RetranscribeScreen(ModalScreen[tuple[str, str, str | None] | None]):
    """Model, language (empty: detected) and engine for one note again."""

    BINDINGS = [Binding("escape", "dismiss", "Cancel")]

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.settings = settings

    def compose(self) -> ComposeResult:
        from transcribe.models import available

        names = [m.name for m in available(self.settings.paths.models_dir, self.settings.model)
                 if m.status != "not installed"]
        with Vertical(classes="dialog"):
            yield Label("Re-transcribe with")
            yield Select([(n, n) for n in names], value=self.settings.model, id="model",
                         allow_blank=False)
            yield Input(self.settings.language or "", id="language",
                        placeholder="language: a code or a name (empty: detect)")
            yield Static("", id="problem")
            with Horizontal(classes="buttons"):
                yield Button("Local model", id="local", variant="primary")
                cloud = Button(f"Cloud ({self.settings.cloud.host})", id="cloud")
                cloud.disabled = not self.settings.cloud.allow
                yield cloud
            if not self.settings.cloud.allow:
                yield Static("[dim]Cloud use is off (Settings).[/dim]")

    @on(Button.Pressed)
    @on(Input.Submitted)
    def chosen(self, event: Button.Pressed | Input.Submitted) -> None:
        """A button, or Enter in the language field: the local model, the primary button."""
        engine = event.button.id if isinstance(event, Button.Pressed) else "local"
        typed = self.query_one("#language", Input).value.strip()
        try:
            language = language_code(typed or None)
        except TranscribeError:
            self.query_one("#problem", Static).update(
                f"[red]{_escape(unknown_language(typed))}[/red]")
            return
        self.dismiss((self.query_one("#model", Select).value, engine, language))


class VoiceNoteTree(DirectoryTree):
    """Folders, voice notes and .zip files (a chat export), hidden ones left out: what
    can be added."""

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        from transcribe.audio import is_audio_name

        return [p for p in paths if not p.name.startswith(".")
                and (p.is_dir() or is_audio_name(p) or p.suffix.lower() == ".zip")]


class AddFilesScreen(ModalScreen[list[Path] | None]):
    """A path typed in, or picked from a tree of folders and voice notes."""

    BINDINGS = [Binding("escape", "dismiss", "Cancel")]

    def __init__(self, start: Path | None = None) -> None:
        super().__init__()
        self.start = start or Path.home()

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="add"):
            yield Label("Transcribe a file, every voice note in a folder, or a chat export "
                        "(WhatsApp, Telegram, Signal, Instagram, Messenger, Discord, iMessage: "
                        ".zip, folder or file)")
            yield Input(placeholder="~/Downloads/PTT-20240312-WA0007.opus", id="path")
            yield VoiceNoteTree(self.start, id="picker")
            yield Static("", id="problem")
            with Horizontal(classes="buttons"):
                yield Button("Transcribe", id="go", variant="primary")
                yield Button("Cancel", id="cancel")

    @on(Input.Submitted)
    @on(Button.Pressed, "#go")
    def submit(self) -> None:
        raw = self.query_one("#path", Input).value.strip().strip("'\"")
        path = Path(raw).expanduser()
        if not raw or not path.exists():
            self.query_one("#problem", Static).update(f"[red]{raw or 'a path'}: no such file "
                                                      "or folder[/red]")
            return
        self.dismiss([path])

    @on(DirectoryTree.FileSelected)
    @on(DirectoryTree.DirectorySelected)
    def picked(self, event: DirectoryTree.FileSelected | DirectoryTree.DirectorySelected) -> None:
        """A note or a folder picked in the tree becomes the path; a note is ready to go."""
        self.query_one("#path", Input).value = str(event.path)
        self.query_one("#problem", Static).update("")
        if isinstance(event, DirectoryTree.FileSelected):
            self.query_one("#go", Button).focus()

    @on(Button.Pressed, "#cancel")
    def cancel(self) -> None:
        self.dismiss(None)


class ChatFilterScreen(ModalScreen[tuple[str | None] | None]):
    """Pick the one chat the inbox shows, or every note again. Dismissed with (chat,),
    (None,) for every note, or None when cancelled."""

    BINDINGS = [Binding("escape", "dismiss", "Cancel")]
    EVERY = "every note"

    def __init__(self, chats: list[str], current: str | None) -> None:
        super().__init__()
        self.chats, self.current = chats, current

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="chats"):
            yield Label("Show the voice notes of one chat")
            yield OptionList(Option(f"({self.EVERY})", id="*"),
                             *(Option(name, id=f"chat-{n}") for n, name in enumerate(self.chats)),
                             id="chat-list")

    def on_mount(self) -> None:
        options = self.query_one("#chat-list", OptionList)
        if self.current in self.chats:
            options.highlighted = self.chats.index(self.current) + 1
        options.focus()

    @on(OptionList.OptionSelected)
    def chosen(self, event: OptionList.OptionSelected) -> None:
        index = event.option_index
        self.dismiss((self.chats[index - 1],) if index else (None,))


LIVE_CHARS = 600  # of the text so far, the end the record dialog shows


class RecordScreen(ModalScreen[Path | None]):
    """Record from the microphone: level, elapsed time, stop; then it is transcribed."""

    BINDINGS = [Binding("escape", "stop_or_close", "Stop / close"),
                Binding("space", "toggle", "Start / stop")]

    def __init__(self, recordings_dir: Path) -> None:
        super().__init__()
        self.recordings_dir = recordings_dir
        self.stop_event = threading.Event()
        self.recording = False
        self.path: Path | None = None
        self.said = ""

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="record"):
            yield Label("Record a voice note")
            yield Static("Press Start, speak, then Stop.", id="status")
            yield ProgressBar(total=60, show_eta=False, show_percentage=False, id="level")
            yield Static("00:00", id="elapsed")
            yield Static("", id="live", markup=False)  # the text so far (transcribe.live)
            with Horizontal(classes="buttons"):
                yield Button("Start", id="toggle", variant="error")
                yield Button("Close", id="close")

    def on_mount(self) -> None:
        from transcribe.recorder import input_devices

        try:
            devices = input_devices()
        except TranscribeError as e:
            self._unavailable(str(e))
            return
        if not devices:
            self._unavailable("no microphone found: plug one in, or check that your user may "
                              "use audio devices (the 'audio' group)")

    def _unavailable(self, why: str) -> None:
        self.query_one("#status", Static).update(f"[red]Recording is not available.[/red]\n{why}")
        self.query_one("#toggle", Button).disabled = True
        for part in ("#toggle", "#level", "#elapsed"):  # no Start without a microphone
            self.query_one(part).display = False

    def action_toggle(self) -> None:
        if not self.query_one("#toggle", Button).disabled:
            self.toggle()

    @on(Button.Pressed, "#toggle")
    def toggle(self) -> None:
        button = self.query_one("#toggle", Button)
        if self.recording:
            self.stop_event.set()
            button.disabled = True
            return
        from transcribe.recorder import default_recording_path

        self.recording = True
        self.path = default_recording_path(self.recordings_dir)
        button.label = "Stop"
        self.query_one("#status", Static).update(f"Recording to {self.path.name}…")
        self._record(self.path)

    @work(thread=True, exclusive=True, group="record")
    def _record(self, path: Path) -> None:
        from transcribe.live import LiveText
        from transcribe.recorder import record

        live = LiveText(self.app.settings, lambda text: self.app.call_from_thread(self._text, text))
        try:
            result = record(path, stop=self.stop_event, live=live,
                            on_level=lambda e, lvl: self.app.call_from_thread(self._level, e,
                                                                              lvl))
        except TranscribeError as e:
            self.app.call_from_thread(self._unavailable, str(e))
            self.recording = False
            return
        self.app.call_from_thread(self.dismiss, result.path)

    def _level(self, elapsed: float, level: float) -> None:
        self.query_one("#level", ProgressBar).update(progress=max(0.0, level + 60))
        minutes, seconds = divmod(int(elapsed), 60)
        self.query_one("#elapsed", Static).update(f"{minutes:02d}:{seconds:02d}")

    def _text(self, text: str) -> None:
        self.said = f"{self.said} {text}".strip()[-LIVE_CHARS:]  # the end shows: it is new
        self.query_one("#live", Static).update(self.said)

    def action_stop_or_close(self) -> None:
        if self.recording:
            self.stop_event.set()
        else:
            self.dismiss(None)

    @on(Button.Pressed, "#close")
    def close(self) -> None:
        self.action_stop_or_close()


class SettingsScreen(Screen[Settings | None]):
    """Model, language, watched folders, output formats, and cloud consent."""

    BINDINGS = [Binding("escape", "cancel", "Back"), Binding("ctrl+s", "save", "Save")]

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.settings = settings

    def compose(self) -> ComposeResult:
        from transcribe.models import available

        s = self.settings
        models = [m.name for m in available(s.paths.models_dir, s.model)
                  if m.status != "not installed"]
        if s.model not in models:
            models.append(s.model)
        yield Header()
        with VerticalScroll(id="settings"):
            with Grid(id="form"):
                yield Label("Model")
                yield Select([(m, m) for m in models], value=s.model, allow_blank=False,
                             id="model")
                yield Label("Language")
                yield Input(s.language or "", placeholder="detect (or en, de, es, ...)",
                            id="language")
                yield Label("My languages")
                yield Input(", ".join(s.languages), placeholder="any (or pt, en: detect "
                                                                  "only among these)",
                            id="languages")
                yield Label("Watched folders")
                yield Input(", ".join(s.watch.dirs), placeholder="~/VoiceNotes, ~/Downloads",
                            id="dirs")
                yield Label("Output formats")
                yield Input(s.watch.formats, placeholder="txt,srt,vtt,json", id="formats")
                yield Label("Cloud fallback")
                yield Checkbox("allow audio to be sent to the provider below",
                               value=s.cloud.allow, id="cloud")
                yield Label("Provider URL")
                yield Input(s.cloud.base_url, id="base_url")
                yield Label("Cloud model")
                yield Input(s.cloud.model, id="cloud_model")
            yield Static(id="consent")
            with Horizontal(classes="buttons"):
                yield Button("Save", id="save", variant="primary")
                yield Button("Cancel", id="cancel")
        yield Footer()

    def on_mount(self) -> None:
        self._explain()

    @on(Checkbox.Changed)
    @on(Input.Changed, "#base_url")
    def _explain(self) -> None:
        allow = self.query_one("#cloud", Checkbox).value
        url = self.query_one("#base_url", Input).value
        host = url_host(url)
        if allow:
            key = "an API key is set" if self.settings.cloud.key() else \
                f"no API key yet: set {self.settings.cloud.api_key_env or 'TRANSCRIBE_CLOUD_API_KEY'}"
            text = (f"[b yellow]Cloud use ON.[/b yellow] The audio of a note will be sent to "
                    f"[b]{host}[/b] when the local model is missing or fails on it, when its "
                    f"local transcript is low-confidence, or when you ask for the cloud. "
                    f"Every upload is logged ({key}).")
        else:
            text = ("[b green]Cloud use OFF.[/b green] No audio leaves this machine.")
        self.query_one("#consent", Static).update(text)

    @on(Button.Pressed, "#save")
    def action_save(self) -> None:
        dirs = [d.strip() for d in self.query_one("#dirs", Input).value.split(",") if d.strip()]
        formats = self.query_one("#formats", Input).value.replace(" ", "") or "txt"
        languages = [c.strip() for c in self.query_one("#languages", Input).value.split(",")
                     if c.strip()]
        try:  # checked before saving: a wrong value in config.toml would stop every command
            language = language_code(self.query_one("#language", Input).value.strip() or None)
            languages = list(self.settings.with_overrides(languages=languages).languages)
            check_formats(formats.split(","), "output formats")
        except TranscribeError as e:
            self.notify(str(e), severity="error", timeout=8)
            return
        updates = {
            "model": self.query_one("#model", Select).value,
            "language": language,
            "languages": languages or None,
            "watch": {"dirs": dirs, "formats": formats},
            "cloud": {"allow": self.query_one("#cloud", Checkbox).value,
                      "base_url": self.query_one("#base_url", Input).value.strip(),
                      "model": self.query_one("#cloud_model", Input).value.strip()},
        }
        try:
            path = save_settings(self.settings.paths, updates)
            settings = Settings.load()
        except TranscribeError as e:
            self.notify(str(e), severity="error", timeout=8)
            return
        self.notify(f"saved {path}")
        self.dismiss(settings)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


HELP = """\
# transcribe

Press `Esc` (or `?`) to close this help.

| key | where | what |
| --- | --- | --- |
| `/` | inbox | search every transcript (accents optional; `"phrases"`, `OR`, `word*`) |
| `Esc` | inbox | clear the search |
| `Enter` | inbox | open the selected note |
| `a` | inbox | add a file or a folder to transcribe, or a chat export (.zip or folder) |
| `f` | inbox | show one chat's voice notes only (or every note again) |
| `r` | inbox | record from the microphone |
| `s` | inbox | settings, cloud consent |
| `c` | note | copy the text |
| `e` | note | export as txt, srt, vtt or json |
| `t` | note | re-transcribe with another model, or the cloud (your fixes are kept) |
| `↑` `↓` | note | select a segment |
| `Enter` | note | fix the selected segment's text (search and exports use yours) |
| `m` | note | show the model's own text of the segments you fixed, or yours again |
| `d` | note | drop the selected segment's fix: the model's text is back |
| `p` | note | play the note from the selected segment (the one playing is highlighted) |
| `space` | note | pause, or play on |
| `←` `→` | note | the segment before or after (playback jumps there too) |
| `q` | anywhere | quit |

The inbox also shows what `transcribe watch` and `transcribe FILE` did: it
reads the same store.
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape", "dismiss", "Close"), Binding("question_mark", "dismiss")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog", id="help") as box:
            box.border_title = "Help"
            box.border_subtitle = "Esc or ? to close"  # on the frame: seen however it scrolls
            yield Markdown(HELP)


def _made_by(transcript) -> str:
    if transcript.engine == "cloud":
        return (f"[b yellow]☁ cloud[/] · {transcript.provider} · {transcript.model} "
                f"· {transcript.cloud_reason}")
    return f"{transcript.engine} · {transcript.model}"


def _home_relative(path: str) -> str:
    home = str(Path.home())
    return "~" + path[len(home):] if path.startswith(home + "/") else path


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


CLIPBOARD_TOOLS = (("WAYLAND_DISPLAY", ["wl-copy"]),
                   ("DISPLAY", ["xclip", "-selection", "clipboard"]),
                   ("DISPLAY", ["xsel", "--clipboard", "--input"]),
                   (None, ["pbcopy"]))


def copy_with_system_tool(text: str) -> str | None:
    """Put `text` on the desktop's clipboard with the first tool there is (wl-copy,
    xclip, xsel, pbcopy); the tool's name, or None when none could."""
    import os
    import shutil
    import subprocess

    for needs, command in CLIPBOARD_TOOLS:
        if needs and not os.environ.get(needs) or not shutil.which(command[0]):
            continue
        try:
            subprocess.run(command, input=text.encode(), check=True, timeout=5,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except (OSError, subprocess.SubprocessError):
            continue
        return command[0]
    return None


def _state_line(job: Job, partial: tuple[str, float | None] | None = None) -> str:
    """A note without a transcript yet: how far it is (and how long it is, when a
    running job's `Store.partial` says), or why it failed."""
    if job.state == "running":
        length = partial[1] if partial else None
        return f"transcribing: {job.progress or 0:.0%} done" + (
            f" · {clock(length)} long" if length else "")
    if job.state == "failed":
        return f"failed: {job.error}"
    if job.state == "pending":
        return "queued" + (f": {job.error}" if job.error else "")
    return job.state


def _search_terms(query: str):
    """A pattern for the words of a search (any case, as a word's start, as the store's
    prefix search finds them); None without words."""
    import re

    words = [w for w in re.findall(r"\w+", query) if len(w) > 1
             and w.upper() not in ("AND", "OR", "NOT", "NEAR")]
    if not words:
        return None
    return re.compile(r"\b(?:" + "|".join(map(re.escape, words)) + r")\w*", re.IGNORECASE)
