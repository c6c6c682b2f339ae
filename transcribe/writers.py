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
import fcntl
import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Iterator

from .store import pid_alive
from .transcript import Transcript

FORMATS = ("txt", "srt", "vtt", "json")
MANIFEST = ".transcribe-outputs.json"
_TEMP = re.compile(r"^\..+\.(\d+)\.[A-Za-z0-9_]+\.tmp$")


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


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` so that readers see the old file or the new, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.",
                               suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_outputs(transcript: Transcript, out_dir: Path, formats: list[str], *,
                  source: Path, relative_dir: Path = Path("."),
                  words: bool = False) -> list[Path]:
    """Write one file per format under `out_dir/relative_dir`; return their paths."""
    target_dir = out_dir / relative_dir
    target_dir.mkdir(parents=True, exist_ok=True)
    owner = str(Path(source).resolve())
    texts = {fmt: render(transcript, fmt, words=words) for fmt in formats}
    with _locked_manifest(target_dir) as manifest:
        names = {fmt: _free_name(target_dir, source, fmt, owner, manifest, texts[fmt])
                 for fmt in formats}
        manifest.update((name, owner) for name in names.values())
        manifest.save()  # the intent first: see the module's docstring
        for fmt, name in names.items():
            write_atomic(target_dir / name, texts[fmt])
    return [target_dir / name for name in names.values()]


def sweep_temp_files(folder: Path) -> list[Path]:
    """Remove the temporary files of writers that died (a kill -9 mid-write) under `folder`."""
    removed = []
    for dirpath, _, filenames in os.walk(folder):
        for name in filenames:
            match = _TEMP.match(name)
            if match and not pid_alive(int(match.group(1))):
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
    try:
        return path.read_bytes() == text.encode("utf-8", "surrogateescape")
    except (OSError, UnicodeEncodeError):
        return False


class _Manifest(dict):
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            super().__init__(json.loads(path.read_text()) if path.exists() else {})
        except (OSError, ValueError):
            super().__init__()
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
