"""Memory and speed on long notes: does a three-hour note cost what a minute costs?

    python -m bench --memory               # notes of 1, 10, 60 and 180 minutes
    python -m bench --memory --minutes 1,10

Each note is real speech laid end to end with pauses (`tests/longnote.py`:
the dev set's FLEURS clips and jfk where `../shared/devset` is, the sample
notes otherwise), written as 16 kbit/s Ogg/Opus, and transcribed by
`transcribe --no-store -q NOTE` in a child process of its own. Reported per
note: the child's peak RSS (from wait4, so nothing is missed between polls),
audio seconds per wall second and per CPU second (the CPU figure is the one
to compare when other work shares the machine), and each as a ratio to the
shortest note.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEVSET = ROOT.parent / "shared" / "devset"
MINUTES = (1, 10, 60, 180)


def clips() -> list[Path]:
    """Real English speech to build notes from, as a lecture is in one language:
    the dev set's if it is here, else the samples'. (All five languages in one
    note had base, which detects the language once, decode French as German:
    1.4x real time instead of 0.06x.)"""
    found = sorted((DEVSET / "real").glob("fleurs-en-*.ogg"))
    if found:
        return found + [DEVSET / "jfk.flac"]
    return sorted((ROOT / "sample_audio" / "real").glob("*en-*.ogg")) + \
        sorted((ROOT / "sample_audio" / "real").glob("jfk-*"))[:1]


def run(work: Path, minutes=MINUTES) -> dict:
    sys.path.insert(0, str(ROOT / "tests"))
    from longnote import build

    home = work / "memory-home"
    env = dict(os.environ, TRANSCRIBE_HOME=str(home), HF_HUB_OFFLINE="1")
    rows = []
    for length in minutes:
        note = work / f"long-{length}min.ogg"
        build(note, length * 60, clips())
        peak_mb, wall_s, cpu_s, code = _child([sys.executable, "-m", "transcribe", "--no-store", "-q",
                                        str(note)], env)
        rows.append({"minutes": length, "mb": note.stat().st_size / 2**20, "peak_rss_mb": peak_mb,
                     "wall_s": wall_s, "cpu_s": cpu_s, "audio_s_per_s": length * 60 / wall_s,
                     "audio_s_per_cpu_s": length * 60 / cpu_s, "exit": code})
        print(f"  {length} min: peak {peak_mb:.0f} MB, {wall_s:.0f} s wall, {cpu_s:.0f} s CPU",
              flush=True)
        note.unlink()
    _table(rows)
    return {"notes": rows}


def _child(cmd: list[str], env: dict) -> tuple[float, float, float, int]:
    """Peak RSS (MB), wall and CPU time of one process run to its end."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return (usage.ru_maxrss / 1024, time.monotonic() - start, usage.ru_utime + usage.ru_stime,
            proc.returncode)


def _table(rows: list[dict]) -> None:
    first = rows[0]
    print("\nlong notes: `transcribe --no-store -q NOTE`, one child process each")
    print(f"{'note':>8} {'file MB':>8} {'peak RSS MB':>12} {'vs first':>9} {'audio s/s':>10} "
          f"{'vs first':>9} {'per CPU s':>10} {'vs first':>9} {'exit':>5}")
    for row in rows:
        print(f"{row['minutes']:>5} min {row['mb']:>8.1f} {row['peak_rss_mb']:>12.0f} "
              f"{row['peak_rss_mb'] - first['peak_rss_mb']:>+9.0f} {row['audio_s_per_s']:>10.1f} "
              f"{row['audio_s_per_s'] / first['audio_s_per_s']:>9.2f} "
              f"{row['audio_s_per_cpu_s']:>10.1f} "
              f"{row['audio_s_per_cpu_s'] / first['audio_s_per_cpu_s']:>9.2f} {row['exit']:>5}")
