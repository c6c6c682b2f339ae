"""Chat exports: a WhatsApp or Telegram conversation as a list of `Message`s.

Parsers for WhatsApp's text export (Android and iOS, zipped or unzipped) and
Telegram Desktop's `result.json`; its HTML export is `chat_html.py`'s. Nothing here
transcribes or prints; the CLI puts transcripts in place of the voice notes.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from .errors import InputError

log = logging.getLogger(__name__)

VOICE_EXT = (".opus", ".ogg", ".m4a", ".mp3", ".aac", ".amr", ".wav", ".mp4")
_MARKS = "\u200e\u200f\u202a\u202c\ufeff"

# The line formats of WhatsApp's export, as phones of several locales write them (checked
# against other projects' parsers and their fixtures: chat-miner, whatstk, ...):
#   Android  "12/03/2024, 18:45 - Alice: text"     "3/12/24, 6:45\u202fPM - Alice: text"
#            "9/24/2019 11:30 p.m. - ..."          "01/30/2019, 08:49 p. m. - ..." (Spanish)
#            "19/09/2026 21:25 - ..." (Portuguese)  "14-12-2022, 13:34 - ..."
#            "2019/01/30, 20:49 - ..."              "2022/12/14, 13:34. - ..." (year first)
#   iOS      "[12.03.24, 18:45:02] Alice: text"     "[09/10/22 11:37:00 p.m.] ..."
# Day and month order is guessed from the whole file; a year first is always y/m/d.
_SPACE = r"[ \u00a0\u202f]"
_DATE = r"(\d{1,4})[/.\-](\d{1,2})[/.\-](\d{2,4})"
_TIME = (r"(\d{1,2}):(\d{2})(?::(\d{2}))?\.?"
         rf"(?:{_SPACE}?([AaPp]\.?{_SPACE}?[Mm]\.?))?")
_ANDROID = re.compile(rf"^{_DATE},?{_SPACE}{_TIME} - (.*)$")
_IOS = re.compile(rf"^\[{_DATE},?{_SPACE}{_TIME}\] (.*)$")
# "NAME (file attached)" on Android, "<attached: NAME>" on iOS, in the phone's language.
_ATTACHED_ANDROID = re.compile(r"^(\S.*?\.\w{2,4}) \((?:file attached|archivo adjunto|"
                               r"Datei angehängt|arquivo anexado)\)$")
_ATTACHED_IOS = re.compile(r"^<(?:attached|adjunto|Anhang): (.+?)>$")
# Media the export left out: Android says it for every kind at once, iOS per kind
# ("audio omitted"; "Report.pdf • 2 pages document omitted").
_OMITTED = re.compile(
    r"^<?(?:Media omitted|Médias omis|Multimedia omitido|Medien ausgeschlossen|Mídia oculta"
    r"|(?:.* )?(?:audio|image|video|sticker|GIF|document|Contact card) omitted"
    r"|(?:audio|imagen|video|sticker|GIF|documento) omitid[oa]"
    r"|(?:Audio|Bild|Video|Sticker|GIF|Dokument) weggelassen)>?$", re.IGNORECASE)

_SYSTEM_BODIES = ("Messages and calls are end-to-end encrypted", "Messages to this group are now",
                  "Missed voice call", "Missed video call")


@dataclass
class Message:
    time: datetime | None
    sender: str | None
    kind: str  # "text", "voice", "media" or "system"
    text: str = ""
    attachment: Path | None = None
    omitted: bool = False


@dataclass
class Chat:
    name: str
    app: str
    messages: list[Message] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # "file:line: what"
    source: Path | None = None  # the chat's text (result.json, _chat.txt, messages.html)


def load(export: Path, workdir: Path | None = None) -> Chat:
    """Read an export: a WhatsApp .zip/.txt/folder or a Telegram folder/result.json."""
    export = Path(export)
    if not export.exists():
        raise InputError(export, "no such file or folder")
    if not export.is_dir() and not export.is_file():  # /dev/zero, a pipe: read forever
        raise InputError(export, "not a regular file or folder")
    if export.suffix.lower() == ".zip":
        target = Path(workdir or tempfile.mkdtemp(prefix="transcribe-chat-"))
        _unzip(export, target)
        try:
            chat = load(target)
        except InputError as e:  # name the zip, not the folder it was unpacked into
            raise InputError(_in_zip(e.path, target, export), e.reason) from None
        chat.problems = [_in_zip(p, target, export) for p in chat.problems]
        if chat.name == target.name:  # named after the temporary folder: use the zip's
            chat.name = _chat_name(export)
        return chat
    if export.is_dir():
        found = _find_text(export)
        if found is None:
            raise InputError(export, "no chat text (_chat.txt, WhatsApp Chat*.txt, result.json "
                                     "or messages.html)")
        chat = load(found)
        if found.name == "_chat.txt":  # iOS: the chat's name is only the folder's
            chat.name = export.name
        others = [p.name for p in _chat_texts(export) if p != found]
        if others:
            chat.problems.append(f"{found}: this is the chat read; the export holds other "
                                 f"chat texts too, not read: {', '.join(others)}")
        return chat
    if export.name.endswith(".json"):
        return parse_telegram_json(export)
    if export.suffix.lower() in (".html", ".htm"):
        from .chat_html import parse_telegram_html

        return parse_telegram_html(export)
    return parse_whatsapp(export)


def _unzip(export: Path, target: Path) -> None:
    """Unpack a zip into `target` (zipfile drops "../" and leading "/" from the names, so
    nothing lands outside it); a damaged zip, or one that would not fit on the disk (sizes
    as its directory declares them: zipfile never writes more than a member declares), is
    an `InputError` before anything is written."""
    try:
        with zipfile.ZipFile(export) as z:
            needed = sum(info.file_size for info in z.infolist())
            free = shutil.disk_usage(target).free
            if needed > free:
                raise InputError(export, f"needs {needed / 2**20:.1f} MB unpacked, and only "
                                         f"{free / 2**20:.1f} MB is free in {target.parent}")
            z.extractall(target, members=[_utf8_name(info) for info in z.infolist()])
    except (zipfile.BadZipFile, zlib.error, EOFError) as e:
        raise InputError(export, f"not a readable zip ({e})") from e
    except OSError as e:
        raise InputError(export, f"cannot be unpacked into {target} ({e.strerror or e})") from e


def _utf8_name(info: zipfile.ZipInfo) -> zipfile.ZipInfo:
    """A member's name as UTF-8 even without the zip's UTF-8 flag, which zipfile then reads
    as cp437 ("WhatsApp Chat with Mar├¡a.txt" from Info-ZIP's `zip`); a name that is no
    UTF-8 stays as zipfile read it."""
    if not info.flag_bits & 0x800:
        try:
            info.filename = info.filename.encode("cp437").decode("utf-8")
        except UnicodeError:
            pass
    return info


def _in_zip(text: str, target: Path, export: Path) -> str:
    """ "/tmp/transcribe-chat-x/_chat.txt:3: ..." as "chat.zip/_chat.txt:3: ...": the
    unpacked copy is gone when the user reads the line."""
    return text.replace(str(target), str(export), 1)


def holds(folder: Path, path: Path) -> bool:
    """Whether the export in `folder` holds the file `path`: not when it is missing, not a
    regular file (a folder, a pipe), or outside the export ("/home/x-AUDIO-1.opus",
    "../x.opus", a link out of it). A chat's text never makes us read, let alone upload,
    a file that is not part of its export."""
    try:
        return path.resolve().is_relative_to(folder.resolve()) and path.is_file()
    except (OSError, ValueError):  # a name too long, a NUL in it
        return False


CHAT_TEXTS = ("result.json", "messages.html", "_chat.txt", "WhatsApp Chat*.txt")


def _chat_texts(folder: Path) -> list[Path]:
    """Every chat text at the export's top (a zip of two chats holds two)."""
    return sorted({p for pattern in CHAT_TEXTS for p in folder.glob(pattern)})


def _find_text(folder: Path) -> Path | None:
    for pattern in (*CHAT_TEXTS, "*.txt"):
        hits = sorted(folder.rglob(pattern))
        if hits:
            return hits[0]
    return None


def is_export(path: Path) -> bool:
    """Whether `path` looks like a chat export (a zip or a folder holding a chat's text)
    rather than voice notes: what the TUI's "add" imports as a chat. A folder with some
    other .txt in it is not one, nor is a folder with an export somewhere inside it
    (~/Downloads): its chat text must be at its top, where both apps put it."""
    path = Path(path)
    if path.is_dir():
        return any(next(path.glob(pattern), None) for pattern in CHAT_TEXTS)
    if path.suffix.lower() != ".zip" or not path.is_file():
        return False
    try:
        with zipfile.ZipFile(path) as z:
            names = [Path(n).name for n in z.namelist()]
    except (zipfile.BadZipFile, OSError):
        return False
    return any(Path(n).match(pattern) for n in names for pattern in CHAT_TEXTS)


def _chat_name(path: Path) -> str:
    name = path.stem
    for prefix in ("WhatsApp Chat with ", "WhatsApp Chat - "):
        if name.startswith(prefix):
            name = name[len(prefix):]
    return name


def parse_whatsapp(path: Path) -> Chat:
    lines = _read_text(path).splitlines()
    clean = [_strip_marks(line) for line in lines]
    heads = [(_IOS.match(line) or _ANDROID.match(line)) for line in clean]
    if not any(heads):  # garbage, another app's file, a locale we cannot read: one line
        raise InputError(path, "empty chat text" if not any(line.strip() for line in clean)
                         else "no WhatsApp chat line in it (a line such as "
                              "'12/03/2024, 18:45 - Alice: text')")
    day_first = _day_first([m for m in heads if m])
    chat = Chat(name=_chat_name(path), app="whatsapp", source=path)
    for number, (line, head) in enumerate(zip(clean, heads), start=1):
        if head is None:
            if chat.messages:
                last = chat.messages[-1]
                last.text = f"{last.text}\n{line}"
            elif line.strip():
                chat.problems.append(f"{path}:{number}: not a chat line")
            continue
        try:
            time = _when(head, day_first)
        except ValueError:
            chat.problems.append(f"{path}:{number}: bad date or time")
            continue
        chat.messages.append(_whatsapp_message(time, head.group(8), path.parent))
    return chat


def _read_text(path: Path) -> str:
    """A chat text as WhatsApp writes it (UTF-8, perhaps with a BOM), or as an editor saved
    it again (UTF-16 with its BOM: Windows Notepad's "Unicode")."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise InputError(path, f"cannot read ({e.strerror or e})") from e
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16", errors="replace")
    return raw.decode("utf-8-sig", errors="replace")


def _strip_marks(line: str) -> str:
    return line.translate({ord(c): None for c in _MARKS})


def _day_first(heads) -> bool:
    """Day before month unless some second field is above 12 (and no first one is)."""
    heads = [m for m in heads if len(m.group(1)) <= 2]  # a year first says nothing
    firsts = [int(m.group(1)) for m in heads]
    seconds = [int(m.group(2)) for m in heads]
    if any(f > 12 for f in firsts):
        return True
    if any(s > 12 for s in seconds):
        return False
    return True


def _when(m, day_first: bool) -> datetime:
    a, b, c = int(m.group(1)), int(m.group(2)), int(m.group(3))
    if len(m.group(1)) == 4:
        year, month, day = a, b, c
    else:
        day, month = (a, b) if day_first else (b, a)
        year = c + (2000 if c < 100 else 0)
    hour, minute, second = int(m.group(4)), int(m.group(5)), int(m.group(6) or 0)
    ampm = "".join(ch for ch in (m.group(7) or "").lower() if ch in "apm")
    if ampm == "pm" and hour < 12:
        hour += 12
    elif ampm == "am" and hour == 12:
        hour = 0
    return datetime(year, month, day, hour, minute, second)


def _whatsapp_message(time: datetime, rest: str, folder: Path) -> Message:
    sender, sep, body = rest.partition(": ")
    if not sep:
        return Message(time, None, "system", rest)
    body = body.strip()
    if body.startswith(_SYSTEM_BODIES):  # iOS puts the chat's name before its system lines
        return Message(time, None, "system", body)
    attached = _ATTACHED_IOS.match(body) or _ATTACHED_ANDROID.match(body)
    if attached:
        name = attached.group(1).strip()
        kind = "voice" if _is_voice_name(name) else "media"
        path = folder / name
        return Message(time, sender, kind, name, attachment=path,
                       omitted=not holds(folder, path))
    if _OMITTED.match(body):
        kind = "voice" if body.lstrip("<").lower().startswith("audio") else "media"
        return Message(time, sender, kind, body, omitted=True)
    return Message(time, sender, "text", body)


def _is_voice_name(name: str) -> bool:
    upper = name.upper()
    return (upper.startswith(("PTT-", "AUD-")) or "-AUDIO-" in upper) and \
        name.lower().endswith(VOICE_EXT)


def parse_telegram_json(path: Path) -> Chat:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise InputError(path, f"not readable JSON ({e})") from e
    except OSError as e:
        raise InputError(path, f"cannot read ({e.strerror or e})") from e
    if not isinstance(data, dict) or not isinstance(data.get("messages", []), list):
        raise InputError(path, 'not a Telegram chat export (no list of "messages" in it)')
    chat = Chat(name=str(data.get("name") or path.parent.name), app="telegram", source=path)
    for n, item in enumerate(data.get("messages", []), start=1):
        try:
            chat.messages.append(_telegram_message(item, path.parent))
        except (KeyError, ValueError, TypeError, AttributeError) as e:  # a wrong type
            chat.problems.append(f"{path}: message {n}: {e}")
    return chat


def _telegram_message(item: dict, folder: Path) -> Message:
    time = datetime.fromisoformat(item["date"])
    text = _telegram_text(item.get("text", ""))
    if item.get("type") == "service":
        if item.get("action") == "phone_call":
            text = phone_call(int(item.get("duration_seconds") or 0))
        return Message(time, item.get("actor"), "system", text or item.get("action", ""))
    sender = item.get("from")
    media = item.get("media_type")
    if media in ("voice_message", "video_message") or item.get("file"):
        file = item.get("file") or ""
        omitted = not file or file.startswith("(File not included")
        path = None if omitted else folder / file
        omitted = omitted or not holds(folder, path)
        kind = "voice" if media in ("voice_message", "video_message") else "media"
        return Message(time, sender, kind, text or file, attachment=path, omitted=omitted)
    if item.get("photo"):  # "photos/photo_1@...jpg", or "(File not included. ...)"
        photo = item["photo"]
        path = None if photo.startswith("(") else folder / photo
        return Message(time, sender, "media", text or photo, attachment=path,
                       omitted=path is None or not holds(folder, path))
    return Message(time, sender, "text", text)


def phone_call(seconds: int) -> str:
    """A call's line, the same from the HTML export as from `result.json`."""
    return f"phone call ({seconds} seconds)" if seconds else "phone call"


def _telegram_text(text) -> str:
    if isinstance(text, str):
        return text
    return "".join(part if isinstance(part, str) else part.get("text", "") for part in text)
