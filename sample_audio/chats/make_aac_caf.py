"""Rewrap the AAC of an .m4a into a CAF file, as iPhones save older audio messages
("Audio Message.caf", AAC-LC): ffmpeg's CAF muxer writes no AAC. Kept for provenance.

CAF (Apple's Core Audio Format Specification 1.0): "caff", version 1, then chunks of a
type and a 64-bit size: desc (the stream), kuki (the decoder's magic cookie: for AAC an
MPEG-4 ES descriptor, as in an MP4's esds box), pakt (each packet's size, as a
variable-length integer) and data (an edit count, then the packets).

    python3 make_aac_caf.py IN.m4a OUT.caf
"""

import struct
import sys

import av

PRIMING = 1024  # ffmpeg's AAC encoder delays its output by one frame of 1024 samples


def varint(n: int) -> bytes:
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


def descriptor(tag: int, body: bytes) -> bytes:
    return bytes([tag, len(body)]) + body


def chunk(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack(">q", len(body)) + body


def aac_caf(src: str, dst: str) -> None:
    with av.open(src) as container:
        stream = container.streams.audio[0]
        config = bytes(stream.codec_context.extradata)  # the AudioSpecificConfig
        rate, channels = stream.codec_context.sample_rate, stream.codec_context.channels
        packets = [bytes(p) for p in container.demux(stream) if p.size]
    decoder = descriptor(0x04, bytes([0x40, 0x15]) + bytes(3) + bytes(8)
                         + descriptor(0x05, config))
    cookie = bytes(4) + descriptor(0x03, bytes(3) + decoder + descriptor(0x06, b"\x02"))
    desc = struct.pack(">dIIIIII", float(rate), int.from_bytes(b"aac ", "big"), 2, 0, 1024,
                       channels, 0)
    frames = 1024 * len(packets)
    pakt = (struct.pack(">qqii", len(packets), frames - PRIMING, PRIMING, 0)
            + b"".join(varint(len(p)) for p in packets))
    data = bytes(4) + b"".join(packets)
    with open(dst, "wb") as f:
        f.write(b"caff" + struct.pack(">HH", 1, 0) + chunk(b"desc", desc)
                + chunk(b"kuki", cookie) + chunk(b"pakt", pakt) + chunk(b"data", data))


if __name__ == "__main__":
    aac_caf(sys.argv[1], sys.argv[2])
