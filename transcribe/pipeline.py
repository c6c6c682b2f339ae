"""file -> decode -> engine (local, or cloud when the policy allows) -> Transcript.

The one path every way in (CLI, watcher, TUI) takes.
"""

from __future__ import annotations

import functools
import inspect
import logging
from pathlib import Path
from typing import Any, Callable

from .audio import Audio, AudioStream, damage_report, file_sha256
from .blocks import BLOCK_S
from .engine import LocalEngine, ProgressCallback
from .errors import CloudError, InputError, ModelError
from .handoff import Declined, HandoffEngine
from .policy import CloudPolicy
from .settings import Settings
from .transcript import Transcript

log = logging.getLogger(__name__)

ENGINES = ("auto", "local", "cloud")


class Transcriber:
    """Holds the settings, the engine and the policy for many files (the model loads once)."""

    def __init__(self, settings: Settings | None = None, *, transport=None,
                 download: bool = True) -> None:
        """`download=False`: a hub model is loaded from the hub cache only, never
        fetched (the model a watched folder's settings name)."""
        self.settings = settings or Settings.load()
        self.local = LocalEngine(self.settings, download=download)
        self.handoff: HandoffEngine | None = None
        self._on_decline: Callable[[str], None] | None = None
        self.policy = CloudPolicy(self.settings, transport=transport)

    def use_service(self, on_decline: Callable[[str], None] | None = None) -> bool:
        """Hand notes to a running `transcribe watch` when there is one (`handoff.py`),
        whose model is loaded already. The CLI asks, before it would load its own.
        `on_decline` is told in one line when the service fails it and the note is
        transcribed here instead."""
        engine = HandoffEngine(self.settings)
        self.handoff = engine if engine.available() else None
        self._on_decline = on_decline
        return self.handoff is not None

    def transcribe(self, path: str | Path, on_progress: ProgressCallback | None = None,
                   engine: str = "auto") -> Transcript:
        """Transcribe one file.

        Raises `InputError` for a file that cannot be transcribed, `ModelError`
        when the local model is unusable and the cloud may not be used, and
        `CloudError` when the cloud was needed and failed. A truncated or damaged
        file is transcribed as far as it can be read, and the transcript says so
        (`truncated`, `damaged`, a line in `notes`).
        """
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}")
        path = Path(path)
        version = _Version(path)
        audio = self._open(path)
        transcript = self._transcribe(path, audio, _with_segments(on_progress), engine, version)
        if transcript.engine == "cloud":
            version.check()
        return _marked(transcript, audio)

    def _open(self, path: Path) -> Audio | AudioStream:
        """The note, decoded whole when it fits one block (the engine holds that
        much anyway, and a running watcher or the cloud can then be handed it);
        else as a stream the engine reads block by block. A file that does not
        say how long it is (a browser's WebM) is read up to a block to find out."""
        stream = AudioStream(path, self.settings.max_file_bytes)
        if stream.expected is not None and stream.expected > BLOCK_S:
            return stream
        return stream.read_all(up_to=BLOCK_S) or stream

    def _transcribe(self, path: Path, audio: Audio | AudioStream, on_progress: ProgressCallback | None,
                    engine: str, version: _Version) -> Transcript:
        if engine == "cloud":
            return self._cloud(path, audio, "requested by the user", version)
        try:
            local = self._local(path, audio, on_progress)
        except ModelError as e:
            if engine == "local" or not self.policy.allowed:
                raise
            try:
                return self._cloud(path, audio, f"local model unavailable: {e}", version)
            except CloudError as cloud_error:
                both = type(cloud_error)(f"{e}; the cloud fallback failed too: {cloud_error}")
                both.no_local_model = True
                raise both from None
        except (InputError, KeyboardInterrupt):
            raise
        except ProgressFailed as e:  # the caller's trouble (its store), not the engine's
            raise e.error from None
        except Exception as e:  # a failure inside CTranslate2 on this one file
            log.exception("%s: local engine failed", path)
            if engine == "local" or not self.policy.allowed or audio.truncated or audio.damaged:
                raise InputError(path, f"local transcription failed ({e})") from None
            return self._cloud(path, audio, f"local transcription failed: {e}", version)
        reason = self.policy.reason_to_upload(local) if engine == "auto" else None
        if reason is None:
            return local
        if _damaged(audio):
            log.info("%s: %s, but the note is damaged or truncated: not sent", path, reason)
            return local
        return self._second_opinion(path, audio, local, reason, version)

    def _local(self, path: Path, audio: Audio | AudioStream,
               on_progress: ProgressCallback | None) -> Transcript:
        """The note on this machine: by a running watcher's engine when one answers,
        else by our own."""
        if self.handoff is not None:
            try:
                return self.handoff.transcribe(audio, str(path), on_progress)
            except Declined as e:
                log.info("%s: %s; transcribing here", path, e)
                if e.notice and self._on_decline is not None:
                    self._on_decline(f"{path}: {e}; transcribing here")
                self.handoff = None  # the rest of this run is transcribed here
        return self.local.transcribe(audio, str(path), on_progress)

    def transcribe_in_cloud(self, path: str | Path, reason: str,
                            sha256: str | None = None) -> Transcript:
        """Ask the cloud for one file now (consent is checked): the watcher's retry.

        With `sha256`, the file must still be that content (the one transcribed
        here): a note rewritten since is another note, not this one's transcript."""
        path = Path(path)
        version = _Version(path)
        if sha256 is not None and version.sha is not None and version.sha != sha256:
            raise InputError(path, "changed since it was transcribed here; the cloud is "
                                   "not asked about another version")
        audio = self._open(path)
        transcript = self._cloud(path, audio, reason, version)
        version.check()
        return _marked(transcript, audio)

    def _cloud(self, path: Path, audio: Audio | AudioStream, reason: str,
               version: _Version) -> Transcript:
        """The note by the cloud. A stream is read afresh from its file (the local
        engine may have read it already) as the uploads are made, never whole."""
        s = self.settings
        return self.policy.client().transcribe(path, audio, language=s.language,
                                               prompt=s.initial_prompt, reason=reason,
                                               task=s.task, sha256=version.sha)

    def _second_opinion(self, path: Path, audio: Audio | AudioStream, local: Transcript,
                        reason: str, version: _Version) -> Transcript:
        """Ask the cloud; keep the local result when it cannot answer."""
        from .cloud import Offline

        try:
            return self._cloud(path, audio, reason, version)
        except Offline as e:
            local.cloud_pending = True
            local.cloud_reason = reason
            local.notes.append(f"kept the local result, waiting for the cloud: {e}")
        except CloudError as e:
            local.notes.append(f"kept the local result, the cloud failed: {e}")
        return local

    def close(self) -> None:
        self.policy.close()


class _Version:
    """The file as it was when its transcription began, to tell whether it changed.

    The cloud reads a note again from its file (after the local engine, and when a
    part is too large to upload), so a sync client or a download writing it
    meanwhile would give one transcript of two versions: one written in place
    while its parts went up came back as the old first part and the new rest.

    Its content's SHA-256 is taken when first asked for, as the cloud is about
    to read the note: a note kept local is never read a second time for it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.key = _file_key(path)

    @functools.cached_property
    def sha(self) -> str | None:
        try:
            return file_sha256(self.path)
        except OSError:  # opening it says why, in words
            return None

    def check(self) -> None:
        """Raise `InputError` when the file is no longer what it was (its content,
        when its size, times or inode differ). A file deleted since is not
        changed: what was read of it was read from one version."""
        key = _file_key(self.path)
        if key is None or key == self.key:
            return
        try:
            same = file_sha256(self.path) == self.sha
        except OSError:
            return
        if not same:
            raise InputError(self.path, "changed while it was being transcribed (a sync "
                                        "client or a download still writing it?); "
                                        "transcribe it again")


def _file_key(path: Path) -> tuple[int, ...] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


class ProgressFailed(Exception):
    """The caller's progress callback raised `error`: never the engine's failure, so
    never a note failed for it nor a reason to ask the cloud (a store held locked by
    another process made the watcher's raise "database is locked")."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def _with_segments(on_progress: Callable | None) -> ProgressCallback | None:
    """The callback as the engine calls it, (done, total, segments); one that takes
    (done, total) only is called with those. What it raises comes out as
    `ProgressFailed`, told apart from the engine's own errors."""
    if on_progress is None:
        return None
    try:
        params = list(inspect.signature(on_progress).parameters.values())
    except (TypeError, ValueError):
        params = [inspect.Parameter("args", inspect.Parameter.VAR_POSITIONAL)]
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    whole = len(positional) >= 3 or any(p.kind == p.VAR_POSITIONAL for p in params)

    def report(done: float, total: float, segments) -> None:
        try:
            if whole:
                on_progress(done, total, segments)
            else:
                on_progress(done, total)
        except Exception as e:  # noqa: BLE001 - handed back to the caller as it was
            raise ProgressFailed(e) from e

    return report


def _damaged(audio: Audio | AudioStream) -> bool:
    """Whether the note is truncated or damaged (a stream is read to its end to tell).
    Such a note is never sent to the cloud unless the user asks for the cloud: the
    cloud could not do better, and the bytes might not be audio at all."""
    if isinstance(audio, AudioStream):
        audio.finish()
    return audio.truncated or audio.damaged


def _marked(transcript: Transcript, audio: Audio | AudioStream) -> Transcript:
    """The transcript of a partly readable file says so: flags, and a note first."""
    if isinstance(audio, AudioStream):
        audio.finish()
    transcript.truncated = transcript.truncated or audio.truncated
    transcript.damaged = transcript.damaged or audio.damaged
    transcript.notes[:0] = [line for line in damage_report(audio) if line not in transcript.notes]
    return transcript


def transcribe_file(path: str | Path, settings: Settings | None = None,
                    **overrides: Any) -> Transcript:
    """Transcribe one voice note with the user's settings, `overrides` applied.

    >>> transcribe_file("note.ogg", language="en").text  # doctest: +SKIP
    """
    settings = (settings or Settings.load()).with_overrides(**overrides)
    transcriber = Transcriber(settings)
    try:
        return transcriber.transcribe(path)
    finally:
        transcriber.close()
