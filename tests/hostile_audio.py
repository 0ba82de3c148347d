"""A hostile corpus: audio files whose length headers lie, patched byte by byte (no muxer library involved).

``claim_seconds(data, fmt, seconds)`` rewrites every length a container declares so that the file claims
``seconds`` while its frames stay exactly as encoded: FLAC STREAMINFO total samples, Ogg granule positions
(page CRCs recomputed, so demuxers accept the pages), the Matroska/WebM Duration element, mp4 ``mvhd``/``mdhd``
durations, ``stts`` sample deltas and the edit list, the mp3 Xing frame count, WAV RIFF/data sizes.
``truncate`` cuts a file as an interrupted upload would.
"""

from __future__ import annotations

import struct

# Formats whose length headers ``claim_seconds`` can rewrite, and the fixture recipe for each.
LYING_FORMATS = ("wav", "flac", "ogg_vorbis", "ogg_opus", "webm", "m4a", "mp3", "mp3_vbr")


def truncate(data: bytes, fraction: float) -> bytes:
    return data[: int(len(data) * fraction)]


def claim_seconds(data: bytes, fmt: str, seconds: float) -> bytes:
    """``data`` with every length header rewritten to claim ``seconds`` (frames untouched)."""
    patch = {
        "wav": _wav,
        "flac": _flac,
        "ogg_vorbis": _ogg,
        "ogg_opus": _ogg,
        "webm": _webm,
        "webm_noduration": _webm,
        "m4a": _mp4,
        "mp4_video": _mp4,
        "mp3": _mp3,
        "mp3_vbr": _mp3,
    }[fmt]
    out = bytearray(data)
    patch(out, seconds)
    return bytes(out)


def _wav(out: bytearray, seconds: float) -> None:
    rate, byte_rate = struct.unpack_from("<II", out, 24)
    claimed = min(0xFFFFFFF0, int(seconds * byte_rate))
    position = 12
    while position + 8 <= len(out):
        chunk, size = out[position : position + 4], struct.unpack_from("<I", out, position + 4)[0]
        if chunk == b"data":
            struct.pack_into("<I", out, position + 4, claimed)
            struct.pack_into("<I", out, 4, min(0xFFFFFFFF, claimed + position))
            return
        position += 8 + size + (size & 1)
    del rate


def _flac(out: bytearray, seconds: float) -> None:
    # STREAMINFO: after "fLaC" and a 4-byte block header; 20 bits rate, 3+5 bits layout, 36 bits total samples.
    info = 8
    rate = int.from_bytes(out[info + 10 : info + 13], "big") >> 4
    total = int(seconds * rate)
    packed = int.from_bytes(out[info + 13 : info + 18], "big")
    packed = (packed & ~((1 << 36) - 1)) | (total & ((1 << 36) - 1))
    out[info + 13 : info + 18] = packed.to_bytes(5, "big")


def _ogg_crc_table() -> list[int]:
    table = []
    for index in range(256):
        crc = index << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) & 0xFFFFFFFF if crc & 0x80000000 else (crc << 1) & 0xFFFFFFFF
        table.append(crc)
    return table


_OGG_CRC = _ogg_crc_table()


def _ogg_crc(page: bytes) -> int:
    crc = 0
    for byte in page:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _OGG_CRC[((crc >> 24) & 0xFF) ^ byte]
    return crc


def _ogg_pages(out: bytearray) -> list[tuple[int, int]]:
    pages, position = [], 0
    while position + 27 <= len(out) and out[position : position + 4] == b"OggS":
        count = out[position + 26]
        end = position + 27 + count + sum(out[position + 27 : position + 27 + count])
        pages.append((position, end))
        position = end
    return pages


def _ogg(out: bytearray, seconds: float) -> None:
    pages = _ogg_pages(out)
    last = max(struct.unpack_from("<q", out, start + 6)[0] for start, _ in pages)
    opus = b"OpusHead" in out[:200]
    rate = 48000 if opus else struct.unpack_from("<I", out, out.find(b"\x01vorbis") + 12)[0]
    factor = seconds * rate / max(1, last)
    for start, end in pages:
        granule = struct.unpack_from("<q", out, start + 6)[0]
        if granule > 0:
            struct.pack_into("<q", out, start + 6, max(1, int(granule * factor)))
            struct.pack_into("<I", out, start + 22, 0)
            struct.pack_into("<I", out, start + 22, _ogg_crc(bytes(out[start:end])))


def _webm(out: bytearray, seconds: float) -> None:
    # Duration (0x4489) is a float in TimecodeScale units (1 ms by default).
    at = out.find(b"\x44\x89")
    if at < 0:
        raise ValueError("this WebM has no Duration element to lie with")
    size = out[at + 2] & 0x7F
    if size == 8:
        struct.pack_into(">d", out, at + 3, seconds * 1000)
    else:
        struct.pack_into(">f", out, at + 3, seconds * 1000)


def _mp4_boxes(out: bytearray, start: int, end: int) -> list[tuple[bytes, int, int]]:
    boxes, position = [], start
    while position + 8 <= end:
        size, kind = struct.unpack_from(">I4s", out, position)
        if size < 8:
            break
        boxes.append((kind, position + 8, position + size))
        position += size
    return boxes


def _mp4(out: bytearray, seconds: float) -> None:
    def walk(start: int, end: int) -> None:
        for kind, body, box_end in _mp4_boxes(out, start, end):
            if kind in (b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts"):
                walk(body, box_end)
            elif kind in (b"mvhd", b"mdhd"):
                scale, duration = struct.unpack_from(">II", out, body + 12)
                struct.pack_into(">I", out, body + 16, min(0xFFFFFFFF, int(seconds * scale)))
                ratios.append(seconds * scale / max(1, duration))
            elif kind == b"stts":
                count = struct.unpack_from(">I", out, body + 4)[0]
                for index in range(count):
                    at = body + 8 + index * 8 + 4
                    delta = struct.unpack_from(">I", out, at)[0]
                    struct.pack_into(">I", out, at, max(1, min(0xFFFFFFFF, int(delta * ratios[-1]))))
            elif kind == b"elst":
                count = struct.unpack_from(">I", out, body + 4)[0]
                for index in range(count):
                    at = body + 8 + index * 12
                    duration = struct.unpack_from(">I", out, at)[0]
                    struct.pack_into(">I", out, at, max(1, min(0xFFFFFFFF, int(duration * ratios[0]))))

    ratios: list[float] = []
    walk(0, len(out))


def _mp3(out: bytearray, seconds: float) -> None:
    at = max(out.find(b"Xing"), out.find(b"Info"))
    if at < 0:
        raise ValueError("this mp3 has no Xing/Info frame to lie with")
    flags = int.from_bytes(out[at + 4 : at + 8], "big")
    if not flags & 1:
        raise ValueError("this Xing frame carries no frame count")
    struct.pack_into(">I", out, at + 8, int(seconds * 44100 / 1152))


def _crc8(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def _crc16(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def _flac_number(number: int) -> bytes:
    """A FLAC frame number in its UTF-8-like coding."""
    if number < 0x80:
        return bytes([number])
    extra = 1
    while number >= 1 << (6 * extra + 6 - extra):
        extra += 1
    out = [((0xFF << (7 - extra)) & 0xFF) | (number >> (6 * extra))]
    out += [0x80 | ((number >> (6 * index)) & 0x3F) for index in range(extra - 1, -1, -1)]
    return bytes(out)


def renumber_flac_frames(data: bytes, numbers: dict[int, int]) -> bytes:
    """A fixed-block-size native FLAC with frame ``i`` (0-based) renumbered to ``numbers[i]``.

    Frame headers carry their own position; decoders play every frame whatever its number, so a renumbered
    file plays exactly as before. Both CRCs (header CRC-8, frame CRC-16) are recomputed.
    """
    position = 4
    while True:  # metadata blocks
        header, size = data[position], int.from_bytes(data[position + 1 : position + 4], "big")
        position += 4 + size
        if header & 0x80:
            break
    starts = []
    while position >= 0:
        lead = data[position + 4]
        number_length = 1 if lead < 0x80 else bin(lead)[2:].index("0")
        # A header ends where its CRC-8 matches; a sync pattern inside frame data rarely has one.
        header_length = next(
            (n for n in range(4 + number_length, 16) if _crc8(data[position : position + n]) == data[position + n]),
            None,
        )
        if header_length is not None:
            starts.append((position, number_length, header_length))
        position = data.find(b"\xff\xf8", position + 1)
    ends = [start for start, _, _ in starts[1:]] + [len(data)]
    frames = [(s, n, h, e) for (s, n, h), e in zip(starts, ends, strict=True)]
    out = bytearray(data[: frames[0][0]])
    for index, (start, number_length, header_length, end) in enumerate(frames):
        frame = data[start:end]
        if index in numbers:
            head = frame[:4] + _flac_number(numbers[index]) + frame[4 + number_length : header_length]
            body = head + bytes([_crc8(head)]) + frame[header_length + 1 : -2]
            frame = body + _crc16(body).to_bytes(2, "big")
        out += frame
    return bytes(out)
