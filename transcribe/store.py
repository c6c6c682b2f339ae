"""The job store: one SQLite database (WAL) under the data dir.

One job per audio *content* (its SHA-256), so the same note arriving twice,
renamed or re-synced is transcribed once, while a different note that reuses a
file name is a new job. `paths` remembers which file had which content, so a
rescan does not hash unchanged files again.

Job states:

    pending -> running -> done
                       -> waiting_cloud   local result kept, the cloud to be asked later
                       -> failed          with a reason; retried up to MAX_ATTEMPTS

A job's transcript and its `done` state are committed in one transaction, so a
crash leaves a job either done with its transcript or not done at all; a job
left `running` by a dead process goes back to `pending` when the next watcher
starts. An attempt counts only from `start()`, when the note's own work begins:
a crash while the model loads is not the note's fault and costs it nothing.
A running job names its owner by pid and the kernel's start time of that pid, so
a pid reused by another process after a kill -9 does not keep it running.

The store's trouble is never a note's: a store another process holds locked, or
whose disk is full, makes a patient store (the watcher's) wait, said once, and
progress (only shown) is skipped rather than waited for.

`outputs` holds the transcript files owed to each watched file: one row per
audio path, `written` NULL until its files are in place, and the task its
folder wants (`options.task`: its files show that task's transcript). A new
transcript makes its job's files of that task owed again, and a folder that
cannot take them (read-only, full) leaves them owed, never the note failed.
A watched copy whose folder wants a transcript the job does not have (another
task, model or forced language) queues the job again with its settings
(`transcribe_again`); the new transcript replaces the one of its task.

Paths are text; a file name that is not valid UTF-8 is kept as its bytes (a
BLOB), so it round-trips exactly (`os.fsencode`/`os.fsdecode`).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from . import corrections
from .errors import EXIT_INPUT, TranscribeError
from .transcript import Transcript, join_segments, transcript_from_dict

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
# SQLite's own wait for another connection's write lock, per statement.
BUSY_TIMEOUT_S = 30.0
# A patient store tries a write again this often while the store is locked or full.
RETRY_S = 2.0
# What a patient store waits out: a lock held by another process (past SQLite's own
# wait), and a full disk.
WAITED_OUT = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_FULL}
# A waiting job's effective size halves for every this many seconds it waits,
# so short notes go first but a long one is not starved.
AGING_S = 300.0
# A running note's text decoded so far is kept up to this many characters, its last ones
# (about 18 minutes of speech at 150 words a minute). It is written with every progress
# point: quick either way (0.02 ms for 16,000 characters, 0.05 ms for 160,000; 2 busy
# cores), but each write copies the text's pages into the WAL, and a three-hour note's
# whole text (about 160,000 characters) twice a second would be 320 KB/s of it.
PARTIAL_CHARS = 16000

STATES = ("pending", "running", "done", "waiting_cloud", "failed")

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    sha256 TEXT NOT NULL UNIQUE,
    path TEXT NOT NULL,
    root TEXT,
    size INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    sent_at TEXT,
    app TEXT,
    options TEXT,
    pid INTEGER,
    pid_start INTEGER,
    progress REAL,
    started REAL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);
CREATE TABLE IF NOT EXISTS outputs (
    path TEXT PRIMARY KEY,
    job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    root TEXT NOT NULL,
    options TEXT NOT NULL,
    written REAL
);
CREATE INDEX IF NOT EXISTS outputs_job ON outputs(job_id);
-- The watcher asks for owed outputs every 2 s: without this index, a full scan (30 ms
-- at 100,000 outputs on 2 busy cores: 0.9 CPU s a minute while idle; with it 0.01 ms).
CREATE INDEX IF NOT EXISTS outputs_owed ON outputs(written) WHERE written IS NULL;
CREATE TABLE IF NOT EXISTS paths (
    path TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL
);
"""
# A transcript table and its full-text index; one of each per task (below).
_TRANSCRIPT_TABLE = """
CREATE TABLE IF NOT EXISTS {table} (
    job_id INTEGER PRIMARY KEY REFERENCES jobs(id) ON DELETE CASCADE,
    text TEXT NOT NULL,
    language TEXT,
    duration REAL,
    engine TEXT NOT NULL,
    model TEXT NOT NULL,
    no_speech INTEGER NOT NULL,
    data TEXT NOT NULL,
    created_at REAL NOT NULL,
    corrected INTEGER NOT NULL DEFAULT 0
);
CREATE VIRTUAL TABLE IF NOT EXISTS {table}_fts USING fts5(
    text, content='{table}', content_rowid='job_id',
    tokenize='unicode61 remove_diacritics 2'
);
CREATE TRIGGER IF NOT EXISTS {table}_ai AFTER INSERT ON {table} BEGIN
    INSERT INTO {table}_fts(rowid, text) VALUES (new.job_id, new.text);
END;
CREATE TRIGGER IF NOT EXISTS {table}_ad AFTER DELETE ON {table} BEGIN
    INSERT INTO {table}_fts({table}_fts, rowid, text) VALUES ('delete', old.job_id, old.text);
END;
CREATE TRIGGER IF NOT EXISTS {table}_au AFTER UPDATE ON {table} BEGIN
    INSERT INTO {table}_fts({table}_fts, rowid, text) VALUES ('delete', old.job_id, old.text);
    INSERT INTO {table}_fts(rowid, text) VALUES (new.job_id, new.text);
END;
"""
SCHEMA += "".join(_TRANSCRIPT_TABLE.format(table=table)
                  for table in ("transcripts", "translations"))
# A person's corrections of a note's transcript of one task, each the text of one stretch
# (a segment's start and end, s). `data` keeps the model's transcript as it was made; the
# table's `text` (what search and the inbox read) and `Store.transcript` have the
# corrections laid over it (`corrections.apply`), so they outlive a new transcript.
SCHEMA += """
CREATE TABLE IF NOT EXISTS corrections (
    job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    task TEXT NOT NULL,
    start_s REAL NOT NULL,
    end_s REAL NOT NULL,
    text TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (job_id, task, start_s, end_s)
);
"""
# A note keeps one transcript per task: `transcripts` holds what was said, in its
# language; `translations` its English translation (--task translate). Stores from
# before version 2 kept only the last one made, whatever its task, in `transcripts`;
# opening one moves its translations over.
SCHEMA_VERSION = 2
# The inbox's order, newest sent first (`Store.inbox`): with these its first page is read
# in 1 ms at 50,000 notes; without them every note was joined and sorted (100 ms, 2 busy
# cores; `python -m bench --bigstore`). Made after `_migrate`, which adds `chat`.
INDEXES = """
CREATE INDEX IF NOT EXISTS jobs_inbox ON jobs(COALESCE(sent_at, ''), created_at);
CREATE INDEX IF NOT EXISTS jobs_chat_inbox ON jobs(chat, COALESCE(sent_at, ''), created_at)
    WHERE chat IS NOT NULL;
"""
TABLES = {"transcribe": "transcripts", "translate": "translations"}


class SearchError(TranscribeError):
    """A search the full-text index cannot understand."""

    exit_code = 2


class StoreDamaged(TranscribeError):
    """The store file is not a database any more (truncated, overwritten, a folder)."""

    exit_code = EXIT_INPUT

    def __init__(self, path: Path, why: str) -> None:
        self.path = Path(path)
        self.why = why
        super().__init__(
            f"{path}: the job store is damaged ({why}). Your audio files are not affected. "
            f"Move it aside (mv '{path}' '{path}.corrupt') and the next run starts a new "
            "one; `transcribe watch` does that by itself")


@dataclass(frozen=True)
class Hit:
    job: "Job"
    snippet: str  # with the matches between HIGHLIGHT marks
    rank: float
    summary: dict | None = None  # as `Store.inbox` gives it: language, duration, engine...


HIGHLIGHT = ("\x02", "\x03")


@dataclass(frozen=True)
class Owed:
    """Transcript files owed to one watched audio file."""

    path: str
    job_id: int
    root: str
    options: dict


@dataclass(frozen=True)
class Job:
    id: int
    sha256: str
    path: str
    root: str | None
    size: int
    state: str
    attempts: int
    error: str | None
    sent_at: str | None
    app: str | None
    options: dict
    progress: float | None
    created_at: float
    updated_at: float
    chat: str | None = None  # a chat export's voice note: which chat, and who sent it
    sender: str | None = None


def _patient(method):
    """A write that, in a patient store, waits out a lock held by another process or
    a full disk (tried again every RETRY_S) instead of raising: see `Store.waiting`."""
    @functools.wraps(method)
    def waiting(self: "Store", *args, **kwargs):
        while True:
            try:
                result = method(self, *args, **kwargs)
            except sqlite3.OperationalError as e:
                if not self.patient or e.sqlite_errorcode not in WAITED_OUT:
                    raise
                self._waiting(e)
                time.sleep(RETRY_S)
                continue
            self._waited()
            return result
    return waiting


class Store:
    """Thread-safe access to the job store; each method is one transaction.

    A `patient` store (the watcher's) waits for a store that another process holds
    locked or whose disk is full, with one log line, rather than raise: the note
    being worked on is not at fault, and its transcript is kept once the store can
    take it."""

    def __init__(self, path: Path, *, patient: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.patient = patient
        self.waiting: str | None = None  # why writes wait, while they do
        self._lock = threading.RLock()
        self._commits = 0  # this connection's, which its data_version does not count
        if self.path.is_dir():
            raise StoreDamaged(self.path, "a folder is in its place")
        self._db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                                   check_same_thread=False)
        try:
            self._opened()
        except sqlite3.OperationalError:
            self._db.close()
            raise
        except sqlite3.DatabaseError as e:  # "file is not a database", "malformed"
            self._db.close()
            raise StoreDamaged(self.path, str(e)) from None

    @_patient
    def _opened(self) -> None:
        self._open()

    def _waiting(self, error: sqlite3.OperationalError) -> None:
        why = ("its disk is full" if error.sqlite_errorcode == sqlite3.SQLITE_FULL
               else "another process holds it locked")
        if self.waiting != why:
            log.warning("%s: cannot write the job store: %s (%s); waiting, every note kept "
                        "as it is", self.path, why, error)
        self.waiting = why

    def _waited(self) -> None:
        if self.waiting is not None:
            log.warning("%s: the job store can be written again", self.path)
            self.waiting = None

    def _open(self) -> None:
        self._db.row_factory = sqlite3.Row
        # Names are matched whatever their case, in any script (SQLite's own NOCASE folds
        # only A-Z: "maría" would miss "MARÍA").
        self._db.create_function("casefold", 1, _casefold, deterministic=True)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        check = self._db.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise sqlite3.DatabaseError(check)
        with self._lock:
            self._db.executescript(SCHEMA)
            self._migrate()
            self._db.executescript(INDEXES)

    def _migrate(self) -> None:
        """Bring a store made by an older version up to this one, in place."""
        columns = {r["name"] for r in self._db.execute("PRAGMA table_info(jobs)")}
        added = {"started": "REAL",  # attempts count from a note's start
                 "pid_start": "INTEGER",  # a running job's owner: its pid's start time
                 "chat": "TEXT", "sender": "TEXT",  # a chat export's voice notes
                 # a running job: the text decoded so far and the note's length (s)
                 "partial": "TEXT", "length_s": "REAL"}
        for column, kind in added.items():
            if column not in columns:
                self._db.execute(f"ALTER TABLE jobs ADD COLUMN {column} {kind}")
        for table in TABLES.values():  # a person corrected the text (`corrections`)
            if "corrected" not in {r["name"] for r in
                                   self._db.execute(f"PRAGMA table_info({table})")}:
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN corrected INTEGER "
                                 "NOT NULL DEFAULT 0")
        if self._db.execute("PRAGMA user_version").fetchone()[0] >= SCHEMA_VERSION:
            return
        with self._tx() as db:
            moved = "SELECT * FROM transcripts WHERE json_extract(data, '$.task') = 'translate'"
            db.execute(f"INSERT OR IGNORE INTO translations {moved}")
            db.execute("DELETE FROM transcripts WHERE json_extract(data, '$.task') = 'translate'")
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @_patient
    def set_chat(self, job_id: int, chat: str, sender: str | None, *,
                 sent_at: str | None = None, app: str | None = None) -> None:
        """Which chat a voice note came from, and who sent it; given, when it was sent and
        from which app (a note kept before its chat was imported has the file's time)."""
        with self._tx() as db:
            db.execute("UPDATE jobs SET chat=?, sender=?, sent_at=coalesce(?, sent_at), "
                       "app=coalesce(?, app) WHERE id=?", (chat, sender, sent_at, app, job_id))

    @classmethod
    def open_default(cls, data_dir: Path) -> "Store":
        return cls(data_dir / "transcribe.db")

    @classmethod
    def open_or_start_anew(cls, data_dir: Path) -> "Store":
        """The default store, patient; a damaged one is moved aside to
        `transcribe.db.corrupt-<time>` (with its -wal and -shm files) and a new one
        started. The watcher's way in."""
        path = data_dir / "transcribe.db"
        try:
            return cls(path, patient=True)
        except StoreDamaged as e:
            aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
            for suffix in ("", "-wal", "-shm"):
                part = Path(f"{path}{suffix}")
                if part.exists():
                    part.rename(f"{aside}{suffix}")
            log.warning("%s: the job store is damaged (%s); moved it aside to %s and started "
                        "a new one (audio files untouched; notes in the watched folders are "
                        "transcribed again)", path, e.why, aside)
            return cls(path, patient=True)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")  # (a full disk can refuse the commit itself)
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            self._commits += 1

    def version(self) -> tuple[int, int]:
        """A value that changes whenever the store does: SQLite's data_version (commits by
        other connections: the watcher, the CLI) and this connection's own commits. No
        table is read, so a screen can ask every half second and re-read only on a change."""
        with self._lock:
            return self._db.execute("PRAGMA data_version").fetchone()[0], self._commits

    # -- paths -----------------------------------------------------------------------

    def known_path(self, path: str, size: int, mtime_ns: int) -> str | None:
        """The content hash recorded for this exact file state, if any."""
        row = self._db.execute("SELECT sha256 FROM paths WHERE path=? AND size=? AND mtime_ns=?",
                               (to_db(path), size, mtime_ns)).fetchone()
        return row["sha256"] if row else None

    @_patient
    def remember_path(self, path: str, sha256: str, size: int, mtime_ns: int) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO paths(path, sha256, size, mtime_ns) VALUES (?,?,?,?) "
                       "ON CONFLICT(path) DO UPDATE SET sha256=excluded.sha256, "
                       "size=excluded.size, mtime_ns=excluded.mtime_ns",
                       (to_db(path), sha256, size, mtime_ns))

    # -- jobs ------------------------------------------------------------------------

    @_patient
    def add_job(self, sha256: str, path: str, size: int, *, root: str | None = None,
                sent_at: str | None = None, app: str | None = None,
                options: dict | None = None, state: str = "pending",
                error: str | None = None) -> tuple[Job, bool]:
        """Add a job for this content unless one exists; return it and whether it is new."""
        now = time.time()
        owner = ((os.getpid(), process_start(os.getpid())) if state == "running"
                 else (None, None))
        with self._tx() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO jobs(sha256, path, root, size, state, attempts, error, "
                "sent_at, app, options, pid, pid_start, created_at, updated_at) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (sha256, to_db(path), to_db(root), size, state, 1 if state == "failed" else 0,
                 error, sent_at, app, json.dumps(options or {}), *owner, now, now))
            created = cur.rowcount == 1
            row = db.execute("SELECT * FROM jobs WHERE sha256=?", (sha256,)).fetchone()
        return _job(row), created

    @_patient
    def claim_next(self, pid: int | None = None) -> Job | None:
        """Mark the next pending job running and return it (short notes first, with aging)."""
        now = time.time()
        with self._tx() as db:
            # A note that crashed the process goes after the ones that did not, so one
            # bad note cannot hold the queue up for its three tries.
            row = db.execute(
                "SELECT * FROM jobs WHERE state='pending' AND attempts < ? "
                "ORDER BY attempts ASC, size / (1.0 + (? - created_at) / ?) ASC, id ASC LIMIT 1",
                (MAX_ATTEMPTS, now, AGING_S)).fetchone()
            return None if row is None else _mark_running(db, row["id"], pid)

    @_patient
    def start(self, job_id: int) -> None:
        """The note's own work (decoding, transcribing) begins: one attempt more.

        A process that dies from here until `finish`/`fail`/`release` died on
        this note, and after MAX_ATTEMPTS such deaths the note is given up."""
        with self._tx() as db:
            db.execute("UPDATE jobs SET attempts=attempts+1, started=?, updated_at=? "
                       "WHERE id=? AND state='running'", (time.time(), time.time(), job_id))

    @_patient
    def release(self, job_id: int, why: str | None = None) -> None:
        """Give back a job this process stopped working on; the attempt does not
        count. `why`, if given, is what it waits for, shown as its error until it is done."""
        with self._tx() as db:
            db.execute("UPDATE jobs SET state='pending', "
                       "attempts=MAX(attempts - (started IS NOT NULL), 0), pid=NULL, "
                       "progress=NULL, partial=NULL, length_s=NULL, started=NULL, "
                       "error=COALESCE(?, error), updated_at=? "
                       "WHERE id=? AND state='running'", (why, time.time(), job_id))

    @_patient
    def claim(self, job_id: int, pid: int | None = None) -> Job | None:
        """Mark one given pending job running (the TUI works on the jobs it added)."""
        with self._tx() as db:
            return _mark_running(db, job_id, pid)

    @_patient
    def requeue(self, job_id: int) -> None:
        """Queue a finished or failed job again (re-transcribe with other settings)."""
        with self._tx() as db:
            db.execute("UPDATE jobs SET state='pending', attempts=0, error=NULL, updated_at=? "
                       "WHERE id=? AND state IN ('done', 'failed', 'waiting_cloud')",
                       (time.time(), job_id))

    def record(self, path: str, sha256: str, size: int, transcript: Transcript, *,
               sent_at: str | None = None, app: str | None = None) -> Job:
        """Keep a transcript made outside the queue (the CLI), replacing an older one."""
        job, _ = self.add_job(sha256, path, size, sent_at=sent_at, app=app, state="running")
        self.finish(job.id, transcript)
        return self.job(job.id)

    def set_progress(self, job_id: int, progress: float, partial: str | None = None,
                     length_s: float | None = None) -> None:
        """Record how far a job is, with the text decoded so far and the note's length
        (s) when given; skipped, not waited for, when the store cannot take it now
        (locked by another process, its disk full): progress is only shown. The text
        replaces the one before and goes when the job does not run any more."""
        with self._lock:
            self._db.execute("PRAGMA busy_timeout = 0")
            try:
                with self._tx() as db:
                    db.execute("UPDATE jobs SET progress=?, partial=COALESCE(?, partial), "
                               "length_s=COALESCE(?, length_s) WHERE id=? AND state='running'",
                               (progress, partial, length_s, job_id))
            except sqlite3.OperationalError as e:
                if e.sqlite_errorcode not in WAITED_OUT:
                    raise
                log.debug("%s: progress not recorded (%s)", self.path, e)
            finally:
                self._db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")

    def progress_callback(self, job_id: int, every_s: float = 0.5):
        """An engine progress callback that records a job's progress, the text decoded so
        far and the note's length, at most every `every_s`."""
        last = [0.0]
        decoded = _Decoded()

        def report(done: float, total: float, segments=()) -> None:
            decoded.add(segments)
            now = time.monotonic()
            if total and now - last[0] >= every_s:
                last[0] = now
                self.set_progress(job_id, min(done / total, 1.0), decoded.text(), total)

        return report

    def partial(self, job_id: int) -> tuple[str, float | None] | None:
        """A running job's text decoded so far (its last PARTIAL_CHARS characters) and the
        note's length (s, None before it is known); None when the job is not running."""
        row = self._db.execute("SELECT partial, length_s FROM jobs WHERE id=? AND "
                               "state='running'", (job_id,)).fetchone()
        return None if row is None else (row["partial"] or "", row["length_s"])

    @_patient
    def finish(self, job_id: int, transcript: Transcript, state: str | None = None) -> str:
        """Store the transcript and the job's final state in one transaction; return the state.

        The transcript replaces the job's earlier one of the same task only: a
        translation is kept beside the transcript in the note's language.
        Unless given, the state follows the transcript: `waiting_cloud` when it
        still waits for the cloud, else `done`."""
        state = state or ("waiting_cloud" if transcript.cloud_pending else "done")
        table = TABLES.get(transcript.task, "transcripts")
        transcript = corrections.uncorrected(transcript)  # the model's text is what is kept
        now = time.time()
        with self._tx() as db:
            shown = corrections.apply(transcript, _corrections(db, job_id, transcript.task))
            db.execute(
                f"INSERT INTO {table}(job_id, text, language, duration, engine, model, "
                "no_speech, data, created_at, corrected) VALUES (?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT(job_id) DO UPDATE SET text=excluded.text, "
                "language=excluded.language, duration=excluded.duration, "
                "engine=excluded.engine, model=excluded.model, no_speech=excluded.no_speech, "
                "data=excluded.data, created_at=excluded.created_at, "
                "corrected=excluded.corrected",
                (job_id, shown.text, transcript.language, transcript.duration,
                 transcript.engine, transcript.model, int(transcript.no_speech),
                 _json(transcript.to_dict(words=True)), now, int(shown.corrected)))
            db.execute("UPDATE jobs SET state=?, error=NULL, pid=NULL, progress=NULL, "
                       "partial=NULL, length_s=NULL, "
                       "started=NULL, updated_at=? WHERE id=?", (state, now, job_id))
            # (an output from before outputs named their task shows the last transcript made)
            db.execute("UPDATE outputs SET written=NULL WHERE job_id=? AND "
                       "COALESCE(json_extract(options, '$.task'), ?) = ?",
                       (job_id, transcript.task, transcript.task))
        return state

    @_patient
    def fail(self, job_id: int, reason: str, *, retry: bool = False) -> None:
        """Record a failure; `retry` puts the job back in the queue while attempts remain.

        A failure is one attempt, whether or not `start` counted it already (a
        folder's bad settings fail a note before its work begins)."""
        now = time.time()
        with self._tx() as db:
            row = db.execute("SELECT attempts, started FROM jobs WHERE id=?",
                             (job_id,)).fetchone()
            attempts = row["attempts"] + (row["started"] is None)
            state = "pending" if retry and attempts < MAX_ATTEMPTS else "failed"
            db.execute("UPDATE jobs SET state=?, error=?, attempts=?, pid=NULL, progress=NULL, "
                       "partial=NULL, length_s=NULL, "
                       "started=NULL, updated_at=? WHERE id=?",
                       (state, reason, attempts, now, job_id))

    @_patient
    def recover(self) -> int:
        """Put jobs left running by a process that is gone back in the queue; return how
        many. A job counts as gone unless its owner is another live process whose start
        time is the one recorded (the pid of a process killed may be another's now); a
        job of this process's own is taken back too, so call it between jobs.

        Only a job whose own work had started (`start`) has used an attempt; one
        that had used all of them crashed the process each time and is given up."""
        running = "SELECT id, pid, pid_start, attempts, started FROM jobs WHERE state='running'"
        if all(_owned(row) for row in self._db.execute(running)):
            return 0  # (nothing to write: asked every few seconds by the watcher)
        recovered = 0
        with self._tx() as db:
            for row in db.execute(running).fetchall():
                if _owned(row):
                    continue
                given_up = row["started"] is not None and row["attempts"] >= MAX_ATTEMPTS
                error = (f"the process stopped while transcribing it, {row['attempts']} times"
                         if given_up else None)
                # (a job of a store from before `start` may have used up its attempts
                # at claim: it gets one more)
                attempts = (row["attempts"] if given_up or row["started"] is not None
                            else min(row["attempts"], MAX_ATTEMPTS - 1))
                db.execute("UPDATE jobs SET state=?, attempts=?, pid=NULL, progress=NULL, "
                           "partial=NULL, length_s=NULL, "
                           "started=NULL, error=? WHERE id=?",
                           ("failed" if given_up else "pending", attempts, error, row["id"]))
                recovered += 1
        return recovered

    # -- outputs ---------------------------------------------------------------------

    @_patient
    def owe_outputs(self, path: str, job_id: int, root: str, options: dict) -> bool:
        """Record that `path` (a watched file of job `job_id`) needs its transcript files.

        Return True when this is news: the path had no outputs, or had another
        note's (a reused name). A path already owed or written for this job is left."""
        with self._tx() as db:
            if _owes(db, path, job_id):
                return False
            _owe(db, path, job_id, root, options)
        return True

    def owes(self, path: str, job_id: int) -> bool:
        """Whether `path` is already owed (or was written) the outputs of job `job_id`."""
        return _owes(self._db, path, job_id)

    @_patient
    def transcribe_again(self, job_id: int, path: str, root: str, job_options: dict,
                         output_options: dict) -> bool:
        """Queue a finished job again with `job_options`, for the watched file `path`,
        whose folder wants a transcript the job does not have; `path` is owed its
        outputs in the same transaction, so a crash cannot leave it owed a transcript
        nobody makes, nor make it twice. The job reads its audio from `path` from now
        on. Return False when the job is not finished (nothing is changed)."""
        with self._tx() as db:
            cur = db.execute(
                "UPDATE jobs SET state='pending', attempts=0, error=NULL, path=?, root=?, "
                "options=?, updated_at=? WHERE id=? AND state IN ('done', 'waiting_cloud')",
                (to_db(path), to_db(root), json.dumps(job_options), time.time(), job_id))
            if cur.rowcount != 1:
                return False
            _owe(db, path, job_id, root, output_options)
        return True

    def owed_outputs(self) -> list[Owed]:
        """Outputs owed for finished jobs (done, or done locally and waiting for the cloud)."""
        return self._outputs("o.written IS NULL AND j.state IN ('done', 'waiting_cloud')")

    def outputs_of(self, job_id: int) -> list[Owed]:
        """Every watched file of this job, its outputs written or not."""
        return self._outputs("o.job_id=?", (job_id,))

    def _outputs(self, where: str, args: tuple = ()) -> list[Owed]:
        rows = self._db.execute("SELECT o.* FROM outputs o JOIN jobs j ON j.id = o.job_id "
                                f"WHERE {where} ORDER BY o.rowid", args).fetchall()
        return [Owed(from_db(r["path"]), r["job_id"], from_db(r["root"]),
                     json.loads(r["options"])) for r in rows]

    @_patient
    def outputs_written(self, *owed: Owed) -> None:
        """These outputs are in place (one transaction for them all)."""
        if not owed:
            return
        with self._tx() as db:
            db.executemany("UPDATE outputs SET written=? WHERE path=? AND job_id=?",
                           [(time.time(), to_db(o.path), o.job_id) for o in owed])

    def jobs(self, states: tuple[str, ...] = STATES, limit: int | None = None) -> list[Job]:
        marks = ",".join("?" * len(states))
        sql = f"SELECT * FROM jobs WHERE state IN ({marks}) ORDER BY updated_at DESC, id DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [_job(r) for r in self._db.execute(sql, states)]

    def job_by_sha(self, sha256: str) -> Job | None:
        row = self._db.execute("SELECT * FROM jobs WHERE sha256=?", (sha256,)).fetchone()
        return _job(row) if row else None

    def job(self, job_id: int) -> Job | None:
        row = self._db.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
        return _job(row) if row else None

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATES, 0)
        for row in self._db.execute("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state"):
            counts[row["state"]] = row["n"]
        return counts

    def search(self, query: str, limit: int = 50, *, offset: int = 0, chat: str | None = None,
               sender: str | None = None) -> list[Hit]:
        """One page of a full-text search over every transcript: the notes ranked
        `offset` to `offset + limit`, best matches first, diacritics folded; only the
        voice notes of one chat, or of one sender, when named (any case). A note whose
        transcript and translation both match is one match, at its better rank; ties
        go by job id, so consecutive pages never share or skip a note
        (`count_matches` says how many there are)."""
        fts = fts_query(query)
        if not fts:
            return []
        where, args = _note_filter(chat, sender)
        filtered = f"JOIN jobs j ON j.id = best.job_id WHERE 1{where}" if where else ""
        # Only the page's notes are joined to their jobs and transcripts, and only theirs
        # get a snippet: at 50,000 notes a common word matches most of them.
        rows = self._matching(
            query,
            f"WITH {_matches(fts_rank=True)}, "
            "best AS (SELECT job_id, tbl, MIN(rank) AS rank FROM matches GROUP BY job_id), "
            f"page AS (SELECT best.* FROM best {filtered} "
            "ORDER BY best.rank, best.job_id LIMIT :limit OFFSET :offset) "
            f"SELECT j.*, page.tbl, page.rank, {_EITHER} FROM page JOIN jobs j ON j.id = "
            f"page.job_id {_TRANSCRIPTS_JOIN} ORDER BY page.rank, page.job_id",
            {**args, "fts": fts, "limit": max(0, limit), "offset": max(0, offset)})
        snippets = self._snippets(fts, rows)
        # (a transcript replaced between the two reads has no snippet: "", until the
        # next search)
        return [Hit(_job(r), snippets.get((r["tbl"], r["id"]), ""), r["rank"], _summary(r))
                for r in rows]

    def count_matches(self, query: str, *, chat: str | None = None,
                      sender: str | None = None) -> int:
        """How many notes `search` finds for `query` (each note once), over all its pages."""
        fts = fts_query(query)
        if not fts:
            return 0
        where, args = _note_filter(chat, sender)
        filtered = f"JOIN jobs j ON j.id = m.job_id WHERE 1{where}" if where else ""
        row = self._matching(query, f"WITH {_matches(fts_rank=False)} SELECT COUNT(*) AS n "
                             f"FROM (SELECT DISTINCT job_id FROM matches) m {filtered}",
                             {**args, "fts": fts})
        return row[0]["n"]

    def _matching(self, query: str, sql: str, args: dict) -> list[sqlite3.Row]:
        try:
            return self._db.execute(sql, args).fetchall()
        except sqlite3.OperationalError as e:
            raise SearchError(f"cannot search for {query!r}: {e}; put words in double quotes "
                              "to search for them as they are") from None

    def _snippets(self, fts: str, rows: list[sqlite3.Row]) -> dict[tuple[str, int], str]:
        """The snippet of each (table, job id) matched, its matches between HIGHLIGHT marks."""
        start, end = HIGHLIGHT
        snippets = {}
        for table in {r["tbl"] for r in rows}:
            ids = ",".join(str(int(r["id"])) for r in rows if r["tbl"] == table)
            for r in self._db.execute(
                    f"SELECT rowid, snippet({table}_fts, 0, :start, :end, '…', 12) AS snippet "
                    f"FROM {table}_fts WHERE {table}_fts MATCH :fts AND rowid IN ({ids})",
                    {"start": start, "end": end, "fts": fts}):
                snippets[table, r["rowid"]] = r["snippet"]
        return snippets

    def inbox(self, limit: int = 500, *, offset: int = 0, chat: str | None = None
              ) -> list[tuple[Job, str | None, dict | None]]:
        """A page of every job (of one chat, when named), newest sent first, with its
        transcript's text and summary (the transcript in the note's language, or its
        translation when there is only that). The order is total (ties go by the newest
        added), so pages follow each other; `jobs_inbox` keeps a page as quick at 50,000
        notes as at one."""
        rows = self._db.execute(
            f"SELECT j.*, {_EITHER} FROM jobs j {_TRANSCRIPTS_JOIN} "
            f"{'WHERE j.chat = :chat ' if chat is not None else ''}"
            f"ORDER BY {_INBOX_ORDER} LIMIT :limit OFFSET :offset",
            {"limit": max(0, limit), "offset": max(0, offset), "chat": chat}).fetchall()
        return [(_job(r), r["text"], _summary(r)) for r in rows]

    def inbox_position(self, job_id: int, *, chat: str | None = None) -> int | None:
        """Where a job is in `inbox`'s order (0 for the first), or None when it is not
        there (no such job, or not of `chat`)."""
        row = self._db.execute(
            "SELECT COALESCE(sent_at, '') AS sent, created_at, id, chat FROM jobs WHERE id=?",
            (job_id,)).fetchone()
        if row is None or (chat is not None and row["chat"] != chat):
            return None
        before = self._db.execute(
            "SELECT COUNT(*) FROM jobs j WHERE (COALESCE(j.sent_at, ''), j.created_at, j.id) "
            f"> (:sent, :created, :id){' AND j.chat = :chat' if chat is not None else ''}",
            {"sent": row["sent"], "created": row["created_at"], "id": row["id"],
             "chat": chat}).fetchone()
        return before[0]

    def chats(self) -> list[str]:
        """The chats voice notes came from (`transcribe chat`), the latest first."""
        rows = self._db.execute("SELECT chat FROM jobs WHERE chat IS NOT NULL GROUP BY chat "
                                "ORDER BY MAX(COALESCE(sent_at, '')) DESC, chat")
        return [r["chat"] for r in rows]

    def transcript(self, job_id: int, task: str | None = None) -> Transcript | None:
        """The job's transcript of `task`; without a task, the last one made."""
        tables = [TABLES[task]] if task else list(TABLES.values())
        either = " UNION ALL ".join(f"SELECT data, created_at FROM {t} WHERE job_id=:id"
                                    for t in tables)
        row = self._db.execute(f"SELECT data FROM ({either}) ORDER BY created_at DESC LIMIT 1",
                               {"id": job_id}).fetchone()
        if row is None:
            return None
        made = transcript_from_dict(json.loads(row["data"]))
        return corrections.apply(made, _corrections(self._db, job_id, made.task))

    # -- corrections -----------------------------------------------------------------

    def correct(self, job_id: int, start: float, end: float, text: str,
                task: str = "transcribe") -> Transcript | None:
        """Keep a person's `text` for the stretch `start`-`end` (s) of the job's transcript
        of `task`, in place of any correction of the same stretch; return the transcript
        as it now reads (None when the job has none of that task). Its files are owed
        again, so a watched folder's transcript shows the correction too."""
        with self._tx() as db:
            _drop_corrections(db, job_id, task, (start, end))
            db.execute("INSERT INTO corrections(job_id, task, start_s, end_s, text, created_at) "
                       "VALUES (?,?,?,?,?,?)", (job_id, task, start, end, text.strip(),
                                                time.time()))
            return _show_corrections(db, job_id, task)

    def drop_corrections(self, job_id: int, task: str = "transcribe", *,
                         stretch: tuple[float, float] | None = None) -> Transcript | None:
        """Forget the corrections of the job's transcript of `task` (only the one of
        `stretch`, when given): the model's text is shown again. Return the transcript
        as it now reads."""
        with self._tx() as db:
            _drop_corrections(db, job_id, task, stretch)
            return _show_corrections(db, job_id, task)

    def corrections(self, job_id: int, task: str = "transcribe") -> list[corrections.Correction]:
        """The corrections kept for the job's transcript of `task`, in time order."""
        return _corrections(self._db, job_id, task)

    def transcripts(self, job_id: int) -> list[Transcript]:
        """Every transcript kept of the job: in the note's language first, then English."""
        found = (self.transcript(job_id, task) for task in TABLES)
        return [t for t in found if t is not None]


def fts_query(text: str) -> str:
    """Plain words become quoted terms (so "don't" or "c++" cannot break the syntax);
    AND, OR, NOT, "quoted phrases" and a trailing * for prefixes keep their meaning."""
    import re

    if text.count('"') % 2:
        raise SearchError(f"cannot search for {text!r}: a double quote is not closed")
    parts = []
    for phrase, token in re.findall(r'"([^"]*)"|(\S+)', text):
        if phrase:
            parts.append('"' + phrase.replace('"', '""') + '"')
        elif token in ("AND", "OR", "NOT"):
            parts.append(token)
        elif token.rstrip("*"):
            quoted = '"' + token.rstrip("*").replace('"', '""') + '"'
            parts.append(quoted + ("*" if token.endswith("*") else ""))
    return " ".join(parts)


# What a list of notes shows of each note's transcript: the one in the note's language,
# or its translation when there is only that (`_TRANSCRIPTS_JOIN` names them t and tr).
_SUMMARY = ("language", "duration", "engine", "model", "no_speech", "corrected")
_EITHER = ", ".join(f"COALESCE(t.{c}, tr.{c}) AS {c}" for c in ("text", *_SUMMARY))
_TRANSCRIPTS_JOIN = ("LEFT JOIN transcripts t ON t.job_id = j.id "
                     "LEFT JOIN translations tr ON tr.job_id = j.id")
_INBOX_ORDER = "COALESCE(j.sent_at, '') DESC, j.created_at DESC, j.id DESC"


def _corrections(db: sqlite3.Connection, job_id: int,
                 task: str) -> list[corrections.Correction]:
    rows = db.execute("SELECT start_s, end_s, text FROM corrections WHERE job_id=? AND task=? "
                      "ORDER BY start_s, end_s", (job_id, task))
    return [corrections.Correction(r["start_s"], r["end_s"], r["text"]) for r in rows]


def _drop_corrections(db: sqlite3.Connection, job_id: int, task: str,
                      stretch: tuple[float, float] | None) -> None:
    """Inside a transaction: forget the job's corrections of `task` (those of the same
    stretch as `stretch`, when given)."""
    for c in _corrections(db, job_id, task):
        if stretch is None or corrections.same_stretch((c.start, c.end), stretch):
            db.execute("DELETE FROM corrections WHERE job_id=? AND task=? AND start_s=? "
                       "AND end_s=?", (job_id, task, c.start, c.end))


def _show_corrections(db: sqlite3.Connection, job_id: int, task: str) -> Transcript | None:
    """Inside a transaction: lay the job's corrections over its transcript of `task`, so
    search and the inbox read them; owe its files again. Return the transcript shown."""
    table = TABLES[task]
    row = db.execute(f"SELECT data FROM {table} WHERE job_id=?", (job_id,)).fetchone()
    if row is None:
        return None
    shown = corrections.apply(transcript_from_dict(json.loads(row["data"])),
                              _corrections(db, job_id, task))
    db.execute(f"UPDATE {table} SET text=?, corrected=? WHERE job_id=?",
               (shown.text, int(shown.corrected), job_id))
    db.execute("UPDATE outputs SET written=NULL WHERE job_id=? AND "
               "COALESCE(json_extract(options, '$.task'), ?) = ?", (job_id, task, task))
    return shown


def _summary(row: sqlite3.Row) -> dict | None:
    """A note's transcript summary from a row with `_EITHER`'s columns; None without one."""
    if row["engine"] is None:
        return None
    return {k: row[k] for k in _SUMMARY}


def _matches(fts_rank: bool) -> str:
    """A `matches` table of every note whose transcript or translation matches :fts:
    its job id, the table that matched and (with `fts_rank`) FTS5's bm25 rank."""
    return "matches AS (" + " UNION ALL ".join(
        f"SELECT rowid AS job_id, '{t}' AS tbl"
        + (f", bm25({t}_fts) AS rank" if fts_rank else "")
        + f" FROM {t}_fts WHERE {t}_fts MATCH :fts" for t in TABLES.values()) + ")"


def _note_filter(chat: str | None, sender: str | None) -> tuple[str, dict]:
    """SQL (over jobs j) keeping the voice notes of one chat, or of one sender, named in
    any case; and its arguments."""
    named = {column: value for column, value in (("chat", chat), ("sender", sender))
             if value is not None}
    return "".join(f" AND casefold(j.{column}) = casefold(:{column})"
                   for column in named), named


def _owes(db: sqlite3.Connection, path: str, job_id: int) -> bool:
    row = db.execute("SELECT job_id FROM outputs WHERE path=?", (to_db(path),)).fetchone()
    return row is not None and row["job_id"] == job_id


def _owe(db: sqlite3.Connection, path: str, job_id: int, root: str, options: dict) -> None:
    """Inside a transaction: `path` is owed job `job_id`'s outputs (a reused name: anew)."""
    db.execute("INSERT INTO outputs(path, job_id, root, options, written) "
               "VALUES (?,?,?,?,NULL) ON CONFLICT(path) DO UPDATE SET "
               "job_id=excluded.job_id, root=excluded.root, options=excluded.options, "
               "written=NULL", (to_db(path), job_id, to_db(root), json.dumps(options)))


def _mark_running(db: sqlite3.Connection, job_id: int, pid: int | None) -> Job | None:
    """Inside a transaction: a pending job becomes running (its attempt counts from `start`)."""
    pid = pid or os.getpid()
    cur = db.execute("UPDATE jobs SET state='running', pid=?, pid_start=?, progress=0, "
                     "partial=NULL, length_s=NULL, started=NULL, updated_at=? "
                     "WHERE id=? AND state='pending'",
                     (pid, process_start(pid), time.time(), job_id))
    if cur.rowcount != 1:
        return None
    return _job(db.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone())


class _Decoded:
    """The segments a progress callback was handed so far, in order; a segment that
    starts where kept ones do replaces them (the note decoded again from there: another
    engine, another try)."""

    def __init__(self) -> None:
        self.segments: list = []

    def add(self, segments) -> None:
        for seg in segments:
            while self.segments and self.segments[-1].start >= seg.start:
                self.segments.pop()
            self.segments.append(seg)

    def text(self) -> str:
        text = join_segments(self.segments)
        if len(text) <= PARTIAL_CHARS:
            return text
        tail = text[-PARTIAL_CHARS:]
        return "…" + (tail.split(" ", 1)[-1] if " " in tail else tail)


def to_db(path: str | None) -> str | bytes | None:
    """A path as SQLite keeps it: text, or its bytes when it is not valid UTF-8."""
    if path is None:
        return None
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:  # os.fsdecode's surrogate escapes: a name that is not UTF-8
        return os.fsencode(path)
    return path


def from_db(value: str | bytes | None) -> str | None:
    return os.fsdecode(value) if isinstance(value, bytes) else value


def readable(path: str | os.PathLike) -> str:
    """A path fit to print anywhere: bytes that are not UTF-8 shown as \\xNN."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _json(data: dict) -> str:
    """JSON for a text column: UTF-8 as it is, and a non-UTF-8 file name \\u-escaped."""
    text = json.dumps(data, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(data)
    return text


def _job(row: sqlite3.Row) -> Job:
    return Job(id=row["id"], sha256=row["sha256"], path=from_db(row["path"]),
               root=from_db(row["root"]),
               size=row["size"], state=row["state"], attempts=row["attempts"],
               error=row["error"], sent_at=row["sent_at"], app=row["app"],
               options=json.loads(row["options"] or "{}"), progress=row["progress"],
               created_at=row["created_at"], updated_at=row["updated_at"],
               chat=row["chat"], sender=row["sender"])


def _casefold(value: str | None) -> str | None:
    return value.casefold() if isinstance(value, str) else value


def _owned(row: sqlite3.Row) -> bool:
    """Whether a running job's owner is another process, alive, and the same one that
    took it (its pid's start time as recorded, where the system tells it)."""
    pid = row["pid"]
    if not pid or pid == os.getpid() or not pid_alive(pid):
        return False
    return row["pid_start"] is None or process_start(pid) in (None, row["pid_start"])


def process_start(pid: int) -> int | None:
    """When the process with this pid started, in clock ticks since boot (Linux's
    /proc/PID/stat, field 22); None where that cannot be read. With the pid, it names
    one process: a pid is reused, a (pid, start) pair is not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    # the name, field 2, is in parentheses and may hold spaces or ")"
    fields = stat[stat.rfind(b")") + 2:].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (one of another user's counts)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # (no pid is that large)
        return False
    except PermissionError:
        return True
    return True
