"""Silence, speech, music: the per-second content timeline and the pitch range."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

# The decoder's demuxer whitelist: the analyzer opens uploads exactly as safely as the speech path does.
from earshot.engines.analyzer._types import F32, F64, Bools, ContentLabel
from earshot.engines.analyzer.report import PitchRange, TimelineSpan
from earshot.engines.analyzer.tracks import _ENERGY_FLOOR_DB, _FRAME_RATE, _Tracks

# --- silence, content and timeline -----------------------------------------------------------------------------
_SILENCE_ABSOLUTE_DBFS = -60.0  # frames quieter than this are silent, however quiet the whole file is
_SILENCE_BELOW_LOUD_DB = 35.0  # ... and so are frames this far below the loud frames (95th percentile)
_MIN_SILENCE_SEC = 0.5  # shorter quiet gaps are pauses inside the sound around them
_SEGMENT_FRAMES = 100  # content is classified per second ...
_CONTEXT_FRAMES = 50  # ... from features over that second and half a second either side
_MAX_TIMELINE_SPANS = 100

_MIN_PITCH_FRAMES = 5


_LABELS: tuple[ContentLabel, ...] = ("silence", "speech", "music", "other")
_SILENCE, _SPEECH, _MUSIC, _OTHER = range(4)


def _silent_frames(energy_db: F32) -> Bools:
    """Frames in silences: quiet runs of at least ``_MIN_SILENCE_SEC``, or any quiet run at either end of the file.

    Quiet means below -60 dBFS, or 35 dB under the loud frames (95th percentile), so room tone between
    sentences is silence too. Shorter quiet runs between sounds are pauses that belong to them.
    """
    threshold = max(_SILENCE_ABSOLUTE_DBFS, float(np.percentile(energy_db, 95)) - _SILENCE_BELOW_LOUD_DB)
    quiet = energy_db < threshold
    edges = np.flatnonzero(np.diff(np.concatenate([[0], quiet.astype(np.int8), [0]])))
    starts, ends = edges[::2], edges[1::2]
    pause = ((ends - starts) < _MIN_SILENCE_SEC * _FRAME_RATE) & (starts > 0) & (ends < len(quiet))
    change = np.zeros(len(quiet) + 1, dtype=np.int64)
    np.add.at(change, starts[pause], 1)
    np.add.at(change, ends[pause], -1)
    silent: Bools = quiet & (np.cumsum(change)[:-1] == 0)
    return silent


def _label_frames(tracks: _Tracks, silent: Bools, rhythm: F32) -> npt.NDArray[np.int8]:
    """Label every frame silence, speech, music or other.

    Each second that is not all silence is classified from features over itself and half a second either side
    (the change cue looks 1.5 s either side), as a documented heuristic built on classic speech/music
    discrimination cues (Saunders 1996; Scheirer & Slaney 1997), not a trained model:

    - speech has *syllabic dips* (many frames 12 dB under the loud ones, from gaps between syllables), an
      unsteady spectrum, and either a pitch that glides frame to frame or, whispered, a spectrum that is not
      noise-flat; and it has no steady beat.
    - music has a steady beat (periodic onsets), or sustained notes (a stable spectrum whose partials stand
      out of its envelope, pitch that holds) that change at least once in four seconds.
    - everything else is other: steady noise, hum, a constant test tone, isolated effects.

    A lone second that disagrees with identical neighbours takes their label.
    """
    count = len(silent)
    seconds = -(-count // _SEGMENT_FRAMES)
    sounding = ~silent & (tracks.energy_db > _ENERGY_FLOOR_DB)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows (silent seconds) give NaN features
        energy = _around_each_second(tracks.energy_db, seconds, _CONTEXT_FRAMES)
        active = _around_each_second(~silent, seconds, _CONTEXT_FRAMES) > 0
        heard = _around_each_second(sounding, seconds, _CONTEXT_FRAMES) > 0
        loud = np.nanpercentile(np.where(heard, energy, np.nan), 90, axis=1)
        dips = np.sum(active & (energy < loud[:, None] - 12), axis=1) / np.sum(active, axis=1)
        stability = np.nanmedian(
            np.where(heard, _around_each_second(tracks.stability, seconds, _CONTEXT_FRAMES), np.nan), axis=1
        )
        # The third-lowest: a change of note or chord lasts several frames; a one-frame glitch (a codec's last
        # frame, a click) is not one.
        least_stable = np.sort(_around_each_second(tracks.stability, seconds, 3 * _CONTEXT_FRAMES), axis=1)[:, 2]
        flatness = np.nanmedian(
            np.where(heard, _around_each_second(tracks.flatness, seconds, _CONTEXT_FRAMES), np.nan), axis=1
        )
        tonality = np.nanmedian(
            np.where(heard, _around_each_second(tracks.tonality, seconds, _CONTEXT_FRAMES), np.nan), axis=1
        )
        pitch = _around_each_second(tracks.f0_hz, seconds, _CONTEXT_FRAMES)
        voiced_frames = heard & ~np.isnan(pitch)
        voiced = np.sum(voiced_frames, axis=1) / np.sum(heard, axis=1)
        semitones = 12 * np.log2(pitch)
        steps = np.where(voiced_frames[:, 1:] & voiced_frames[:, :-1], np.abs(np.diff(semitones, axis=1)), np.nan)
        glide = np.nanmedian(steps, axis=1)

    dips, stability, least_stable, flatness, tonality, voiced, glide = (
        np.nan_to_num(value, nan=fill)
        for value, fill in (
            (dips, 0.0),
            (stability, 1.0),
            (least_stable, 1.0),
            (flatness, 1.0),
            (tonality, 0.0),
            (voiced, 0.0),
            (glide, 0.0),
        )
    )
    voice = np.where(voiced >= 0.15, _ramp(glide, 0.015, 0.04), _ramp(flatness, 0.3, 0.15))
    speech = _ramp(dips, 0.08, 0.2) * _ramp(stability, 0.95, 0.85) * voice * _ramp(rhythm, 0.7, 0.5)
    notes = (
        _ramp(stability, 0.85, 0.95)
        * _ramp(tonality, 0.6, 0.8)
        * _ramp(glide, 0.05, 0.03)
        * _ramp(least_stable, 0.98, 0.9)
    )
    music = np.maximum(_ramp(rhythm, 0.55, 0.75), notes)
    per_second = np.where((speech >= 0.5) & (speech >= music), _SPEECH, np.where(music >= 0.5, _MUSIC, _OTHER))
    per_second = np.where(np.sum(heard[:, _CONTEXT_FRAMES:-_CONTEXT_FRAMES], axis=1) > 0, per_second, _SILENCE)
    # A lone second between two seconds of the same (non-silent) kind is taken as that kind.
    if seconds >= 3:
        before, after, middle = per_second[:-2], per_second[2:], per_second[1:-1]
        lone = (before == after) & (middle != before) & (before != _SILENCE) & (middle != _SILENCE)
        per_second[1:-1] = np.where(lone, before, middle)
    labels = np.repeat(per_second.astype(np.int8), _SEGMENT_FRAMES)[:count]
    labels[silent] = _SILENCE
    return labels


def _labels_from_models(
    labels: npt.NDArray[np.int8],
    silent: Bools,
    speech: Sequence[tuple[float, float]],
    music: Sequence[tuple[float, float]] | None,
) -> npt.NDArray[np.int8]:
    """Speech where the voice-activity model found it, music where the tagger did, other sound elsewhere."""
    times = np.arange(len(labels)) / _FRAME_RATE

    def inside(spans: Sequence[tuple[float, float]]) -> Bools:
        mask = np.zeros(len(labels), dtype=bool)
        for start, end in spans:
            mask |= (times >= start) & (times < end)
        return mask

    other = np.where(labels == _SPEECH, _OTHER, labels) if music is None else np.full(len(labels), _OTHER)
    if music is not None:
        other = np.where(inside(music), _MUSIC, other)
    result = np.where(inside(speech), _SPEECH, other)
    return np.where(silent, _SILENCE, result).astype(np.int8)


def _around_each_second(track: npt.NDArray[Any], seconds: int, context: int) -> F32:
    """Rows of ``track`` values over each second and ``context`` frames either side (NaN beyond the ends)."""
    padded = np.full(seconds * _SEGMENT_FRAMES + 2 * context, np.nan, dtype=np.float32)
    padded[context : context + len(track)] = track
    return sliding_window_view(padded, _SEGMENT_FRAMES + 2 * context)[::_SEGMENT_FRAMES][:seconds]


def _ramp(value: F64 | F32, zero_at: float, one_at: float) -> F64:
    """0 at ``zero_at``, 1 at ``one_at``, linear between (either direction)."""
    return np.clip((np.asarray(value, dtype=np.float64) - zero_at) / (one_at - zero_at), 0.0, 1.0)


def _timeline(labels: npt.NDArray[np.int8], duration: float) -> list[TimelineSpan]:
    """Runs of one label as spans; past ``_MAX_TIMELINE_SPANS``, ever longer short spans fold into their predecessor."""
    edges = np.flatnonzero(np.diff(labels)) + 1
    starts = np.concatenate([[0], edges])
    ends = np.concatenate([edges, [len(labels)]])
    spans = [
        [float(start) / _FRAME_RATE, float(end) / _FRAME_RATE, int(labels[start])]
        for start, end in zip(starts, ends, strict=True)
    ]
    spans[-1][1] = max(duration, spans[-1][0])
    shortest = 1.0
    while len(spans) > _MAX_TIMELINE_SPANS:
        folded: list[list[float]] = []
        for span in spans:
            if folded and (span[1] - span[0] < shortest or folded[-1][2] == span[2]):
                folded[-1][1] = span[1]
            else:
                folded.append(span)
        spans, shortest = folded, shortest * 2
    return [
        TimelineSpan(start=round(start, 2), end=round(end, 2), label=_LABELS[int(label)]) for start, end, label in spans
    ]


def _pitch_range(f0_hz: F32, frames: Bools) -> PitchRange | None:
    """Median and 10th-90th percentile pitch of the periodic frames among ``frames``."""
    voiced = frames & ~np.isnan(f0_hz)
    if np.count_nonzero(voiced) < _MIN_PITCH_FRAMES:
        return None
    low, median, high = np.percentile(f0_hz[voiced], [10, 50, 90])
    return PitchRange(
        median_hz=round(float(median), 1),
        p10_hz=round(float(low), 1),
        p90_hz=round(float(high), 1),
        voiced_share=round(np.count_nonzero(voiced) / np.count_nonzero(frames), 3),
    )
