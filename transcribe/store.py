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
starts.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .errors import TranscribeError
from .transcript import Transcript, transcript_from_dict

MAX_ATTEMPTS = 3
# A waiting job's effective size halves for every this many seconds it waits,
# so short notes go first but a long one is not starved.
AGING_S = 300.0

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
    progress REAL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);
CREATE TABLE IF NOT EXISTS paths (
    path TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS transcripts (
    job_id INTEGER PRIMARY KEY REFERENCES jobs(id) ON DELETE CASCADE,
    text TEXT NOT NULL,
    language TEXT,
    duration REAL,
    engine TEXT NOT NULL,
    model TEXT NOT NULL,
    no_speech INTEGER NOT NULL,
    data TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE VIRTUAL TABLE IF NOT EXISTS transcripts_fts USING fts5(
    text, content='transcripts', content_rowid='job_id',
    tokenize='unicode61 remove_diacritics 2'
);
CREATE TRIGGER IF NOT EXISTS transcripts_ai AFTER INSERT ON transcripts BEGIN
    INSERT INTO transcripts_fts(rowid, text) VALUES (new.job_id, new.text);
END;
CREATE TRIGGER IF NOT EXISTS transcripts_ad AFTER DELETE ON transcripts BEGIN
    INSERT INTO transcripts_fts(transcripts_fts, rowid, text) VALUES ('delete', old.job_id, old.text);
END;
CREATE TRIGGER IF NOT EXISTS transcripts_au AFTER UPDATE ON transcripts BEGIN
    INSERT INTO transcripts_fts(transcripts_fts, rowid, text) VALUES ('delete', old.job_id, old.text);
    INSERT INTO transcripts_fts(rowid, text) VALUES (new.job_id, new.text);
END;
"""


class SearchError(TranscribeError):
    """A search the full-text index cannot understand."""

    exit_code = 2


@dataclass(frozen=True)
class Hit:
    job: "Job"
    snippet: str  # with the matches between HIGHLIGHT marks
    rank: float


HIGHLIGHT = ("\x02", "\x03")


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


class Store:
    """Thread-safe access to the job store; each method is one transaction."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                   check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        with self._lock:
            self._db.executescript(SCHEMA)
            self._add_chat_columns()

    def _add_chat_columns(self) -> None:
        """Chat exports' jobs carry the chat and the sender (added to older stores too)."""
        have = {row["name"] for row in self._db.execute("PRAGMA table_info(jobs)")}
        for column in ("chat", "sender"):
            if column not in have:
                self._db.execute(f"ALTER TABLE jobs ADD COLUMN {column} TEXT")

    def set_chat(self, job_id: int, chat: str, sender: str | None) -> None:
        """Which chat a voice note came from, and who sent it."""
        with self._tx() as db:
            db.execute("UPDATE jobs SET chat=?, sender=? WHERE id=?", (chat, sender, job_id))

    @classmethod
    def open_default(cls, data_dir: Path) -> "Store":
        return cls(data_dir / "transcribe.db")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- paths -----------------------------------------------------------------------

    def known_path(self, path: str, size: int, mtime_ns: int) -> str | None:
        """The content hash recorded for this exact file state, if any."""
        row = self._db.execute("SELECT sha256 FROM paths WHERE path=? AND size=? AND mtime_ns=?",
                               (path, size, mtime_ns)).fetchone()
        return row["sha256"] if row else None

    def remember_path(self, path: str, sha256: str, size: int, mtime_ns: int) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO paths(path, sha256, size, mtime_ns) VALUES (?,?,?,?) "
                       "ON CONFLICT(path) DO UPDATE SET sha256=excluded.sha256, "
                       "size=excluded.size, mtime_ns=excluded.mtime_ns",
                       (path, sha256, size, mtime_ns))

    # -- jobs ------------------------------------------------------------------------

    def add_job(self, sha256: str, path: str, size: int, *, root: str | None = None,
                sent_at: str | None = None, app: str | None = None,
                options: dict | None = None, state: str = "pending",
                error: str | None = None) -> tuple[Job, bool]:
        """Add a job for this content unless one exists; return it and whether it is new."""
        now = time.time()
        with self._tx() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO jobs(sha256, path, root, size, state, attempts, error, "
                "sent_at, app, options, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (sha256, path, root, size, state, 1 if state == "failed" else 0, error, sent_at,
                 app, json.dumps(options or {}), now, now))
            created = cur.rowcount == 1
            row = db.execute("SELECT * FROM jobs WHERE sha256=?", (sha256,)).fetchone()
        return _job(row), created

    def claim_next(self, pid: int | None = None) -> Job | None:
        """Mark the next pending job running and return it (short notes first, with aging)."""
        now = time.time()
        with self._tx() as db:
            row = db.execute(
                "SELECT * FROM jobs WHERE state='pending' AND attempts < ? "
                "ORDER BY size / (1.0 + (? - created_at) / ?) ASC, id ASC LIMIT 1",
                (MAX_ATTEMPTS, now, AGING_S)).fetchone()
            return None if row is None else _mark_running(db, row["id"], pid)

    def release(self, job_id: int) -> None:
        """Give back a job this process stopped working on; the attempt does not count."""
        with self._tx() as db:
            db.execute("UPDATE jobs SET state='pending', attempts=MAX(attempts-1, 0), pid=NULL, "
                       "progress=NULL, updated_at=? WHERE id=? AND state='running'",
                       (time.time(), job_id))

    def claim(self, job_id: int, pid: int | None = None) -> Job | None:
        """Mark one given pending job running (the TUI works on the jobs it added)."""
        with self._tx() as db:
            return _mark_running(db, job_id, pid)

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

    def set_progress(self, job_id: int, progress: float) -> None:
        with self._tx() as db:
            db.execute("UPDATE jobs SET progress=? WHERE id=?", (progress, job_id))

    def progress_callback(self, job_id: int, every_s: float = 0.5):
        """An engine progress callback that records a job's progress, at most every `every_s`."""
        last = [0.0]

        def report(done: float, total: float) -> None:
            now = time.monotonic()
            if total and now - last[0] >= every_s:
                last[0] = now
                self.set_progress(job_id, min(done / total, 1.0))

        return report

    def finish(self, job_id: int, transcript: Transcript, state: str | None = None) -> str:
        """Store the transcript and the job's final state in one transaction; return the state.

        Unless given, the state follows the transcript: `waiting_cloud` when it
        still waits for the cloud, else `done`."""
        state = state or ("waiting_cloud" if transcript.cloud_pending else "done")
        now = time.time()
        with self._tx() as db:
            db.execute(
                "INSERT INTO transcripts(job_id, text, language, duration, engine, model, "
                "no_speech, data, created_at) VALUES (?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT(job_id) DO UPDATE SET text=excluded.text, "
                "language=excluded.language, duration=excluded.duration, "
                "engine=excluded.engine, model=excluded.model, no_speech=excluded.no_speech, "
                "data=excluded.data, created_at=excluded.created_at",
                (job_id, transcript.text, transcript.language, transcript.duration,
                 transcript.engine, transcript.model, int(transcript.no_speech),
                 json.dumps(transcript.to_dict(words=True), ensure_ascii=False), now))
            db.execute("UPDATE jobs SET state=?, error=NULL, pid=NULL, progress=NULL, "
                       "updated_at=? WHERE id=?", (state, now, job_id))
        return state

    def fail(self, job_id: int, reason: str, *, retry: bool = False) -> None:
        """Record a failure; `retry` puts the job back in the queue while attempts remain."""
        now = time.time()
        with self._tx() as db:
            row = db.execute("SELECT attempts FROM jobs WHERE id=?", (job_id,)).fetchone()
            state = "pending" if retry and row["attempts"] < MAX_ATTEMPTS else "failed"
            db.execute("UPDATE jobs SET state=?, error=?, pid=NULL, progress=NULL, updated_at=? "
                       "WHERE id=?", (state, reason, now, job_id))

    def recover(self) -> int:
        """Put jobs left running by a dead process back in the queue; return how many."""
        recovered = 0
        with self._tx() as db:
            for row in db.execute("SELECT id, pid, attempts FROM jobs WHERE state='running'"):
                if row["pid"] and row["pid"] != os.getpid() and _alive(row["pid"]):
                    continue
                state = "pending" if row["attempts"] < MAX_ATTEMPTS else "failed"
                db.execute("UPDATE jobs SET state=?, pid=NULL, progress=NULL, error=? "
                           "WHERE id=?", (state, "interrupted (the process stopped while "
                                          "transcribing it)" if state == "failed" else None,
                                          row["id"]))
                recovered += 1
        return recovered

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

    def search(self, query: str, limit: int = 50) -> list[Hit]:
        """Full-text search over every transcript, best matches first, diacritics folded."""
        fts = fts_query(query)
        if not fts:
            return []
        start, end = HIGHLIGHT
        try:
            rows = self._db.execute(
                "SELECT j.*, snippet(transcripts_fts, 0, ?, ?, '…', 12) AS snippet, "
                "bm25(transcripts_fts) AS rank FROM transcripts_fts "
                "JOIN jobs j ON j.id = transcripts_fts.rowid "
                "WHERE transcripts_fts MATCH ? ORDER BY rank LIMIT ?",
                (start, end, fts, limit)).fetchall()
        except sqlite3.OperationalError as e:
            raise SearchError(f"cannot search for {query!r}: {e}; put words in double quotes "
                              "to search for them as they are") from None
        return [Hit(_job(r), r["snippet"], r["rank"]) for r in rows]

    def inbox(self, limit: int = 500) -> list[tuple[Job, str | None, dict | None]]:
        """Every job, newest sent first, with its transcript's text and summary."""
        rows = self._db.execute(
            "SELECT j.*, t.text AS text, t.language AS language, t.duration AS duration, "
            "t.engine AS engine, t.model AS model, t.no_speech AS no_speech "
            "FROM jobs j LEFT JOIN transcripts t ON t.job_id = j.id "
            "ORDER BY COALESCE(j.sent_at, '') DESC, j.created_at DESC LIMIT ?",
            (limit,)).fetchall()
        result = []
        for r in rows:
            summary = None
            if r["engine"] is not None:
                summary = {k: r[k] for k in ("language", "duration", "engine", "model",
                                             "no_speech")}
            result.append((_job(r), r["text"], summary))
        return result

    def transcript(self, job_id: int) -> Transcript | None:
        row = self._db.execute("SELECT data FROM transcripts WHERE job_id=?",
                               (job_id,)).fetchone()
        return transcript_from_dict(json.loads(row["data"])) if row else None


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


def _mark_running(db: sqlite3.Connection, job_id: int, pid: int | None) -> Job | None:
    """Inside a transaction: a pending job becomes running, one attempt more."""
    cur = db.execute("UPDATE jobs SET state='running', attempts=attempts+1, pid=?, progress=0, "
                     "updated_at=? WHERE id=? AND state='pending'",
                     (pid or os.getpid(), time.time(), job_id))
    if cur.rowcount != 1:
        return None
    return _job(db.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone())


def _job(row: sqlite3.Row) -> Job:
    return Job(id=row["id"], sha256=row["sha256"], path=row["path"], root=row["root"],
               size=row["size"], state=row["state"], attempts=row["attempts"],
               error=row["error"], sent_at=row["sent_at"], app=row["app"],
               options=json.loads(row["options"] or "{}"), progress=row["progress"],
               created_at=row["created_at"], updated_at=row["updated_at"])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
