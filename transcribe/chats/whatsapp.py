"""WhatsApp's text export (Android and iOS) as a `Chat`.

The export is a folder (or the zip the phone shares, unpacked by `chats.load`) holding
`WhatsApp Chat with NAME.txt` (Android; the name is the phone's language's) or
`_chat.txt` (iOS), and the media the user chose to include beside it.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

from ..errors import InputError
from .base import Chat, Message, has_voice_ext, head, holds, read_text

APP = "whatsapp"

# The chat texts WhatsApp writes, at the top of its export.
CHAT_TEXTS = ("_chat.txt", "WhatsApp Chat*.txt")

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

def recognise(path: Path) -> bool:
    """A .txt file, or a folder with WhatsApp's chat text at its top."""
    if path.is_file():
        return path.suffix.lower() == ".txt"
    return path.is_dir() and bool(chat_texts(path))


def parse(path: Path) -> list[Chat]:
    """The chat of a chat text, or of the export folder holding it."""
    if path.is_file():
        return [_parse_text(path)]  # the file the user named, read as named
    texts = chat_texts(path)
    if not texts:
        raise InputError(path, "no WhatsApp chat text (_chat.txt, WhatsApp Chat*.txt)")
    chat = _parse_text(texts[0], root=path)
    if texts[0].name == "_chat.txt":  # iOS: the chat's name is only the folder's
        chat.name = path.name
    if len(texts) > 1:
        chat.problems.append(f"{texts[0]}: this is the chat read; the export holds other "
                             f"chat texts too, not read: "
                             f"{', '.join(p.name for p in texts[1:])}")
    return [chat]


def chat_texts(folder: Path) -> list[Path]:
    """Every chat text at the export's top (a zip of two chats holds two): the names
    WhatsApp gives them in English first, then any other .txt that starts with a chat line
    (the name is the phone's language's: "WhatsApp-Chat mit Sam.txt")."""
    found: list[Path] = []
    for pattern in CHAT_TEXTS:
        found += [p for p in sorted(folder.glob(pattern)) if p.is_file() and p not in found]
    found += [p for p in sorted(folder.glob("*.txt"))
              if p not in found and p.is_file() and _starts_like_a_chat(p)]
    return found


def _starts_like_a_chat(path: Path) -> bool:
    return any(_IOS.match(_strip_marks(line)) or _ANDROID.match(_strip_marks(line))
               for line in head(path).splitlines()[:5])


def _chat_name(path: Path) -> str:
    name = path.stem
    for prefix in ("WhatsApp Chat with ", "WhatsApp Chat - "):
        if name.startswith(prefix):
            name = name[len(prefix):]
    return name


def _parse_text(path: Path, root: Path | None = None) -> Chat:
    """The chat of a chat text; given the export's `root`, one linked from outside it is
    not read."""
    chat = Chat(name=_chat_name(path), app=APP, source=path)
    clean = [_strip_marks(line) for line in read_text(path, root, chat.problems)
             .splitlines()]
    heads = [(_IOS.match(line) or _ANDROID.match(line)) for line in clean]
    if not any(heads):  # garbage, another app's file, a locale we cannot read: one line
        raise InputError(path, "empty chat text" if not any(line.strip() for line in clean)
                         else "no WhatsApp chat line in it (a line such as "
                              "'12/03/2024, 18:45 - Alice: text')")
    day_first = _day_first([m for m in heads if m])
    more: list[list[str]] = []  # each message's lines after its first, joined at the end
    dropped = False  # the last chat line was not read: its next lines go with it
    for number, (line, match) in enumerate(zip(clean, heads), start=1):
        if match is None:
            if dropped:
                continue
            if chat.messages:
                more[-1].append(line)
            elif line.strip():
                chat.problems.append(f"{path}:{number}: not a chat line")
            continue
        try:
            time = _when(match, day_first)
        except ValueError:
            chat.problems.append(f"{path}:{number}: bad date or time")
            dropped = True
            continue
        dropped = False
        chat.messages.append(_whatsapp_message(time, match.group(8), path.parent))
        more.append([])
    for message, lines in zip(chat.messages, more):
        if lines:
            message.text = "\n".join([message.text, *lines])
    return chat


def _strip_marks(line: str) -> str:
    return line.translate(_NO_MARKS)


_NO_MARKS = {ord(c): None for c in _MARKS}


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
        if len(m.group(3)) == 3:
            raise ValueError(f"a year of three digits: {m.group(3)}")
        year = c + 2000 if len(m.group(3)) == 2 else c  # "0000" stays no year at all
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
        has_voice_ext(name)
