"""Per-packet durations for the codecs whose packets say their own length: Opus (TOC byte) and Vorbis (mode)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

OPUS_RATE = 48_000
# Samples (at 48 kHz) of one frame for each of the 32 TOC configurations (RFC 6716, 3.1).
_OPUS_FRAME = [480, 960, 1920, 2880] * 3 + [480, 960] * 2 + [120, 240, 480, 960] * 4


def _opus_table() -> npt.NDArray[np.int64]:
    """Samples per packet for TOC codes 0..2, indexed by the TOC byte (code 3 reads a second byte)."""
    table = np.zeros(256, dtype=np.int64)
    for toc in range(256):
        frames = (1, 2, 2, 0)[toc & 3]
        table[toc] = _OPUS_FRAME[toc >> 3] * frames
    return table


OPUS_TOC_SAMPLES = _opus_table()
# An Opus packet holds at most 120 ms.
OPUS_MAX_PACKET = 5760


def opus_packet_samples(first: npt.NDArray[np.uint8], second: npt.NDArray[np.uint8]) -> npt.NDArray[np.int64]:
    """Samples at 48 kHz of each packet, from its first two bytes (``second`` is 0 where absent)."""
    samples = OPUS_TOC_SAMPLES[first]
    code3 = (first & 3) == 3
    if code3.any():
        frame = np.asarray(_OPUS_FRAME, dtype=np.int64)[first[code3] >> 3]
        samples[code3] = frame * (second[code3] & 0x3F).astype(np.int64)
    # A packet claiming more than 120 ms is invalid; the decoder drops it.
    samples[samples > OPUS_MAX_PACKET] = 0
    return samples


def opus_pre_skip(head: bytes) -> int | None:
    """The pre-skip of an ``OpusHead`` packet (samples at 48 kHz the decoder drops first)."""
    if len(head) < 19 or not head.startswith(b"OpusHead"):
        return None
    return int.from_bytes(head[10:12], "little")


@dataclass(frozen=True)
class VorbisModes:
    """What a Vorbis audio packet's first byte says about its length."""

    short_block: int
    long_block: int
    mode_bits: int
    long_modes: tuple[bool, ...]

    def block_sizes(self, first: npt.NDArray[np.uint8]) -> npt.NDArray[np.int64]:
        """The block size of each audio packet from its first byte (0 for a non-audio packet)."""
        mode = (first.astype(np.int64) >> 1) & ((1 << self.mode_bits) - 1)
        flags = np.asarray(self.long_modes + (False,) * (1 << self.mode_bits), dtype=bool)
        sizes = np.where(flags[mode], self.long_block, self.short_block).astype(np.int64)
        sizes[(first & 1) == 1] = 0  # header packets
        sizes[mode >= len(self.long_modes)] = 0  # an undefined mode: the decoder rejects the packet
        return sizes


def vorbis_packet_samples(modes: VorbisModes, first: npt.NDArray[np.uint8]) -> npt.NDArray[np.int64]:
    """Samples each audio packet adds: a quarter of its block plus a quarter of the previous one."""
    sizes = modes.block_sizes(first)
    sizes = sizes[sizes > 0]
    if sizes.size == 0:
        return sizes
    out = np.zeros(sizes.size, dtype=np.int64)
    out[1:] = (sizes[1:] + sizes[:-1]) // 4  # the first packet only primes the overlap
    return out


def vorbis_modes(identification: bytes, setup: bytes) -> VorbisModes | None:
    """Block sizes and per-mode block flags from the identification and setup headers.

    The setup header's mode table is at its end; it is read backwards from the framing bit (as libavcodec's
    Vorbis parser and liboggz do), so the codebooks before it need not be decoded.
    """
    if len(identification) < 30 or not identification.startswith(b"\x01vorbis"):
        return None
    if len(setup) < 8 or not setup.startswith(b"\x05vorbis"):
        return None
    sizes = identification[28]
    short, long = 1 << (sizes & 0x0F), 1 << (sizes >> 4)
    if not 64 <= short <= long <= 8192:
        return None
    # Bits of the setup packet, last bit first (Vorbis packs bits from each byte's least significant end).
    bits = int.from_bytes(setup, "little")
    position = len(setup) * 8 - 1
    while position > 0 and not (bits >> position) & 1:  # find the framing bit
        position -= 1
    if position <= 97:
        return None

    def take(width: int) -> int:
        nonlocal position
        position -= width
        return (bits >> position) & ((1 << width) - 1)

    # Each mode is [blockflag:1][windowtype:16][transformtype:16][mapping:8], preceded by the 6-bit count.
    flags: list[bool] = []
    found: int | None = None
    while position >= 97 and len(flags) < 64:
        mapping = (bits >> (position - 8)) & 0xFF
        transform = (bits >> (position - 24)) & 0xFFFF
        window = (bits >> (position - 40)) & 0xFFFF
        if mapping > 63 or transform or window:
            break
        take(40)
        flags.append(bool(take(1)))
        if ((bits >> (position - 6)) & 0x3F) + 1 == len(flags):
            found = len(flags)
    if found is None:
        return None
    long_modes = tuple(reversed(flags[:found]))
    return VorbisModes(short, long, (found - 1).bit_length(), long_modes)


# ALAC (Apple Lossless). Apple's and ffmpeg's encoders write 4096-sample frames (Apple's recommended default). The
# decoder takes a cookie of up to 4096 x 4096, but a cookie that claims longer frames than the encoder wrote makes
# every frame fail to decode (its bits run out), so a longer one is not believed: such a file goes to ffprobe.
ALAC_MAX_FRAME = 4096
# Element types a frame may open with (RFC-less, from Apple's ALAC source): mono, stereo and LFE channel elements.
_ALAC_CHANNEL_ELEMENTS = (0, 1, 3)


def alac_frame_length(cookie: bytes) -> int | None:
    """The ``frameLength`` of an ALACSpecificConfig (24 bytes, bare or inside its 12-byte ``alac`` atom)."""
    if len(cookie) >= 36 and cookie[4:8] == b"alac":
        cookie = cookie[12:]
    if len(cookie) < 24:
        return None
    frame_length = int.from_bytes(cookie[:4], "big")
    return frame_length if 0 < frame_length <= ALAC_MAX_FRAME else None


def alac_frame_samples(heads: npt.NDArray[np.uint8], frame_length: int) -> npt.NDArray[np.int64]:
    """Samples each ALAC frame decodes to, from its first 8 bytes (one row per frame).

    A frame header is [element:3][instance:4][unused:12][has_size:1][shift:2][verbatim:1][samples:32 if has_size]:
    a frame plays ``frame_length`` samples unless it states fewer (the encoder's last, partial frame). A stated count
    of zero or above the frame length, or a frame that does not open with a channel element, is one the decoder
    rejects: it plays nothing.
    """
    bits = heads[:, :8].copy().view(">u8").reshape(-1).astype(np.uint64)
    element = (bits >> np.uint64(61)).astype(np.int64)
    has_size = ((bits >> np.uint64(44)) & np.uint64(1)).astype(bool)
    stated = ((bits >> np.uint64(9)) & np.uint64(0xFFFFFFFF)).astype(np.int64)
    samples = np.where(has_size, stated, frame_length).astype(np.int64)
    samples[(samples <= 0) | (samples > frame_length) | ~np.isin(element, _ALAC_CHANNEL_ELEMENTS)] = 0
    return samples
