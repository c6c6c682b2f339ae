"""`python -m bench --live`: words while you record, and what they cost the recording.

A real recording through PortAudio from an ALSA capture device that reads a FIFO fed
at a microphone's pace (tests/test_live.py's PacedMicrophone): real notes said one
after another with a pause after each, repeated to `minutes`. Once with the live text
(transcribe.live) and once without, as the baseline, in the same run:

- the capture queue's high-water mark (blocks of 0.1 s, of QUEUE_BLOCKS) and the
  blocks dropped: the live decoding must never make capture wait;
- the lag from the end of a piece's speech to its text (the VAD's 0.5 s of silence
  that makes it a pause included), median and worst;
- the recording process's peak RSS, with and without.

The numbers go to stdout and bench/results/live-<time>.json.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

DRIVER = r"""
import json, resource, sys
from pathlib import Path
from transcribe.live import LiveText
from transcribe.recorder import QUEUE_BLOCKS, record
from transcribe.settings import Settings

seconds, live_on, path = float(sys.argv[1]), sys.argv[2] == "1", Path(sys.argv[3])
live = LiveText(Settings.load(), lambda text: None) if live_on else None
done = record(path, samplerate=int(sys.argv[4]), max_seconds=seconds, live=live)
print(json.dumps({"queue_high": done.queue_high, "queue_blocks": QUEUE_BLOCKS,
                  "dropped": done.dropped_blocks, "lags": live.stats.lags if live else [],
                  "skipped_s": live.stats.skipped_s if live else 0.0,
                  "pieces": len(live.texts) if live else 0,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def recording(work: Path, audio: np.ndarray, live: bool) -> dict:
    from test_live import RATE, PacedMicrophone

    work.mkdir(parents=True)
    seconds = len(audio) / 16000 - 0.5
    with PacedMicrophone(work, audio) as mic:
        result = subprocess.run([sys.executable, "-c", DRIVER, f"{seconds:.1f}",
                                 "1" if live else "0", str(work / "note.ogg"), str(RATE)],
                                capture_output=True, text=True, cwd=ROOT,
                                env={**os.environ, **mic.env}, timeout=seconds * 3 + 120)
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(minutes: float = 2.0) -> dict:
    from test_live import spoken

    once = spoken()
    audio = np.tile(once, max(1, int(np.ceil(minutes * 60 * 16000 / len(once)))))
    audio = audio[:int(minutes * 60 * 16000)]
    work = Path(tempfile.mkdtemp(prefix="transcribe-bench-live-"))
    os.environ.setdefault("TRANSCRIBE_HOME", str(work / "home"))
    base = recording(work / "without", audio, live=False)
    live = recording(work / "with", audio, live=True)
    lags = live["lags"] or [float("nan")]
    results = {"time": datetime.now().isoformat(timespec="seconds"),
               "cpu_count": os.cpu_count(), "minutes": minutes, "without": base, "with": live,
               "lag_median_s": statistics.median(lags), "lag_max_s": max(lags)}
    print(f"{minutes:g} min of speech with pauses, {os.cpu_count()} cores")
    print(f"  capture queue high-water mark: {live['queue_high']} of {live['queue_blocks']} "
          f"blocks with live text, {base['queue_high']} without "
          f"(dropped: {live['dropped']} / {base['dropped']})")
    print(f"  pause -> text: median {results['lag_median_s']:.2f} s, worst "
          f"{results['lag_max_s']:.2f} s over {len(live['lags'])} pieces "
          f"({live['skipped_s']:.0f} s skipped for being behind)")
    print(f"  peak RSS: {live['peak_rss_mb']:.0f} MB with live text, {base['peak_rss_mb']:.0f} MB "
          f"without ({live['peak_rss_mb'] / base['peak_rss_mb']:.2f}x)")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"live-{datetime.now():%Y%m%d-%H%M%S}.json").write_text(json.dumps(results, indent=1))
    return results
