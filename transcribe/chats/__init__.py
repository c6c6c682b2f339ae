"""Chat exports: which app wrote one, and its conversations as `Chat`s.

One module per app, each of the same shape (see `base` for the types they share):

    APP = "whatsapp"                             the app's key, kept with each chat
    def recognise(path: Path) -> bool            a file or (unpacked) folder it reads
    def parse(path: Path) -> list[Chat]          one Chat per conversation in it

`load` unpacks a zip, then asks each module of `APPS` in turn whether it reads the
export (the more particular before the more general: the first that says yes parses
it). A new app is one new module and one line in `APPS`; no app module imports
another. Nothing here transcribes or prints; `chat_render` puts the transcripts in.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import shutil
import tempfile
import zipfile
import zlib
from pathlib import Path
from types import ModuleType

from ..errors import InputError
from . import discord, imessage, meta, signal, telegram, whatsapp
from .base import TEXT_EXT, VOICE_EXT, Chat, Message, holds

__all__ = ["APPS", "VOICE_EXT", "Chat", "Message", "holds", "is_export", "load"]

log = logging.getLogger(__name__)

APPS: list[ModuleType] = [signal, meta, discord, imessage, telegram, whatsapp]

# How deep under the folder given an export's own folder is looked for (a zip of
# "ChatExport_2024-03-12/result.json" puts it one level down).
_DEPTH = 3
# Folders looked at on one level at most: a home folder given by mistake is not walked.
_FOLDERS = 2000


def load(export: Path, workdir: Path | None = None) -> list[Chat]:
    """Every conversation of an export: a zip, a folder or one chat text, of any app in
    `APPS`. A zip is unpacked into a folder of `workdir` named by the zip's SHA-256 (a
    new temporary folder when None); the same zip again finds it there.

    An export from which no message could be read is an `InputError` saying why: never
    an empty conversation. A chat of several with no message is returned as it is."""
    export = Path(export)
    if not export.exists():
        raise InputError(export, "no such file or folder")
    if not export.is_dir() and not export.is_file():  # /dev/zero, a pipe: read forever
        raise InputError(export, "not a regular file or folder")
    if export.suffix.lower() == ".zip":
        chats = _load_zip(export, Path(workdir or tempfile.mkdtemp(prefix="transcribe-chat-")))
    else:
        chats = _load_found(export)
    _some_message(chats, export)
    return chats


def _load_found(export: Path) -> list[Chat]:
    found = _find(export)
    if found is None:
        raise InputError(export, _NOT_AN_EXPORT)
    app, path = found
    chats = app.parse(path)
    log.debug("%s: %s export, %d chat(s)", export, app.APP, len(chats))
    return chats


def _some_message(chats: list[Chat], export: Path) -> None:
    if any(chat.messages for chat in chats):
        return
    problems = [p for chat in chats for p in chat.problems]
    if not problems:
        raise InputError(export, "no message in it")
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    raise InputError(export, f"no message could be read: {problems[0]}{more}")


_NOT_AN_EXPORT = ("no chat export in it: none of WhatsApp's _chat.txt, Telegram's result.json "
                  "or messages.html, Signal's chat.md (signal-export), Instagram's or "
                  "Messenger's message_1.json, a DiscordChatExporter .json, an "
                  "imessage-exporter .txt or .html")


def _find(path: Path) -> tuple[ModuleType, Path] | None:
    """The app that reads `path`, or a folder under it (breadth first, not too deep). A
    folder holding several exports is an `InputError` listing them: which one is meant
    is the user's to say."""
    level = [path]
    for _ in range(_DEPTH + 1):
        hits = [(app, candidate) for candidate in level
                if (app := next((a for a in APPS if a.recognise(candidate)), None))]
        if len(hits) > 1:
            names = ", ".join(str(p.relative_to(path)) for _, p in hits[:10])
            more = " ..." if len(hits) > 10 else ""
            raise InputError(path, f"holds {len(hits)} chat exports ({names}{more}); give "
                                   "one of them")
        if hits:
            return hits[0]
        level = [sub for folder in level if folder.is_dir() and not folder.is_symlink()
                 for sub in _subfolders(folder)][:_FOLDERS]
    return None


def _subfolders(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink())
    except OSError:
        return []


def _load_zip(export: Path, workdir: Path) -> list[Chat]:
    target, skipped = _unzip(export, workdir)
    try:
        chats = _load_found(target)
    except InputError as e:  # name the zip, not the folder it was unpacked into
        why = f"{e.reason} ({skipped[0]})" if skipped else e.reason
        raise InputError(_in_zip(e.path, target, export),
                         _in_zip(why, target, export)) from None
    if chats:
        chats[0].problems[:0] = skipped
    for chat in chats:
        chat.problems = [_in_zip(p, target, export) for p in chat.problems]
        if chat.name == target.name:  # named after the folder it was unpacked into
            chat.name = export.stem
    return chats


# What the apps' modules read from an export: its chat texts and its voice notes. Only
# these members of a zip are unpacked; every other one (photos, videos, stickers) is an
# empty file of its name, so that the chat can say it is there.
READ_EXT = (*TEXT_EXT, *VOICE_EXT)
# A member that unpacks to over this ratio of its packed size, and to over _RATIO_FLOOR,
# is a zip bomb's: voice notes are compressed audio (about 1:1), and chat texts packed
# 4-9:1 (WhatsApp's and Telegram's of the sample exports); zeros pack 1000:1.
_RATIO = 100
_RATIO_FLOOR = 1 << 20
# More members than any export holds (a year's chat with 5,000 voice notes and photos):
# a zip of a million empty members would fill the folder with names.
_MEMBERS = 200_000


def _unzip(export: Path, workdir: Path) -> tuple[Path, list[str]]:
    """Unpack the members of a zip that are read into a fresh folder of `workdir` named by
    the zip's SHA-256, and return it with a line for each member left out; the folder of
    an earlier unpacking of the same zip is used again as it is.

    zipfile drops "../" and a leading "/" from the names, so nothing lands outside the
    folder; it is unpacked beside it and renamed into place, so a folder of that name is
    whole. A damaged zip, or one that would not fit on the disk, is an `InputError`
    before anything is written."""
    target = workdir / _sha256(export)[:16]
    if target.is_dir():
        return target, []
    workdir.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=workdir))
    try:
        skipped = _unpack(export, partial, workdir.parent)
        try:
            partial.rename(target)
        except OSError:  # unpacked meanwhile by another import of the same zip
            if not target.is_dir():
                raise
            shutil.rmtree(partial, ignore_errors=True)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as e:
        shutil.rmtree(partial, ignore_errors=True)
        raise InputError(export, f"not a readable zip ({e})") from e
    except OSError as e:
        shutil.rmtree(partial, ignore_errors=True)
        raise InputError(export, f"cannot be unpacked into {workdir} ({e.strerror or e})"
                         ) from e
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return target, skipped


def _unpack(export: Path, folder: Path, where: Path) -> list[str]:
    skipped: list[str] = []
    with zipfile.ZipFile(export) as z:
        infos = z.infolist()
        if len(infos) > _MEMBERS:
            raise InputError(export, f"{len(infos)} members: more than any chat export holds")
        chosen = _chosen(export, infos, skipped)
        needed = sum(info.file_size for info in chosen if _read(info))
        free = shutil.disk_usage(folder).free
        if needed > free:
            raise InputError(export, f"needs {needed / 2**20:.1f} MB unpacked, and only "
                                     f"{free / 2**20:.1f} MB is free in {where}")
        for info in chosen:
            if not _read(info):
                _placeholder(folder, info.filename)
                continue
            try:
                z.extract(info, folder)
            except OSError as e:  # a name this disk cannot hold: that member's problem
                if e.errno not in _BAD_NAME:
                    raise
                skipped.append(f"{export}/{info.filename}: not unpacked ({e.strerror})")
    return skipped


# What a member's name alone makes a write fail with: too long, not valid here, a file
# where its folder should be.
_BAD_NAME = {errno.ENAMETOOLONG, errno.EILSEQ, errno.EINVAL, errno.ENOTDIR, errno.EISDIR,
             errno.EEXIST}


def _chosen(export: Path, infos: list[zipfile.ZipInfo], skipped: list[str]
            ) -> list[zipfile.ZipInfo]:
    """The members to unpack: the first of each name (a second one of the same name would
    replace it), and no bomb."""
    seen: set[str] = set()
    chosen = []
    for info in infos:
        info = _utf8_name(info)
        if info.is_dir():
            continue
        if info.filename in seen:
            skipped.append(f"{export}/{info.filename}: a second member of this name, left "
                           "out (the first is read)")
            continue
        seen.add(info.filename)
        if info.filename.lower().endswith(".zip"):
            skipped.append(f"{export}/{info.filename}: a zip inside the zip, not opened "
                           "(unpack it, and give its own export)")
        if _read(info) and info.file_size > max(_RATIO_FLOOR,
                                                 _RATIO * max(info.compress_size, 1)):
            skipped.append(f"{export}/{info.filename}: left out: it would unpack to "
                           f"{info.file_size / 2**20:.0f} MB from "
                           f"{info.compress_size / 2**10:.0f} kB (a zip bomb)")
            continue
        chosen.append(info)
    return chosen


def _read(info: zipfile.ZipInfo) -> bool:
    return info.filename.lower().endswith(READ_EXT)


def _placeholder(folder: Path, name: str) -> None:
    """An empty file for a member not unpacked, where zipfile would have put it."""
    parts = [p for p in Path(name.replace("\\", "/")).parts if p not in ("", ".", "..", "/")]
    if not parts:
        return
    path = folder.joinpath(*parts)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(exist_ok=True)
    except OSError as e:
        log.debug("%s: no placeholder (%s)", path, e)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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


def is_export(path: Path) -> bool:
    """Whether `path` looks like a chat export (a zip or a folder an app reads) rather than
    voice notes: what the TUI's "add" imports as a chat. A folder with some other .txt in
    it is not one, nor is a folder with an export somewhere inside it (~/Downloads): its
    chat text must be at its top, where the apps put it."""
    path = Path(path)
    if path.is_dir():
        return any(app.recognise(path) for app in APPS)
    if path.suffix.lower() != ".zip" or not path.is_file():
        return False
    try:
        with zipfile.ZipFile(path) as z:
            names = [Path(n).name for n in z.namelist()]
    except (zipfile.BadZipFile, OSError):
        return False
    return any(n.lower().endswith(TEXT_EXT) for n in names)
