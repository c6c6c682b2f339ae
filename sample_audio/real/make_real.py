"""How the real-speech samples here were made (provenance; nothing in transcribe runs it).

    python sample_audio/real/make_real.py DEVSET_DIR

DEVSET_DIR holds jfk.flac (faster-whisper's test clip, public domain) and
real/fleurs-*.ogg (FLEURS test split, CC BY 4.0, Google). jfk is encoded the
way each app sends a voice note, with PyAV (no ffmpeg binary); the FLEURS clips
are copied as they are (Ogg/Opus, 24 kbit/s). Texts are in references.json.
"""

import shutil
import sys
from pathlib import Path

import av

HERE = Path(__file__).resolve().parent
# name: (container, codec, sample rate, bit rate, what it imitates)
JFK = {
    "jfk-PTT-20240101-WA0001.opus": ("ogg", "libopus", 16000, 16000, "WhatsApp"),
    "jfk-audio_2024-01-01_12-00-00.ogg": ("ogg", "libopus", 48000, 32000, "Telegram"),
    "jfk-New Recording 3.m4a": ("mp4", "aac", 44100, 64000, "iPhone Voice Memos"),
    "jfk-AUD-20240101-WA0002.mp3": ("mp3", "libmp3lame", 44100, 64000, "forwarded MP3"),
}
FLEURS = ["fleurs-de-007.ogg", "fleurs-de-009.ogg", "fleurs-en-005.ogg", "fleurs-en-008.ogg",
          "fleurs-en-009.ogg", "fleurs-es-007.ogg",
          "fleurs-fr-005.ogg", "fleurs-pt-007.ogg"]


def encode(source: Path, target: Path, container: str, codec: str, rate: int,
           bit_rate: int) -> None:
    with av.open(str(source)) as src, av.open(str(target), "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        stream.bit_rate = bit_rate
        resampler = av.AudioResampler(format=stream.codec_context.format.name, layout="mono",
                                      rate=rate)
        for frame in src.decode(audio=0):
            for chunk in resampler.resample(frame):
                for packet in stream.encode(chunk):
                    out.mux(packet)
        for chunk in resampler.resample(None):
            for packet in stream.encode(chunk):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def main(devset: Path) -> None:
    for name, (container, codec, rate, bit_rate, _) in JFK.items():
        encode(devset / "jfk.flac", HERE / name, container, codec, rate, bit_rate)
    for name in FLEURS:
        shutil.copy(devset / "real" / name, HERE / name)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
