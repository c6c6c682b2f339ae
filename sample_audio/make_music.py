"""How music-box.ogg was made (kept for provenance; nothing in transcribe runs it).

Five seconds of a music-box tune, no voice in it: random notes of the C major
scale, four a second, each decaying, over a 131 Hz hum; peak at -20 dBFS, a
second of silence on each side; Ogg/Opus at 24 kbit/s, as a messenger sends a
voice note. The VAD takes the tune for speech, so it reaches the model.

    python sample_audio/make_music.py sample_audio/music-box.ogg
"""

import sys

import av
import numpy as np
from av.audio.resampler import AudioResampler

RATE = 16000


def tune(seconds: float = 5.0, peak_db: float = -20.0, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    scale = [262, 294, 330, 349, 392, 440, 494, 523]
    y = np.zeros_like(t)
    for j in range(int(seconds * 4)):
        f = scale[rng.integers(len(scale))]
        part = slice(int(j * RATE / 4), int((j + 1) * RATE / 4))
        tt = t[part] - t[part][0]
        y[part] += (np.sin(2 * np.pi * f * tt) + 0.3 * np.sin(4 * np.pi * f * tt)) * np.exp(-tt * 6)
    y += 0.3 * np.sin(2 * np.pi * 131 * t)
    y = (y / (np.abs(y).max() + 1e-9) * 10 ** (peak_db / 20)).astype(np.float32)
    silence = np.zeros(RATE, np.float32)
    return (np.clip(np.concatenate([silence, y, silence]), -1, 1) * 32767).astype(np.int16)


def write_opus(samples: np.ndarray, path: str) -> None:
    out = av.open(path, "w", format="ogg")
    stream = out.add_stream("libopus", rate=48000)
    stream.bit_rate, stream.layout = 24000, "mono"
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = RATE
    resampler = AudioResampler(format="s16", layout="mono", rate=48000)
    for part in resampler.resample(frame) + resampler.resample(None):
        for packet in stream.encode(part):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)
    out.close()


if __name__ == "__main__":
    write_opus(tune(), sys.argv[1])
