"""Instagram's and Facebook Messenger's chats from Meta's "Download your information" (JSON).

The export (a zip, or its parts unpacked into one folder) keeps each conversation in a
folder of its own, its messages in message_1.json, message_2.json, ...:

    your_facebook_activity/messages/inbox/zoe_1234567890/      (2024 on; Instagram's is
        message_1.json  message_2.json                           your_instagram_activity/,
        audio/audioclip17102655020000_1234567890.mp4             older exports' messages/
        photos/ videos/ gifs/ files/                             at the top)
    .../messages/archived_threads/..., message_requests/..., filtered_threads/...

message_N.json:
    {"participants": [{"name": "Zoë"}, ...], "title": "Zoë", "thread_path": "inbox/zoe_...",
     "messages": [{"sender_name": "Zoë", "timestamp_ms": 1710265502000,
                   "content": "...", "audio_files": [{"uri": "...", "creation_timestamp": ...}],
                   "photos": [...], "videos": [...], "gifs": [...], "files": [...],
                   "sticker": {"uri": ...}, "share": {"link": ..., "share_text": ...},
                   "call_duration": 65, "is_unsent": true, "reactions": [...], ...}, ...]}

The messages come newest first, in each file and across them (message_1.json holds the
newest). `timestamp_ms` is UTC. A `uri` is relative to the export's top. Text is UTF-8
whose bytes were written as Latin-1 characters ("Caf\\u00c3\\u00a9" for "Café"), and is given
back as written. Voice notes are `audio_files` (AAC in .mp4 or .m4a).
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import InputError
from .base import UNREADABLE, Chat, Message, holds, local_time, phone_call, read_json

APP = "messenger"
INSTAGRAM = "instagram"

_PAGE = re.compile(r"^message_(\d+)\.json$")
# The folders of messages/ that hold conversations, each in a folder of its own.
_BOXES = ("inbox", "archived_threads", "message_requests", "filtered_threads", "e2ee_cutover")
# Media a message may carry besides voice notes, each a list of {"uri": ...}.
_MEDIA = ("photos", "videos", "gifs", "files")


def recognise(path: Path) -> bool:
    """message_N.json, a conversation's folder, a folder of them (inbox/), or the export
    (messages/ at its top, or under your_*_activity/)."""
    if path.is_file():
        return bool(_PAGE.match(path.name))
    return path.is_dir() and bool(_threads(path, first_only=True))


def parse(path: Path) -> list[Chat]:
    """One Chat per conversation: of the whole export, of one conversation's folder, or
    of the conversation whose message_N.json this is (all of its pages)."""
    root = path.parent if path.is_file() else path
    threads = [root] if path.is_file() else _threads(path)
    if not threads:
        raise InputError(path, "no Messenger or Instagram conversation (message_1.json) in it")
    if len(threads) == 1:
        return [_parse_thread(threads[0], root)]
    return [_parse_or_say_why(thread, root) for thread in threads]


def _parse_or_say_why(thread: Path, root: Path) -> Chat:
    """One conversation of many: a page that cannot be read (not JSON, a link out of the
    export) leaves it empty with the reason, and the others come out."""
    try:
        return _parse_thread(thread, root)
    except InputError as e:
        return Chat(name=thread.name, app=_app(thread), problems=[str(e)])


def _threads(folder: Path, first_only: bool = False) -> list[Path]:
    """The conversation folders at or under `folder`, as Meta lays them out."""
    if (folder / "message_1.json").is_file():
        return [folder]
    found: list[Path] = []
    for box in _boxes(folder):
        for thread in _subfolders(box):
            if (thread / "message_1.json").is_file():
                found.append(thread)
                if first_only:
                    return found
    return found


def _boxes(folder: Path) -> list[Path]:
    """inbox/ and its siblings: of the export's messages/ folder(s), or `folder` itself
    when it is messages/, or is inbox/ (or a sibling) itself."""
    messages = [folder] if folder.name == "messages" else \
        [folder / "messages"] + [sub / "messages" for sub in _subfolders(folder)]
    boxes = [m / box for m in messages for box in _BOXES if (m / box).is_dir()]
    return boxes or ([folder] if folder.name in _BOXES else [])


def _subfolders(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink())
    except OSError:
        return []


def _pages(thread: Path) -> list[Path]:
    try:
        pages = [(int(m.group(1)), p) for p in thread.iterdir()
                 if (m := _PAGE.match(p.name)) and p.is_file()]
    except OSError as e:
        raise InputError(thread, f"cannot be read ({e.strerror or e})") from e
    return [p for _, p in sorted(pages)]


def _parse_thread(thread: Path, root: Path) -> Chat:
    pages = _pages(thread)
    chat = Chat(name=thread.name, app=_app(thread), source=pages[0] if pages else None)
    items: list[tuple[Path, int, object]] = []
    for page in pages:
        data = read_json(page, root)
        if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
            raise InputError(page, 'not a Meta conversation (no list of "messages" in it)')
        if page is pages[0]:
            chat.name = _title(data) or thread.name
        items.extend((page, n, item) for n, item in enumerate(data["messages"], start=1))
    for page, n, item in reversed(items):  # newest first, in each page and across them
        try:
            chat.messages.extend(_messages(item, thread, root))
        except UNREADABLE as e:
            why = f"no {e}" if isinstance(e, KeyError) else str(e)
            chat.problems.append(f"{page}: message {n}: {why}")
    return chat


def _title(data: dict) -> str:
    title = data.get("title")
    if isinstance(title, str) and title:
        return fix_text(title)
    people = data.get("participants")
    names = [p.get("name") for p in people if isinstance(p, dict)] \
        if isinstance(people, list) else []
    return ", ".join(fix_text(n) for n in names if isinstance(n, str))


def _app(thread: Path) -> str:
    """Instagram's export says so in its folder names (your_instagram_activity/, or the
    zip's own "instagram-USER-DATE-..." name); anything else is Messenger's."""
    for part in reversed(thread.absolute().parts):
        part = part.lower()
        if part == "your_instagram_activity" or part.startswith("instagram-"):
            return INSTAGRAM
        if part.startswith(("your_facebook_activity", "your_activity_across_facebook",
                            "facebook-", "messenger")):
            return APP
    return APP


def fix_text(text: str) -> str:
    """Meta's mojibake undone: the UTF-8 bytes it wrote as Latin-1 characters, read as
    UTF-8 again ("CafÃ©" -> "Café"); text that is no such thing stays as it is."""
    try:
        return text.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return text


def _messages(item: dict, thread: Path, root: Path) -> list[Message]:
    time = local_time(int(item["timestamp_ms"]) / 1000)
    sender = fix_text(str(item["sender_name"]))
    content = fix_text(item.get("content") or "")
    if "call_duration" in item:
        return [Message(time, sender, "system", phone_call(int(item["call_duration"] or 0)))]
    if item.get("type") in ("Subscribe", "Unsubscribe"):
        return [Message(time, sender, "system", content)]
    if item.get("is_unsent") and not content:
        content = "(message unsent)"
    share = item.get("share")
    if isinstance(share, dict) and share.get("link") and share["link"] not in content:
        content = f"{content}\n{share['link']}".strip()
    files = [("voice", f) for f in item.get("audio_files") or []]
    files += [("media", f) for key in _MEDIA for f in item.get(key) or []]
    if isinstance(item.get("sticker"), dict):
        files.append(("media", item["sticker"]))
    messages = [Message(time, sender, "text", content)] if content or not files else []
    for kind, file in files:
        path = _file(str(file.get("uri") or ""), thread, root)
        omitted = path is None or not holds(root, path)
        name = Path(str(file.get("uri") or "")).name or kind
        messages.append(Message(time, sender, kind, name, attachment=path, omitted=omitted))
    return messages


def _file(uri: str, thread: Path, root: Path) -> Path | None:
    """Where a `uri` is: relative to the export's top, or, when the conversation's folder
    was given alone, in it ("your_.../inbox/zoe_1/audio/x.mp4" -> zoe_1/audio/x.mp4)."""
    if not uri or "://" in uri:
        return None
    candidates = [root / uri, thread.joinpath(*Path(uri).parts[-2:])]
    return next((c for c in candidates if holds(root, c)), candidates[0])
