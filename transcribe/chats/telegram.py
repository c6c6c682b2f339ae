"""Telegram Desktop's chat export ("Export chat history"), JSON or HTML, as a `Chat`.

JSON: `result.json` holds the chat's name and its "messages"; the files are beside it
(`voice_messages/`, `round_video_messages/`, `photos/`, ...).

HTML: the pages `messages.html`, `messages2.html`, ...
The markup, as Telegram Desktop writes it (export_output_html.cpp):

    <div class="page_header">...<div class="text bold">Sam</div>...</div>
    <div class="history">
     <div class="message service" id="message-1">          a date line: not a message
      <div class="body details">12 March 2024</div></div>
     <div class="message service" id="message7">           a service message (no time)
      <div class="body details">Sam joined Telegram</div></div>
     <div class="message default clearfix" id="message8">
      <div class="pull_left userpic_wrap">...</div>
      <div class="body">
       <div class="pull_right date details" title="12.03.2024 18:45:02 UTC+01:00">18:45</div>
       <div class="from_name">Alice</div>
       <div class="forwarded body"><div class="from_name">Bob ...</div> ...</div>
       <div class="media_wrap clearfix">
        <a class="media clearfix pull_left block_link media_voice_message"
           href="voice_messages/audio_1@12-03-2024_18-45-02.ogg">
         ...<div class="title bold">Voice message</div><div class="status details">00:06</div>
        </a></div>
       <div class="text">See <strong>you</strong><br>tomorrow</div>
     </div></div>
     <div class="message default clearfix joined" id="message9">   same sender as before
      ... no from_name ...

A note the export left out is a `<div>` instead of an `<a>`, with the description
"Not included, change data exporting settings to download." A video message (round
video) is `media_video` titled "Video message", its file in `round_video_messages/`.
A phone call is a default message with `media_call`. Every file starts a new run of
`joined` messages, and with a date line. Titles before 2021 have no "UTC+hh:mm"; the
time kept is the local one, as in `result.json`.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path

from ..errors import InputError
from .base import (UNREADABLE, Chat, Message, head, holds, local_time, phone_call, read_json,
                   read_text, tags_only)

APP = "telegram"
_JSON_HEAD = re.compile(r'"date(?:_unixtime)?"\s*:')
_HTML_HEAD = ('class="page_header"', 'class="history"')


def recognise(path: Path) -> bool:
    """result.json, messages*.html, or the folder holding either."""
    if path.is_dir():
        return (path / "result.json").is_file() or (path / "messages.html").is_file()
    if not path.is_file():
        return False
    if path.name == "result.json" or _PAGE.match(path.name):
        return True
    if path.suffix.lower() == ".json":
        return bool(_JSON_HEAD.search(head(path, 65536)))
    if path.suffix.lower() in (".html", ".htm"):
        return any(mark in head(path, 65536) for mark in _HTML_HEAD)
    return False


def parse(path: Path) -> list[Chat]:
    """The chat of an export folder, its result.json, or one of its pages."""
    root = path if path.is_dir() else None  # a file the user named is read as named
    if path.is_dir():
        path = path / "result.json" if (path / "result.json").is_file() \
            else path / "messages.html"
    if path.suffix.lower() == ".json":
        return _parse_json(path, root)
    return [_parse_html(path)]


def _parse_json(path: Path, root: Path | None) -> list[Chat]:
    """One chat's export ({"name", "messages"}), or the whole account's ("Export Telegram
    data": {"chats": {"list": [chat, ...]}, "left_chats": {"list": [...]}}, each chat's
    files under chats/chat_NNN/, named from the export's top like a chat's own)."""
    data = read_json(path, root)
    if isinstance(data, dict) and isinstance(data.get("chats"), dict):
        return _parse_account(data, path)
    if not isinstance(data, dict) or not isinstance(data.get("messages", []), list):
        raise InputError(path, 'not a Telegram chat export (no list of "messages" in it)')
    return [_chat(data, path, str(data.get("name") or path.parent.name), f"{path}: ")]


def _parse_account(data: dict, path: Path) -> list[Chat]:
    found = []
    for key in ("chats", "left_chats"):
        part = data.get(key)
        items = part.get("list") if isinstance(part, dict) else None
        if isinstance(items, list):
            found += [item for item in items if isinstance(item, dict)]
    if not found:
        raise InputError(path, 'a Telegram account export with no chat in it (no "list" of '
                               'chats under "chats")')
    chats = []
    for n, item in enumerate(found, start=1):
        name = _account_chat_name(item, n)
        if not isinstance(item.get("messages", []), list):
            chats.append(Chat(name, APP, problems=[f"{path}: chat {name!r}: no list of "
                                                   '"messages"'], source=path))
            continue
        chats.append(_chat(item, path, name, f"{path}: chat {name!r}: "))
    return chats


def _account_chat_name(item: dict, n: int) -> str:
    """The chat's name; "Saved Messages" has none, nor has a deleted account."""
    name = item.get("name")
    if isinstance(name, str) and name.strip():
        return name
    if item.get("type") == "saved_messages":
        return "Saved Messages"
    return f"chat {item.get('id', n)}"


def _chat(data: dict, path: Path, name: str, where: str) -> Chat:
    chat = Chat(name=name, app=APP, source=path)
    for n, item in enumerate(data.get("messages", []), start=1):
        try:
            chat.messages.append(_read_message(item, path.parent))
        except UNREADABLE as e:
            chat.problems.append(f"{where}message {n}{_id(item)}: {_why(e)}")
    return chat



def _id(item) -> str:
    return f" (id {item['id']})" if isinstance(item, dict) and isinstance(
        item.get("id"), int) else ""


def _why(e: Exception) -> str:
    if isinstance(e, KeyError):
        return f"no {e.args[0]!r}"
    return str(e) or type(e).__name__


def _read_message(item: dict, folder: Path) -> Message:
    time = _time(item)
    text = _telegram_text(item.get("text", ""))
    if item.get("type") == "service":
        if item.get("action") == "phone_call":
            text = phone_call(_seconds(item.get("duration_seconds")))
        return Message(time, item.get("actor"), "system", text or item.get("action", ""))
    sender = item.get("from")
    media = item.get("media_type")
    if media in ("voice_message", "video_message") or item.get("file"):
        file = item.get("file") or ""
        omitted = not file or file.startswith("(File not included")
        path = None if omitted else folder / file
        omitted = omitted or not holds(folder, path)
        kind = "voice" if media in ("voice_message", "video_message") else "media"
        return Message(time, sender, kind, text or file, attachment=path, omitted=omitted,
                       video=media == "video_message")
    if item.get("photo"):  # "photos/photo_1@...jpg", or "(File not included. ...)"
        photo = item["photo"]
        path = None if photo.startswith("(") else folder / photo
        return Message(time, sender, "media", text or photo, attachment=path,
                       omitted=path is None or not holds(folder, path))
    return Message(time, sender, "text", text)


def _time(item: dict) -> datetime:
    """"date" is the exporting machine's local time; older exports and other exporters
    write only "date_unixtime" (UTC seconds, a string): shown in local time too."""
    if "date" in item:
        return datetime.fromisoformat(item["date"])
    if "date_unixtime" in item:
        return local_time(int(item["date_unixtime"]))
    raise KeyError("date")


def _seconds(value) -> int:
    seconds = int(value or 0)  # inf: OverflowError, "x": ValueError
    if not 0 <= seconds < 10**7:
        raise ValueError(f"a call of {seconds} seconds")
    return seconds


def _telegram_text(text) -> str:
    if isinstance(text, str):
        return text
    return "".join(part if isinstance(part, str) else part.get("text", "") for part in text)


# -- the HTML export ------------------------------------------------------------

_VOID = frozenset({"br", "img", "meta", "link", "hr", "input", "source", "wbr"})
_TITLE_TIME = re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{4}) (\d{1,2}):(\d{2})(?::(\d{2}))?")
_PAGE = re.compile(r"^messages(\d*)\.html$")
_SECONDS = re.compile(r"\((\d+) seconds?\)")
# The folders Telegram puts voice messages and video messages (round videos) in.
_VOICE_FOLDERS = ("voice_messages/", "round_video_messages/")


@dataclass
class _Block:
    """One `div.message` as read: what the second pass turns into a `Message`."""

    id: int
    service: bool
    joined: bool
    line: int
    title: str | None = None
    sender: str | None = None
    text: str = ""
    service_text: str = ""
    media_classes: set[str] = field(default_factory=set)
    media_href: str | None = None
    media_link: bool = False  # an <a>: the file is in the export
    media_title: str = ""
    media_status: str = ""
    media_description: str = ""  # "Not included, change data exporting settings ..."


class _Reader(HTMLParser):
    """Collects the message blocks of one page; knows nothing of what they mean."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[_Block] = []
        self.chat_name: str | None = None
        # The open elements: (tag, classes, forwarded: it is a "forwarded" one inside a
        # message). Every question about them is a count kept as they open and close,
        # never a walk down the stack: 80,000 nested tags (a 560 kB page) took over
        # 600 s walking it (issue 27).
        self._stack: list[tuple[str, set[str], bool]] = []
        self._open: Counter[str] = Counter()  # tag -> how many are open
        self._headers = 0  # open elements of class page_header
        self._forwarded = 0  # open "forwarded" elements inside the open message
        self._message_depth: int | None = None  # stack depth of the open div.message
        self._capture: str | None = None  # the field text goes to
        self._capture_depth = 0
        self._buffer: list[str] = []

    # -- the element stack -------------------------------------------------------
    def handle_starttag(self, tag: str, attrs) -> None:
        a = dict(attrs)
        classes = set((a.get("class") or "").split())
        if tag in _VOID:
            self._void(tag)
            return
        forwarded = self._message_depth is not None and "forwarded" in classes
        self._stack.append((tag, classes, forwarded))
        self._open[tag] += 1
        self._headers += "page_header" in classes
        self._forwarded += forwarded
        depth = len(self._stack)
        if tag == "div" and "message" in classes and self._message_depth is None:
            self._open_message(classes, a)
            self._message_depth = depth
        elif self._message_depth is not None:
            self._inside_message(tag, classes, a, depth)
        elif tag == "div" and {"text", "bold"} <= classes and self._headers:
            self._start_capture("chat_name", depth)

    def handle_startendtag(self, tag: str, attrs) -> None:
        self._void(tag)  # <img .../>: Telegram closes its empty tags

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID or not self._open[tag]:
            return  # a stray end tag: HTML forgives it, and so do we
        while self._stack:
            depth = len(self._stack)
            if self._capture is not None and depth == self._capture_depth:
                self._end_capture()
            if self._message_depth is not None and depth == self._message_depth:
                self._message_depth = None
            open_tag, classes, forwarded = self._stack.pop()
            self._open[open_tag] -= 1
            self._headers -= "page_header" in classes
            self._forwarded -= forwarded
            if open_tag == tag:
                break

    def handle_data(self, data: str) -> None:
        if self._capture is not None:
            self._buffer.append(data)

    def _void(self, tag: str) -> None:
        if tag == "br" and self._capture is not None:
            self._buffer.append("\n")

    # -- what a message holds ----------------------------------------------------
    def _open_message(self, classes: set[str], attrs: dict) -> None:
        raw = (attrs.get("id") or "").removeprefix("message")
        try:
            number = int(raw)
        except ValueError:
            number = 0
        self.blocks.append(_Block(id=number, service="service" in classes,
                                  joined="joined" in classes, line=self.getpos()[0]))

    def _inside_message(self, tag: str, classes: set[str], attrs: dict, depth: int) -> None:
        block = self.blocks[-1]
        forwarded = self._forwarded > 0
        if block.service and tag == "div" and "body" in classes:
            self._start_capture("service_text", depth)
        elif "date" in classes and attrs.get("title") and block.title is None:
            block.title = attrs["title"]
        elif "from_name" in classes and not forwarded and block.sender is None:
            self._start_capture("sender", depth)
        elif "media" in classes or {"photo_wrap", "video_file_wrap", "sticker_wrap",
                                    "animated_wrap"} & classes:
            if not block.media_classes:
                block.media_classes = classes
                block.media_href = attrs.get("href")
                block.media_link = tag == "a" and bool(attrs.get("href"))
        elif block.media_classes and {"title", "bold"} <= classes:
            self._start_capture("media_title", depth)
        elif block.media_classes and "status" in classes:
            self._start_capture("media_status", depth)
        elif block.media_classes and "description" in classes:
            self._start_capture("media_description", depth)
        elif tag == "div" and "text" in classes and not block.text:
            self._start_capture("text", depth)  # a forwarded message's too: it is the text

    def _start_capture(self, name: str, depth: int) -> None:
        if self._capture is None:
            self._capture, self._capture_depth, self._buffer = name, depth, []

    def _end_capture(self) -> None:
        text = "".join(self._buffer).strip()
        name, self._capture = self._capture, None
        if name == "chat_name":
            self.chat_name = self.chat_name or text
        elif self.blocks:
            setattr(self.blocks[-1], name, text)


def pages(folder: Path) -> list[Path]:
    """messages.html, messages2.html, ... in the order Telegram wrote them."""
    found = [(int(m.group(1) or 1), p) for p in folder.iterdir()
             if (m := _PAGE.match(p.name))]
    return [p for _, p in sorted(found)]


def _parse_html(path: Path) -> Chat:
    """Every page of the export `path` (one of its messages*.html) belongs to."""
    chat = Chat(name=path.parent.name, app=APP, source=path)
    sender: str | None = None
    last_time: datetime | None = None
    for page in pages(path.parent) or [path]:
        try:  # a page linked to /dev/zero, a pipe, a file outside the export: not read
            text = read_text(page, root=path.parent, problems=chat.problems)
        except InputError as e:
            chat.problems.append(str(e))
            continue
        reader = _Reader()
        reader.feed(tags_only(text))
        reader.close()
        if reader.chat_name and chat.name == path.parent.name:
            chat.name = reader.chat_name
        for block in reader.blocks:
            if block.id < 0:  # the date line between days: no message of its own
                last_time = _date_line(block.service_text, last_time)
                continue
            try:
                message = _message(block, sender, last_time, path.parent)
            except ValueError as e:
                chat.problems.append(f"{page}:{block.line}: {e}")
                continue
            if not block.service:
                sender = message.sender
            last_time = message.time or last_time
            chat.messages.append(message)
    if not chat.messages and not chat.problems:  # garbage, or another page altogether
        raise InputError(path, "no Telegram message in it (a <div class=\"message ...\">)")
    return chat


def _message(block: _Block, previous_sender: str | None, last_time: datetime | None,
             folder: Path) -> Message:
    if block.service:  # no time of its own: the last one seen
        return Message(last_time, None, "system", block.service_text)
    if not block.title:
        raise ValueError("a message without its time")
    time = _title_time(block.title)
    sender = block.sender if block.sender else (previous_sender if block.joined else None)
    if sender is None:
        raise ValueError("a message without its sender")
    if not block.media_classes:
        return Message(time, sender, "text", block.text)
    return _media_message(block, time, sender, folder)


def _media_message(block: _Block, time: datetime, sender: str, folder: Path) -> Message:
    classes, href = block.media_classes, block.media_href or ""
    if "media_call" in classes:
        seconds = _SECONDS.search(block.media_status)
        return Message(time, sender, "system", phone_call(int(seconds.group(1)) if seconds
                                                          else 0))
    video = href.startswith("round_video_messages/") or (
        "media_video" in classes and block.media_title == "Video message")
    voice = "media_voice_message" in classes or href.startswith(_VOICE_FOLDERS) or video
    path = folder / href if block.media_link and not href.startswith(("http:", "https:")) \
        else None
    omitted = path is None or not holds(folder, path)
    text = block.text or href or block.media_description or block.media_title or "media"
    return Message(time, sender, "voice" if voice else "media", text, attachment=path,
                   omitted=omitted, video=video)


def _title_time(title: str) -> datetime:
    m = _TITLE_TIME.match(title.strip())
    if not m:
        raise ValueError(f"a time Telegram does not write: {title!r}")
    day, month, year, hour, minute = (int(m.group(i)) for i in range(1, 6))
    return datetime(year, month, day, hour, minute, int(m.group(6) or 0))


_MONTHS = {name: n for n, name in enumerate(
    ("January", "February", "March", "April", "May", "June", "July", "August", "September",
     "October", "November", "December"), start=1)}


def _date_line(text: str, last_time: datetime | None) -> datetime | None:
    """The midnight a date line ("12 March 2024") names, when it is after `last_time`."""
    parts = text.split()
    try:
        day = datetime(int(parts[2]), _MONTHS[parts[1]], int(parts[0]))
    except (IndexError, KeyError, ValueError, OverflowError):  # a year of 20 digits
        return last_time
    return day if last_time is None or day > last_time else last_time
