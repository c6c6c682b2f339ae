"""file -> decode -> engine -> Transcript: the one path every way in takes."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from .audio import decode
from .engine import LocalEngine, ProgressCallback
from .settings import Settings
from .transcript import Transcript

log = logging.getLogger(__name__)


class Transcriber:
    """Holds the settings and the engine for many files (the model loads once)."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings.load()
        self.local = LocalEngine(self.settings)

    def transcribe(self, path: str | Path,
                   on_progress: ProgressCallback | None = None) -> Transcript:
        """Transcribe one file; raise an `InputError` for a file that cannot be."""
        audio = decode(path, max_bytes=self.settings.max_file_mb * 2**20)
        return self.local.transcribe(audio, str(path), on_progress)


def transcribe_file(path: str | Path, settings: Settings | None = None,
                    **overrides: Any) -> Transcript:
    """Transcribe one voice note with the user's settings, `overrides` applied.

    >>> transcribe_file("note.ogg", language="en").text  # doctest: +SKIP
    """
    settings = (settings or Settings.load()).with_overrides(**overrides)
    return Transcriber(settings).transcribe(path)
