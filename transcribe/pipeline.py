"""file -> decode -> engine (local, or cloud when the policy allows) -> Transcript.

The one path every way in (CLI, watcher, TUI) takes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from .audio import Audio, damage_report, decode
from .engine import LocalEngine, ProgressCallback
from .errors import CloudError, InputError, ModelError
from .policy import CloudPolicy
from .settings import Settings
from .transcript import Transcript

log = logging.getLogger(__name__)

ENGINES = ("auto", "local", "cloud")


class Transcriber:
    """Holds the settings, the engine and the policy for many files (the model loads once)."""

    def __init__(self, settings: Settings | None = None, *, transport=None) -> None:
        self.settings = settings or Settings.load()
        self.local = LocalEngine(self.settings)
        self.policy = CloudPolicy(self.settings, transport=transport)

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
        audio = decode(path, max_bytes=self.settings.max_file_bytes, partial=True)
        return _marked(self._transcribe(path, audio, on_progress, engine), audio)

    def _transcribe(self, path: Path, audio: Audio, on_progress: ProgressCallback | None,
                    engine: str) -> Transcript:
        if engine == "cloud":
            return self._cloud(path, audio, "requested by the user")
        try:
            local = self.local.transcribe(audio, str(path), on_progress)
        except ModelError as e:
            if engine == "local" or not self.policy.allowed:
                raise
            try:
                return self._cloud(path, audio, f"local model unavailable: {e}")
            except CloudError as cloud_error:
                raise type(cloud_error)(f"{e}; the cloud fallback failed too: {cloud_error}") \
                    from None
        except (InputError, KeyboardInterrupt):
            raise
        except Exception as e:  # a failure inside CTranslate2 on this one file
            log.exception("%s: local engine failed", path)
            if engine == "local" or not self.policy.allowed:
                raise InputError(path, f"local transcription failed ({e})") from None
            return self._cloud(path, audio, f"local transcription failed: {e}")
        reason = self.policy.reason_to_upload(local) if engine == "auto" else None
        if reason is None:
            return local
        return self._second_opinion(path, audio, local, reason)

    def transcribe_in_cloud(self, path: str | Path, reason: str) -> Transcript:
        """Ask the cloud for one file now (consent is checked): the watcher's retry."""
        path = Path(path)
        audio = decode(path, max_bytes=self.settings.max_file_bytes, partial=True)
        return _marked(self._cloud(path, audio, reason), audio)

    def _cloud(self, path: Path, audio: Audio, reason: str) -> Transcript:
        s = self.settings
        return self.policy.client().transcribe(path, audio, language=s.language,
                                               prompt=s.initial_prompt, reason=reason,
                                               task=s.task)

    def _second_opinion(self, path: Path, audio: Audio, local: Transcript,
                        reason: str) -> Transcript:
        """Ask the cloud; keep the local result when it cannot answer."""
        from .cloud import Offline

        try:
            return self._cloud(path, audio, reason)
        except Offline as e:
            local.cloud_pending = True
            local.cloud_reason = reason
            local.notes.append(f"kept the local result, waiting for the cloud: {e}")
        except CloudError as e:
            local.notes.append(f"kept the local result, the cloud failed: {e}")
        return local

    def close(self) -> None:
        self.policy.close()


def _marked(transcript: Transcript, audio: Audio) -> Transcript:
    """The transcript of a partly readable file says so: flags, and a note first."""
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
