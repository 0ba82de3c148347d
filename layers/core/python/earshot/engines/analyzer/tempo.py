"""Tempo and beat strength from the onset (spectral flux) track."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

# The decoder's demuxer whitelist: the analyzer opens uploads exactly as safely as the speech path does.
from earshot.engines.analyzer._types import F32, F64, Bools
from earshot.engines.analyzer.report import Tempo
from earshot.engines.analyzer.timeline import _SEGMENT_FRAMES
from earshot.engines.analyzer.tracks import _FRAME_RATE

# --- tempo ------------------------------------------------------------------------------------------------------
_TEMPO_WINDOW_FRAMES = 800  # 8-s autocorrelation windows, half overlapping, for the tempo
_ONSET_SMOOTHING = np.array([1, 2, 3, 2, 1], dtype=np.float32) / 9
_LOCAL_RHYTHM_FRAMES = 400  # 4 s around each second, for whether that second has a beat
_TEMPO_MIN_BPM = 40.0
_TEMPO_MAX_BPM = 240.0
_TEMPO_PRIOR_BPM = 120.0  # octave errors are resolved towards the tempo listeners usually tap
_MIN_TEMPO_SEC = 2.0
_RHYTHMIC_CONFIDENCE = 0.3
_MIN_ONSET_VARIANCE = 0.1**2  # of the onset strength in a window (log-magnitude units): below it, no onsets


@dataclass(frozen=True)
class _Rhythm:
    tempo: Tempo
    strength: F32  # per second: how periodic the onsets around it are (0..1)


def _rhythm(flux: F32) -> _Rhythm:
    """Tempo from the autocorrelation of the onset strength, averaged over 8-s windows; and, per second, how
    periodic the onsets in the 4 s around it are.

    Each window's onset curve is mean-removed and autocorrelated (unbiased, normalised to 1 at lag 0); windows
    with hardly any onsets are left out. The tempo is the lag between 40 and 240 BPM where the mean
    autocorrelation, weighted towards 120 BPM by a one-octave log-normal prior, peaks; the peaks at its multiples
    refine it below one frame. Its confidence is the mean autocorrelation there: ~1 for a metronome, below 0.3
    for speech or noise, where no tempo is reported.
    """
    seconds = -(-len(flux) // _SEGMENT_FRAMES)
    # A little smoothing spreads each onset over a few frames, so a beat period that falls between two whole
    # frames still makes one autocorrelation peak instead of two half ones.
    flux = np.convolve(flux, _ONSET_SMOOTHING, mode="same").astype(np.float32)
    shortest = math.floor(60 / _TEMPO_MAX_BPM * _FRAME_RATE)
    longest = math.ceil(60 / _TEMPO_MIN_BPM * _FRAME_RATE)
    if len(flux) < _MIN_TEMPO_SEC * _FRAME_RATE:
        return _Rhythm(Tempo(bpm=None, confidence=0.0), np.zeros(seconds, np.float32))

    length = min(_LOCAL_RHYTHM_FRAMES, len(flux))
    centred = np.arange(seconds) * _SEGMENT_FRAMES + (_SEGMENT_FRAMES - length) // 2
    local, usable = _onset_autocorrelation(flux, np.clip(centred, 0, len(flux) - length), length, longest + 1)
    lags = np.arange(shortest, min(longest, local.shape[1] - 2) + 1)
    strength = (np.clip(local[:, lags].max(axis=1), 0, 1) * usable).astype(np.float32)

    length = min(_TEMPO_WINDOW_FRAMES, len(flux))
    starts = np.arange(0, len(flux) - length + 1, length // 2)
    if starts[-1] + length < len(flux):
        starts = np.append(starts, len(flux) - length)
    windows, usable = _onset_autocorrelation(flux, starts, length, 4 * longest + 2)
    if not usable.any():
        return _Rhythm(Tempo(bpm=None, confidence=0.0), strength)
    mean = windows[usable].mean(axis=0)
    lags = np.arange(shortest, min(longest, (len(mean) - 1) // 2) + 1)
    prior = np.exp(-0.5 * np.square(np.log2(60 * _FRAME_RATE / lags / _TEMPO_PRIOR_BPM)))
    peaks = (mean[lags] >= mean[lags - 1]) & (mean[lags] >= mean[lags + 1])
    if not peaks.any():
        return _Rhythm(Tempo(bpm=None, confidence=0.0), strength)
    # A beat's double is a beat too: crediting half the autocorrelation at twice the lag favours the lag whose
    # multiples also recur (kick-snare bars) over one that only matches an off-beat pattern.
    score = (mean[lags] + 0.5 * mean[2 * lags]) * prior
    best = int(lags[np.argmax(np.where(peaks, score, -np.inf))])
    confidence = float(np.clip(mean[best], 0, 1))
    if confidence < _RHYTHMIC_CONFIDENCE:
        return _Rhythm(Tempo(bpm=None, confidence=round(confidence, 2)), strength)
    period = _refined_period(mean, best)
    return _Rhythm(Tempo(bpm=round(60 * _FRAME_RATE / period, 1), confidence=round(confidence, 2)), strength)


def _onset_autocorrelation(flux: F32, starts: npt.NDArray[np.int64], length: int, lags: int) -> tuple[F64, Bools]:
    """Normalised, unbiased autocorrelation (``lags`` lags) of the onset strength in windows of ``length`` frames
    from ``starts``, and which windows have onsets enough to mean anything."""
    windows = flux[starts[:, None] + np.arange(length)].astype(np.float64)
    windows -= windows.mean(axis=1, keepdims=True)
    lags = min(lags, length - 1)
    size = 1 << math.ceil(math.log2(2 * length))
    autocorrelation = np.fft.irfft(np.square(np.abs(np.fft.rfft(windows, size, axis=1))), size, axis=1)[:, :lags]
    autocorrelation /= length - np.arange(lags)  # mean products; unbiased: longer lags overlap less
    variance = autocorrelation[:, :1]
    # Windows with hardly any onsets (steady tones, silence) have no rhythm, only numerical noise to correlate.
    usable: Bools = variance[:, 0] >= _MIN_ONSET_VARIANCE
    normalised: F64 = autocorrelation / np.maximum(variance, _MIN_ONSET_VARIANCE)
    return normalised, usable


def _refined_period(autocorrelation: F64, lag: int) -> float:
    """The beat period in frames, from the parabolic peaks at ``lag`` and its multiples (each one /k)."""
    estimates = []
    for multiple in range(1, 5):
        centre = lag * multiple
        if centre + 2 >= len(autocorrelation):
            break
        # The multiple's own peak may sit a frame or two off k * lag.
        centre += int(np.argmax(autocorrelation[centre - 1 : centre + 2])) - 1
        left, middle, right = autocorrelation[centre - 1 : centre + 2]
        curvature = left - 2 * middle + right
        shift = 0.5 * (left - right) / curvature if curvature < 0 else 0.0
        estimates.append((centre + float(np.clip(shift, -0.5, 0.5))) / multiple)
    return float(np.mean(estimates)) if estimates else float(lag)
