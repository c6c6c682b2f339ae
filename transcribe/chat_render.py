"""`transcribe chat`: transcribe a chat's voice notes (once, through the store) and
write the conversation back with each transcript in its place."""

from __future__ import annotations

import json
import logging
import os
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
    with tempfile.TemporaryDirectory(prefix="transcribe-chat-") as tmp:
        conv = chats.load(args.export, Path(tmp))[0]  # every export gives one chat so far
        out = args.output or str(_default_output(args.export, conv.name, args.chat_format))
        if out != "-":
            _refuse_export_files(Path(out), Path(args.export), conv)
        for problem in conv.problems[:SHOWN_PROBLEMS]:
            diag.warning(problem)
        if len(conv.problems) > SHOWN_PROBLEMS:
            diag.warning(f"... and {len(conv.problems) - SHOWN_PROBLEMS} more line(s) "
                         "not read")
        messages = conv.messages
        if args.since:
            try:
                since = datetime.fromisoformat(args.since)
            except ValueError:
                raise SettingsError(f"--since {args.since}: not a date such as 2024-03-01")
            if since.tzinfo is not None:  # a chat's times are the phone's, with no zone
                raise SettingsError(f"--since {args.since}: give it without a time zone, as "
                                    "the chat's times are (the phone's local time)")
            messages = [m for m in messages if m.time is None or m.time >= since]
        results, failed = _transcribe_notes(messages, conv, args, settings, diag)
    text = render(conv.name, messages, results, args.chat_format)
    if out == "-":
        sys.stdout.write(text)
    else:
        _write(Path(out), text, kept=bool(settings.store))
        diag.info(f"{args.export} -> {out}")
    return EXIT_INPUT if failed else EXIT_OK


def _default_output(export: Path, name: str, fmt: str) -> Path:
    """NAME.transcribed.FMT beside the export. The name is the chat's (Telegram's comes
    from the export's own text): a "/" or a leading "." in it is no path."""
    safe = re.sub(r"[/\\\x00]", "_", name).lstrip(".").strip() or "chat"
    return Path(export).parent / f"{safe}.transcribed.{fmt}"


def _refuse_export_files(out: Path, export: Path, conv) -> None:
    """--output must not be the export, its chat text or one of its attachments: the
    user's files are never changed."""
    own = [export, conv.source] + [m.attachment for m in conv.messages if m.attachment]
    try:
        target = out.resolve()
        hit = any(p is not None and p.resolve() == target for p in own)
    except OSError:
        return
    if hit:
        raise SettingsError(f"--output {out}: that is a file of the export itself; "
                            "choose another name (the export is never changed)")


def _write(out: Path, text: str, kept: bool) -> None:
    """Write the conversation whole or not at all: a full disk or a read-only folder
    leaves an earlier output as it was."""
    from .writers import write_atomic

    try:
        mode = out.stat().st_mode & 0o7777 if out.exists() else _default_mode()
        write_atomic(out, text)
        out.chmod(mode)  # write_atomic's temporary file is 0600: readable as before
    except OSError as e:
        again = "; the transcripts are kept in the store" if kept else ""
        raise OutputError(f"{out}: cannot write the conversation ({e.strerror or e}){again}"
                          ) from e


def _transcribe_notes(messages, conv, args, settings, diag):
    """Map id(message) -> Transcript or an error string. Stored transcripts are reused;
    each new one is kept in the store as soon as it is made, so Ctrl-C loses at most the
    note under way and the same command again goes on from there."""
    from .audio import file_sha256
    from .pipeline import Transcriber
    from .store import Store

    notes = [m for m in messages if m.kind == "voice" and not m.omitted]
    results: dict[int, object] = {}
    store = Store.open_default(settings.paths.data_dir) if settings.store else None
    transcriber = None
    failed = done = partial = 0
    try:
        todo = []
        first: dict[str, object] = {}  # sha -> the first message with this audio
        copies = []  # (message, sha) of the same note sent again: transcribed once
        for m in notes:
            try:
                sha = file_sha256(m.attachment)
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
                todo.append((m, sha))
                continue
            results[id(m)] = kept
            if job.chat is None:  # kept by `transcribe` or the watcher, or cut off before
                store.set_chat(job.id, conv.name, m.sender)
        with NotesProgress(diag, [m.attachment.stat().st_size for m, _ in todo]) as progress:
            for n, (m, sha) in enumerate(todo):
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
                    _keep(store, m, sha, transcript, conv, diag)
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
             "again", conv.name, len(notes), done, len(notes) - done - failed - len(copies),
             len(copies))
    return results, failed + partial


def _keep(store, m, sha: str, transcript, conv, diag) -> None:
    try:
        job = store.record(str(m.attachment), sha, m.attachment.stat().st_size, transcript,
                           app=conv.app, sent_at=m.time.isoformat() if m.time else None)
        store.set_chat(job.id, conv.name, m.sender)
    except sqlite3.Error as e:
        diag.warning(f"{m.attachment}: not kept in the store ({e})")


def _default_mode() -> int:
    """What a new file gets here (0644 under the usual umask)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


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
    if m.omitted:
        return "🎤 voice note missing from the export"
    if isinstance(result, str) or result is None:
        return f"🎤 voice note could not be transcribed ({result})"
    marks = []
    if result.language and result.language != usual:
        marks.append(result.language)
    if result.no_speech:
        return f"🎤 {_length(result.duration)} voice note: (silent)"
    if result.low_confidence:
        marks.append("low confidence")
    if result.truncated:
        marks.append("truncated: as far as it goes")
    if result.damaged:
        marks.append("damaged: partly unreadable")
    extra = f" [{', '.join(marks)}]" if marks else ""
    return f'🎤 {_length(result.duration)} voice note{extra}: "{result.text.strip()}"'


def render(name: str, messages, results, fmt: str) -> str:
    usual = _usual_language(results)
    if fmt == "json":
        return "".join(json.dumps(_as_dict(m, results.get(id(m))), ensure_ascii=False) + "\n"
                       for m in messages)
    lines = [f"# {name}", ""] if fmt == "md" else []
    for m in messages:
        when = m.time.strftime("%Y-%m-%d %H:%M") if m.time else "?"
        body = m.text
        if m.kind == "voice":
            body = voice_line(m, results.get(id(m)), usual)
        elif m.kind == "media" and m.omitted:
            body = f"📎 media omitted from the export ({m.text})"
        if m.kind == "system":
            lines.append(f"_{when} {body}_" if fmt == "md" else f"{when} {body}")
        elif fmt == "md":
            lines.append(f"**{when} {m.sender}:** {body}".replace("\n", "  \n"))
        else:
            lines.append(f"{when} {m.sender}: {body}")
        if fmt == "md":
            lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def _as_dict(m, result) -> dict:
    d = {"time": m.time.isoformat() if m.time else None, "sender": m.sender, "kind": m.kind,
         "text": m.text, "omitted": m.omitted,
         "attachment": m.attachment.name if m.attachment else None}
    if m.kind == "voice" and result is not None:
        if isinstance(result, str):
            d["error"] = result
        else:
            d["transcript"] = result.to_dict()
    return d
