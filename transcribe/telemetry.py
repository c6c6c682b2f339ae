"""No library we load may phone home: no packet leaves without the user's consent.

onnxruntime (faster-whisper runs its Silero VAD on it) ships Microsoft's 1DS
telemetry on Linux too: with the cloud off, every run resolved
mobile.events.data.microsoft.com, 8-14 DNS queries per note (onnxruntime 1.32,
seen with `strace -f -e trace=network`). `onnxruntime.disable_telemetry_events()`
did not stop them; `ORT_DISABLE_TELEMETRY=1`, read when onnxruntime sets up its
environment, did. Each variable is forced, not defaulted: consent to send data
is given in our settings (the cloud), never by an inherited variable.
"""

from __future__ import annotations

import os

OPT_OUTS = {
    "ORT_DISABLE_TELEMETRY": "1",  # onnxruntime: the 1DS events of the VAD's runtime
    "HF_HUB_DISABLE_TELEMETRY": "1",  # huggingface_hub: usage pings when it downloads
}


def forbid() -> None:
    """Set every opt-out; must run before onnxruntime or huggingface_hub is imported."""
    os.environ.update(OPT_OUTS)
