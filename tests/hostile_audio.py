"""A hostile corpus: audio files whose length headers lie, patched byte by byte (no muxer library involved).

``claim_seconds(data, fmt, seconds)`` rewrites every length a container declares so that the file claims
``seconds`` while its frames stay exactly as encoded: FLAC STREAMINFO total samples, Ogg granule positions
(page CRCs recomputed, so demuxers accept the pages), the Matroska/WebM Duration element, mp4 ``mvhd``/``mdhd``
durations, ``stts`` sample deltas and the edit list, the mp3 Xing frame count, WAV RIFF/data sizes, the CAF packet
table's valid-frame count, MPEG program/transport stream timestamps, FLV's ``onMetaData`` duration and tag timestamps,
AVI's main header frame count, every stream header's length and OpenDML's total, ASF's File Properties play and send
durations and packet counts (its own and the Data object's) and every payload's presentation time.
``truncate`` cuts a file as an interrupted upload would.
"""

from __future__ import annotations

import random
import struct

# Formats whose length headers ``claim_seconds`` can rewrite, and the fixture recipe for each.
LYING_FORMATS = ("wav", "flac", "ogg_vorbis", "ogg_opus", "webm", "m4a", "mp3", "mp3_vbr")


def mutated(original: bytes, rng: random.Random, *, cuts: bool = False) -> bytes:
    """One random mutation of ``original``: 1-8 bits flipped, 64 bytes overwritten with random ones, 1-600 random
    bytes inserted or 1-600 bytes deleted at a random offset, or (``cuts``) the file cut there."""
    out = bytearray(original)
    kind = rng.randrange(5 if cuts else 4)
    at = rng.randrange(len(out))
    if kind == 0:
        for _ in range(rng.randint(1, 8)):
            out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    elif kind == 1:
        out[at : at + 64] = rng.randbytes(64)
    elif kind == 2:
        out[at:at] = rng.randbytes(rng.randint(1, 600))
    elif kind == 3:
        del out[at : at + rng.randint(1, 600)]
    else:
        del out[at:]
    return bytes(out)


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
        "mka": _webm,
        "wv": _wavpack,
        "caf": _caf,
        "au": _au,
        "aiff": _aiff,
        "w64": _w64,
        "mpegts_video": _mpeg_timestamps,
        "mpeg_video": _mpeg_timestamps,
        "flv": _flv,
        "avi": _avi,
        "asf": _asf,
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


def _caf(out: bytearray, seconds: float) -> None:
    # The packet table's valid-frame count: the only total length a CAF states.
    rate = struct.unpack_from(">d", out, out.index(b"desc") + 12)[0]
    struct.pack_into(">q", out, out.index(b"pakt") + 12 + 8, int(seconds * rate))


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
    """A fixed-block-size native FLAC with frame ``i`` (0-based; -1 is the last) renumbered to ``numbers[i]``.

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
    numbers = {index % len(frames): number for index, number in numbers.items()}  # -1 is the last frame
    out = bytearray(data[: frames[0][0]])
    for index, (start, number_length, header_length, end) in enumerate(frames):
        frame = data[start:end]
        if index in numbers:
            head = frame[:4] + _flac_number(numbers[index]) + frame[4 + number_length : header_length]
            body = head + bytes([_crc8(head)]) + frame[header_length + 1 : -2]
            frame = body + _crc16(body).to_bytes(2, "big")
        out += frame
    return bytes(out)


def _crc16_table() -> list[int]:
    table = []
    for index in range(256):
        crc = index << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
        table.append(crc)
    return table


_CRC16 = _crc16_table()


def flac_of_silence(hours: float, rate: int = 8000) -> bytes:
    """A native FLAC of ``hours`` of silence, ~13 bytes a frame of 4096 samples: hours of audio from little data.

    Every frame is valid (numbered in order, both CRCs right), so a decoder plays all of it: a decompression bomb
    that is also honest about its length.
    """
    import struct as _struct

    info = bytearray(34)
    _struct.pack_into(">HH", info, 0, 4096, 4096)  # min/max block size; frame sizes left unknown
    total = int(hours * 3600 * rate) // 4096 * 4096
    packed = (rate << 44) | (0 << 41) | (15 << 36) | total  # rate, mono, 16 bits, total samples
    info[10:18] = packed.to_bytes(8, "big")
    out = bytearray(b"fLaC" + bytes([0x80, 0, 0, 34]) + info)
    rate_code = {8000: 4, 16000: 5, 44100: 9, 48000: 10}[rate]
    for number in range(total // 4096):
        head = bytes([0xFF, 0xF8, (12 << 4) | rate_code, 0x08]) + _flac_number(number)  # 4096 samples, mono, 16-bit
        head += bytes([_crc8(head)])
        frame = head + b"\x00\x00\x00"  # a CONSTANT subframe of value 0
        crc = 0
        for byte in frame:
            crc = ((crc << 8) & 0xFFFF) ^ _CRC16[(crc >> 8) ^ byte]
        out += frame + crc.to_bytes(2, "big")
    return bytes(out)


def _wavpack_blocks(data: bytes | bytearray) -> list[int]:
    """Offsets of the ``wvpk`` blocks of a ``.wv`` file, in order."""
    blocks, position = [], 0
    while position + 32 <= len(data) and data[position : position + 4] == b"wvpk":
        blocks.append(position)
        position += 8 + struct.unpack_from("<I", data, position + 4)[0]
    return blocks


def _wavpack(out: bytearray, seconds: float) -> None:
    # Every block's total-samples field (the file's length, which the wv demuxer reports as the duration).
    rates = (6000, 8000, 9600, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000, 192000)
    rate = rates[(struct.unpack_from("<I", out, 24)[0] >> 23) & 0xF]  # the first block's flags name the rate
    for start in _wavpack_blocks(out):
        struct.pack_into("<I", out, start + 12, min(0xFFFFFFFF, int(seconds * rate)))


def inflate_wavpack_blocks(data: bytes, factor: float, blocks: list[int] | None = None) -> bytes:
    """A ``.wv`` whose blocks ``blocks`` (indexes; -1 is the last; all when ``None``) state ``factor`` times the
    samples they hold, block indexes and the total shifted to agree (ffmpeg's decoder outputs every stated sample)."""
    out = bytearray(data)
    starts = _wavpack_blocks(out)
    chosen = set(range(len(starts))) if blocks is None else {index % len(starts) for index in blocks}
    stated = []
    for index, start in enumerate(starts):
        samples = struct.unpack_from("<I", out, start + 20)[0]
        stated.append(int(samples * factor) if index in chosen else samples)
    for index, start in enumerate(starts):
        struct.pack_into("<III", out, start + 12, sum(stated), sum(stated[:index]), stated[index])
    return bytes(out)


def set_last_granule(data: bytes, granule: int) -> bytes:
    """An Ogg file whose last page's granule position is ``granule`` (-1: none; its CRC recomputed)."""
    out = bytearray(data)
    start, end = _ogg_pages(out)[-1]
    struct.pack_into("<q", out, start + 6, granule)
    struct.pack_into("<I", out, start + 22, 0)
    struct.pack_into("<I", out, start + 22, _ogg_crc(bytes(out[start:end])))
    return bytes(out)


def _au(out: bytearray, seconds: float) -> None:
    # The data size (bytes) after the magic and the data offset; encoding, rate and channels follow.
    encoding, rate, channels = struct.unpack_from(">III", out, 12)
    width = {1: 1, 2: 1, 3: 2, 4: 3, 5: 4, 6: 4, 7: 8, 27: 1}[encoding]
    struct.pack_into(">I", out, 8, min(0xFFFFFFFE, int(seconds * rate) * width * channels))


def _aiff(out: bytearray, seconds: float) -> None:
    # COMM numSampleFrames, the SSND chunk size and the FORM size.
    comm, ssnd = out.index(b"COMM"), out.index(b"SSND")
    channels, _, bits = struct.unpack_from(">hIh", out, comm + 8)
    exponent, mantissa = struct.unpack_from(">HQ", out, comm + 16)
    frames = int(seconds * (mantissa >> (16383 + 63 - exponent)))
    struct.pack_into(">I", out, comm + 10, min(0xFFFFFFFF, frames))
    size = min(0xFFFFFFF0, 8 + frames * channels * bits // 8)
    struct.pack_into(">I", out, ssnd + 4, size)
    struct.pack_into(">I", out, 4, min(0xFFFFFFFF, ssnd + size))


def _w64(out: bytearray, seconds: float) -> None:
    # The data chunk's size (its 24-byte header included) and the riff size.
    fmt = out.index(b"fmt \xf3\xac\xd3\x11")
    rate, byte_rate = struct.unpack_from("<II", out, fmt + 24 + 4)
    data = out.index(b"data\xf3\xac\xd3\x11")
    size = 24 + int(seconds * rate) * (byte_rate // rate)
    struct.pack_into("<Q", out, data + 16, size)
    struct.pack_into("<Q", out, 16, data + size)


def _pts_fields(out: bytearray) -> list[int]:
    """Offsets of the 5-byte PTS/DTS fields of every PES header (MPEG-1 or MPEG-2) of a program or transport stream."""
    found = []
    position = out.find(b"\x00\x00\x01")
    while 0 <= position < len(out) - 20:
        stream_id, at = out[position + 3], position + 6
        if stream_id == 0xBD or 0xC0 <= stream_id <= 0xEF:
            if out[at] >> 6 == 2:  # MPEG-2: flags say PTS, or PTS and DTS
                flags = out[at + 1] >> 6
                fields = [at + 3] if flags == 2 else [at + 3, at + 8] if flags == 3 else []
            else:  # MPEG-1: stuffing, STD buffer, then the timestamps
                while out[at] == 0xFF and at < position + 22:
                    at += 1
                at += 2 if out[at] >> 6 == 1 else 0
                fields = [at] if out[at] >> 4 == 2 else [at, at + 5] if out[at] >> 4 == 3 else []
            found += [field for field in fields if out[field] & 1 and out[field + 2] & 1 and out[field + 4] & 1]
        position = out.find(b"\x00\x00\x01", position + 3)
    return found


def _read_pts(out: bytearray, at: int) -> int:
    field = int.from_bytes(out[at : at + 5], "big")
    return (field >> 33 & 0x7) << 30 | (field >> 17 & 0x7FFF) << 15 | (field >> 1 & 0x7FFF)


def _mpeg_timestamps(out: bytearray, seconds: float) -> None:
    # Program and transport streams state no length; their timestamps say where each packet plays. Scaled so that
    # the last one says ``seconds``.
    fields = _pts_fields(out)
    last = max(_read_pts(out, at) for at in fields)
    for at in fields:
        value = min((1 << 33) - 1, int(_read_pts(out, at) * seconds * 90_000 / max(1, last)))
        prefix = out[at] & 0xF0
        field = (prefix | (value >> 29 & 0x0E) | 1) << 32 | (value >> 14 & 0xFFFE | 1) << 16 | (value << 1 & 0xFFFE | 1)
        out[at : at + 5] = field.to_bytes(5, "big")


def _flv(out: bytearray, seconds: float) -> None:
    # onMetaData's duration (an AMF number after its key), and every tag's timestamp scaled to end at ``seconds``.
    key = out.find(b"\x00\x08duration\x00")
    if key >= 0:
        struct.pack_into(">d", out, key + 11, seconds)
    tags, position = [], 13
    while position + 11 <= len(out):
        tags.append(position)
        position += 15 + int.from_bytes(out[position + 1 : position + 4], "big")
    stamps = [int.from_bytes(out[at + 4 : at + 7], "big") | out[at + 7] << 24 for at in tags]
    last = max(max(stamps), 1)
    for at, stamp in zip(tags, stamps, strict=True):
        value = min(0x7FFFFFFF, int(stamp * seconds * 1000 / last))
        out[at + 4 : at + 7] = (value & 0xFFFFFF).to_bytes(3, "big")
        out[at + 7] = value >> 24


def _avi(out: bytearray, seconds: float) -> None:
    # The main header's total frames, every stream header's length (in its own rate/scale), OpenDML's total frames.
    avih = out.index(b"avih") + 8
    per_frame = struct.unpack_from("<I", out, avih)[0] or 1_000_000
    struct.pack_into("<I", out, avih + 16, min(0xFFFFFFFF, int(seconds * 1_000_000 / per_frame)))
    position = out.find(b"strh")
    while position >= 0:
        scale, rate = struct.unpack_from("<II", out, position + 8 + 20)
        struct.pack_into("<I", out, position + 8 + 32, min(0xFFFFFFFF, int(seconds * rate / max(scale, 1))))
        position = out.find(b"strh", position + 4)
    dmlh = out.find(b"dmlh")
    if dmlh >= 0:
        struct.pack_into("<I", out, dmlh + 8, min(0xFFFFFFFF, int(seconds * 1_000_000 / per_frame)))


def _asf(out: bytearray, seconds: float) -> None:
    # File Properties: packet count, play and send durations (100 ns units, the play duration with the preroll); the
    # Data object's packet count. Payload presentation times are left: ffmpeg's decoded length follows them.
    properties = out.index(bytes.fromhex("a1dcab8c47a9cf118ee400c00c205365"))
    body = properties + 24
    preroll = struct.unpack_from("<Q", out, body + 56)[0]
    packet_size = struct.unpack_from("<I", out, body + 72)[0]
    packets = max(1, int(seconds * 64_000 / 8 / max(packet_size, 1)))
    struct.pack_into("<QQQ", out, body + 32, packets, int((seconds + preroll / 1000) * 1e7), int(seconds * 1e7))
    data = out.index(bytes.fromhex("3626b2758e66cf11a6d900aa0062ce6c"))
    struct.pack_into("<Q", out, data + 40, packets)
