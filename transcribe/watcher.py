"""`transcribe watch`: every voice note that lands in a folder, transcribed exactly once.

The OS tells the watcher which files changed (changes.py: inotify and its kin, through
watchfiles), so a big folder costs nothing while nothing happens. Three walks make up
for what notifications cannot tell: one at start-up (notes that arrived while the
watcher was stopped), one every `rescan_s` seconds (a mount laid over a watched folder,
and what else the OS did not tell; a burst of changes, which can overflow its queue, is
followed by a walk of its own), and the polls of folders where notifications do not arrive:
every `remote_poll_s` seconds for folders on network and FUSE mounts, every `poll_s`
seconds for local folders with `notify=False`.
A file that is settling is looked at again by a timer, not by a walk. A file becomes a
job when:

- its name is a voice note's (not a dot-file, not `.part`/`.crdownload`/`.tmp`/`~`);
- its size and mtime have not changed for `settle_s` seconds, by our own clock;
- it decodes. A young file that does not decode yet (an unfinished download that
  paused) is looked at again when it changes, and fails only once it has been
  left alone for `grace_s` seconds.

Jobs live in the store (store.py), keyed by content, so copies, renames and
re-syncs of a note are transcribed once. Transcripts go to the output folder,
mirroring each note's path under its watched folder, written atomically; the
audio is only ever read. Exactly once is about transcribing, not outputs: a copy
of a known note gets its own transcript files, written from the stored transcript,
unless its folder's settings want another one (another task, model or forced
language): then the note is transcribed again with them, and the new transcript
replaces the note's old one of that task. That is decided once per file and note,
so the same settings never transcribe a note twice, across restarts too.

Nothing one note does stops the watcher: whatever decoding, transcribing or
writing it raises is that note's failure (one line), and the watcher goes on.
A model that cannot be used is no note's failure: the notes wait for it, their
attempts untouched, and it is tried again every little while.
Outputs are written after the transcript is stored; a folder that cannot take
them (read-only, full) gets one line and is tried again later, and the note
stays done.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import sqlite3
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from .audio import check_whole, file_sha256, is_audio_name
from .changes import Changes, needs_polling
from .errors import (CloudError, EmptyFile, InputError, ModelError, NotAudio, SettingsError,
                     TranscribeError, TruncatedAudio)
from .messaging import origin
from .models import model_label, resolve
from .notify import Notifier, note_of
from .pipeline import Transcriber
from .settings import NOTIFY_MODES, Settings
from .store import MAX_ATTEMPTS, Job, Owed, Store, readable
from .transcript import Transcript
from .writers import FORMATS, Output, sweep_temp_files, write_many

log = logging.getLogger(__name__)

FOLDER_SETTINGS = ".transcribe.toml"
FOLDER_KEYS = {"language", "languages", "hotwords", "initial_prompt", "model", "task", "beam_size"}
OWN_KEYS = {"formats", "notify"}  # a folder's settings that are not the transcriber's
TEMPORARY_SUFFIXES = (".part", ".partial", ".crdownload", ".download", ".tmp", ".temp", "~",
                      ".swp")
# How often outputs a folder could not take are tried again.
OUTPUT_RETRY_S = 2.0
# A model that cannot be used (a folder not there yet, a drive not mounted) is tried
# again after this long, doubling up to MODEL_RETRY_MAX_S; the notes wait, their
# attempts untouched.
MODEL_RETRY_S = 10.0
MODEL_RETRY_MAX_S = 300.0
# The kernel's queue of notifications holds fs.inotify.max_queued_events (16,384) and drops
# what comes after, and watchfiles does not pass the overflow on. Only a burst can fill it:
# a file made and closed is two or three events, one written in chunks while other files
# are written a dozen, so a full queue names over a thousand paths. After a burst of
# BURST_PATHS the folders are walked once no change has come for BURST_QUIET_S.
BURST_PATHS = 1000
BURST_QUIET_S = 2.0


class AlreadyRunning(TranscribeError):
    exit_code = 6


@dataclass
class WatchOptions:
    dirs: list[Path]
    output_dir: Path
    formats: list[str] = field(default_factory=lambda: ["txt"])
    recursive: bool = True
    settle_s: float = 2.0
    grace_s: float = 30.0
    poll_s: float = 1.0  # local folders that are polled (notify=False)
    cloud_retry_s: float = 300.0
    notify: bool = True  # False: poll every folder
    rescan_s: float = 300.0  # a full walk of notified folders, for what notifications missed
    # Network and FUSE mounts, polled: each walk costs the server a round trip per folder
    # (the first walk of 10,000 notes on a bindfs mount took 0.25 s against 0.04 s on the
    # local disk beneath it, 2 cores), so they are walked ten times less often.
    remote_poll_s: float = 10.0

    def __post_init__(self) -> None:
        self.dirs = [Path(d).resolve() for d in self.dirs]
        self.output_dir = Path(self.output_dir).resolve()
        bad = [f for f in self.formats if f not in FORMATS]
        if bad:
            raise SettingsError(f"unknown output format(s): {', '.join(bad)}; "
                                f"choose from {', '.join(FORMATS)}")
        for d in self.dirs:
            if not d.is_dir():
                raise SettingsError(f"{d}: not a folder")


@dataclass
class _Seen:
    key: tuple[int, int]  # size, mtime_ns
    since: float  # when we first saw this key
    settled: bool = False  # hashed and queued, or recorded as failed


def is_candidate(path: Path) -> bool:
    name = path.name
    if name.startswith(".") or name.lower().endswith(TEMPORARY_SUFFIXES):
        return False
    return is_audio_name(path)


class Watcher:
    def __init__(self, settings: Settings, options: WatchOptions, store: Store | None = None,
                 transport=None, notifier: Notifier | None = None) -> None:
        self.settings = settings
        self.options = options
        self.store = store or Store.open_or_start_anew(settings.paths.data_dir)
        self.notifier = notifier or Notifier("off")
        self._transport = transport
        self._seen: dict[Path, _Seen] = {}
        # The paths of _seen not settled yet, so the timers need not go through every note
        # of a big folder on each wake (100,000 known notes: 12 ms a wake, one every 2 s: 0.35
        # CPU s a minute while idle, on 2 busy cores).
        self._settling: set[Path] = set()
        self._transcribers: dict[str, Transcriber] = {}
        self._folder_cache: dict[Path, tuple[int, dict]] = {}
        self._folder_errors: dict[Path, str] = {}
        self._last_cloud_retry = time.monotonic()
        self._last_output_retry = 0.0
        self._changes: Changes | None = None
        self._remote: set[Path] = set()  # folders on network and FUSE mounts
        self._paces: dict[Path, float] = {}  # polled folder -> seconds between its walks
        self._next_walk: dict[Path, float] = {}
        self._next_rescan = 0.0
        self._burst = 0  # paths named by notifications less than BURST_QUIET_S apart
        self._burst_last = 0.0  # when the last of them came
        self._notified: list[Path] = []  # folders the OS tells of
        self._identity: dict[Path, tuple[int, int] | None] = {}  # their (device, inode)
        self._waiting_for_model = False  # the model could not be used last time
        self._model_retry_at = 0.0
        self._model_retry_s = MODEL_RETRY_S

    # -- the loop ----------------------------------------------------------------------

    def run(self, should_stop=lambda: False) -> None:
        self.reclaim()
        for temp in sweep_temp_files(self.options.output_dir):
            log.info("removed %s, left by an interrupted write", temp)
        self._listen()
        log.info("watching %s -> %s (%s)", ", ".join(map(str, self.options.dirs)),
                 self.options.output_dir, ",".join(self.options.formats))
        self.write_owed()
        while not should_stop():
            self.look_around()
            if self.work_one():
                continue
            if time.monotonic() - self._last_output_retry >= OUTPUT_RETRY_S:
                self.reclaim()
                self.write_owed()
            if self._cloud_due():
                self.retry_cloud()
            self._wait()

    def reclaim(self) -> None:
        """Put back in the queue the jobs left running by a process that is gone (killed
        while its pid now names another process, too), at start and between jobs: the
        watcher holds the store's lock, so no other watcher works on them."""
        recovered = self.store.recover()
        if recovered:
            log.info("put %d interrupted job(s) back in the queue", recovered)

    def _listen(self) -> None:
        """Ask the OS for notifications on the folders where they arrive; poll the rest."""
        self._remote = {d for d in self.options.dirs if needs_polling(d)}
        polled = [d for d in self.options.dirs if not self.options.notify or d in self._remote]
        notified = [d for d in self.options.dirs if d not in polled]
        if notified:
            try:
                self._changes = Changes(notified, self.options.recursive)
                self._notified = notified
                self._identity = {d: _identity(d) for d in notified}
            except Exception as e:  # noqa: BLE001 - no inotify watches left, no inotify at all
                log.warning("no change notifications (%s: %s); polling every folder",
                            type(e).__name__, e)
                polled = list(self.options.dirs)
        self._poll(polled)

    def _poll(self, folders: list[Path]) -> None:
        """Walk these folders from now on, each at its pace (said once)."""
        for folder in folders:
            remote = folder in self._remote
            self._paces[folder] = self.options.remote_poll_s if remote else self.options.poll_s
            log.info("%s: polled every %g s%s", folder, self._paces[folder],
                     " (a network or FUSE mount: no change notifications)" if remote else "")

    def close(self) -> None:
        if self._changes is not None:
            self._changes.close()
            self._changes = None
        for transcriber in self._transcribers.values():
            transcriber.close()
        self.notifier.close()
        self.store.close()

    # -- finding notes -------------------------------------------------------------------

    def look_around(self) -> int:
        """Look at what changed: the walks that are due, the paths the OS named, and the
        files whose settle time is up. Return how many notes were queued."""
        now = time.monotonic()
        if self._changes is not None and self._changes.failed:
            log.error("change notifications stopped (%s); polling every folder",
                      self._changes.failed)
            self._changes.close()
            self._changes = None
            self._poll([d for d in self.options.dirs if d not in self._paces])
        queued = 0
        if self._changes is not None and self._folders_made_again():
            self._next_rescan = now  # walked at once: what was put in them meanwhile
        if self._burst >= BURST_PATHS and now >= self._burst_last + BURST_QUIET_S:
            log.info("%d changes in a burst: walking the folders for any the OS dropped",
                     self._burst)
            self._burst = 0
            self._next_rescan = now
        if self._changes is not None and now >= self._next_rescan:
            queued += self.scan()
            self._next_rescan = now + self.options.rescan_s
            self._next_walk = {d: now + pace for d, pace in self._paces.items()}
        else:
            due = [d for d in self._paces if now >= self._next_walk.get(d, 0.0)]
            if due:
                queued += self.scan(due)
                self._next_walk.update((d, now + self._paces[d]) for d in due)
        if self._changes is not None:
            changed = self._changes.take()
            self._count_burst(len(changed), now)
            queued += self.look_at(changed)
        return queued + self.look_at(self._settle_due(time.monotonic()))

    def _count_burst(self, paths: int, now: float) -> None:
        """Count the paths notifications name; a burst of BURST_PATHS is followed by a walk
        (`look_around`), once it has been quiet for BURST_QUIET_S (a burst still going could
        drop more)."""
        if not paths:
            return
        if now - self._burst_last > BURST_QUIET_S:
            self._burst = 0
        self._burst += paths
        self._burst_last = now

    def _folders_made_again(self) -> bool:
        """Whether a notified folder was deleted and made again (or replaced): the OS's
        watch went with the old one, so the watches are set anew. One stat a folder."""
        again = False
        for folder in self._notified:
            now = _identity(folder)
            was = self._identity.get(folder)
            if now == was:
                continue
            self._identity[folder] = now
            if now is None:
                log.warning("%s: the watched folder is gone; watching for it to come back",
                            folder)
            else:
                log.warning("%s: the watched folder was made again; watching it anew", folder)
                again = True
        if again:
            assert self._changes is not None
            self._changes.close()
            present = [d for d in self._notified if self._identity[d] is not None]
            try:
                self._changes = Changes(present, self.options.recursive)
            except Exception as e:  # noqa: BLE001 - no inotify watches left: as at start
                log.warning("no change notifications (%s: %s); polling every folder",
                            type(e).__name__, e)
                self._changes = None
                self._poll([d for d in self.options.dirs if d not in self._paces])
        return again

    def _settle_due(self, now: float) -> list[Path]:
        due = []
        for path in list(self._settling):
            seen = self._seen.get(path)
            if seen is None or seen.settled:
                self._settling.discard(path)
            elif now - seen.since >= self.options.settle_s:
                due.append(path)
        return due

    def _wait(self) -> None:
        """Sleep until something changes or the next timer is due."""
        now = time.monotonic()
        due = [self._last_output_retry + OUTPUT_RETRY_S,
               self._last_cloud_retry + self.options.cloud_retry_s]
        if self._model_retry_at > now:
            due.append(self._model_retry_at)
        settling = (self._seen.get(path) for path in self._settling)
        due += [seen.since + self.options.settle_s for seen in settling
                if seen is not None and not seen.settled]
        if self._changes is not None:
            due.append(self._next_rescan)
        if self._burst >= BURST_PATHS:
            due.append(self._burst_last + BURST_QUIET_S)
        due += [self._next_walk.get(d, 0.0) for d in self._paces]
        timeout = max(min(due) - now, 0.01)
        if self._changes is not None:
            self._changes.wait(timeout)
        else:
            time.sleep(timeout)

    def scan(self, roots: list[Path] | None = None) -> int:
        """Look at every candidate file under `roots` (default: all) once; queue the settled
        ones. Return how many."""
        roots = roots or self.options.dirs
        queued = 0
        now = time.monotonic()
        present = set()
        for root, path in self._walk(roots):
            present.add(path)
            queued += self._look(root, path, now)
        for gone in {p for p in self._seen if self._root_of(p) in roots} - present:
            del self._seen[gone]
        return queued

    def look_at(self, paths) -> int:
        """Look at these paths (from notifications, or due to settle); a folder among them
        (made, or moved in whole) is walked. Return how many notes were queued."""
        queued = 0
        now = time.monotonic()
        for path in paths:
            root = self._root_of(path)
            if root is None:
                continue
            if path.is_dir():
                if not self.options.recursive or path.name.startswith("."):
                    continue
                for _, inner in self._walk([root], top=path):
                    queued += self._look(root, inner, now)
            elif is_candidate(path):
                queued += self._look(root, path, now)
            elif not path.exists():
                self._seen.pop(path, None)
        return queued

    def _look(self, root: Path, path: Path, now: float) -> int:
        """The settle rule for one file: seen unchanged for settle_s, it is considered."""
        try:
            st = path.stat()
        except OSError:
            self._seen.pop(path, None)
            return 0
        key = (st.st_size, st.st_mtime_ns)
        seen = self._seen.get(path)
        if seen is None or seen.key != key:
            self._seen[path] = _Seen(key, now)
            self._settling.add(path)
            return 0
        if seen.settled or now - seen.since < self.options.settle_s:
            return 0
        try:
            return self._consider(root, path, st, seen)
        except (KeyboardInterrupt, sqlite3.Error):
            raise
        except Exception as e:  # noqa: BLE001 - one file's trouble, never the watcher's
            log.error("failed %s: %s: %s", readable(path), type(e).__name__, e)
            seen.settled = True
            return 0

    def _root_of(self, path: Path) -> Path | None:
        """The watched folder `path` is a note of, or None: outside them all, in a hidden
        folder, in the output folder, or too deep without `recursive`."""
        out = self.options.output_dir
        for root in self.options.dirs:
            if path == root or root not in path.parents:
                continue
            rel = path.relative_to(root).parts
            if (any(part.startswith(".") for part in rel[:-1])
                    or (not self.options.recursive and len(rel) > 1)
                    or path == out or out in path.parents):
                return None
            return root
        return None

    def _walk(self, roots: list[Path], top: Path | None = None) -> Iterator[tuple[Path, Path]]:
        out = self.options.output_dir
        for root in roots:
            for dirpath, dirnames, filenames in os.walk(top or root):
                here = Path(dirpath)
                dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")
                                     and (here / d).resolve() != out)
                if not self.options.recursive:
                    dirnames[:] = []
                for name in sorted(filenames):
                    path = here / name
                    if is_candidate(path):
                        yield root, path

    def _consider(self, root: Path, path: Path, st: os.stat_result, seen: _Seen) -> int:
        key_path = str(path)
        sha = self.store.known_path(key_path, st.st_size, st.st_mtime_ns)
        if sha is None:
            try:
                sha = file_sha256(path)
            except OSError as e:
                log.warning("%s: cannot read (%s)", path, e.strerror)
                seen.settled = True
                return 0
        existing = self.store.job_by_sha(sha)
        if existing is not None:
            self.store.remember_path(key_path, sha, st.st_size, st.st_mtime_ns)
            seen.settled = True
            if existing.state == "failed" or self.store.owes(key_path, existing.id):
                return 0
            return self._copy_of(existing, root, path, seen)
        failure = None
        try:
            check_whole(path, max_bytes=self.settings.max_file_bytes)
        except (TruncatedAudio, NotAudio, EmptyFile) as e:
            if time.time() - st.st_mtime < self.options.grace_s:
                log.debug("%s: not complete yet (%s); waiting", readable(path), e.reason)
                seen.since = time.monotonic()
                return 0
            failure = e.reason
        except InputError as e:
            failure = e.reason
        except Exception as e:  # noqa: BLE001 - a decoder's own error on a damaged file
            failure = f"cannot decode it ({type(e).__name__}: {e})"
        where = origin(path, st.st_mtime)
        self.store.remember_path(key_path, sha, st.st_size, st.st_mtime_ns)
        seen.settled = True
        options = self._job_options(root, path)
        job, _ = self.store.add_job(sha, key_path, st.st_size, root=str(root),
                                    sent_at=where.sent_at, app=where.app, options=options,
                                    state="failed" if failure else "pending", error=failure)
        if failure:
            log.error("failed %s: %s", readable(path), failure)
            self._announce(job, error=failure)
            return 0
        self.store.owe_outputs(key_path, job.id, str(root), self._output_options(root, path))
        log.info("queued %s%s", readable(path), f" ({where.app}, sent {where.sent_at})"
                 if where.from_name else "")
        return 1

    def _copy_of(self, job: Job, root: Path, path: Path, seen: _Seen) -> int:
        """A note whose audio is a job already: owed the job's transcript, or queued again
        when this folder's settings want another one. A job still in the queue with other
        settings is waited for (looked at again after `settle_s`). Return how many notes
        were queued."""
        options = self._job_options(root, path)
        settings = self.settings.with_overrides(**options["settings"])
        if job.state in ("pending", "running"):
            if not self._queued_with(job, settings):
                seen.settled, seen.since = False, time.monotonic()
                return 0
            why = None
        else:
            why = another_wanted(self.store.transcript(job.id, settings.task), settings)
        if why is None:
            self.store.owe_outputs(str(path), job.id, str(root), self._output_options(root, path))
            if job.path != str(path):
                log.info("%s: same audio as %s (job %d): its transcript, not transcribed "
                         "again", readable(path), readable(job.path), job.id)
            return 0
        if not self.store.transcribe_again(job.id, str(path), str(root), options,
                                           self._output_options(root, path)):
            return 0
        log.info("%s: same audio as %s (job %d), but %s: transcribing it again",
                 readable(path), readable(job.path), job.id, why)
        return 1

    def _queued_with(self, job: Job, settings: Settings) -> bool:
        """Whether a job in the queue will make the transcript `settings` want."""
        try:
            queued = self.settings.with_overrides(**job.options.get("settings", {}))
        except SettingsError:  # it will fail; its copies are looked at then
            return False
        return _wanted(queued) == _wanted(settings)

    def _output_options(self, root: Path, path: Path) -> dict:
        options = self._job_options(root, path)
        return {"formats": options["formats"], "rel": options["rel"],
                "task": options["settings"].get("task") or self.settings.task}

    def _job_options(self, root: Path, path: Path) -> dict:
        merged: dict = {}
        folder = root
        rel_parts = path.parent.relative_to(root).parts
        for part in ("", *rel_parts):
            folder = folder / part if part else folder
            merged.update(self._folder_settings(folder / FOLDER_SETTINGS))
        formats, notify = merged.pop("formats", None), merged.pop("notify", None)
        if isinstance(formats, str):
            formats = [f.strip() for f in formats.split(",") if f.strip()]
        return {"settings": merged, "formats": formats or self.options.formats,
                "rel": str(path.parent.relative_to(root)), "notify": notify}

    def _folder_settings(self, path: Path) -> dict:
        try:
            mtime = path.stat().st_mtime_ns
        except OSError:
            return {}
        cached = self._folder_cache.get(path)
        if cached and cached[0] == mtime:
            return cached[1]
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            log.warning("%s: ignored (%s)", path, e)
            data = {}
        unknown = set(data) - FOLDER_KEYS - OWN_KEYS
        if unknown:
            log.warning("%s: ignoring unknown key(s) %s", path, ", ".join(sorted(unknown)))
        values = {k: v for k, v in data.items() if k in FOLDER_KEYS | OWN_KEYS}
        if values.get("notify", "text") not in NOTIFY_MODES:
            log.warning("%s: ignoring notify = %r (text, title or off)", path,
                        values.pop("notify"))
        self._folder_cache[path] = (mtime, values)
        return values

    # -- transcribing --------------------------------------------------------------------

    def work_one(self) -> bool:
        """Transcribe the next pending job, if there is one."""
        if time.monotonic() < self._model_retry_at:
            return False
        job = self.store.claim_next()
        if job is None:
            return False
        path = Path(job.path)
        try:
            transcriber = self._ready_transcriber(job.options.get("settings", {}))
            self.store.start(job.id)  # from here on, a crash is this note's
            started = time.monotonic()
            if not path.exists():
                raise InputError(path, "the file is gone")
            transcript = transcriber.transcribe(path,
                                                on_progress=self.store.progress_callback(job.id))
        except KeyboardInterrupt:
            self.store.release(job.id)
            raise
        except InputError as e:
            log.error("failed %s: %s", readable(path), e.reason)
            self.store.fail(job.id, e.reason)
            self._announce(job, error=e.reason)
            return True
        except SettingsError as e:  # the folder's .transcribe.toml: no retry mends it
            log.error("failed %s: %s", readable(path), e)
            self.store.fail(job.id, str(e))
            self._announce(job, error=str(e))
            return True
        except (ModelError, CloudError) as e:
            # the cloud, when it failed too, was only asked because the model failed
            if isinstance(e, ModelError) or e.no_local_model:
                self.store.release(job.id, f"waiting for the model: {e}")
                self._model_unusable(str(e))
                return False
            self._fail_and_retry(job, path, str(e))
            time.sleep(min(self.options.poll_s, 5.0))
            return True
        except sqlite3.Error:
            raise
        except Exception as e:  # noqa: BLE001 - a decoder's or the engine's own error
            self._fail_and_retry(job, path, f"{type(e).__name__}: {e}")
            return True
        if self._waiting_for_model and transcript.engine == "local":
            log.info("the model can be used again; %d note(s) waiting",
                     self.store.counts()["pending"])
            self._waiting_for_model, self._model_retry_s = False, MODEL_RETRY_S
        state, written = self._write_outputs(job.id, transcript)
        log.info("transcribed %s in %.1f s (%s, %s %s)%s -> %s", readable(path),
                 time.monotonic() - started, transcript.language or "no speech",
                 transcript.engine, transcript.model,
                 ", waiting for the cloud" if state == "waiting_cloud" else "",
                 ", ".join(str(p) for p in written) or "no files yet")
        self._announce(job, transcript)
        return True

    def _model_unusable(self, reason: str) -> None:
        """No note is worked on for a while: the model's trouble is none of theirs.
        Said once, until the model can be used again."""
        if not self._waiting_for_model:
            log.error("the model cannot be used: %s; %d note(s) wait for it, tried again "
                      "every %.0f-%.0f s", reason, self.store.counts()["pending"], MODEL_RETRY_S,
                      MODEL_RETRY_MAX_S)
        self._waiting_for_model = True
        self._model_retry_at = time.monotonic() + self._model_retry_s
        self._model_retry_s = min(self._model_retry_s * 2, MODEL_RETRY_MAX_S)

    def _fail_and_retry(self, job, path: Path, reason: str) -> None:
        self.store.fail(job.id, reason, retry=True)
        latest = self.store.job(job.id) or job
        log.error("failed %s: %s (attempt %d of %d)", readable(path), reason, latest.attempts,
                  MAX_ATTEMPTS)
        if latest.state == "failed":
            self._announce(job, error=reason)

    def _announce(self, job: Job, transcript: Transcript | None = None,
                  error: str | None = None) -> None:
        """A desktop notification of a finished note (notify.py), as its folder's `notify`
        setting says; the notes still waiting make it part of a burst."""
        mode = self.settings.notify
        if job.root and Path(job.root) in self.options.dirs:
            folder = self._job_options(Path(job.root), Path(job.path))["notify"]
            mode = folder if folder in NOTIFY_MODES else mode
        self.notifier.add(note_of(job, transcript, error, mode),
                          more=self.store.counts()["pending"] > 0)

    def _ready_transcriber(self, overrides: dict) -> Transcriber:
        """The transcriber for these settings with its model loaded: loading is not a note's
        work, so a crash while it loads costs no note an attempt."""
        transcriber = self._transcriber(overrides)
        try:
            transcriber.local.load()
        except ModelError:
            pass  # transcribe() says so, or asks the cloud when that is allowed
        return transcriber

    def _transcriber(self, overrides: dict) -> Transcriber:
        """The transcriber for a folder's settings. A model they name must be on this
        machine already: a folder's file never makes a download (nor asks the hub)."""
        key = json.dumps(overrides, sort_keys=True)
        if key not in self._transcribers:
            settings = self.settings.with_overrides(**overrides)
            if "model" in overrides:
                _installed(settings)
            self._transcribers[key] = Transcriber(settings, transport=self._transport,
                                                  download="model" not in overrides)
        return self._transcribers[key]

    # -- outputs ---------------------------------------------------------------------------

    def _write_outputs(self, job_id: int, transcript,
                       state: str | None = None) -> tuple[str, list[Path]]:
        """Store a new transcript of a job and write its files: the files first, so a job
        that shows `done` has them (unless its folder refused them: then they are owed)."""
        written = self._write([(owed, transcript) for owed in self.store.outputs_of(job_id)
                               # (a folder that wants the note's other transcript: not these)
                               if owed.options.get("task", transcript.task) == transcript.task])
        state = self.store.finish(job_id, transcript, state)  # every file of the job owed again...
        self.store.outputs_written(*(o for o, _ in written))  # ...but those just written
        return state, [path for _, paths in written for path in paths]

    def write_owed(self) -> list[Path]:
        """Write the transcript files still owed (a folder refused them, or a crash came
        between a transcript and its files); return those written."""
        self._last_output_retry = time.monotonic()
        transcripts: dict[tuple, Transcript | None] = {}
        owed_now = []
        for owed in self.store.owed_outputs():
            key = (owed.job_id, owed.options.get("task"))  # no task: the last one made
            if key not in transcripts:
                transcripts[key] = self.store.transcript(*key)
            if transcripts[key] is not None:
                owed_now.append((owed, transcripts[key]))
        written = self._write(owed_now)
        self.store.outputs_written(*(o for o, _ in written))
        return [path for _, paths in written for path in paths]

    def _write(self, owed: list[tuple[Owed, Transcript]]) -> list[tuple[Owed, list[Path]]]:
        """These watched files' outputs, each folder's manifest saved once for them all;
        those written, with their files. A folder that refuses them is said once."""
        outputs = [Output(transcript, self._folder(o), o.options.get("formats")
                          or self.options.formats, Path(o.path)) for o, transcript in owed]
        written = []
        for (o, _), output, result in zip(owed, outputs, write_many(outputs)):
            if isinstance(result, Exception):
                why = (result.strerror if isinstance(result, OSError) and result.strerror
                       else f"{type(result).__name__}: {result}")
                self._folder_failed(output.folder, why)
                continue
            if self._folder_errors.pop(output.folder, None):
                log.info("%s: writing transcripts there again", output.folder)
            written.append((o, result))
        return written

    def _folder(self, owed: Owed) -> Path:
        return self.options.output_dir / Path(owed.root).name / owed.options.get("rel", ".")

    def _folder_failed(self, folder: Path, why: str) -> None:
        if self._folder_errors.get(folder) != why:
            log.error("%s: cannot write transcripts there (%s); they are kept in the store "
                      "and written when the folder can take them", folder, why)
        self._folder_errors[folder] = why

    # -- the cloud, later ------------------------------------------------------------------

    def _cloud_due(self) -> bool:
        return time.monotonic() - self._last_cloud_retry >= self.options.cloud_retry_s

    def retry_cloud(self) -> None:
        """Ask the cloud for notes that waited for it, if consent still holds."""
        self._last_cloud_retry = time.monotonic()
        for job in self.store.jobs(("waiting_cloud",)):
            transcriber = self._transcriber(job.options.get("settings", {}))
            local = self.store.transcript(job.id)
            if not transcriber.policy.allowed:
                log.info("%s: cloud use no longer allowed; keeping the local result", job.path)
                self.store.finish(job.id, local, "done")
                continue
            try:
                transcript = transcriber.transcribe_in_cloud(
                    job.path, local.cloud_reason or "waited for the network", job.sha256)
            except InputError as e:  # gone or rewritten: the local result is this note's
                log.info("%s: %s; keeping the local result", readable(job.path), e.reason)
                self._keep_local(job, local)
                continue
            except CloudError as e:
                log.info("%s: still waiting for the cloud (%s)", job.path, e)
                return
            except sqlite3.Error:
                raise
            except Exception as e:  # noqa: BLE001 - a decoder's own error: this note's only
                log.error("%s: cannot send it to the cloud (%s: %s); keeping the local result",
                          readable(job.path), type(e).__name__, e)
                self.store.finish(job.id, local, "done")
                continue
            self._write_outputs(job.id, transcript, "done")
            log.info("transcribed %s in the cloud (%s)", job.path, transcript.provider)

    def _keep_local(self, job, local) -> None:
        """The local result stands as the note's last: its files were written when it
        came, and are not written again (the note's path may hold another version
        now, whose own job writes them)."""
        owed = {o.path for o in self.store.owed_outputs() if o.job_id == job.id}
        self.store.finish(job.id, local, "done")
        for output in self.store.outputs_of(job.id):
            if output.path not in owed:
                self.store.outputs_written(output)


def another_wanted(stored: Transcript | None, settings: Settings) -> str | None:
    """Why a note's stored transcript of `settings.task` will not do for `settings`, or
    None when it will. A cloud transcript stands for the local model it stood in for;
    a forced language is compared only where there was speech."""
    if stored is None:
        return f"it has no {'translation' if settings.task == 'translate' else 'transcript'} yet"
    if stored.engine == "local" and stored.model != model_label(settings.model):
        return f"this folder wants model {settings.model}, not {stored.model}"
    if settings.language and not stored.no_speech and stored.language != settings.language:
        return f"this folder wants language {settings.language}, not {stored.language}"
    return None


def _identity(folder: Path) -> tuple[int, int] | None:
    try:
        st = folder.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _installed(settings: Settings) -> None:
    """Raise SettingsError unless the model a folder's settings name is on this machine."""
    try:
        resolve(settings.model, settings.paths.models_dir, download=False)
    except ModelError as e:
        raise SettingsError(f"{FOLDER_SETTINGS}: {e} (a folder's settings name installed "
                            "models only: `transcribe models` lists them)") from None


def _wanted(settings: Settings) -> tuple:
    """What of the settings makes a transcript another one (see `another_wanted`)."""
    return settings.task, model_label(settings.model), settings.language


class ServiceLock:
    """One watcher per store: a second one would race the first for jobs."""

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / "watch.lock"
        self._file = None

    def __enter__(self) -> "ServiceLock":
        self._file = self.path.open("a+")
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.seek(0)
            pid = self._file.read().strip() or "?"
            self._file.close()
            raise AlreadyRunning(f"another `transcribe watch` already runs on this store "
                                 f"(pid {pid}); stop it first") from None
        try:  # (only for the message above: a full disk must not stop the watcher)
            os.ftruncate(self._file.fileno(), 0)
            os.pwrite(self._file.fileno(), str(os.getpid()).encode(), 0)
        except OSError as e:
            log.debug("%s: pid not written (%s)", self.path, e)
        return self

    def __exit__(self, *exc) -> None:
        fcntl.flock(self._file, fcntl.LOCK_UN)
        self._file.close()


def serve(settings: Settings, options: WatchOptions) -> None:
    """Run until SIGINT or SIGTERM; a signal stops the current job and requeues it."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    from .handoff import EngineServer

    with ServiceLock(settings.paths.data_dir):
        notifier = Notifier(settings.notify)
        if settings.notify != "off":
            notifier.start()  # says now, in one line, when there is no desktop to tell
        watcher = Watcher(settings, options, notifier=notifier)
        server = EngineServer(settings)
        server.start()
        try:
            watcher.run()
        except KeyboardInterrupt:
            log.info("stopping")
        finally:
            server.close()
            watcher.close()
