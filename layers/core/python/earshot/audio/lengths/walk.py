"""Which walker reads which container, and reading a file's length with it."""

from __future__ import annotations

import logging
import mmap
from pathlib import Path

from earshot.audio.lengths.common import AudioLength, Walker
from earshot.errors import InvalidAudioError

logger = logging.getLogger(__name__)


def _walkers() -> dict[str, Walker]:
    # Imported on first use: some walkers need numpy, which the light functions' layer does not carry.
    from earshot.audio.lengths.amr import amr_length
    from earshot.audio.lengths.asf import asf_length
    from earshot.audio.lengths.avi import avi_length
    from earshot.audio.lengths.caf import caf_length
    from earshot.audio.lengths.elementary import elementary_length
    from earshot.audio.lengths.flac import flac_length
    from earshot.audio.lengths.flv import flv_length
    from earshot.audio.lengths.matroska import matroska_length
    from earshot.audio.lengths.mp4 import mp4_length
    from earshot.audio.lengths.mpeg_audio import mp3_length
    from earshot.audio.lengths.mpeg_streams import mpeg_ps_length, mpegts_length
    from earshot.audio.lengths.ogg import ogg_length
    from earshot.audio.lengths.pcm_containers import pcm_container_length
    from earshot.audio.lengths.riff import wav_length
    from earshot.audio.lengths.wavpack import wv_length

    return {
        "wav": wav_length,
        "flac": flac_length,
        "ogg": ogg_length,
        "mp3": mp3_length,
        "matroska": matroska_length,
        "mov": mp4_length,
        "wv": wv_length,
        "caf": caf_length,
        "aac": elementary_length,
        "ac3": elementary_length,
        "eac3": elementary_length,
        "au": pcm_container_length,
        "aiff": pcm_container_length,
        "w64": pcm_container_length,
        "mpegts": mpegts_length,
        "mpeg": mpeg_ps_length,
        "amr": amr_length,
        "flv": flv_length,
        "avi": avi_length,
        "asf": asf_length,
    }


def walk_length(path: Path, *, container: str, codec: str, sample_rate: int) -> AudioLength | None:
    """The audio's length from its frames, or ``None`` when no walker reads this (container, codec).

    Raises
    ------
    InvalidAudioError
        The container's frames are there but none of them is complete (nothing would decode).
    """
    walker = _walkers().get(container)
    if walker is None:
        return None
    with path.open("rb") as handle:
        try:
            data = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # an empty file cannot be mapped
            raise InvalidAudioError("The audio file is empty.", param="file") from None
        with data:
            try:
                length = walker(data, codec, sample_rate)
            except Exception:  # a damaged file the walker misreads: ffprobe counts its packets instead
                logger.warning("frame walk failed; counting packets", extra={"container": container, "codec": codec})
                return None
    if length is not None and length.samples <= 0:
        raise InvalidAudioError("The audio stream is empty or truncated: no complete frame decodes.", param="file")
    return length
