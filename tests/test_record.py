"""`transcribe record` through real PortAudio, with an ALSA capture device that is a file."""

from __future__ import annotations

import ctypes.util
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import REFERENCES, ROOT, SAMPLES, json_lines, run_cli
from wer import wer

from transcribe.audio import decode

NOTE = "PTT-20240312-WA0007.opus"
ASOUNDRC = """
pcm.filemic {{
    type file
    slave.pcm "null"
    file "/dev/null"
    infile "{raw}"
    format "raw"
}}
pcm.!default {{
    type asym
    playback.pcm "null"
    capture.pcm "filemic"
}}
"""


def portaudio_present() -> bool:
    try:
        import sounddevice  # noqa: F401
    except OSError:
        return False
    return True


def without_portaudio() -> list[str]:
    """A command prefix that runs a program as if libportaudio2 were not installed (its
    library bound over by /dev/null in a mount namespace of its own); [] where it is
    not installed. Skips the test where hiding it is not possible (not root)."""
    library = ctypes.util.find_library("portaudio")
    if library is None:
        return []
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("hiding PortAudio needs root and unshare")
    real = next(Path(d, library).resolve() for d in
                ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib")
                if Path(d, library).exists())
    script = f'mount --bind /dev/null {real} && exec "$@"'
    return ["unshare", "-m", "sh", "-c", script, "sh"]


needs_portaudio = pytest.mark.skipif(not portaudio_present(),
                                     reason="libportaudio2 is not installed (.ci/run installs it)")


def microphone(tmp_path: Path, samples: np.ndarray, rate: int) -> dict:
    """A HOME whose ALSA default capture device plays `samples` (float, 16 kHz) at `rate`."""
    raw = tmp_path / "mic.raw"
    raw.write_bytes(resample_int16(samples, rate).tobytes())
    home = tmp_path / "user"
    home.mkdir()
    (home / ".asoundrc").write_text(ASOUNDRC.format(raw=raw))
    return {"HOME": str(home)}


def resample_int16(samples: np.ndarray, rate: int) -> np.ndarray:
    pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16).reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
    frame.sample_rate = 16000
    resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
    out = [f.to_ndarray().reshape(-1) for f in [*resampler.resample(frame),
                                                *resampler.resample(None)]]
    return np.concatenate(out).astype("<i2")


@needs_portaudio
def test_records_at_the_devices_rate_and_transcribes(tmp_path, home):
    env = microphone(tmp_path, decode(SAMPLES / NOTE).samples, 44100)
    devices = json_lines(run_cli("devices", "--json", env=env).stdout)
    default = next(d for d in devices if d["default"])
    assert default["default_samplerate"] == 44100
    saved = tmp_path / "memo.ogg"
    result = run_cli("record", "--seconds", "9", "--save", str(saved), "--json", env=env)
    assert result.returncode == 0, result.stderr
    [t] = json_lines(result.stdout)
    assert t["file"] == str(saved)
    assert wer(REFERENCES[NOTE]["text"], t["text"]) <= 0.15, t["text"]
    audio = decode(saved)
    assert audio.codec == "opus" and abs(audio.duration - 9.0) < 0.1
    with av.open(str(saved)) as container:
        assert container.format.name == "ogg"
        assert container.streams.audio[0].codec_context.channels == 1


@needs_portaudio
def test_stops_after_silence_and_saves_to_the_recordings_folder(tmp_path, home):
    speech = decode(SAMPLES / NOTE).samples
    env = microphone(tmp_path, speech, 48000)
    result = run_cli("record", "--samplerate", "48000", "--stop-after-silence", "1.5",
                     "--seconds", "60", "--json", env=env)
    assert result.returncode == 0, result.stderr
    [t] = json_lines(result.stdout)
    saved = Path(t["file"])
    assert saved.parent == home / "data" / "recordings" and saved.suffix == ".ogg"
    assert len(speech) / 16000 - 1 < t["duration"] < len(speech) / 16000 + 3
    assert "meeting" in t["text"]


@needs_portaudio
def test_resampling_does_not_alias(tmp_path, home):
    """A 10 kHz tone is above 16 kHz audio's 8 kHz limit: it must vanish, not fold to 6 kHz."""
    t = np.arange(48000 * 2) / 48000
    tone = (0.5 * np.sin(2 * np.pi * 10000 * t) * 32767).astype("<i2")
    raw = tmp_path / "tone.raw"
    raw.write_bytes(tone.tobytes())
    user = tmp_path / "user"
    user.mkdir()
    (user / ".asoundrc").write_text(ASOUNDRC.format(raw=raw))
    saved = tmp_path / "tone.ogg"
    result = run_cli("record", "--samplerate", "48000", "--seconds", "1.5", "--save",
                     str(saved), "--no-transcribe", env={"HOME": str(user)})
    assert result.returncode == 0, result.stderr
    recorded = decode(saved).samples[4000:-4000]
    level = 20 * np.log10(np.sqrt(np.mean(recorded ** 2)) + 1e-12)
    assert level < -40, f"a 10 kHz tone came through at {level:.1f} dBFS"


@needs_portaudio
def test_ctrl_c_keeps_what_was_recorded(tmp_path, home):
    speech = decode(SAMPLES / NOTE).samples
    env = dict(os.environ, PYTHONFAULTHANDLER="1", **microphone(tmp_path, speech, 48000))
    saved = tmp_path / "interrupted.ogg"
    # Ctrl-C in a terminal reaches a process whose SIGINT is not ignored; a test run
    # started in the background by a non-interactive shell ignores it, and that
    # would pass on to the recorder.
    proc = subprocess.Popen([sys.executable, "-m", "transcribe", "record", "--samplerate",
                             "48000", "--save", str(saved)], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 30
    while not saved.with_name(f".{saved.name}.part").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        status = [line for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines()
                  if line.startswith(("Sig", "ShdPnd"))]
        proc.send_signal(signal.SIGABRT)  # faulthandler prints where every thread is
        out, err = proc.communicate()
        pytest.fail(f"record did not stop within 60 s of Ctrl-C ({status}):\n{err}")
    assert proc.returncode == 130, err
    assert "the recording is saved" in err
    audio = decode(saved)   # raises if the Ogg stream was left without its end
    assert audio.duration > len(speech) / 16000
    assert not saved.with_name(f".{saved.name}.part").exists()


@needs_portaudio
def test_save_onto_a_device_or_a_symlink_never_replaces_it(tmp_path, home):
    """--save onto a character device (1,3, made in a temp folder) writes into it; onto
    a symlink, the link stays and its target gets the recording."""
    env = microphone(tmp_path, decode(SAMPLES / NOTE).samples, 48000)
    null = tmp_path / "fakenull"
    try:
        os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("mknod needs root")
    result = run_cli("record", "--samplerate", "48000", "--seconds", "1", "--save", str(null),
                     "--no-transcribe", env=env)
    assert result.returncode == 0, result.stderr
    assert stat.S_ISCHR(os.lstat(null).st_mode) and os.lstat(null).st_rdev == os.makedev(1, 3)
    (tmp_path / "kept").mkdir()
    link = tmp_path / "memo.ogg"
    link.symlink_to(tmp_path / "kept" / "memo.ogg")
    result = run_cli("record", "--samplerate", "48000", "--seconds", "2", "--save", str(link),
                     "--no-transcribe", env=env)
    assert result.returncode == 0, result.stderr
    assert link.is_symlink()
    assert abs(decode(tmp_path / "kept" / "memo.ogg").duration - 2.0) < 0.1


@needs_portaudio
def test_no_input_device_is_one_line_and_exit_5(tmp_path, home):
    user = tmp_path / "user"
    user.mkdir()
    (user / ".asoundrc").write_text('pcm.!default { type asym playback.pcm "null" '
                                    'capture.pcm "nosuchdevice" }\n')
    result = run_cli("record", "--seconds", "1", env={"HOME": str(user)})
    assert result.returncode == 5
    [line] = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert "microphone" in line or "input device" in line
    assert not list((home / "data" / "recordings").glob("*.ogg.part"))


def test_without_portaudio_record_says_how_to_install_it_and_the_rest_works(tmp_path, home):
    library = ctypes.util.find_library("portaudio")
    if library is None:
        hide = []  # PortAudio is really missing here: the plain run is the test
    else:
        real = next(Path(d, library) for d in ("/usr/lib/x86_64-linux-gnu", "/usr/lib",
                                               "/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu",
                                               "/usr/local/lib") if Path(d, library).exists())
        if os.geteuid() != 0 or not shutil.which("unshare"):
            pytest.skip("hiding PortAudio needs root and unshare")
        hide = [f"mount --bind /dev/null {real.resolve()}"]
    script = " && ".join(hide + [
        f"{sys.executable} -m transcribe record --seconds 1; echo exit=$?",
        f"{sys.executable} -m transcribe devices; echo exit=$?",
        f"{sys.executable} -m transcribe {SAMPLES / 'voicemail-8k.wav'}; echo exit=$?",
    ])
    prefix = ["unshare", "-m", "sh", "-c"] if hide else ["sh", "-c"]
    result = subprocess.run([*prefix, script], capture_output=True, text=True, cwd=ROOT,
                            env=dict(os.environ), timeout=300)
    assert result.stdout.count("exit=5") == 2, result.stdout + result.stderr
    assert "call me back" in result.stdout and result.stdout.rstrip().endswith("exit=0")
    assert "PortAudio is not available" in result.stderr
    assert "sudo apt install libportaudio2" in result.stderr


@needs_portaudio
@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_devices_without_an_input_device_is_one_line_and_exit_5(tmp_path, json_flag):
    user = tmp_path / "user"
    user.mkdir()
    (user / ".asoundrc").write_text('pcm.!default { type asym playback.pcm "null" '
                                    'capture.pcm "nosuchdevice" }\n')
    result = run_cli("devices", *json_flag, env={"HOME": str(user)})
    assert result.returncode == 5
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("error: no input device found")


@needs_portaudio
def test_devices_lists_the_microphone_with_exit_0(tmp_path):
    env = microphone(tmp_path, np.zeros(16000, dtype=np.float32), 48000)
    result = run_cli("devices", env=env)
    assert result.returncode == 0, result.stderr
    assert any(line.startswith("*") and "default" in line and " Hz)" in line
               for line in result.stdout.splitlines())
