"""What messaging apps' file names say: which app, and when the note was sent.

    PTT-20240101-WA0001.opus            WhatsApp voice note (date only)
    AUD-20240101-WA0001.m4a             WhatsApp audio file (date only)
    audio_2024-01-01_12-00-00.ogg       Telegram Desktop export
    signal-2024-01-01-120000.aac        Signal (also signal-2024-01-01-12-00-00-123.aac)
    New Recording 12.m4a                iOS Voice Memos (no time: the file's mtime)

Anything else falls back to the file's modification time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path


@dataclass(frozen=True)
class Origin:
    app: str | None
    sent_at: str  # ISO 8601
    from_name: bool  # False when the time is the file's mtime


_PATTERNS = [
    ("WhatsApp", re.compile(r"^(?:PTT|AUD)-(\d{4})(\d{2})(\d{2})-WA\d+"), "date"),
    ("Telegram", re.compile(r"^audio_(\d{4})-(\d{2})-(\d{2})_(\d{2})-(\d{2})-(\d{2})"), "time"),
    ("Signal", re.compile(r"^signal-(\d{4})-(\d{2})-(\d{2})-(\d{2})-?(\d{2})-?(\d{2})"), "time"),
]
_VOICE_MEMOS = re.compile(r"^New Recording( \d+)?$")


def origin(path: Path, mtime: float | None = None) -> Origin:
    name = Path(path).name
    for app, pattern, kind in _PATTERNS:
        match = pattern.match(name)
        if not match:
            continue
        try:
            parts = [int(p) for p in match.groups()]
            when = datetime(*parts)
        except ValueError:
            break
        text = when.date().isoformat() if kind == "date" else when.isoformat()
        return Origin(app, text, True)
    app = "Voice Memos" if _VOICE_MEMOS.match(Path(path).stem) else None
    if mtime is None:
        mtime = Path(path).stat().st_mtime
    when = datetime.fromtimestamp(mtime, tz=timezone.utc).astimezone()
    return Origin(app, when.isoformat(timespec="seconds"), False)


def sent_for_people(sent_at: str | None) -> str:
    """One readable form of a sent time, in local time: `2024-03-12 18:45`, or the date
    alone where only the date is known (`2024-03-12`); ISO 8601 stays for JSON. A time
    with an offset (a file's mtime) is shown in the local zone; one without (a name's
    time) is already local."""
    if not sent_at:
        return ""
    try:
        when = datetime.fromisoformat(sent_at)
    except ValueError:
        return sent_at
    if len(sent_at) <= 10:
        return when.date().isoformat()
    if when.tzinfo is not None:
        when = when.astimezone()
    return when.strftime("%Y-%m-%d %H:%M")
