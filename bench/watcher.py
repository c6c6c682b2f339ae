"""`python -m bench --watcher`: what `transcribe watch` costs while nothing happens, and
how soon it starts on a note.

- CPU seconds per idle minute of a real watcher process over a tree of 100,000 files
  (1 % of them voice notes, already transcribed), read from /proc/PID/stat before and
  after an idle stretch: listening for notifications, and polling (`--no-notify`, one
  walk a second) as the baseline. Target: below 0.3 s a minute (0.5 % of a core).
- What one rescan of that tree costs (a walk every `--rescan` seconds, default 300),
  measured in this process on the same tree and store.
- The time from a note's last write to its transcript starting (the store's `started`),
  settle time excluded, for notes dropped one at a time into the watched tree. Target:
  under 1 s.

The numbers go to stdout and bench/results/watcher-<time>.json.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_audio"
SPEECH = ["PTT-20240312-WA0007.opus", "audio_2024-03-12_18-45-02.ogg", "New Recording 12.m4a",
          "AUD-20240311-WA0003.mp3", "recording-de.webm", "voicemail-8k.wav"]
SETTLE_S = 2.0  # the watcher's default
TICKS = os.sysconf("SC_CLK_TCK")


def main(quick: bool = False) -> dict:
    files, idle_s = (10_000, 20.0) if quick else (100_000, 60.0)
    work = Path(tempfile.mkdtemp(prefix="transcribe-bench-watcher-"))
    home = work / "home"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ["TRANSCRIBE_HOME"] = str(home)
    try:
        tree, count = build_tree(work / "tree", files)
        print(f"watcher over {count['files']:,} files in {count['folders']:,} folders "
              f"({count['notes']:,} voice notes); idle stretches of {idle_s:.0f} s")
        results = {"time": datetime.now().isoformat(timespec="seconds"),
                   "cpu_count": os.cpu_count(), "load_avg": os.getloadavg()[0],
                   **count, "idle_s": idle_s}
        with Watch(tree, work, [], count["notes"]) as watch:
            results["notify_cpu_s_per_min"] = watch.idle_cpu_per_minute(idle_s)
            results["latency_s"] = watch.latencies(tree / "d000" / "e0")
        with Watch(tree, work, ["--no-notify"], count["notes"]) as watch:
            results["poll_cpu_s_per_min"] = watch.idle_cpu_per_minute(idle_s)
        results["rescan_cpu_s"] = rescan_cpu(tree, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(results)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"watcher-{datetime.now():%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps(results, indent=1))
    print(f"\nresults: {path}")
    return results


def build_tree(root: Path, files: int) -> tuple[Path, dict]:
    """`files` files in folders of 100 under 10 top folders, like a synced phone or a
    downloads folder: photos and documents, and every 100th a copy of a short voice note."""
    note = (SAMPLES / "silence.opus").read_bytes()
    folders = 0
    made = notes = 0
    for top in range(10):
        for sub in range(max(1, files // 1000)):
            folder = root / f"d{top:03d}" / f"e{sub}"
            folder.mkdir(parents=True)
            folders += 1
            for i in range(100):
                if made == files:
                    break
                if made % 100 == 0:
                    (folder / f"PTT-2024{made:07d}-WA0001.opus").write_bytes(note)
                    notes += 1
                else:
                    (folder / f"IMG_{made:07d}.{'jpg' if i % 3 else 'pdf'}").touch()
                made += 1
    return root, {"files": made, "folders": folders, "notes": notes}


class Watch:
    """A real `transcribe watch` over the tree, run until its start-up work is done."""

    def __init__(self, tree: Path, work: Path, flags: list[str], notes: int) -> None:
        self.tree, self.work, self.flags, self.notes = tree, work, flags, notes
        self.log = work / f"watch{'-'.join(flags)}.log"

    def __enter__(self) -> Watch:
        with self.log.open("w") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "transcribe", "watch", str(self.tree), "-o",
                 str(self.work / "out"), *self.flags], stderr=stderr, cwd=ROOT)
        self._settled()
        return self

    def __exit__(self, *exc) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def cpu_s(self) -> float:
        """User and system CPU seconds of the watcher process so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime: fields 14, 15

    def _settled(self, timeout: float = 900) -> None:
        """Wait until every voice note in the tree is known to the store and the process's
        CPU use over one 5 s stretch is that of the next (start-up walks, hashing, the
        first transcript and its copies' files are over)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._known() < self.notes:
            self._alive()
            time.sleep(1)
        previous = None
        while time.monotonic() < deadline:
            before = self.cpu_s()
            time.sleep(5)
            used = self.cpu_s() - before
            if previous is not None and abs(used - previous) <= 0.05 + 0.1 * max(used, previous):
                return
            previous = used
            self._alive()

    def _known(self) -> int:
        try:
            with sqlite3.connect(Path(os.environ["TRANSCRIBE_HOME"]) / "data" / "transcribe.db",
                                 timeout=30) as db:
                return db.execute("SELECT COUNT(*) FROM paths").fetchone()[0]
        except sqlite3.OperationalError:  # not made yet
            return 0

    def _alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"the watcher exited: {self.log.read_text()[-2000:]}")

    def idle_cpu_per_minute(self, idle_s: float) -> float:
        before = self.cpu_s()
        time.sleep(idle_s)
        self._alive()
        return round((self.cpu_s() - before) * 60 / idle_s, 3)

    def latencies(self, folder: Path) -> list[float]:
        """Seconds from each note's last write to its transcript starting, settle excluded:
        one note at a time, each waited for, so none waits for another."""
        found = []
        for name in SPEECH[:5]:
            target = folder / f"late-{name}"
            shutil.copy(SAMPLES / name, target)
            written = target.stat().st_mtime
            started = self._started(str(target))
            found.append(round(started - written - SETTLE_S, 3))
        return found

    def _started(self, path: str, timeout: float = 600) -> float:
        """When the watcher started transcribing `path` (the store's `started`, which it
        clears at the end: so asked every 20 ms while the note runs), once it is done."""
        deadline = time.monotonic() + timeout
        started = None
        with sqlite3.connect(Path(os.environ["TRANSCRIBE_HOME"]) / "data" / "transcribe.db",
                             timeout=30) as db:
            while time.monotonic() < deadline:
                row = db.execute("SELECT started, state FROM jobs WHERE path=?",
                                 (path,)).fetchone()
                if row and row[0] is not None:
                    started = row[0]
                if row and row[1] in ("done", "failed"):
                    if started is None:
                        raise RuntimeError(f"{path}: done before its start was seen")
                    return started
                self._alive()
                time.sleep(0.02)
        raise RuntimeError(f"{path} was not transcribed: {self.log.read_text()[-2000:]}")


def rescan_cpu(tree: Path, work: Path) -> float:
    """CPU seconds of one walk of the tree once every note is known and settled: what the
    watcher spends every `--rescan` seconds."""
    from transcribe.settings import Settings
    from transcribe.watcher import Watcher, WatchOptions

    watcher = Watcher(Settings.load(), WatchOptions(dirs=[tree], output_dir=work / "out",
                                                    settle_s=0.0))
    try:
        watcher.scan()  # seen
        watcher.scan()  # settled: each note's path and size known to the store
        started = time.process_time()
        watcher.scan()
        return round(time.process_time() - started, 3)
    finally:
        watcher.close()


def report(r: dict) -> None:
    latency = statistics.median(r["latency_s"])
    per_min = r["rescan_cpu_s"] * 60 / 300
    ratio = r["poll_cpu_s_per_min"] / max(r["notify_cpu_s_per_min"], 1e-3)
    print(f"\nidle CPU per minute: {r['notify_cpu_s_per_min']:.3f} s listening for "
          f"notifications (target < 0.3 s), {r['poll_cpu_s_per_min']:.3f} s polling every "
          f"second (--no-notify): {ratio:.0f}x"
          f"\none rescan of {r['files']:,} files: {r['rescan_cpu_s']:.3f} CPU s, every 300 s: "
          f"{per_min:.3f} s a minute more"
          f"\nlast write to transcript start, settle ({SETTLE_S:g} s) excluded: median "
          f"{latency:.2f} s (target < 1 s), each {r['latency_s']}"
          f"\n(load average {r['load_avg']:.1f} on {r['cpu_count']} cores at the start)")


if __name__ == "__main__":
    main("--quick" in sys.argv)
