"""What changed in the watched folders, told by the OS (inotify, FSEvents,
ReadDirectoryChangesW through `watchfiles`) rather than found by walking the tree.

Notifications do not arrive from network and FUSE mounts (a change made on another
machine is not the kernel's to tell), so folders on those are named by
`needs_polling` and the watcher walks them instead.
"""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path

log = logging.getLogger(__name__)

# File systems whose changes the local kernel may never hear of: network file systems
# (a change made on another machine is not the kernel's to tell), FUSE (bindfs over
# a folder does not hear what is written to that folder beneath it), and WSL's views of
# Windows drives (drvfs, and 9p in WSL 2).
NETWORK_FS = {"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "sshfs", "afs", "ceph", "glusterfs",
              "davfs", "fuse", "fuseblk", "virtiofs", "vboxsf", "ncpfs", "drvfs", "lustre",
              "gpfs", "beegfs", "orangefs"}
MOUNTINFO = Path("/proc/self/mountinfo")
# watchfiles wakes every STEP_MS to look for changes and for the stop event, with the GIL.
# Idle over 100 folders (2 busy cores): 0.16 CPU s a minute at 20 ms, 0.03 s at 100 ms;
# a change is told within about two steps, far inside a note's settle time.
STEP_MS = 100
DEBOUNCE_MS = 100


def mount_type(path: Path, mountinfo: Path = MOUNTINFO) -> str | None:
    """The file system type of the mount that holds `path` (`fuse.sshfs` for a FUSE file
    system with a subtype); None where /proc/self/mountinfo is not (not Linux)."""
    try:
        lines = mountinfo.read_text(errors="surrogateescape").splitlines()
    except OSError:
        return None
    path = Path(path).resolve()
    best, kind = -1, None
    for line in lines:
        # "36 35 98:0 /root /mnt/point rw,noatime master:1 - ext3 /dev/root rw" (proc(5)):
        # the mount point is the fifth field, the type the first after the lone "-".
        fields = line.split(" ")
        if "-" not in fields[6:-1]:
            continue
        dash = fields.index("-", 6)
        point = Path(_unescape(fields[4]))
        if (path == point or point in path.parents) and len(point.parts) > best:
            best, kind = len(point.parts), fields[dash + 1]
    return kind


def _unescape(field: str) -> str:
    """The kernel writes a space, tab, newline or backslash in a path as octal (\\040)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), field)


def needs_polling(path: Path, mountinfo: Path = MOUNTINFO) -> bool:
    """Whether `path` is on a mount whose changes notifications may not tell of."""
    kind = mount_type(path, mountinfo) or ""
    return kind in NETWORK_FS or kind.startswith("fuse.")


class Changes:
    """The paths the OS says changed under `dirs`, gathered by a thread until `take()`.

    The watches are in place when the constructor returns, so nothing that happens after
    it is missed (short of an overflowed queue: the watcher's rescan is for that).
    """

    def __init__(self, dirs: list[Path], recursive: bool = True) -> None:
        # RustNotify rather than watchfiles.watch(): its constructor registers the watches
        # before returning, where watch() would do it later, in our thread.
        from watchfiles._rust_notify import RustNotify

        self._notify = RustNotify([str(d) for d in dirs], False, False, 300, recursive, True)
        self._paths: set[Path] = set()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self.failed: str | None = None
        self._thread = threading.Thread(target=self._run, name="notifications", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                raw = self._notify.watch(DEBOUNCE_MS, STEP_MS, 60_000, self._stop)
                if raw == "stop":
                    return
                if isinstance(raw, set) and raw:
                    with self._cond:
                        self._paths.update(Path(p) for _, p in raw)
                        self._cond.notify_all()
        except Exception as e:  # noqa: BLE001 - the watcher polls instead; it says so
            with self._cond:
                self.failed = f"{type(e).__name__}: {e}"
                self._cond.notify_all()

    def wait(self, timeout: float) -> None:
        """Return when something changed, or after `timeout` seconds."""
        with self._cond:
            if not self._paths and self.failed is None:
                self._cond.wait(max(timeout, 0.0))

    def take(self) -> set[Path]:
        with self._cond:
            paths, self._paths = self._paths, set()
        return paths

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._notify.close()
