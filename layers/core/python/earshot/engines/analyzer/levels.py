"""Native-rate metering: BS.1770-4 loudness, EBU R128 loudness range, true peak, clipping, stereo image, spectrum."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

# The decoder's demuxer whitelist: the analyzer opens uploads exactly as safely as the speech path does.
from earshot.engines.analyzer._types import F64, Bools
from earshot.engines.analyzer.report import Clipping, FrequencyBand, Loudness, Spectrum, StereoImage

# --- native-rate metering ---------------------------------------------------------------------------------------
_SUBBLOCK_SEC = 0.1  # BS.1770 gating blocks are 400 ms with 75% overlap: four 100-ms sub-blocks each
_MOMENTARY_SUBBLOCKS = 4
_SHORT_TERM_SUBBLOCKS = 30  # 3 s, for the loudness range
_ABSOLUTE_GATE_LUFS = -70.0
_RELATIVE_GATE_LU = -10.0
_RANGE_RELATIVE_GATE_LU = -20.0
_SURROUND_WEIGHT = 1.41  # BS.1770-4 Table 3: side and back channels; LFE is left out
_SURROUND = frozenset({"BL", "BR", "BC", "SL", "SR", "SDL", "SDR"})  # ffmpeg's names for them
_TRUE_PEAK_MAX_RATE = 96_000  # at 96 kHz and above the samples are already dense enough
# A sample this close to full scale (-0.01 dBFS) counts as clipped; decoded 16-bit full scale is 32767/32768.
_CLIP_LEVEL = 0.999
_MIN_CLIPPED_RUN = 3  # consecutive clipped samples: a flat top, not a peak that merely touches full scale
# BS.1770-4 Annex 2: the 4x oversampling interpolator, 12 taps per phase (phases 3 and 4 mirror 2 and 1).
_TRUE_PEAK_PHASE_0 = (
    0.0017089843750, 0.0109863281250, -0.0196533203125, 0.0332031250000, -0.0594482421875, 0.1373291015625,
    0.9721679687500, -0.1022949218750, 0.0476074218750, -0.0266113281250, 0.0148925781250, -0.0083007812500,
)  # fmt: skip
_TRUE_PEAK_PHASE_1 = (
    -0.0291748046875, 0.0292968750000, -0.0517578125000, 0.0891113281250, -0.1665039062500, 0.4650878906250,
    0.7797851562500, -0.2003173828125, 0.1015625000000, -0.0582275390625, 0.0330810546875, -0.0189208984375,
)  # fmt: skip
_TRUE_PEAK_PHASES = np.array(
    [_TRUE_PEAK_PHASE_0, _TRUE_PEAK_PHASE_1, _TRUE_PEAK_PHASE_1[::-1], _TRUE_PEAK_PHASE_0[::-1]], dtype=np.float64
)
_SHELF_HZ = 1681.974450955533  # centre of the K-weighting's high shelf
# The impulse response of the K-weighting filters is cut where it has decayed below this share of its peak.
_IMPULSE_RESPONSE_FLOOR = 1e-10
# Long-term spectrum bands (Hz), named as audio engineers name them.
_BANDS: tuple[tuple[str, float, float], ...] = (
    ("sub-bass", 20.0, 60.0),
    ("bass", 60.0, 250.0),
    ("low-mid", 250.0, 500.0),
    ("mid", 500.0, 2000.0),
    ("upper-mid", 2000.0, 4000.0),
    ("presence", 4000.0, 6000.0),
    ("brilliance", 6000.0, 20000.0),
)
_DOMINANT_SHARE = 0.6  # dominant bands: the fewest (at most three) that hold this share of the energy
_ROLLOFF_SHARE = 0.95


@dataclass(frozen=True)
class _Levels:
    samples: int
    loudness: Loudness
    clipping: Clipping
    stereo: StereoImage | None
    spectrum: Spectrum


class _LevelMeter:
    """Streams planar float blocks through loudness, peak, clipping, stereo and spectrum measurements.

    Decoded frames are buffered into one-second blocks (ten BS.1770 sub-blocks) so every block ends on a
    sub-block boundary; filters and interpolators carry their history from block to block.
    """

    def __init__(self, rate: int, weights: F64) -> None:
        self.rate = rate
        self.channels = len(weights)
        self._weights = weights
        self._subblock = max(1, round(rate * _SUBBLOCK_SEC))
        self._block = 10 * self._subblock
        self._pending: list[F64] = []
        self._pending_samples = 0
        self.samples = 0
        # K-weighting as overlap-save convolution
        self._taps = _k_weighting_impulse_response(rate)
        self._filter_history = np.zeros((self.channels, len(self._taps) - 1))
        self._taps_spectra: dict[int, npt.NDArray[np.complex128]] = {}
        self._subblock_energy: list[F64] = []
        # peaks and clipping
        self._sample_peak = 0.0
        self._true_peak = 0.0
        self._oversample = rate < _TRUE_PEAK_MAX_RATE
        self._peak_history = np.zeros((self.channels, _TRUE_PEAK_PHASES.shape[1] - 1))
        self._clipped_samples = 0
        self._clipped_runs = 0
        self._open_runs = np.zeros(self.channels, dtype=np.int64)
        # stereo image: sums of L*L, R*R, L*R
        self._stereo = np.zeros(3)
        # long-term spectrum of the downmix (LFE left out)
        self._fft_size = 1 << max(8, round(math.log2(rate / 12)))  # ~12 Hz resolution
        self._spectrum = np.zeros(self._fft_size // 2 + 1)
        self._spectrum_frames = 0
        self._spectrum_carry = np.zeros(0)
        self._downmix = (weights > 0) / max(1, int(np.count_nonzero(weights > 0)))

    def add(self, planar: npt.NDArray[Any]) -> None:
        """Take one decoded frame, shape (channels, samples)."""
        block = np.asarray(planar, dtype=np.float64)
        if block.ndim != 2 or block.shape[0] != self.channels or block.shape[1] == 0:
            return
        # Float files can carry NaN or infinity; count them as silence and full scale, never as NaN in a report.
        block = np.nan_to_num(block, nan=0.0, posinf=1.0, neginf=-1.0)
        self._pending.append(block)
        self._pending_samples += block.shape[1]
        if self._pending_samples >= self._block:
            joined = np.concatenate(self._pending, axis=1)
            whole = joined.shape[1] // self._block * self._block
            self._measure(joined[:, :whole])
            rest = joined[:, whole:]
            self._pending = [rest] if rest.shape[1] else []
            self._pending_samples = rest.shape[1]

    def finish(self) -> _Levels:
        if self._pending_samples:
            self._measure(np.concatenate(self._pending, axis=1))
            self._pending = []
        self._clipped_runs += int(np.count_nonzero(self._open_runs >= _MIN_CLIPPED_RUN))
        total = self.samples * self.channels
        return _Levels(
            samples=self.samples,
            loudness=self._loudness(),
            clipping=Clipping(
                detected=self._clipped_runs > 0,
                clipped_sample_share=round(self._clipped_samples / total, 6) if total else 0.0,
                clipped_runs=self._clipped_runs,
            ),
            stereo=self._stereo_image() if self.channels >= 2 else None,
            spectrum=self._long_term_spectrum(),
        )

    # --- per block ---------------------------------------------------------------------------------------

    def _measure(self, block: F64) -> None:
        self.samples += block.shape[1]
        magnitude = np.abs(block)
        self._sample_peak = max(self._sample_peak, float(magnitude.max()))
        self._measure_true_peak(block)
        self._measure_clipping(magnitude >= _CLIP_LEVEL)
        weighted = self._k_weight(block)
        whole = weighted.shape[1] // self._subblock
        if whole:
            squares = np.square(weighted[:, : whole * self._subblock])
            self._subblock_energy.append(squares.reshape(self.channels, whole, self._subblock).sum(axis=2))
        if self.channels >= 2:
            left, right = block[0], block[1]
            self._stereo += (np.dot(left, left), np.dot(right, right), np.dot(left, right))
        self._measure_spectrum(self._downmix @ block)

    def _k_weight(self, block: F64) -> F64:
        """Overlap-save FFT convolution with the K-weighting impulse response; history carries across blocks."""
        history = self._filter_history.shape[1]
        extended = np.concatenate([self._filter_history, block], axis=1)
        size = 1 << math.ceil(math.log2(extended.shape[1]))
        if size not in self._taps_spectra:
            self._taps_spectra[size] = np.fft.rfft(self._taps, size)
        filtered = np.fft.irfft(np.fft.rfft(extended, size, axis=1) * self._taps_spectra[size], size, axis=1)
        if history:
            self._filter_history = extended[:, -history:]
        return filtered[:, history : history + block.shape[1]]

    def _measure_true_peak(self, block: F64) -> None:
        if not self._oversample:
            self._true_peak = self._sample_peak
            return
        history = self._peak_history.shape[1]
        extended = np.concatenate([self._peak_history, block], axis=1)
        for channel in extended:
            for phase in _TRUE_PEAK_PHASES:
                interpolated = np.convolve(channel, phase, mode="valid")
                self._true_peak = max(self._true_peak, float(np.abs(interpolated).max()))
        self._peak_history = extended[:, -history:]

    def _measure_clipping(self, clipped: Bools) -> None:
        self._clipped_samples += int(np.count_nonzero(clipped))
        for channel, row in enumerate(clipped):
            completed, self._open_runs[channel] = _count_runs(row, int(self._open_runs[channel]))
            self._clipped_runs += completed

    def _measure_spectrum(self, mono: F64) -> None:
        joined = np.concatenate([self._spectrum_carry, mono])
        frames = len(joined) // self._fft_size
        if frames:
            windowed = joined[: frames * self._fft_size].reshape(frames, self._fft_size) * np.hanning(self._fft_size)
            self._spectrum += np.square(np.abs(np.fft.rfft(windowed, axis=1))).sum(axis=0)
            self._spectrum_frames += frames
        self._spectrum_carry = joined[frames * self._fft_size :]

    # --- at the end ---------------------------------------------------------------------------------------

    def _loudness(self) -> Loudness:
        sample_peak = _decibels(self._sample_peak)
        true_peak = _decibels(max(self._true_peak, self._sample_peak))
        if not self._subblock_energy:
            return Loudness(
                integrated_lufs=None,
                loudness_range_lu=None,
                max_momentary_lufs=None,
                max_short_term_lufs=None,
                sample_peak_dbfs=sample_peak,
                true_peak_dbtp=true_peak,
            )
        # Weighted channel sum of mean squares per 100-ms sub-block; windows are sums of consecutive ones.
        energy = self._weights @ np.concatenate(self._subblock_energy, axis=1) / self._subblock
        momentary = _window_means(energy, _MOMENTARY_SUBBLOCKS)
        short_term = _window_means(energy, _SHORT_TERM_SUBBLOCKS)
        return Loudness(
            integrated_lufs=_gated_loudness(momentary),
            loudness_range_lu=_loudness_range(short_term),
            max_momentary_lufs=_rounded(_lufs(float(momentary.max())), 2) if len(momentary) else None,
            max_short_term_lufs=_rounded(_lufs(float(short_term.max())), 2) if len(short_term) else None,
            sample_peak_dbfs=sample_peak,
            true_peak_dbtp=true_peak,
        )

    def _stereo_image(self) -> StereoImage:
        left, right, cross = (float(value) for value in self._stereo)
        mid, side = left + right + 2 * cross, left + right - 2 * cross
        correlation = cross / math.sqrt(left * right) if left > 0 and right > 0 else None
        return StereoImage(
            correlation=_rounded(correlation, 3),
            side_to_mid_db=_rounded(10 * math.log10(side / mid), 1) if side > 0 and mid > 0 else None,
            balance_db=_rounded(10 * math.log10(left / right), 1) if left > 0 and right > 0 else None,
            channels_identical=side <= 1e-6 * max(mid, 1e-300),
        )

    def _long_term_spectrum(self) -> Spectrum:
        power = self._spectrum
        if self._spectrum_frames == 0 and len(self._spectrum_carry):  # shorter than one FFT: zero-pad it
            padded = np.zeros(self._fft_size)
            padded[: len(self._spectrum_carry)] = self._spectrum_carry
            power = np.square(np.abs(np.fft.rfft(padded * np.hanning(self._fft_size))))
        frequencies = np.fft.rfftfreq(self._fft_size, 1 / self.rate).astype(np.float64)
        return _describe_spectrum(power, frequencies)


def _k_weighting_impulse_response(rate: int) -> F64:
    """The impulse response of BS.1770-4's two K-weighting stages at ``rate``, from their frequency response.

    The biquads are libebur128's re-derivation of the Rec's 48 kHz coefficients for any rate (they reproduce the
    published table at 48 kHz). The response is sampled on a grid long enough that the impulse response has died
    out (the 38 Hz high-pass rings for ~50 ms), then cut where it falls below ``_IMPULSE_RESPONSE_FLOOR``.
    """
    stages = [_high_pass(rate)]
    if rate > 2 * _SHELF_HZ:  # below ~3.4 kHz sampling the shelf has nothing to act on (and would not be stable)
        stages.append(_high_shelf(rate))
    size = 1 << max(14, math.ceil(math.log2(rate * 2)))
    delay = np.exp(-2j * np.pi * np.arange(size // 2 + 1) / size)  # z^-1 on the rfft grid
    response = np.ones_like(delay)
    for b, a in stages:
        response *= np.polyval(b[::-1], delay) / np.polyval(a[::-1], delay)
    impulse = np.fft.irfft(response, size)
    significant = np.flatnonzero(np.abs(impulse) > _IMPULSE_RESPONSE_FLOOR * np.abs(impulse).max())
    return impulse[: int(significant[-1]) + 1]


def _high_shelf(rate: int) -> tuple[F64, F64]:
    """Stage 1, the head's acoustic effect: +4 dB above ~1.7 kHz."""
    gain_db, q = 3.999843853973347, 0.7071752369554196
    k = math.tan(math.pi * _SHELF_HZ / rate)
    vh = 10 ** (gain_db / 20)
    vb = vh**0.4996667741545416
    a0 = 1 + k / q + k * k
    b = np.array([(vh + vb * k / q + k * k) / a0, 2 * (k * k - vh) / a0, (vh - vb * k / q + k * k) / a0])
    a = np.array([1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0])
    return b, a


def _high_pass(rate: int) -> tuple[F64, F64]:
    """Stage 2, the revised low-frequency B-curve: a 38 Hz high-pass."""
    f0, q = 38.13547087602444, 0.5003270373238773
    k = math.tan(math.pi * f0 / rate)
    a0 = 1 + k / q + k * k
    return np.array([1.0, -2.0, 1.0]), np.array([1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0])


def _window_means(energy: F64, length: int) -> F64:
    """Mean of every run of ``length`` consecutive sub-block energies (one window per sub-block step)."""
    if len(energy) < length:
        return np.zeros(0)
    running = np.concatenate([[0.0], np.cumsum(energy)])
    means: F64 = (running[length:] - running[:-length]) / length
    return means


def _lufs(mean_square: float) -> float:
    return -0.691 + 10 * math.log10(mean_square) if mean_square > 0 else -math.inf


def _gated_loudness(blocks: F64) -> float | None:
    """BS.1770-4 integrated loudness: absolute gate at -70 LUFS, then relative gate 10 LU below that mean."""
    with np.errstate(divide="ignore"):
        loudness = -0.691 + 10 * np.log10(blocks)
    above_absolute = blocks[loudness > _ABSOLUTE_GATE_LUFS]
    if not len(above_absolute):
        return None
    relative_gate = _lufs(float(above_absolute.mean())) + _RELATIVE_GATE_LU
    gated = blocks[(loudness > _ABSOLUTE_GATE_LUFS) & (loudness > relative_gate)]
    return _rounded(_lufs(float(gated.mean())), 2)


def _loudness_range(short_term: F64) -> float | None:
    """EBU Tech 3342: spread (10th to 95th percentile) of the gated 3-s loudness values."""
    with np.errstate(divide="ignore"):
        loudness = -0.691 + 10 * np.log10(short_term)
    above_absolute = short_term > 0
    above_absolute &= loudness > _ABSOLUTE_GATE_LUFS
    if not above_absolute.any():
        return None
    relative_gate = _lufs(float(short_term[above_absolute].mean())) + _RANGE_RELATIVE_GATE_LU
    gated = loudness[above_absolute & (loudness > relative_gate)]
    if not len(gated):
        return None
    low, high = np.percentile(gated, [10, 95])
    return _rounded(float(high - low), 1)


def _count_runs(clipped: Bools, open_run: int) -> tuple[int, int]:
    """Runs of ``_MIN_CLIPPED_RUN`` or more in one channel's block, given the run still open from the last block.

    Returns the runs that ended in this block and the length of the run still open at its end.
    """
    if not len(clipped):
        return 0, open_run
    edges = np.flatnonzero(np.diff(np.concatenate([[False], clipped, [False]]).astype(np.int8)))
    lengths = edges[1::2] - edges[::2]
    completed = 0
    if open_run:
        if len(lengths) and edges[0] == 0:
            lengths[0] += open_run
        elif open_run >= _MIN_CLIPPED_RUN:
            completed += 1
    still_open = 0
    if len(lengths) and edges[-1] == len(clipped):
        still_open = int(lengths[-1])
        lengths = lengths[:-1]
    return completed + int(np.count_nonzero(lengths >= _MIN_CLIPPED_RUN)), still_open


def _describe_spectrum(power: F64, frequencies: F64) -> Spectrum:
    audible = (frequencies >= _BANDS[0][1]) & (frequencies < _BANDS[-1][2])
    total = float(power[audible].sum())
    if total <= 0:
        return Spectrum(centroid_hz=None, rolloff_hz=None, bands=[], dominant_bands=[])
    nyquist = float(frequencies[-1])
    bands = []
    for name, low, high in _BANDS:
        if low >= nyquist:
            break
        inside = (frequencies >= low) & (frequencies < high)
        bands.append(
            FrequencyBand(
                name=name, low_hz=low, high_hz=min(high, nyquist), share=round(power[inside].sum() / total, 3)
            )
        )
    dominant: list[str] = []
    held = 0.0
    for band in sorted(bands, key=lambda band: band.share, reverse=True):
        if held >= _DOMINANT_SHARE or len(dominant) == 3:
            break
        dominant.append(band.name)
        held += band.share
    cumulative = np.cumsum(power[audible]) / total
    rolloff = float(frequencies[audible][min(int(np.searchsorted(cumulative, _ROLLOFF_SHARE)), int(audible.sum()) - 1)])
    centroid = float((frequencies[audible] * power[audible]).sum() / total)
    return Spectrum(centroid_hz=round(centroid, 1), rolloff_hz=round(rolloff, 1), bands=bands, dominant_bands=dominant)


def _decibels(amplitude: float) -> float | None:
    return round(20 * math.log10(amplitude), 2) + 0.0 if amplitude > 0 else None  # + 0.0: never "-0.0"


def _rounded(value: float | None, digits: int) -> float | None:
    return round(value, digits) if value is not None and math.isfinite(value) else None
