"""16 kHz frame tracks: energy, spectral flatness, tonality, flux, stability and YIN pitch, every 10 ms."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

# The decoder's demuxer whitelist: the analyzer opens uploads exactly as safely as the speech path does.
from earshot.audio.decode import SAMPLE_RATE
from earshot.engines.analyzer._types import F32

# --- 16 kHz frame tracks ------------------------------------------------------------------------------------
_HOP = 160  # 10 ms
_WINDOW = 512  # 32 ms: spectra and energy; also YIN's integration window
_YIN_MIN_HZ = 50.0
_YIN_MAX_HZ = 1000.0
_YIN_MAX_LAG = int(SAMPLE_RATE / _YIN_MIN_HZ)  # 320
_YIN_MIN_LAG = int(SAMPLE_RATE / _YIN_MAX_HZ)  # 16
_YIN_FRAME = _WINDOW + _YIN_MAX_LAG
_YIN_FFT = 2048
_YIN_THRESHOLD = 0.15  # the first dip of the normalised difference below this is the period
_VOICED_APERIODICITY = 0.25  # frames whose best dip is deeper than this are periodic (voiced)
_BLOCK_FRAMES = 2000  # 20 s of frames at a time bounds the FFT working set (~40 MB)
_FRAME_RATE = SAMPLE_RATE / _HOP
_SPECTRUM_LOW_BIN = 2  # 62.5 Hz
_SPECTRUM_HIGH_BIN = 240  # 7.5 kHz
_TONALITY_NEIGHBOURS = 33  # bins (~1 kHz) of the spectral envelope that tonality is measured against
_STABILITY_LAG = 5  # frames (50 ms) between the spectra compared for stability
_ENERGY_FLOOR_DB = -100.0


@dataclass(frozen=True)
class _Tracks:
    """One value per 10-ms frame."""

    energy_db: F32  # level of the 32-ms window, dBFS (floored at -100)
    flatness: F32  # spectral flatness 62.5 Hz-7.5 kHz: ~0 for tones, towards 1 for white noise
    tonality: F32  # 1 - flatness of the whitened spectrum: ~0.45 for noise of any colour, ~1 for sustained notes
    flux: F32  # onset strength: rise of the log spectrum since the previous frame
    stability: F32  # cosine similarity of the magnitude spectrum with 50 ms earlier (NaN for the first frames)
    f0_hz: F32  # YIN pitch, NaN when aperiodic


def _frame_tracks(pcm: npt.NDArray[np.int16]) -> _Tracks:
    """Per-frame features in blocks of ``_BLOCK_FRAMES``, so the working set stays bounded for long files.

    Flux and stability compare a frame with earlier ones, so the last frames of each block carry over.
    """
    # Every frame's spectral window lies inside the audio (a window running past the end would look like a
    # change of sound); YIN's longer frames read zeros past it.
    count = max(1, (len(pcm) - _WINDOW) // _HOP + 1)
    window = np.hanning(_WINDOW).astype(np.float32)
    parts: list[tuple[F32, ...]] = []
    earlier = np.zeros((0, _WINDOW // 2 + 1), dtype=np.float32)  # magnitude spectra of the frames before
    for first in range(0, count, _BLOCK_FRAMES):
        last = min(count, first + _BLOCK_FRAMES)
        start, stop = first * _HOP, (last - 1) * _HOP + _YIN_FRAME
        samples = np.zeros(stop - start, dtype=np.float32)
        chunk = pcm[start:stop]
        samples[: len(chunk)] = chunk
        samples /= 32768.0
        frames = sliding_window_view(samples, _YIN_FRAME)[::_HOP]
        head = frames[:, :_WINDOW]

        energy = np.mean(np.square(head), axis=1)
        energy_db = (10 * np.log10(np.maximum(energy, 10 ** (_ENERGY_FLOOR_DB / 10)))).astype(np.float32)
        magnitudes = np.abs(np.fft.rfft(head * window, axis=1)).astype(np.float32)
        band = np.square(magnitudes[:, _SPECTRUM_LOW_BIN:_SPECTRUM_HIGH_BIN]) + np.float32(1e-12)
        flatness = (np.exp(np.mean(np.log(band), axis=1)) / np.mean(band, axis=1)).astype(np.float32)
        flux, stability = _spectral_change(magnitudes, earlier)
        earlier = magnitudes[-_STABILITY_LAG:]
        parts.append((energy_db, flatness, _tonality(band), flux, stability, _yin(frames)))

    columns = [np.concatenate(column).astype(np.float32) for column in zip(*parts, strict=True)]
    return _Tracks(*columns)


def _spectral_change(magnitudes: F32, earlier: F32) -> tuple[F32, F32]:
    """Onset strength (mean rise of the log-compressed spectrum since the frame before) and stability (cosine
    similarity with the spectrum ``_STABILITY_LAG`` frames before) of each frame; ``earlier`` holds the last
    frames of the block before, if any."""
    joined = np.concatenate([earlier, magnitudes])
    offset = len(earlier)
    compressed = np.log1p(np.float32(100.0) * joined)
    rise = np.maximum(np.diff(compressed, axis=0), 0).mean(axis=1)
    flux = np.zeros(len(magnitudes), dtype=np.float32)  # the very first frame has nothing to rise from
    flux[len(magnitudes) - len(rise[max(0, offset - 1) :]) :] = rise[max(0, offset - 1) :]
    stability = np.full(len(magnitudes), np.nan, dtype=np.float32)
    if len(joined) > _STABILITY_LAG:
        now, then = joined[_STABILITY_LAG:], joined[:-_STABILITY_LAG]
        norms = np.linalg.norm(now, axis=1) * np.linalg.norm(then, axis=1) + np.float32(1e-12)
        similarity = (np.sum(now * then, axis=1) / norms)[max(0, offset - _STABILITY_LAG) :]
        stability[len(magnitudes) - len(similarity) :] = similarity
    return flux, stability


def _tonality(power: F32) -> F32:
    """1 minus the spectral flatness of each frame's power after dividing out its smoothed envelope (~1 kHz).

    Whitening first makes noise of any colour (white, pink, brown) score the same low value (~0.45), where the
    plain flatness calls brown noise tonal; sustained notes, whose partials stand out of the envelope, score
    near 1.
    """
    half = _TONALITY_NEIGHBOURS // 2
    # float64: a running sum over values spanning 20 decades loses the small ones in float32
    running = np.cumsum(np.pad(power.astype(np.float64), ((0, 0), (half + 1, half)), mode="edge"), axis=1)
    envelope = (running[:, _TONALITY_NEIGHBOURS:] - running[:, :-_TONALITY_NEIGHBOURS]) / _TONALITY_NEIGHBOURS
    whitened = power / np.maximum(envelope, 1e-12)
    flatness = np.exp(np.mean(np.log(whitened), axis=1)) / np.mean(whitened, axis=1)
    tonality: F32 = (1 - flatness).astype(np.float32)
    return tonality


def _yin(frames: npt.NDArray[np.float32]) -> F32:
    """YIN (de Cheveigné & Kawahara 2002) on every frame at once: the pitch in Hz, NaN where aperiodic.

    The difference function comes from FFT cross-correlation and running energies, not a loop over lags.
    """
    lags = np.arange(_YIN_MAX_LAG + 1)
    spectrum = np.fft.rfft(frames, _YIN_FFT, axis=1)
    head = np.fft.rfft(frames[:, :_WINDOW], _YIN_FFT, axis=1)
    correlation = np.fft.irfft(np.conj(head) * spectrum, _YIN_FFT, axis=1)[:, : _YIN_MAX_LAG + 1]
    running = np.concatenate([np.zeros((len(frames), 1), np.float32), np.cumsum(np.square(frames), axis=1)], axis=1)
    energy_now = running[:, _WINDOW][:, None]
    energy_later = running[:, lags + _WINDOW] - running[:, lags]
    difference = np.maximum(energy_now + energy_later - 2 * correlation, 0)
    # Cumulative-mean-normalised difference d'(t) = d(t) * t / sum(d(1..t)); d'(0) = 1.
    cumulative = np.cumsum(difference[:, 1:], axis=1)
    normalised = np.ones_like(difference)
    with np.errstate(divide="ignore", invalid="ignore"):
        normalised[:, 1:] = np.where(cumulative > 0, difference[:, 1:] * lags[1:] / cumulative, 1.0)

    search = normalised[:, _YIN_MIN_LAG:]
    below = search < _YIN_THRESHOLD
    columns = np.arange(search.shape[1])
    has_dip = below.any(axis=1)
    first = np.argmax(below, axis=1)
    # The dip's bottom: the minimum of the run of below-threshold lags that starts at the first one.
    after_run = (~below) & (columns > first[:, None])
    run_end = np.where(after_run.any(axis=1), np.argmax(after_run, axis=1), search.shape[1])
    in_run = (columns >= first[:, None]) & (columns < run_end[:, None])
    best = np.where(has_dip, np.argmin(np.where(in_run, search, np.inf), axis=1), np.argmin(search, axis=1))
    rows = np.arange(len(frames))
    aperiodicity = search[rows, best]
    # Parabolic interpolation between neighbouring lags refines the period below one sample.
    lag = best + _YIN_MIN_LAG
    left = normalised[rows, np.maximum(lag - 1, 1)]
    centre = normalised[rows, lag]
    right = normalised[rows, np.minimum(lag + 1, _YIN_MAX_LAG)]
    curvature = left - 2 * centre + right
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(curvature > 0, 0.5 * (left - right) / curvature, 0.0)
    period = lag + np.clip(shift, -0.5, 0.5)
    f0: F32 = np.where(aperiodicity < _VOICED_APERIODICITY, SAMPLE_RATE / period, np.nan).astype(np.float32)
    return f0
