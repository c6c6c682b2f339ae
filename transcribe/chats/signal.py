"""Signal Desktop's chats as signal-export (`sigexport`, carderne/signal-export) writes them.

The output folder holds one folder per conversation, named after it:

    signal-chats/
      Sam/
        chat.md        every message, as below
        data.json      the same messages, one JSON object a line (only with --json)
        media/         the attachments: "2024-03-12T18-45-02.000_00_None.aac"
        index.html     (with --html; not read)

chat.md, as sigexport's `Message.to_md` writes it (v2 to v3.9 alike; v1 called it
index.md and gave no seconds): a message starts with "[YYYY-MM-DD HH:MM:SS] SENDER: "
("Me" for your own), its text may run over several lines, and a blank line ends it. A
reply starts with the quoted text ("> ..."), reactions follow it on a line "(- Alice: 👍
-)", an attachment is a Markdown link into media/ (an image's with "!"; whitespace as
"%20"), one the export could not include is "(media not exported)" or "(attachment not
exported)". Times are the exporting computer's local time.
data.json gives the same fields as JSON: date, sender, body, quote, attachments
[{name, path, missing_kind}], deleted, call, missed; it is read when present.

Voice notes are attachments like any other: Signal records them as AAC ("None.aac"; .m4a
from iPhones), and an audio attachment (.aac, .m4a, .ogg, .opus, .mp3, ...) is taken for one.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

from ..errors import InputError
from .base import (UNREADABLE, Chat, Message, attachment, has_voice_ext, head, one_by_one,
                   read_text)

APP = "signal"
# chat.md since v2; signal-export v1 wrote index.md (the same lines, times without seconds)
CHAT_TEXTS = ("chat.md", "index.md")
CHAT_JSON = "data.json"

_START = re.compile(r"^\[(\d{4}-\d{2}-\d{2}),? (\d{2}:\d{2}(?::\d{2})?)\] (.*?): ?(.*)$")
# A link's label and path are a file's name (at most 255 bytes) and media/ before it:
# bounded, and on one line, so that a message of "[](" repeated is read in linear time
# (unbounded, each "[" scanned the rest of the message for its ")": 60 kB took 11 s).
_LINK = re.compile(r"!?\[([^\]\n]{0,512})\]\((?:\./)?([^)\n]{0,512})\) *")
_NOT_EXPORTED = re.compile(r"\((media|attachment) not exported\) *")
_REACTIONS = re.compile(r"^\(- .* -\)$")
_STICKER = re.compile(r"^\(\( (.*) \)\)$")
# A call's line, as sigexport's _format_call words it ("Missed voice call", "Incoming
# video call (accepted, 1m 5s)", "Outgoing call"); data.json says "call": true instead.
_CALL = re.compile(r"^(?:Incoming|Outgoing|Missed) (?:voice |video )?call(?: \(.*\))?$")


def recognise(path: Path) -> bool:
    """A chat's folder (its chat.md at the top), its chat.md, or sigexport's output folder
    (chat folders under it). A chat.md must start with a message ("[2024-03-12 18:40:05]
    Sam: ..."): a folder of notes with a chat.md of its own is none."""
    if path.is_file():
        return path.name in CHAT_TEXTS and _starts_a_chat(path)
    if not path.is_dir():
        return False
    return _chat_text(path) is not None or bool(_chat_folders(path, first_only=True))


def parse(path: Path) -> list[Chat]:
    """Every chat of the output folder, or the one chat of a chat folder or chat.md."""
    if path.is_file():
        return [_parse_chat(path.parent)]
    if _chat_text(path) is not None:
        return [_parse_chat(path)]
    folders = _chat_folders(path)
    if not folders:
        raise InputError(path, "no Signal chat in it (a folder with chat.md)")
    return one_by_one(folders, _parse_chat, APP)


def _chat_folders(folder: Path, first_only: bool = False) -> list[Path]:
    found: list[Path] = []
    try:
        subfolders = sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink())
    except OSError:
        return []
    for sub in subfolders:
        if _chat_text(sub) is not None:
            found.append(sub)
            if first_only:
                break
    return found


def _chat_text(folder: Path) -> Path | None:
    return next((folder / name for name in CHAT_TEXTS if _starts_a_chat(folder / name)), None)


def _starts_a_chat(path: Path) -> bool:
    """Whether the file's first line is a chat.md message's (read: its first 4 KB)."""
    first = next((line for line in head(path).splitlines() if line.strip()), "")
    return bool(_START.match(first))


def _parse_chat(folder: Path) -> Chat:
    if (folder / CHAT_JSON).is_file():
        return _parse_json(folder, folder / CHAT_JSON)
    return _parse_md(folder, _chat_text(folder) or folder / CHAT_TEXTS[0])


# -- data.json: one message a line --------------------------------------------------

def _parse_json(folder: Path, path: Path) -> Chat:
    chat = Chat(name=folder.name, app=APP, source=path)
    for n, line in enumerate(read_text(path, folder).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            chat.messages.extend(_json_messages(json.loads(line), folder))
        except UNREADABLE as e:
            chat.problems.append(f"{path}:{n}: {e}")
    if not chat.messages and chat.problems:  # not sigexport's JSON at all: try the text
        md = _parse_md(folder, _chat_text(folder) or folder / CHAT_TEXTS[0])
        if md.messages:
            return md
    return chat


def _json_messages(item: dict, folder: Path) -> list[Message]:
    time = _time(datetime.fromisoformat(item["date"]))
    sender = item.get("sender") or None
    body = _body(item.get("body") or "")
    sticker = item.get("sticker")
    if isinstance(sticker, dict):  # chat.md writes its emoji (sigexport's Sticker.label)
        body = "\n".join(filter(None, (body, sticker.get("emoji") or "sticker")))
    if item.get("deleted"):
        body = "(This message was deleted)"
    if item.get("call"):
        return [Message(time, sender, "system", body)]
    files = [(a.get("path") or "", a.get("missing_kind"))
             for a in item.get("attachments") or []]
    return _with_files(time, sender, body, files, folder)


# -- chat.md -------------------------------------------------------------------------

def _parse_md(folder: Path, path: Path) -> Chat:
    chat = Chat(name=folder.name, app=APP, source=path)
    head: tuple[int, re.Match] | None = None
    lines: list[str] = []
    for n, line in enumerate(read_text(path, folder).splitlines(), start=1):
        start = _START.match(line)
        if start is None:
            if head is None and line.strip():
                chat.problems.append(f"{path}:{n}: not a message line, left out")
            lines.append(line)
            continue
        if head is not None:
            _add_md_message(chat, path, head, lines, folder)
        head, lines = (n, start), [start.group(4)]
    if head is not None:
        _add_md_message(chat, path, head, lines, folder)
    return chat


def _add_md_message(chat: Chat, path: Path, head: tuple[int, re.Match], lines: list[str],
                    folder: Path) -> None:
    n, start = head
    try:
        time = datetime.fromisoformat(f"{start.group(1)} {start.group(2)}")
    except ValueError as e:
        chat.problems.append(f"{path}:{n}: {e}")
        return
    text = [line for line in lines if not line.startswith("> ") and not _REACTIONS.match(line)]
    body = "\n".join(text)
    files = [(link.group(2), None) for link in _LINK.finditer(body)
             if not link.group(2).startswith("../")]
    files += [("", gap.group(1)) for gap in _NOT_EXPORTED.finditer(body)]
    body = _NOT_EXPORTED.sub("", _LINK.sub(_sticker_label, body))
    body = _body("\n".join(_STICKER.sub(r"\1", line) for line in body.split("\n")))
    if _CALL.match(body) and not files:
        chat.messages.append(Message(time, start.group(3) or None, "system", body))
        return
    chat.messages.extend(_with_files(time, start.group(3) or None, body, files, folder))


def _sticker_label(link: re.Match) -> str:
    """A sticker is linked from the export's exported_stickers/, outside the chat's
    folder: its label (an emoji) stands for it; any other link is an attachment."""
    return link.group(1) if link.group(2).startswith("../") else ""


# -- both ----------------------------------------------------------------------------

def _with_files(time: datetime, sender: str | None, body: str,
                files: list[tuple[str, str | None]], folder: Path) -> list[Message]:
    """The message's text, then each attachment as a message of its own: a voice note is
    transcribed in its place, and its text (a caption) is not lost."""
    messages = [Message(time, sender, "text", body)] if body or not files else []
    for link, missing in files:
        name = _file_name(link, folder)
        path, omitted = attachment(folder, name) if name else (None, True)
        kind = "voice" if name and _is_voice(name) else "media"
        label = Path(name).name if name else f"{missing or 'attachment'} not exported"
        messages.append(Message(time, sender, kind, label, attachment=path, omitted=omitted))
    return messages


def _file_name(link: str, folder: Path) -> str:
    """An attachment's path in the chat folder: sigexport writes whitespace as "%20"."""
    link = link.replace("\\", "/")
    if link and not (folder / link).exists() and "%20" in link:
        return link.replace("%20", " ")
    return link


def _is_voice(name: str) -> bool:
    """Signal's voice notes are AAC (.aac, .m4a) or Ogg; an .mp4 or .webm is a video."""
    return has_voice_ext(name) and not name.lower().endswith((".mp4", ".webm"))


def _body(text: str) -> str:
    """The text as written: sigexport ends each with two spaces (Markdown's line break)
    and puts a blank line after a quote."""
    return text.strip()


def _time(time: datetime) -> datetime:
    return time.replace(microsecond=0, tzinfo=None)
