"""Queueing a file and running one job: what the TUI does with files it is handed.

The watcher has its own intake (settling, folder settings); both end in the same
store, so every way in shows up in the same inbox.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from .audio import check_readable, file_sha256, is_audio_name
from .errors import CloudError, InputError, ModelError
from .messaging import origin
from .pipeline import Transcriber
from .store import Job, Store
from .transcript import Transcript

log = logging.getLogger(__name__)


class Stopped(BaseException):
    """The job's work was stopped from outside (the TUI quit): it is back in the queue.

    A BaseException, as KeyboardInterrupt is: nothing on the way may take it for a
    failure of the note (the pipeline turns an engine's Exception into one)."""


def audio_files(path: Path) -> list[Path]:
    """The file itself, or every voice note under a folder."""
    path = Path(path)
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and is_audio_name(p)
                      and not any(part.startswith(".") for part in p.relative_to(path).parts))
    return [path]


def enqueue(store: Store, path: Path, settings=None) -> tuple[Job, bool]:
    """A pending job for this file's content; (job, False) when the content is known."""
    path = Path(path).resolve()
    size = check_readable(path, settings.max_file_bytes if settings else None)
    where = origin(path)
    return store.add_job(file_sha256(path), str(path), size, sent_at=where.sent_at,
                         app=where.app)


def enqueue_chat(store: Store, export: Path, keep_dir: Path, settings=None
                 ) -> tuple[str, list[tuple[Job, bool]], list[str]]:
    """A pending job for each voice note of a chat export (every chat of it), with its
    chat, sender and sent time; returns the chats' names, (job, created) for each note,
    and the export's problems.

    A zip is unpacked into a folder of `keep_dir` named by its SHA-256 (never anywhere
    else, whatever the zip is called): the notes must stay where the jobs say (to be
    played, re-transcribed, exported later). A note the store knew already gains its
    chat, sender and sent time."""
    from . import chats

    conversations = chats.load(Path(export), keep_dir)
    added, problems = [], []
    for conv in conversations:
        problems += conv.problems
        for m in conv.messages:
            if m.kind != "voice" or m.omitted:
                continue
            path = m.attachment.resolve()
            try:  # one unreadable note is the export's problem, not the end of the import
                size = check_readable(path, settings.max_file_bytes if settings else None)
                sha = file_sha256(path)
            except InputError as e:
                problems.append(str(e))
                continue
            except OSError as e:
                problems.append(f"{path}: cannot read ({e.strerror or e})")
                continue
            sent_at = m.time.isoformat() if m.time else None
            job, created = store.add_job(sha, str(path), size, app=conv.app, sent_at=sent_at)
            if job.chat is None:
                store.set_chat(job.id, conv.name, m.sender, sent_at=sent_at, app=conv.app)
            added.append((job, created))
    return ", ".join(conv.name for conv in conversations if conv.messages), added, problems


def run(store: Store, transcriber: Transcriber, job_id: int, engine: str = "auto",
        requeue: bool = False, stop: threading.Event | None = None) -> Transcript | None:
    """Transcribe one job into the store, with live progress; None if it failed.

    `requeue` first puts a finished job back in the queue (re-transcribing it).
    Once `stop` is set, the work ends at the next progress report with `Stopped`,
    the job given back to the queue (its attempt not counted).
    """
    if requeue:
        store.requeue(job_id)
    job = store.claim(job_id, os.getpid())
    if job is None:
        return None
    store.start(job.id)
    try:
        transcript = transcriber.transcribe(job.path, on_progress=_stoppable(
            store.progress_callback(job.id), stop), engine=engine)
    except InputError as e:
        store.fail(job.id, e.reason)
        return None
    except (ModelError, CloudError) as e:
        store.fail(job.id, str(e))
        return None
    except BaseException:
        store.release(job.id)
        raise
    store.finish(job.id, transcript)
    return transcript


def _stoppable(report, stop: threading.Event | None):
    if stop is None:
        return report

    def checked(done: float, total: float, segments=()) -> None:
        if stop.is_set():
            raise Stopped
        report(done, total, segments)

    return checked
