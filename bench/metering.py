"""Metering cost per format and length, against ``cat`` of the same file measured in the same run.

Each ``meter_duration`` call covers identification (in-process, or an ffprobe process), the frame walk (or
ffprobe's packet count where the format is not walked) and everything around it. ``cat FILE > /dev/null`` (a
process start plus reading the file) is timed right after each call, so every ratio is taken under the same
machine load: the figure reported is the median of the per-pair ratios, with their 10th-90th percentile spread.
``ROUNDS`` rounds go over every file in turn (interleaved), so a burst of load hits every format alike. One
warm-up call per file. Run: ``.venv/bin/python -m bench.metering [--keep DIR] [FORMAT ...]`` (every fixture format by
default; ``--keep``: see ``main``).
"""

from __future__ import annotations

import mmap
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
LENGTHS = (60.0, 1200.0)  # a minute, and a 20-minute file (about 20 MiB of 128 kbit/s mp3)
ROUNDS = 3
PAIRS_PER_ROUND = 7
# Whitelisted formats beyond the fixture recipes, as (row name, container, codec, rate), encoded with PyAV's
# ``encode_tone``. DTS and APE are not here: PyAV's ffmpeg cannot encode them. Its WMA encoders need a bit rate
# (``BIT_RATES``); they take the tone's mono float input as it is.
EXTRA = (
    ("adts_aac", "adts", "aac", 44100),
    # MPEG transport and program streams of audio alone (the fixture recipes mpegts_video/mpeg_video add video).
    ("ts_aac", "mpegts", "aac", 44100),
    ("ts_mp2", "mpegts", "mp2", 44100),
    ("ps_mp3", "mpeg", "libmp3lame", 44100),
    ("ac3", "ac3", "ac3", 48000),
    ("eac3", "eac3", "eac3", 48000),
    ("amr_nb", "amr", "libopencore_amrnb", 8000),
    ("au_pcm", "au", "pcm_s16be", 44100),
    ("aiff_pcm", "aiff", "pcm_s16be", 44100),
    ("w64_pcm", "w64", "pcm_s16le", 44100),
    ("wavpack", "wv", "wavpack", 44100),
    ("mka_alac", "matroska", "alac", 44100),
    ("mka_wavpack", "matroska", "wavpack", 44100),
    ("flv_aac", "flv", "aac", 44100),
    ("flv_mp3", "flv", "libmp3lame", 44100),
    ("avi_mp3", "avi", "libmp3lame", 44100),
    ("avi_pcm", "avi", "pcm_s16le", 44100),
    ("asf_wma", "asf", "wmav2", 44100),
    ("caf_alac", "caf", "alac", 44100),
    ("caf_flac", "caf", "flac", 44100),
    ("mov_ima4", "mov", "adpcm_ima_qt", 44100),
    ("3gp_amr", "3gp", "libopencore_amrnb", 8000),
    # Apple Lossless as iTunes writes it, FLAC and Opus in MP4.
    ("m4a_alac", "ipod", "alac", 44100),
    ("mp4_flac", "mp4", "flac", 44100),
    ("mp4_opus", "mp4", "libopus", 48000),
)
# Encoders that have no default bit rate.
BIT_RATES = {"asf_wma": 64_000}

# Files made by the command-line tools people run (installed by ``make setup``), as (row name, commands): the tone is
# written as a 48 kHz WAV at ``{src}``, the commands make ``{out}``. mkvmerge laces the Opus packets (8 a block).
TOOLS = (
    (
        "webm_mkvmerge",
        (("opusenc", "--quiet", "{src}", "{out}.opus"), ("mkvmerge", "--quiet", "--webm", "-o", "{out}", "{out}.opus")),
    ),
)


def _part(path: Path) -> Path:
    """Where ``path`` is encoded before it is renamed into place (an interrupted run leaves no half file behind)."""
    return path.with_name(f"{path.stem}.part{path.suffix}")


def _tool_file(path: Path, commands: Sequence[Sequence[str]], seconds: float) -> Path:
    from audio_fixtures import write_audio

    source = write_audio(path.with_suffix(".wav"), fmt="wav", seconds=seconds, sample_rate=48000, kind="tone")
    for command in commands:
        subprocess.run([part.format(src=source, out=path) for part in command], check=True)
    source.unlink()
    return path


def main(
    rounds: int = ROUNDS, pairs: int = PAIRS_PER_ROUND, formats: Sequence[str] = (), keep: Path | None = None
) -> list[dict[str, Any]]:
    """Meter one file per fixture format and length; print and return the ratio to ``cat`` per file.

    ``formats`` (on the command line: the row names, fixture formats, ``EXTRA`` or ``TOOLS`` rows) limits the run
    to those rows. ``keep`` (``--keep DIR``): encode the files into ``DIR`` and reuse the ones already there, so a
    re-run measures without re-encoding (twenty minutes of forty formats take minutes to encode; the files depend on
    the encoders only, not on Earshot's code). Without it the files live in a temporary directory.
    """
    sys.path.insert(0, str(REPO / "tests"))  # the shared audio fixture generator
    from audio_fixtures import FORMATS, decoded_duration, encode_tone, write_audio

    from earshot.audio.lengths.identify import identify
    from earshot.config import get_settings
    from earshot.metering import meter_duration

    ffprobe = get_settings().resolved_ffprobe()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as scratch:
        tmp = str(keep) if keep is not None else scratch
        Path(tmp).mkdir(parents=True, exist_ok=True)
        files: list[tuple[str, float, Path]] = []
        for seconds in LENGTHS:
            for fmt in FORMATS:
                if formats and fmt not in formats:
                    continue
                if seconds > 60 and fmt.endswith("_video"):
                    continue  # video fixtures take minutes to encode at length; the audio formats carry the point
                path = Path(tmp) / f"{fmt}-{seconds:.0f}"
                if not path.exists():
                    write_audio(_part(path), fmt=fmt, seconds=seconds, kind="tone").rename(path)
                meter_duration(path, ffprobe=ffprobe)  # warm-up: page cache, binary
                files.append((fmt, seconds, path))
            for name, container, codec, rate in EXTRA:
                if formats and name not in formats:
                    continue
                path = Path(tmp) / f"{name}-{seconds:.0f}"
                if not path.exists():
                    encode_tone(_part(path), container, codec, seconds, rate, bit_rate=BIT_RATES.get(name)).rename(path)
                meter_duration(path, ffprobe=ffprobe)
                files.append((name, seconds, path))
            for name, commands in TOOLS:
                if formats and name not in formats:
                    continue
                path = Path(tmp) / f"{name}-{seconds:.0f}.webm"
                if not path.exists():
                    _tool_file(_part(path), commands, seconds).rename(path)
                meter_duration(path, ffprobe=ffprobe)
                files.append((name, seconds, path))
        timings: dict[Path, list[float]] = {path: [] for _, _, path in files}
        cats: dict[Path, list[float]] = {path: [] for _, _, path in files}
        for _ in range(rounds):
            for _, _, path in files:
                for _ in range(pairs):
                    started = time.perf_counter()
                    meter_duration(path, ffprobe=ffprobe)
                    timings[path].append((time.perf_counter() - started) * 1000)
                    started = time.perf_counter()
                    subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=True)
                    cats[path].append((time.perf_counter() - started) * 1000)
        for fmt, seconds, path in files:
            metered = meter_duration(path, ffprobe=ffprobe)
            with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
                in_process = identify(data) is not None
            ratios = sorted(m / c for m, c in zip(timings[path], cats[path], strict=True))
            rows.append(
                {
                    "format": fmt,
                    "seconds": seconds,
                    "mib": round(path.stat().st_size / 2**20, 1),
                    "identified": "in-process" if in_process else "ffprobe",
                    "source": metered.source,
                    "n": len(ratios),
                    "p50_ms": round(statistics.median(timings[path]), 2),
                    "cat_p50_ms": round(statistics.median(cats[path]), 2),
                    "x_cat": round(statistics.median(ratios), 2),
                    "x_cat_p10": round(ratios[len(ratios) // 10], 2),
                    "x_cat_p90": round(ratios[len(ratios) * 9 // 10], 2),
                    "error_ms": round((metered.seconds - decoded_duration(path)) * 1000, 3),
                }
            )
            _print(rows[-1])
    return rows


def _print(row: dict[str, Any]) -> None:
    print(
        f"| {row['format']} | {row['seconds']:.0f} | {row['mib']} | {row['identified']} | {row['source']} "
        f"| {row['p50_ms']} | {row['cat_p50_ms']} | {row['x_cat']} | {row['x_cat_p10']}-{row['x_cat_p90']} "
        f"| {row['error_ms']} | {'meets' if row['x_cat'] <= 2 else 'MISSES'} |",
        flush=True,
    )


if __name__ == "__main__":
    arguments = sys.argv[1:]
    kept = None
    if "--keep" in arguments:
        at = arguments.index("--keep")
        kept = Path(arguments[at + 1])
        del arguments[at : at + 2]
    main(formats=arguments, keep=kept)
