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
