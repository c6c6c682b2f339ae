"""transcribe: voice messages to text, on your own machine.

    >>> from transcribe import transcribe_file
    >>> transcribe_file("PTT-20240312-WA0007.opus").text  # doctest: +SKIP

Names are imported on first use, so `transcribe --help` and the other light
commands start without loading numpy, PyAV or faster-whisper.
"""

from __future__ import annotations

import importlib
from typing import Any

from . import telemetry

telemetry.forbid()

__version__ = "0.1.0"

_EXPORTS = {
    "transcribe_file": "pipeline",
    "Transcriber": "pipeline",
    "Transcript": "transcript",
    "Segment": "transcript",
    "Word": "transcript",
    "Settings": "settings",
    "TranscribeError": "errors",
    "InputError": "errors",
    "ModelError": "errors",
    "CloudError": "errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'transcribe' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
