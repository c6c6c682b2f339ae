"""iMessage conversations as imessage-exporter (ReagentX/imessage-exporter) writes them,
`--format txt` or `--format html`, with `--copy-method` copying the attachments.

The export folder holds one file per conversation, named after it ("+15555550123.txt",
"Book Club - 12.html", "orphaned.txt"), and the copied attachments under
attachments/CHAT_ID/UUID.EXT. Without a copy method an attachment is named by its path
on the Mac (~/Library/Messages/Attachments/...): not in the export.

TXT (txt.rs), a blank line after each message:

    Mar 12, 2024  6:44:10 PM (Read by them after 1 minute)      date, local time
    Me                                                          sender ("Me", a name, a number)
    Running late                                                its parts: text,
    attachments/1/5E0B5F8A-3C6B-4E0C-9B1A-2D7C8F3E6A11.caf      an attachment's path,
    Reactions:                                                  ...
    Loved by +15555550123
        Mar 12, 2024  6:45:00 PM                                a reply, indented: it
        +15555550123                                            comes again in its own
        OK                                                      place, so is skipped here
    This message responded to an earlier message.

    Mar 12, 2024  6:40:00 PM You renamed the conversation to Plans    an announcement

HTML (html.rs): each message a `div.message` (`div.sent` or `div.received`) with
`span.timestamp`, `span.sender`, `div.message_part`s holding `span.bubble` (text) or
`div.attachment` (`<img src>`, `<video><source src>`, `<audio src>`, `<a href>`), an
attachment not found being `span.attachment_error` "Unable to locate attachment: NAME";
replies again inside `div.replies`; announcements are `div.announcement`.

Audio messages are .caf files (Opus, or AAC before iOS 17), copied as they are (newer
exporters' "compatible" copying may convert them to .mp4: the HTML's <audio> tells).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path

from ..errors import InputError
from .base import Chat, Message, attachment, has_voice_ext, head, one_by_one, read_text

APP = "imessage"

# chrono's "%b %d, %Y %l:%M:%S %p": "Mar 12, 2024  6:44:10 PM" (the hour padded with a
# space), English whatever the Mac's language.
_DATE = re.compile(r"^([A-Z][a-z]{2}) (\d{1,2}), (\d{4}) +(\d{1,2}):(\d{2}):(\d{2}) "
                   r"([AP]M)(.*)$")
_MONTHS = {m: n for n, m in enumerate(
    "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), start=1)}
_READ = re.compile(r"^ \((?:Read|Delivered) .*\)$")
_HTML_MARK = '<span class="timestamp">'
_REPLIED = "This message responded to an earlier message."
# "Loved by Sam", "Reacted 😀(...) by Sam": no "(" inside the brackets, so that a line of
# "x(" repeated is read in linear time (".*" scanned the rest of it for each "(").
_REACTION = re.compile(r"^\S+(?:\([^()]*\))? by .+$")
_MISSING = ("Attachment missing!", "Attachment does not exist!")
# What an attachment that was not copied is named by (its file name, or its path on the
# Mac): the kinds of file people send in Messages.
_FILE = re.compile(r"^(?:[/~]|[A-Za-z]:\\)?[^\n]*\.(?:caf|amr|m4a|mp3|aac|wav|opus|ogg|heic|"
                   r"heics|jpe?g|png|gif|webp|tiff?|mov|mp4|m4v|pdf|vcf|txt|zip|docx?|xlsx?|"
                   r"pptx?|key|pages|numbers|pluginPayloadAttachment)$", re.IGNORECASE)
_AUDIO_MESSAGE = (".caf", ".amr")


def recognise(path: Path) -> bool:
    """A conversation's .txt or .html, or the export folder (one at its top)."""
    if path.is_file():
        return _is_chat(path)
    return path.is_dir() and bool(_chat_files(path, first_only=True))


def parse(path: Path) -> list[Chat]:
    """One Chat per conversation file: the one given, or every one in the export folder
    (the .txt ones, else the .html ones)."""
    files = [path] if path.is_file() else _chat_files(path)
    if not files:
        raise InputError(path, "no imessage-exporter conversation (.txt or .html) in it")
    root = path.parent if path.is_file() else path
    return one_by_one(files, lambda f: _parse_html(f, root) if f.suffix.lower() in
                      (".html", ".htm") else _parse_txt(f, root), APP)


def _chat_files(folder: Path, first_only: bool = False) -> list[Path]:
    try:
        names = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".txt", ".html"))
    except OSError:
        return []
    found: list[Path] = []
    for suffix in (".txt", ".html"):
        for p in names:
            if p.suffix.lower() == suffix and _is_chat(p):
                found.append(p)
                if first_only:
                    return found
        if found:
            return found
    return found


def _is_chat(path: Path) -> bool:
    suffix = path.suffix.lower()
    if suffix not in (".txt", ".html", ".htm"):
        return False
    text = head(path, 16384)
    if suffix == ".txt":
        first = next((line for line in text.splitlines() if line.strip()), "")
        return bool(_DATE.match(first))
    return _HTML_MARK in text and 'class="message"' in text


def _stamp(line: str) -> tuple[datetime, str]:
    """The time a message's first line (or its HTML timestamp) starts with, and the rest
    of the line; a ValueError saying why when there is none."""
    match = _DATE.match(line)
    if match is None:
        raise ValueError("not a message (no time at its start), left out")
    month, day, year, hour, minute, second, half, rest = match.groups()
    if month not in _MONTHS:
        raise ValueError(f"not a month: {month}")
    hour = int(hour) % 12 + (12 if half == "PM" else 0)
    return datetime(int(year), _MONTHS[month], int(day), hour, int(minute), int(second)), rest


def _file_message(time: datetime, sender: str | None, name: str, root: Path,
                  audio: bool = False) -> Message:
    """An attachment: in the export when copied there (attachments/...), else named by
    its file name or its path on the Mac, and left out."""
    path, omitted = attachment(root, name) if name.startswith("attachments/") \
        else (None, True)
    kind = "voice" if audio or _is_audio(name) else "media"
    return Message(time, sender, kind, Path(name.replace("\\", "/")).name,
                   attachment=path, omitted=omitted)


def _is_audio(name: str) -> bool:
    """An audio message (.caf; .amr from old iPhones) or another audio file; an .mp4,
    .webm or .mov is a video."""
    lower = name.lower()
    return lower.endswith(_AUDIO_MESSAGE) or \
        (has_voice_ext(lower) and not lower.endswith((".mp4", ".webm")))


# -- TXT -------------------------------------------------------------------------------

def _parse_txt(path: Path, root: Path) -> Chat:
    chat = Chat(name=path.stem, app=APP, source=path)
    block: list[tuple[int, str]] = []
    for n, line in enumerate(read_text(path, root).splitlines(), start=1):
        if _DATE.match(line) and block:
            _add_block(chat, path, block, root)
            block = []
        if block or line.strip():
            block.append((n, line))
    if block:
        _add_block(chat, path, block, root)
    return chat


def _add_block(chat: Chat, path: Path, block: list[tuple[int, str]], root: Path) -> None:
    n, first = block[0]
    try:
        time, rest = _stamp(first)
    except ValueError as e:
        chat.problems.append(f"{path}:{n}: {e}")
        return
    if rest and not _READ.match(rest):  # "... PM You renamed the conversation to Plans"
        chat.messages.append(Message(time, None, "system", rest.strip()))
        return
    if len(block) < 2:
        chat.problems.append(f"{path}:{n}: a message without its sender, left out")
        return
    sender = block[1][1].strip() or None
    chat.messages.extend(_parts(time, sender, [line for _, line in block[2:]], root))


def _parts(time: datetime, sender: str | None, lines: list[str], root: Path) -> list[Message]:
    """A message's lines as messages: its text, and each attachment in its place; replies
    (indented) and reactions left out."""
    messages: list[Message] = []
    text: list[str] = []
    in_reply = in_reactions = False

    def flush() -> None:
        body = "\n".join(text).strip("\n")
        if body.strip():
            messages.append(Message(time, sender, "text", body))
        text.clear()

    for line in lines:
        if in_reply:  # a reply ends with a blank line (its lines after the first of a
            in_reply = bool(line.strip())  # text of several lines are not indented)
            continue
        if line.startswith("    ") and _DATE.match(line.lstrip()):
            in_reply = True
            continue
        if line == "Reactions:":
            in_reactions = True
            continue
        if in_reactions and _REACTION.match(line):
            continue
        in_reactions = False
        if line == _REPLIED:
            continue
        if line in _MISSING:
            flush()
            messages.append(Message(time, sender, "media", line, omitted=True))
        elif line.startswith("attachments/") or _FILE.match(line):
            flush()
            messages.append(_file_message(time, sender, line, root))
        else:
            text.append(line)
    flush()
    if not messages:
        messages.append(Message(time, sender, "text", ""))
    return messages


# -- HTML ------------------------------------------------------------------------------

def _parse_html(path: Path, root: Path) -> Chat:
    chat = Chat(name=path.stem, app=APP, source=path)
    reader = _Page()
    reader.feed(read_text(path, root))
    reader.close()
    for block in reader.blocks:
        try:
            time, _ = _stamp(block.timestamp.strip())
        except ValueError as e:
            chat.problems.append(f"{path}:{block.line}: {e}")
            continue
        if block.announcement:
            chat.messages.append(Message(time, None, "system", " ".join("".join(block.rest).split())))
            continue
        sender = block.sender.strip() or None
        messages = []
        for kind, value in block.parts:
            if kind == "text":
                messages.append(Message(time, sender, "text", value))
            elif kind == "missing":
                messages.append(Message(time, sender, "voice" if _is_audio(value) else "media",
                                        value, omitted=True))
            else:
                messages.append(_file_message(time, sender, value, root, audio=kind == "audio"))
        chat.messages.extend(messages or [Message(time, sender, "text", "")])
    return chat


@dataclass
class _Block:
    line: int
    announcement: bool
    timestamp: str = ""
    sender: str = ""
    rest: list[str] = field(default_factory=list)  # an announcement's words
    parts: list[tuple[str, str]] = field(default_factory=list)  # ("text"|"file"|...)
    sources: set[str] = field(default_factory=set)  # the files of parts, once each


class _Page(HTMLParser):
    """div.message and div.announcement as `_Block`s, in the page's order; what is in
    div.replies (each reply again, in its own place) is skipped."""

    _UNSENT_PREFIX = "Unable to locate attachment: "

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[_Block] = []
        self._stack: list[tuple[str, str]] = []  # (tag, what it is to us) of div/span
        # how many of each `what` are open: _inside is O(1) per tag, not a walk down the
        # stack (50,000 nested divs took over 20 s)
        self._open: dict[str, int] = {}
        self._capture: str | None = None  # "timestamp", "sender", "bubble", "error"
        self._text: list[str] = []

    def _inside(self, what: str) -> bool:
        return self._open.get(what, 0) > 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attributes = dict(attrs)
        classes = (attributes.get("class") or "").split()
        if tag == "br" and self._capture:
            self._text.append("\n")
        if tag not in ("div", "span"):
            if tag in ("img", "source", "audio", "a") and self._inside("attachment") \
                    and not self._inside("replies") and self.blocks:
                src = attributes.get("href" if tag == "a" else "src")
                # a <video> names its file twice (two <source>s)
                block = self.blocks[-1]
                if src and src not in block.sources:
                    block.sources.add(src)
                    block.parts.append(("audio" if tag == "audio" else "file", src))
            return
        what = next((c for c in classes if c in ("message", "announcement", "replies",
                                                 "attachment", "timestamp", "sender",
                                                 "bubble", "attachment_error")), "")
        self._stack.append((tag, what))
        self._open[what] = self._open.get(what, 0) + 1
        if self._inside("replies") and what != "replies":
            return
        if what in ("message", "announcement"):
            self.blocks.append(_Block(self.getpos()[0], what == "announcement"))
        elif what in ("timestamp", "sender", "bubble", "attachment_error") and self.blocks:
            self._capture, self._text = what, []

    def handle_endtag(self, tag: str) -> None:
        if tag not in ("div", "span") or not self._stack:
            return
        while self._stack:
            open_tag, what = self._stack.pop()
            self._open[what] -= 1
            if what and what == self._capture:
                self._finish(what)
            if open_tag == tag:
                break

    def _finish(self, what: str) -> None:
        block, text = self.blocks[-1], "".join(self._text)
        self._capture = None
        if what == "timestamp":
            block.timestamp = text
        elif what == "sender":
            block.sender = text
        elif what == "bubble":
            block.parts.append(("text", text))
        elif what == "attachment_error":
            name = text.strip()
            if name.startswith(self._UNSENT_PREFIX):
                name = name[len(self._UNSENT_PREFIX):]
            block.parts.append(("missing", name))

    def handle_data(self, data: str) -> None:
        if self._capture:
            self._text.append(data)
        elif self.blocks and self.blocks[-1].announcement and self._inside("announcement"):
            self.blocks[-1].rest.append(data)
