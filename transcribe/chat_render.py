"""`transcribe chat`: transcribe a chat's voice notes (once, through the store) and
write the conversation back with each transcript in its place."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import sqlite3
import sys
import tempfile
from datetime import datetime
from pathlib import Path

from . import chats
from .errors import (EXIT_INPUT, EXIT_OK, CloudError, InputError, OutputError,
                     SettingsError)

log = logging.getLogger(__name__)


# A chat text that is mostly not a chat (a wrong file, a damaged one) would fill the
# terminal with one warning per line: the first ones say what is wrong.
SHOWN_PROBLEMS = 20


def run_chat(args, settings, diag) -> int:
    export = Path(args.export)
    with tempfile.TemporaryDirectory(prefix="transcribe-chat-") as tmp:
        # a zip's notes stay where the store says they are (`<data dir>/chats/<sha>/`),
        # to be played or transcribed again later; with --no-store nothing is kept
        keep = settings.paths.data_dir / "chats" if settings.store else Path(tmp)
        conversations = _pick(chats.load(export, keep), args.name, export)
        _check_outputs(args, export, conversations)
        since = _since(args.since)
        _say_problems(conversations, diag)
        work, empty = [], 0
        for conv in conversations:
            if conv.messages:
                work.append((conv, [m for m in conv.messages
                                    if since is None or m.time is None or m.time >= since]))
            elif conv.problems:  # every message dropped: an error, never an empty success
                diag.error(f"{export}: chat {conv.name!r}: no message could be read")
                empty += 1
        results, failed = _transcribe_notes(work, args, settings, diag)
    _write_conversations(args, export, work, results, kept=bool(settings.store), diag=diag)
    return EXIT_INPUT if failed or empty else EXIT_OK


def _pick(conversations: list, name: str | None, export: Path) -> list:
    """The chat `--name` names (any case), or every chat of the export."""
    if name is None:
        return conversations
    picked = [c for c in conversations if c.name.casefold() == name.casefold()]
    if not picked:
        names = ", ".join(sorted({c.name for c in conversations})[:SHOWN_NAMES])
        more = " ..." if len(conversations) > SHOWN_NAMES else ""
        raise SettingsError(f"--name {name}: no such chat in {export} (it holds: {names}{more})")
    return picked


# The chat names an error lists at most (a whole account's export holds hundreds).
SHOWN_NAMES = 10


def _since(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        since = datetime.fromisoformat(text)
    except ValueError:
        raise SettingsError(f"--since {text}: not a date such as 2024-03-01") from None
    if since.tzinfo is not None:  # a chat's times are the phone's, with no zone
        raise SettingsError(f"--since {text}: give it without a time zone, as the chat's "
                            "times are (the phone's local time)")
    return since


def _check_outputs(args, export: Path, conversations: list) -> None:
    """Refuse what cannot be written before any note is transcribed."""
    if args.output and args.output_dir:
        raise SettingsError("--output and -o/--output-dir: give one of them")
    if not args.output or args.output == "-":
        return
    with_messages = [c for c in conversations if c.messages]
    if len(with_messages) > 1:
        names = ", ".join(c.name for c in with_messages[:SHOWN_NAMES])
        raise SettingsError(f"--output {args.output}: {export} holds {len(with_messages)} "
                            f"chats ({names}); pick one with --name, or give a folder "
                            "with -o DIR")
    for conv in with_messages:
        _refuse_export_files(Path(args.output), export, conv)


def _say_problems(conversations: list, diag) -> None:
    problems = [p for conv in conversations for p in conv.problems]
    for problem in problems[:SHOWN_PROBLEMS]:
        diag.warning(problem)
    if len(problems) > SHOWN_PROBLEMS:
        diag.warning(f"... and {len(problems) - SHOWN_PROBLEMS} more line(s) not read")


def _write_conversations(args, export: Path, work: list, results: dict, kept: bool,
                         diag) -> None:
    fmt = args.chat_format
    several = len(work) > 1
    if args.output == "-":
        sys.stdout.write("".join(render(conv, messages, results, fmt, several)
                                 for conv, messages in work))
        return
    if args.output:
        [(conv, messages)] = work
        _write(Path(args.output), render(conv, messages, results, fmt), kept)
        diag.info(f"{export} -> {args.output}")
        return
    folder = Path(args.output_dir) if args.output_dir else export.parent
    taken: dict[str, int] = {}
    for conv, messages in work:
        owner = str(export.resolve())
        if several:  # a chat of an account's export: its name, and which of that name
            taken[conv.name] = taken.get(conv.name, 0) + 1
            owner += f"#{conv.name}#{taken[conv.name]}"
        out = _write_owned(folder, _output_names(conv.name, export, fmt, owner), owner,
                           render(conv, messages, results, fmt), kept)
        diag.info(f"{export} -> {out}")


def _output_names(name: str, export: Path, fmt: str, owner: str) -> list[str]:
    """NAME.transcribed.FMT; when another export's conversation has that name already,
    "NAME (EXPORT).transcribed.FMT", then one hashed from the export's path."""
    chat = safe_name(name)
    source = safe_name(export.stem if export.is_file() else export.name)
    digest = hashlib.sha256(owner.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    names = [f"{chat}.transcribed.{fmt}"]
    if source != chat:
        names.append(f"{chat} ({source}).transcribed.{fmt}")
    return [*names, f"{chat}-{digest}.transcribed.{fmt}"]


# A chat's name in a file name, at most this many bytes: two of them and the rest stay
# under the 255 bytes a file name may have (ext4, tmpfs); a Telegram title of 64 emoji
# is 256 bytes.
NAME_BYTES = 100


def safe_name(name: str) -> str:
    """A chat's name as a file name: no "/", no control character, no leading ".", at
    most NAME_BYTES of UTF-8."""
    safe = re.sub(r"[/\\\x00-\x1f\x7f]", "_", name)
    safe = re.sub(r"^[\s.]+", "", safe)  # " .bashrc" too: no hidden file
    safe = safe.encode("utf-8", "surrogateescape")[:NAME_BYTES].decode("utf-8", "ignore")
    return safe.strip() or "chat"


def _refuse_export_files(out: Path, export: Path, conv) -> None:
    """--output must not be the export, its chat text or one of its attachments: the
    user's files are never changed."""
    own = [export, conv.source] + [m.attachment for m in conv.messages if m.attachment]
    try:
        target = out.resolve()
        hit = any(p is not None and p.resolve() == target for p in own) or \
            (target.is_file() and _in_export(target, export.resolve()))
    except OSError:
        return
    if hit:
        raise SettingsError(f"--output {out}: that is a file of the export itself; "
                            "choose another name (the export is never changed)")


def _in_export(target: Path, export: Path) -> bool:
    """Whether the existing file `target` is part of the export, not only the chat text
    it was read from: a second page (message_2.json, messages2.html, "[part 2].json"),
    Signal's chat.md beside the data.json read. In a folder export, every file but
    an earlier output of ours ("*.transcribed.*"); beside a chat text given alone, a
    page some app reads (not beside a zip, which holds all of its export, and not a
    .txt taken by WhatsApp alone: it reads the one chat text given)."""
    if ".transcribed." in target.name:
        return False
    if export.is_dir():
        return target.is_relative_to(export)
    if export.suffix.lower() == ".zip" or target.parent != export.parent:
        return False
    return any(app.recognise(target) for app in chats.APPS if app.APP != "whatsapp")


def _write(out: Path, text: str, kept: bool) -> None:
    """Write the conversation whole or not at all: a full disk or a read-only folder
    leaves an earlier output as it was."""
    from .writers import write_atomic

    _writing(kept, lambda: write_atomic(out, text) or out, out)


def _write_owned(folder: Path, names: list[str], owner: str, text: str, kept: bool) -> Path:
    """Write the conversation into `folder` under the first of `names` that is no other
    export's (see `writers.write_named`)."""
    from .writers import write_named

    return _writing(kept, lambda: write_named(folder, names, owner, text), folder)


def _writing(kept: bool, write, where: Path) -> Path:
    """Run `write` (which returns the path written; `write_atomic` keeps a file's mode,
    and gives a new one what the umask allows); an OSError is an `OutputError`."""
    try:
        return write()
    except OSError as e:
        again = "; the transcripts are kept in the store" if kept else ""
        raise OutputError(f"{where}: cannot write the conversation ({e.strerror or e})"
                          f"{again}") from e


def _transcribe_notes(work: list, args, settings, diag):
    """Map id(message) -> Transcript or an error string, for the voice notes of every
    (chat, messages) of `work`. Stored transcripts are reused; each new one is kept in the
    store as soon as it is made, so Ctrl-C loses at most the note under way and the same
    command again goes on from there."""
    from .audio import file_sha256
    from .pipeline import Transcriber
    from .store import Store

    notes = [(m, conv) for conv, messages in work for m in messages
             if m.kind == "voice" and not m.omitted]
    results: dict[int, object] = {}
    store = Store.open_default(settings.paths.data_dir) if settings.store else None
    transcriber = None
    failed = done = partial = 0
    try:
        todo = []
        first: dict[str, object] = {}  # sha -> the first message with this audio
        copies = []  # (message, sha) of the same note sent again: transcribed once
        for m, conv in notes:
            try:
                size, sha = m.attachment.stat().st_size, file_sha256(m.attachment)
            except OSError as e:
                results[id(m)] = f"{m.attachment}: cannot read ({e.strerror or e})"
                failed += 1
                continue
            if sha in first:
                copies.append((m, sha))
                continue
            first[sha] = m
            job = store.job_by_sha(sha) if store else None
            kept = store.transcript(job.id) if job and job.state == "done" else None
            if kept is None:
                todo.append((m, conv, sha, size))
                continue
            results[id(m)] = kept
            if job.chat is None:  # kept by `transcribe` or the watcher, or cut off before
                _mark(store, job.id, m, conv, diag)
        with NotesProgress(diag, [size for *_, size in todo]) as progress:
            for n, (m, conv, sha, size) in enumerate(todo):
                if transcriber is None:
                    transcriber = Transcriber(settings)
                try:
                    transcript = transcriber.transcribe(m.attachment, engine=args.engine,
                                                        on_progress=progress.note(n))
                except (InputError, CloudError) as e:
                    if isinstance(e, CloudError) and e.fatal:
                        raise
                    results[id(m)] = str(e)
                    failed += 1
                    continue
                done += 1
                results[id(m)] = transcript
                if transcript.truncated or transcript.damaged:  # partly read: exit 1, as the CLI
                    diag.warning(f"{m.attachment}: {'; '.join(transcript.notes)}")
                    partial += 1
                if store:
                    _keep(store, m, sha, size, transcript, conv, diag)
        for m, sha in copies:
            results[id(m)] = results.get(id(first[sha]))
    except KeyboardInterrupt:
        if store is not None:
            diag.warning(f"interrupted: {done} new voice note(s) of {len(notes)} kept in the "
                         "store; the same command again goes on from there")
        raise
    finally:
        if transcriber is not None:
            transcriber.close()
        if store is not None:
            store.close()
    log.info("chat %s: %d voice note(s), %d transcribed now, %d from the store, %d sent "
             "again", ", ".join(conv.name for conv, _ in work), len(notes), done,
             len(notes) - done - failed - len(copies), len(copies))
    return results, failed + partial


def _keep(store, m, sha: str, size: int, transcript, conv, diag) -> None:
    try:
        job = store.record(str(m.attachment), sha, size, transcript, app=conv.app,
                           sent_at=m.time.isoformat() if m.time else None)
        store.set_chat(job.id, conv.name, m.sender)
    except sqlite3.Error as e:
        diag.warning(f"{m.attachment}: not kept in the store ({e})")


def _mark(store, job_id: int, m, conv, diag) -> None:
    """A note the store knew before the chat's import: its chat, sender and sent time."""
    try:
        store.set_chat(job_id, conv.name, m.sender,
                       sent_at=m.time.isoformat() if m.time else None, app=conv.app)
    except sqlite3.Error as e:
        diag.warning(f"{m.attachment}: its chat not kept in the store ({e})")


class NotesProgress:
    """"voice note 2 of 5 ━━━━━━━━━━ 0:00:40" on stderr while a chat's notes are
    transcribed: on a terminal only, and not with -q. The bar counts audio bytes (a
    long note moves it further), the time left comes from the speed so far."""

    def __init__(self, diag, sizes: list[int]) -> None:
        self.diag, self.sizes = diag, sizes
        self.bar = self.task = None

    def __enter__(self) -> "NotesProgress":
        if self.diag.tty and not self.diag.quiet and self.sizes:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                TimeRemainingColumn(), console=self.diag.console,
                                transient=True)
            self.bar.start()
            self.task = self.bar.add_task("", total=sum(self.sizes) or 1)
        return self

    def note(self, n: int):
        """The engine's progress callback for note `n` (from 0)."""
        before = sum(self.sizes[:n])
        if self.bar is not None:
            self.bar.update(self.task, completed=before,
                            description=f"voice note {n + 1} of {len(self.sizes)}")

        def report(done: float, total: float) -> None:
            if self.bar is not None and total:
                self.bar.update(self.task,
                                completed=before + self.sizes[n] * min(done / total, 1.0))

        return report

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()


def _usual_language(results) -> str | None:
    langs = [t.language for t in results.values() if not isinstance(t, str) and t.language]
    return max(set(langs), key=langs.count) if langs else None


def _length(seconds: float) -> str:
    return f"{int(seconds) // 60}:{int(round(seconds)) % 60:02d}"


def voice_line(m, result, usual: str | None) -> str:
    note = "video note" if m.video else "voice note"  # a round video is said as such
    if m.omitted:
        return f"🎤 {note} missing from the export"
    if isinstance(result, str) or result is None:
        return f"🎤 {note} could not be transcribed ({result})"
    marks = []
    if result.language and result.language != usual:
        marks.append(result.language)
    if result.no_speech:
        return f"🎤 {_length(result.duration)} {note}: (silent)"
    if result.low_confidence:
        marks.append("low confidence")
    if result.truncated:
        marks.append("truncated: as far as it goes")
    if result.damaged:
        marks.append("damaged: partly unreadable")
    extra = f" [{', '.join(marks)}]" if marks else ""
    return f'🎤 {_length(result.duration)} {note}{extra}: "{result.text.strip()}"'


def render(conv, messages, results, fmt: str, several: bool = False) -> str:
    """One chat's conversation as md, txt or json (one object per message). `several`:
    it is one of several chats going to the same place, so a txt one says its name too.

    Everything taken from the export (names, texts, file names) and the transcripts is
    text, never markup: Markdown and HTML in it are escaped, so opening the file in a
    renderer fetches no image and runs no script; a line of a message never passes for
    a message of its own (a txt one is indented, an md one cannot be bold), and no
    control character reaches the terminal."""
    usual = _usual_language(results)
    if fmt == "json":
        return "".join(json.dumps(_as_dict(m, results.get(id(m)), conv), ensure_ascii=False)
                       + "\n" for m in messages)
    clean = md_text if fmt == "md" else plain_text
    lines = [f"# {clean(_one_line(conv.name))}", ""] if fmt == "md" or several else []
    for m in messages:
        when = m.time.strftime("%Y-%m-%d %H:%M") if m.time else "?"
        body = clean(_body(m, results.get(id(m)), usual))
        sender = clean(_one_line(str(m.sender)))
        if m.kind == "system":
            lines.append(f"_{when} {body}_" if fmt == "md" else f"{when} {body}")
        elif fmt == "md":
            lines.append(f"**{when} {sender}:** {body}".replace("\n", "  \n"))
        else:
            lines.append(f"{when} {sender}: {body}".replace("\n", "\n  "))
        if fmt == "md":
            lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n" + ("\n" if several else "")


def _body(m, result, usual: str | None) -> str:
    if m.kind == "voice":
        return voice_line(m, result, usual)
    if m.kind == "media" and m.omitted:
        return f"📎 media omitted from the export ({m.text})"
    return m.text


def _one_line(text: str) -> str:
    return " ".join(text.split("\n"))


# Control characters but the newline and the tab: an escape sequence in a chat would
# recolour or rewrite the terminal a txt conversation is shown in; "\r" would hide
# what comes before it.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# What Markdown (CommonMark and GitHub's) makes markup of inside a line ...
_MD_INLINE = re.compile(r"([\\`*_\[\]~|])")
# ... and at a line's start: headings, lists, setext underlines, quotes (">" is escaped
# as HTML), ordered lists ("1." / "1)").
_MD_LINE_START = re.compile(r"^(\s*)([#+=-])", re.MULTILINE)
_MD_ORDERED = re.compile(r"^(\s*\d+)([.)])", re.MULTILINE)


def plain_text(text: str) -> str:
    """Text for a txt conversation: control characters shown as \ufffd."""
    return _CONTROL.sub("\ufffd", text.replace("\r\n", "\n"))


def md_text(text: str) -> str:
    """Text as Markdown that shows it as it is: no link, image, HTML, heading or list
    comes of it."""
    text = plain_text(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MD_INLINE.sub(r"\\\1", text)
    text = _MD_LINE_START.sub(r"\1\\\2", text)
    return _MD_ORDERED.sub(r"\1\\\2", text)


def _as_dict(m, result, conv) -> dict:
    d = {"app": conv.app, "chat": conv.name,
         "time": m.time.isoformat() if m.time else None, "sender": m.sender, "kind": m.kind,
         "text": m.text, "omitted": m.omitted,
         "attachment": m.attachment.name if m.attachment else None}
    if m.kind == "voice" and result is not None:
        if isinstance(result, str):
            d["error"] = result
        else:
            d["transcript"] = result.to_dict()
    return d
