"""Output writers: txt, srt, vtt and json, and safe files for them.

Transcript files are written to a temporary name and renamed into place, so
nobody ever sees half of one. An output directory keeps a small manifest of
which audio file each transcript came from, so a transcript of one note never
overwrites the transcript of a different note that happens to share its name.

The manifest entry is written before the file it names: a writer killed in
between finds its own entry on the next try and writes the same name again,
rather than taking `note.ogg.txt` because `note.txt` looks like another note's.
Temporary files carry the writer's pid (`.note.txt.<pid>.<random>.tmp`), so
`sweep_temp_files` can remove those whose writer is dead. The folder itself is
the lock (flock on its descriptor): no lock file is left beside the transcripts.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .store import pid_alive
from .transcript import Transcript

FORMATS = ("txt", "srt", "vtt", "json")
MANIFEST = ".transcribe-outputs.json"
_TEMP = re.compile(r"^\..+\.(\d+)\.[A-Za-z0-9_]+\.tmp$")
# No pid is larger (Linux's PID_MAX_LIMIT, 2**22): a temp-looking name with a larger
# one (`.x.txt.99999999999999999999.abc.tmp`) is nobody's write of ours, and is left.
PID_MAX = 2**22


def render(transcript: Transcript, fmt: str, *, words: bool = False,
           encoding: str = "utf-8") -> str:
    if fmt == "txt":
        return transcript.text + "\n" if transcript.text else ""
    if fmt == "srt":
        return _srt(transcript)
    if fmt == "vtt":
        return _vtt(transcript)
    if fmt == "json":
        data = transcript.to_dict(words=words)
        text = json.dumps(data, ensure_ascii=False)
        if not _encodable(text, encoding):  # a name not UTF-8, or an ASCII terminal: \u-escape
            text = json.dumps(data)
        return text + "\n"
    raise ValueError(f"unknown format {fmt!r}")


def timestamp(seconds: float, separator: str = ",") -> str:
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _srt(transcript: Transcript) -> str:
    blocks = []
    for i, seg in enumerate(transcript.segments, 1):
        blocks.append(f"{i}\n{timestamp(seg.start)} --> {timestamp(seg.end)}\n{seg.text}\n")
    return "\n".join(blocks)


def _vtt(transcript: Transcript) -> str:
    blocks = ["WEBVTT\n"]
    for seg in transcript.segments:
        blocks.append(f"{timestamp(seg.start, '.')} --> {timestamp(seg.end, '.')}\n{seg.text}\n")
    return "\n".join(blocks)


def write_atomic(path: Path, data: str | bytes, *, mode: int | None = None) -> None:
    """Write `data` to `path` so that readers see the old file or the new, never a part.

    The one way every output is written (transcripts, exports, chats, recordings,
    settings). Only a regular file is ever replaced: a device, a FIFO or a
    terminal (`/dev/null`, `/dev/stdout`) is written to in place; a symlink is
    followed, and its target replaced only if that is a regular file (or new).
    A new file's mode follows the umask (0644 under the usual 022), an existing
    file keeps its own; `mode` sets it (0600 for a file holding a secret)."""
    path = Path(path)
    payload = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
    target, in_place = output_target(path)
    if in_place:
        _write_in_place(path, payload)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    old = _regular_stat(target)
    if mode is None:
        mode = old.st_mode & 0o7777 if old else 0o666 & ~current_umask()
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.{os.getpid()}.",
                               suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fchmod(f.fileno(), mode)
            if old is not None and old.st_uid != os.geteuid():  # root writing a user's file
                with contextlib.suppress(OSError):
                    os.fchown(f.fileno(), old.st_uid, old.st_gid)
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@dataclass(frozen=True)
class Output:
    """The files one audio file is owed: its transcript in `formats`, under `folder`."""

    transcript: Transcript
    folder: Path
    formats: list[str]
    source: Path
    words: bool = False


def current_umask() -> int:
    """This process's umask, read without changing it (Linux), else set and restored."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    umask = os.umask(0o22)
    os.umask(umask)
    return umask


def output_target(path: Path) -> tuple[Path, bool]:
    """Where to write `path`, and whether in place: (the path or its symlink's final
    target, False) for a regular or new file; (path, True) for anything else that
    exists (device, FIFO, socket, a descriptor under /proc or /dev/fd). A folder is
    an error, as is a symlink loop."""
    target = path
    for _ in range(40):  # the kernel's own limit on a chain of links
        if not target.is_symlink():
            break
        if _is_descriptor(target):
            return path, True  # /dev/stdout, /proc/self/fd/1: the stream, not the file's name
        link = Path(os.readlink(target))
        if str(link).startswith(("pipe:", "socket:", "anon_inode:")):
            return path, True  # /proc/self/fd/1 of a pipe: only the descriptor reaches it
        target = link if link.is_absolute() else target.parent / link
    else:
        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), str(path))
    try:
        st = os.stat(target)
    except FileNotFoundError:
        return target, False
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    return (target, False) if stat.S_ISREG(st.st_mode) else (path, True)


def _is_descriptor(path: Path) -> bool:
    parts = Path(os.path.normpath(path)).parts
    return (parts[:2] == ("/", "proc") and "fd" in parts) or parts[:3] == ("/", "dev", "fd")


def _regular_stat(path: Path) -> os.stat_result | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st if stat.S_ISREG(st.st_mode) else None


def _write_in_place(path: Path, payload: bytes) -> None:
    """Write into what is there (a device, a FIFO, a stream), never replacing it. A
    regular file reached through a descriptor (`/dev/stdout` redirected to a file) is
    appended to, as the shell's own writes would be."""
    flags = os.O_WRONLY | os.O_NOCTTY
    if stat.S_ISREG(os.stat(path).st_mode):
        flags |= os.O_APPEND
    fd = os.open(path, flags)
    try:
        view = memoryview(payload)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def write_outputs(transcript: Transcript, out_dir: Path, formats: list[str], *,
                  source: Path, relative_dir: Path = Path("."),
                  words: bool = False) -> list[Path]:
    """Write one file per format under `out_dir/relative_dir`; return their paths."""
    [result] = write_many([Output(transcript, out_dir / relative_dir, formats, source, words)])
    if isinstance(result, Exception):
        raise result
    return result


def write_many(outputs: list[Output]) -> list[list[Path] | Exception]:
    """Write many audio files' outputs, each folder's manifest saved once for them all
    (20,000 copies of notes took 16 minutes when it was saved, and fsynced, per file);
    for each output its paths, or the error that kept them from being written."""
    results: list[list[Path] | Exception] = [[] for _ in outputs]
    by_folder: dict[Path, list[int]] = {}
    for i, output in enumerate(outputs):
        by_folder.setdefault(output.folder, []).append(i)
    for folder, indexes in by_folder.items():
        try:
            done = _write_folder(folder, [outputs[i] for i in indexes])
        except Exception as e:  # noqa: BLE001 - the folder's: each of its outputs is owed
            done = [e] * len(indexes)
        for i, result in zip(indexes, done):
            results[i] = result
    return results


def _write_folder(folder: Path, outputs: list[Output]) -> list[list[Path] | Exception]:
    """One folder's outputs: every name decided and the manifest saved first (the
    intent first: see the module's docstring), then the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    planned = []
    with _locked_manifest(folder) as manifest:
        for output in outputs:
            owner = str(Path(output.source).resolve())
            texts = {fmt: render(output.transcript, fmt, words=output.words)
                     for fmt in output.formats}
            names = {fmt: _free_name(folder, output.source, fmt, owner, manifest, texts[fmt])
                     for fmt in output.formats}
            manifest.update((name, owner) for name in names.values())
            planned.append((names, texts))
        manifest.save()
        return [_write_files(folder, names, texts) for names, texts in planned]


def _write_files(folder: Path, names: dict[str, str], texts: dict[str, str]
                 ) -> list[Path] | Exception:
    try:
        for fmt, name in names.items():
            write_atomic(folder / name, texts[fmt])
    except Exception as e:  # noqa: BLE001 - this output's; the folder's others go on
        return e
    return [folder / name for name in names.values()]


def sweep_temp_files(folder: Path) -> list[Path]:
    """Remove the temporary files of writers that died (a kill -9 mid-write) under `folder`."""
    removed = []
    for dirpath, _, filenames in os.walk(folder):
        for name in filenames:
            match = _TEMP.match(name)
            if match and int(match.group(1)) <= PID_MAX and not pid_alive(int(match.group(1))):
                path = Path(dirpath) / name
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed.append(path)
    return removed


def _free_name(target_dir: Path, source: Path, fmt: str, owner: str,
               manifest: dict[str, str], text: str) -> str:
    """`note.txt`, unless that belongs to another note: then `note.ogg.txt`, then hashed."""
    digest = hashlib.sha256(os.fsencode(owner)).hexdigest()[:8]
    return _first_free(target_dir, [f"{source.stem}.{fmt}", f"{source.name}.{fmt}",
                                    f"{source.stem}-{digest}.{fmt}"], owner, manifest, text)


def _first_free(target_dir: Path, names: list[str], owner: str, manifest: dict[str, str],
                text: str) -> str:
    """The first of `names` that is `owner`'s or nobody's; the last one when none is.

    A file the manifest does not know but that holds exactly this text is ours
    (written by a version that kept no entry first) and is taken back."""
    for name in names:
        if manifest.get(name) == owner:
            return name
        if name not in manifest and (not (target_dir / name).exists()
                                     or _holds(target_dir / name, text)):
            return name
    return names[-1]


def write_named(target_dir: Path, names: list[str], owner: str, text: str) -> Path:
    """Write `text` under the first of `names` that is not another owner's (the folder's
    manifest says whose each file is), and return its path: a chat's conversation never
    replaces another export's. The last name must be `owner`'s own (hashed from it)."""
    target_dir.mkdir(parents=True, exist_ok=True)
    with _locked_manifest(target_dir) as manifest:
        name = _first_free(target_dir, names, owner, manifest, text)
        manifest[name] = owner
        manifest.save()  # the intent first: see the module's docstring
        write_atomic(target_dir / name, text)
    return target_dir / name


def _holds(path: Path, text: str) -> bool:
    if _regular_stat(path) is None:  # a device or a FIFO is nobody's transcript (and may block)
        return False
    try:
        return path.read_bytes() == text.encode("utf-8", "surrogateescape")
    except (OSError, UnicodeEncodeError):
        return False


class _Manifest(dict):
    """Output name -> the audio file it is the transcript of. A manifest that is not
    such a table (damaged, or `123`) is taken as empty: names are then decided by what
    the files hold (`_free_name`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            data = json.loads(path.read_text()) if path.exists() else {}
        except (OSError, ValueError, RecursionError):
            data = {}
        if not isinstance(data, dict):
            data = {}
        super().__init__((k, v) for k, v in data.items() if isinstance(v, str))
        self._saved = dict(self)

    def save(self) -> None:
        if self != self._saved:
            write_atomic(self.path, json.dumps(self, indent=1, sort_keys=True))
            self._saved = dict(self)


@contextlib.contextmanager
def _locked_manifest(target_dir: Path) -> Iterator[_Manifest]:
    fd = os.open(target_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with contextlib.suppress(OSError):  # the lock file older versions left behind
            (target_dir / f"{MANIFEST}.lock").unlink()
        manifest = _Manifest(target_dir / MANIFEST)
        yield manifest
        manifest.save()
    finally:
        os.close(fd)


def _encodable(text: str, encoding: str = "utf-8") -> bool:
    try:
        text.encode(encoding)
    except UnicodeEncodeError:
        return False
    return True
