"""What every chat app's parser shares: the `Chat` and `Message` types and the safe ways
to read an export's files.

An app module (whatsapp.py, telegram.py, ...) imports only this module, never another
app's; `transcribe/chats/__init__.py` finds which app an export is and unpacks zips.
"""

from __future__ import annotations

import json
import logging
import os
import re
import stat
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from ..errors import InputError

log = logging.getLogger(__name__)

# The extensions voice notes come in across the apps (WhatsApp .opus, Telegram .ogg and
# round videos .mp4, iPhone .m4a, ...): a file with one of them may be a voice note.
VOICE_EXT = (".opus", ".ogg", ".oga", ".m4a", ".mp3", ".aac", ".amr", ".wav", ".mp4", ".caf",
             ".webm")
# What the apps save a chat's text as: a zip holding one is an export (the apps' modules
# say which once it is unpacked); a zip of voice notes alone is not.
TEXT_EXT = (".txt", ".json", ".html", ".htm", ".md", ".csv", ".xml")


@dataclass
class Message:
    time: datetime | None  # local time, naive, as the phone showed it
    sender: str | None  # None for a system line
    kind: str  # "text", "voice", "media" or "system"
    text: str = ""
    attachment: Path | None = None  # the file in the export (voice and media)
    omitted: bool = False  # named by the chat, but not in the export
    video: bool = False  # a voice note that is a round video (Telegram): a "video note"

    def __post_init__(self) -> None:
        """A sender or text of another type (a number, a list in a crafted JSON) is its
        message's problem (see UNREADABLE), not the renderer's or the store's."""
        if not isinstance(self.text, str) or not isinstance(self.sender, (str, type(None))):
            raise TypeError("a sender or text that is not a string")


# What reading one message of an export can raise: a field missing or of another type,
# a date no calendar holds ("9999-12-31T23:59:59-12:00" in local time, a year of 20
# digits, a number of 1e400). An app's per-message code catches these and says so in
# chat.problems; the other messages come out.
UNREADABLE = (KeyError, ValueError, TypeError, AttributeError, OverflowError, RecursionError)


@dataclass
class Chat:
    name: str
    app: str  # the module's APP: "whatsapp", "telegram", ...
    messages: list[Message] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # "file:line: what", one per warning
    source: Path | None = None  # the chat's text (result.json, _chat.txt, messages.html)


def holds(folder: Path, path: Path) -> bool:
    """Whether the export in `folder` holds the file `path`: not when it is missing, not a
    regular file (a folder, a pipe), or outside the export ("/home/x-AUDIO-1.opus",
    "../x.opus", a link out of it). A chat's text never makes us read, let alone upload,
    a file that is not part of its export."""
    try:
        return path.resolve().is_relative_to(folder.resolve()) and path.is_file()
    except (OSError, ValueError):  # a name too long, a NUL in it
        return False


def one_by_one(paths: list[Path], parse_one, app: str) -> list[Chat]:
    """The chats of an export of many, `parse_one(path)` each: one that cannot be read
    as a whole (not JSON, a link out of the export) is an empty Chat saying why, and the
    others come out (`load` refuses the export only when none has a message)."""
    chats = []
    for path in paths:
        try:
            chats.append(parse_one(path))
        except InputError as e:
            name = path.stem if path.suffix else path.name
            chats.append(Chat(name=name, app=app, problems=[str(e)]))
    return chats


def has_voice_ext(name: str) -> bool:
    return name.lower().endswith(VOICE_EXT)


def attachment(folder: Path, name: str) -> tuple[Path | None, bool]:
    """(path, omitted) of a file a chat names relative to its export's `folder`: omitted
    when it is not in the export (see `holds`)."""
    if not name:
        return None, True
    path = folder / name
    return path, not holds(folder, path)


def head(path: Path, size: int = 4096) -> str:
    """The first `size` bytes of a regular file as text (UTF-16 by its BOM, else UTF-8,
    errors replaced): what an app's `recognise` looks at. "" for a pipe, a device, a
    folder or what cannot be read; opened without blocking, so a FIFO put in the file's
    place after a check is never waited on."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return ""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return ""
        data = os.read(fd, size)
    except OSError:
        return ""
    finally:
        os.close(fd)
    utf16 = data.startswith((b"\xff\xfe", b"\xfe\xff"))
    return data.decode("utf-16" if utf16 else "utf-8-sig", errors="replace")


def read_bytes(path: Path, root: Path | None = None) -> bytes:
    """A file of the export, whole: an `InputError` when it is no regular file (a pipe or
    /dev/zero would be read forever) or, given the export's `root`, lies outside it (a
    link out of the export)."""
    if root is not None and not holds(root, path):
        raise InputError(path, "not a regular file inside the export")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as e:
        raise InputError(path, f"cannot read ({e.strerror or e})") from e
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise InputError(path, "not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read()
    except OSError as e:
        raise InputError(path, f"cannot read ({e.strerror or e})") from e
    finally:
        os.close(fd)


def read_text(path: Path, root: Path | None = None, problems: list[str] | None = None
              ) -> str:
    """A chat text as the apps write it (UTF-8, perhaps with a BOM), or as an editor saved
    it again (UTF-16 with its BOM: Windows Notepad's "Unicode"; Windows-1252, "ANSI",
    the Latin-1 of Western Europe). A text that is no UTF-8 says so in `problems`."""
    raw = read_bytes(path, root)
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16", errors="replace")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        damaged = _UTF8_SEQUENCE.search(raw) is not None
        why = (f"not all UTF-8 (from byte {e.start}): what is not was replaced by \ufffd"
               if damaged else "not UTF-8: read as Windows-1252 (Latin-1)")
    if problems is not None:
        problems.append(f"{path}: {why}")
    return raw.decode("utf-8-sig" if damaged else "cp1252", errors="replace")


# A character of two to four bytes in UTF-8: a text holding one is UTF-8 with a few
# damaged bytes rather than Latin-1 (whose "é" is one byte, never followed by 0x80-0xbf
# in words of the Western languages).
_UTF8_SEQUENCE = re.compile(rb"[\xc2-\xf4][\x80-\xbf]+")


def read_json(path: Path, root: Path | None = None):
    """A JSON file of the export, parsed; an `InputError` saying why when it cannot be."""
    text = read_text(path, root)
    try:
        return json.loads(text)
    except ValueError as e:
        raise InputError(path, f"not readable JSON ({e})") from e
    except RecursionError:
        raise InputError(path, "not readable JSON (nested too deep)") from None


def local_time(seconds: float) -> datetime:
    """A UTC timestamp (seconds since 1970) as the local time, naive like every chat time:
    `date_unixtime`, `timestamp_ms / 1000`. A ValueError when no date can hold it."""
    try:
        return datetime.fromtimestamp(float(seconds))
    except (OverflowError, OSError) as e:
        raise ValueError(f"a time out of range: {seconds!r}") from e


# A "<" that no ">" closes before the next "<", and the "<!" and "<?" that open comments,
# CDATA and declarations: Python's HTMLParser (3.11) looks for the end of each of these
# through the rest of the page, again for each one, at close(): 760 unclosed "<!--" in
# a 700 kB page took 22 times as long as an eighth of it. Telegram writes none of them
# (its text has "&lt;"; "<!DOCTYPE html>" says nothing we read), nor do the
# other apps' exporters in their messages: they are text here.
_UNCLOSED = re.compile(r"<(?=[^<>]*(?:<|\Z))|<(?=[!?])")


def tags_only(page: str) -> str:
    """An HTML page as HTMLParser reads it in linear time (see _UNCLOSED): feed it this."""
    return _UNCLOSED.sub("&lt;", page)


def phone_call(seconds: int) -> str:
    """A call's line, the same whichever app and export format it came from."""
    return f"phone call ({seconds} seconds)" if seconds else "phone call"
