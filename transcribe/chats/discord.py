"""Discord channels and DMs as DiscordChatExporter (Tyrrrz/DiscordChatExporter) saves them
in JSON (`--format Json`; JsonMessageWriter.cs).

One file per channel, "GUILD - CHANNEL [ID].json" ("Direct Messages - Sam [ID].json"):

    {"guild": {"id", "name", "iconUrl"}, "channel": {"id", "type", "name", "topic", ...},
     "dateRange": {...}, "exportedAt": "...",
     "messages": [{"id", "type": "Default" | "Reply" | "Call" | "RecipientAdd" | ...,
                   "timestamp": "2024-03-12T18:45:02.123+01:00", "timestampEdited",
                   "callEndedTimestamp", "content": "...",
                   "author": {"id", "name", "nickname", ...},
                   "attachments": [{"id", "url", "fileName", "fileSizeBytes"}], ...}, ...],
     "messageCount": 6}

Times carry the exporting computer's offset (or +00:00 with --utc): they are shown as local
time here. With `--media` each attachment is downloaded beside the JSON, into
"NAME.json_Files/" ("voice-message-3f9a6c1d2b7e4a50.ogg"), and its `url` is that path
relative to the JSON; without it `url` is Discord's CDN address: the file is not in the
export. Discord's voice messages are "voice-message.ogg" (Ogg/Opus); the JSON keeps no
flags, so an audio attachment is taken for a voice note.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

from ..errors import InputError
from .base import (UNREADABLE, Chat, Message, attachment, has_voice_ext, head, phone_call,
                   read_json)

APP = "discord"

# DiscordChatExporter's JSON opens with its "guild" and "channel" objects.
_HEAD = re.compile(r'^\s*\{\s*"guild"\s*:')
_SYSTEM = {"RecipientAdd", "RecipientRemove", "ChannelNameChange", "ChannelIconChange",
           "ChannelPinnedMessage", "GuildMemberJoin", "ThreadCreated"}
_DMS = "Direct Messages"
_PART = re.compile(r"^(.*) \[part (\d+)\]\.json$", re.IGNORECASE)


def recognise(path: Path) -> bool:
    """A DiscordChatExporter .json, or a folder with one at its top."""
    if path.is_file():
        return _is_export_json(path)
    return path.is_dir() and bool(_exports(path, first_only=True))


def parse(path: Path) -> list[Chat]:
    """The channel of a .json, or every channel exported into a folder (a channel split by
    --partition into "NAME [part 1].json", "NAME [part 2].json", ... is one chat)."""
    files = [path] if path.is_file() else _exports(path)
    if not files:
        raise InputError(path, "no DiscordChatExporter JSON in it")
    chats: dict[str, Chat] = {}
    for f in sorted(files, key=_part_order):
        try:
            key, chat = _parse_json(f)
        except InputError as e:  # that channel alone: the others come out
            key, chat = str(f), Chat(name=f.stem, app=APP, problems=[str(e)])
        if key in chats:
            chats[key].messages.extend(chat.messages)
            chats[key].problems.extend(chat.problems)
        else:
            chats[key] = chat
    return list(chats.values())


def _part_order(path: Path) -> tuple[str, int]:
    part = _PART.match(path.name)
    return (part.group(1), int(part.group(2))) if part else (path.stem, 0)


def _exports(folder: Path, first_only: bool = False) -> list[Path]:
    found: list[Path] = []
    try:
        candidates = sorted(folder.glob("*.json"))
    except OSError:
        return []
    for p in candidates:
        if _is_export_json(p):
            found.append(p)
            if first_only:
                break
    return found


def _is_export_json(path: Path) -> bool:
    return path.suffix.lower() == ".json" and bool(_HEAD.match(head(path, 256)))


def _parse_json(path: Path) -> tuple[str, Chat]:
    """The channel's id (its parts share it) and its chat."""
    data = read_json(path, path.parent)
    if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
        raise InputError(path, 'not a DiscordChatExporter export (no list of "messages")')
    chat = Chat(name=_name(data, path), app=APP, source=path)
    for n, item in enumerate(data["messages"], start=1):
        try:
            chat.messages.extend(_messages(item, path.parent))
        except UNREADABLE as e:
            why = f"no {e}" if isinstance(e, KeyError) else str(e)
            chat.problems.append(f"{path}: message {n}: {why}")
    return _field(data, "channel", "id") or str(path), chat


def _name(data: dict, path: Path) -> str:
    """A DM's name is the other person's (the channel's); a server channel's is
    "Server #channel"."""
    guild, channel = (_field(data, key, "name") for key in ("guild", "channel"))
    if not channel:
        return path.stem
    return channel if guild in ("", _DMS) else f"{guild} #{channel}"


def _field(data: dict, key: str, name: str) -> str:
    """data[key][name] as text, "" when the export has no such thing."""
    value = data.get(key)
    return str(value.get(name) or "") if isinstance(value, dict) else ""


def _time(text: str) -> datetime:
    """An ISO time with its offset, as the local time (naive, like every chat time)."""
    time = datetime.fromisoformat(text)
    if time.tzinfo is not None:
        time = time.astimezone().replace(tzinfo=None)
    return time.replace(microsecond=0)


def _messages(item: dict, folder: Path) -> list[Message]:
    time = _time(item["timestamp"])
    author = item.get("author") or {}
    sender = author.get("nickname") or author.get("name") or None
    content = item.get("content") or ""
    kind = item.get("type") or "Default"
    if kind == "Call":
        ended = item.get("callEndedTimestamp")
        seconds = int((_time(ended) - time).total_seconds()) if ended else 0
        return [Message(time, sender, "system", phone_call(max(seconds, 0)))]
    if kind in _SYSTEM:
        return [Message(time, sender, "system", content)]
    files = item.get("attachments") or []
    stickers = item.get("stickers") or []
    messages = [Message(time, sender, "text", content)] \
        if content or not (files or stickers) else []
    for file in files:
        name = str(file.get("fileName") or "")
        path, omitted = _attachment(str(file.get("url") or ""), folder)
        kind = "voice" if _is_voice(name) else "media"
        messages.append(Message(time, sender, kind, name, attachment=path, omitted=omitted))
    for sticker in stickers:  # {"name", "sourceUrl"}: downloaded with --media
        path, omitted = _attachment(str(sticker.get("sourceUrl") or ""), folder)
        label = f"sticker {sticker.get('name') or ''}".strip()
        messages.append(Message(time, sender, "media", label, attachment=path,
                                omitted=omitted))
    return messages


def _attachment(url: str, folder: Path) -> tuple[Path | None, bool]:
    """A downloaded attachment's path (relative to the JSON, "\\" on Windows); a URL is
    a file Discord keeps, not the export."""
    if not url or "://" in url:
        return None, True
    return attachment(folder, url.replace("\\", "/"))


def _is_voice(name: str) -> bool:
    """Audio attachments: Discord's voice messages ("voice-message.ogg") and audio files;
    an .mp4 or .webm is a video."""
    return has_voice_ext(name) and not name.lower().endswith((".mp4", ".webm"))
