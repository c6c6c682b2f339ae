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

import logging
import shutil
import tempfile
import zipfile
import zlib
from pathlib import Path
from types import ModuleType

from ..errors import InputError
from . import discord, imessage, meta, signal, telegram, whatsapp
from .base import VOICE_EXT, Chat, Message, holds

__all__ = ["APPS", "VOICE_EXT", "Chat", "Message", "holds", "is_export", "load"]

log = logging.getLogger(__name__)

APPS: list[ModuleType] = [signal, meta, discord, imessage, telegram, whatsapp]

# How deep under the folder given an export's own folder is looked for (a zip of
# "ChatExport_2024-03-12/result.json" puts it one level down).
_DEPTH = 3


def load(export: Path, workdir: Path | None = None) -> list[Chat]:
    """Every conversation of an export: a zip, a folder or one chat text, of any app in
    `APPS`. A zip is unpacked into `workdir` (a new temporary folder when None)."""
    export = Path(export)
    if not export.exists():
        raise InputError(export, "no such file or folder")
    if not export.is_dir() and not export.is_file():  # /dev/zero, a pipe: read forever
        raise InputError(export, "not a regular file or folder")
    if export.suffix.lower() == ".zip":
        return _load_zip(export, Path(workdir or tempfile.mkdtemp(prefix="transcribe-chat-")))
    found = _find(export)
    if found is None:
        raise InputError(export, _NOT_AN_EXPORT)
    app, path = found
    chats = app.parse(path)
    log.debug("%s: %s export, %d chat(s)", export, app.APP, len(chats))
    return chats


_NOT_AN_EXPORT = ("no chat text (_chat.txt, WhatsApp Chat*.txt, result.json or "
                  "messages.html)")


def _find(path: Path) -> tuple[ModuleType, Path] | None:
    """The app that reads `path`, or a folder under it (breadth first, not too deep)."""
    level = [path]
    for _ in range(_DEPTH + 1):
        for candidate in level:
            for app in APPS:
                if app.recognise(candidate):
                    return app, candidate
        level = [sub for folder in level if folder.is_dir() and not folder.is_symlink()
                 for sub in _subfolders(folder)]
    return None


def _subfolders(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink())
    except OSError:
        return []


def _load_zip(export: Path, target: Path) -> list[Chat]:
    _unzip(export, target)
    try:
        chats = load(target)
    except InputError as e:  # name the zip, not the folder it was unpacked into
        raise InputError(_in_zip(e.path, target, export), e.reason) from None
    for chat in chats:
        chat.problems = [_in_zip(p, target, export) for p in chat.problems]
        if chat.name == target.name:  # named after the temporary folder: use the zip's
            chat.name = export.stem
    return chats


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
    return any(n.lower().endswith(_TEXT_EXT) for n in names)


# What a chat's text is saved as, by every app: a zip holding one is an export (the apps'
# modules say which when it is unpacked); a zip of voice notes alone is not.
_TEXT_EXT = (".txt", ".json", ".html", ".htm", ".md")
