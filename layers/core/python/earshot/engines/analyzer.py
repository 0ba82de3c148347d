"""The embedded acoustic analyzer: how /v1/audio/understand and extraction answer with no upstream audio model.

It measures and says so; it recognises nothing. Loudness, peaks, clipping, the stereo image, how much of the
audio is speech, music or silence, tempo, pitch and the spectrum are measured; emotions, genres, instruments,
sound sources, languages and speakers are not, and answers say that plainly.

One decoding pass feeds two views of the audio:

- **Native rate and channels**, streamed in one-second blocks, for everything a meter reads: ITU-R BS.1770-4
  integrated loudness (K-weighting, gating, surround weights), EBU Tech 3342 loudness range, sample and true peak
  (the BS.1770-4 Annex 2 interpolator), clipping, the stereo image and the long-term spectrum. Memory stays
  constant however long the file is.
- **16 kHz mono**, 16-bit like the speech engine's input (58 MB for 30 minutes), framed every 10 ms in 20-second
  blocks: energy, spectral flatness, tonality, flux and stability, and YIN pitch. The speech/music/
  silence timeline, the tempo and the pitch range come from those frame tracks.

Only numpy, no scipy: the K-weighting filters run as an FFT convolution with their impulse response (exact to
1e-9), which keeps ~130 MB of scipy out of a Lambda layer that is already close to its 250 MB limit.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import av
import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view
from pydantic import BaseModel, Field

# The decoder's demuxer whitelist: the analyzer opens uploads exactly as safely as the speech path does.
from earshot.audio.decode import _CONTAINER_OPTIONS, SAMPLE_RATE, within_budget
from earshot.errors import InvalidAudioError

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]

ContentLabel = Literal["speech", "music", "other", "silence"]

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

# --- silence, content and timeline -----------------------------------------------------------------------------
_SILENCE_ABSOLUTE_DBFS = -60.0  # frames quieter than this are silent, however quiet the whole file is
_SILENCE_BELOW_LOUD_DB = 35.0  # ... and so are frames this far below the loud frames (95th percentile)
_MIN_SILENCE_SEC = 0.5  # shorter quiet gaps are pauses inside the sound around them
_SEGMENT_FRAMES = 100  # content is classified per second ...
_CONTEXT_FRAMES = 50  # ... from features over that second and half a second either side
_MAX_TIMELINE_SPANS = 100

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

_MIN_PITCH_FRAMES = 5


# ================================================================================================================
# The report
# ================================================================================================================


class Loudness(BaseModel):
    """Levels of the whole file. ``None`` where there is nothing to measure (digital silence, or too short)."""

    integrated_lufs: float | None = Field(
        description="ITU-R BS.1770-4 gated integrated loudness (LUFS); None below the -70 LUFS gate or under 0.4 s"
    )
    loudness_range_lu: float | None = Field(description="EBU Tech 3342 loudness range (LU); None under 3 s")
    max_momentary_lufs: float | None = Field(description="Loudest 400-ms window (LUFS)")
    max_short_term_lufs: float | None = Field(description="Loudest 3-s window (LUFS)")
    sample_peak_dbfs: float | None = Field(description="Highest sample, any channel (dBFS)")
    true_peak_dbtp: float | None = Field(description="Peak between samples too, 4x oversampled per BS.1770-4 (dBTP)")


class Clipping(BaseModel):
    detected: bool = Field(description="Whether any run of clipped samples was found")
    clipped_sample_share: float = Field(
        description="Share of samples (all channels) at or within 0.01 dB of full scale"
    )
    clipped_runs: int = Field(description="Runs of at least three consecutive full-scale samples (flat tops)")


class StereoImage(BaseModel):
    """How the first two channels differ."""

    correlation: float | None = Field(description="Pearson correlation of left and right: 1 identical, 0 unrelated")
    side_to_mid_db: float | None = Field(description="Energy of L-R relative to L+R (dB); very negative = near mono")
    balance_db: float | None = Field(description="Left energy relative to right (dB); positive = louder left")
    channels_identical: bool = Field(description="Left and right carry the same signal (side 60 dB below mid)")


class ContentShares(BaseModel):
    """Shares of the duration; they sum to 1. A documented heuristic, not a trained classifier."""

    speech: float
    music: float
    other: float = Field(description="Sound that is neither speech nor music by these measures: noise, hum, effects")
    silence: float = Field(
        description="Gaps of at least half a second quieter than -60 dBFS or 35 dB below the loud parts"
    )


class TimelineSpan(BaseModel):
    start: float
    end: float
    label: ContentLabel


class Tempo(BaseModel):
    bpm: float | None = Field(description="Beats per minute, or None when the audio is not rhythmic enough to tell")
    confidence: float = Field(description="Regularity of the onset pattern at that tempo, 0..1")


class PitchRange(BaseModel):
    """Fundamental frequency of periodic (voiced) frames, by YIN on 16 kHz mono."""

    median_hz: float
    p10_hz: float
    p90_hz: float
    voiced_share: float = Field(description="Share of the non-silent time that is periodic enough to have a pitch")


class FrequencyBand(BaseModel):
    name: str
    low_hz: float
    high_hz: float
    share: float = Field(description="Share of the energy between 20 Hz and the top band's upper edge")


class Spectrum(BaseModel):
    centroid_hz: float | None
    rolloff_hz: float | None = Field(description="Frequency below which 95% of the energy lies")
    bands: list[FrequencyBand]
    dominant_bands: list[str]


class AcousticReport(BaseModel):
    """What the embedded analyzer measured in one audio file."""

    duration_sec: float
    sample_rate: int
    channels: int
    channel_layout: str = Field(description='ffmpeg\'s layout name: "mono", "stereo", "5.1"...')
    loudness: Loudness
    clipping: Clipping
    stereo: StereoImage | None = Field(description="None for mono")
    content: ContentShares
    timeline: list[TimelineSpan] = Field(
        description="Consecutive spans of one kind; at most 100, long files fold short spans into the one before"
    )
    tempo: Tempo
    pitch: PitchRange | None = Field(description="All periodic sound; None when nothing is periodic")
    speech_pitch: PitchRange | None = Field(description="Periodic frames inside speech only: the voice's pitch")
    background_level_dbfs: float = Field(
        description="10th percentile of the 32-ms frame levels, floored at -100: the noise floor, or digital silence"
    )
    dynamic_range_db: float = Field(description="95th minus 10th percentile of the frame levels")
    spectrum: Spectrum


# ================================================================================================================
# Decoding: one pass, two views
# ================================================================================================================

# ffmpeg's default layout for a channel count, for files that do not say (a plain WAV without a channel mask).
_DEFAULT_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "4.0", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


@dataclass(frozen=True)
class _Decoded:
    sample_rate: int
    layout: str
    channels: int
    duration_sec: float
    levels: _Levels
    pcm: npt.NDArray[np.int16]  # 16 kHz mono


def _decode(path: Path) -> _Decoded:
    """Decode the first audio stream once: metered at its own rate and channels, and kept as 16 kHz mono."""
    if not path.is_file():
        raise InvalidAudioError("the audio is not a readable file")
    try:
        container = av.open(str(path.resolve()), mode="r", container_options=_CONTAINER_OPTIONS)
    except (av.FFmpegError, ValueError, OSError) as exc:
        raise InvalidAudioError("the file is not audio or video in a format we can decode") from exc

    chunks: list[npt.NDArray[np.int16]] = []
    meter: _LevelMeter | None = None
    native: Any = None
    layout = ""
    with container:
        if not container.streams.audio:
            raise InvalidAudioError("the file has no audio stream")
        stream = container.streams.audio[0]
        mono = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        try:
            for frame in within_budget(container.decode(stream)):
                if meter is None:
                    layout, names = _describe_layout(frame.layout)
                    meter = _LevelMeter(frame.sample_rate, _channel_weights(names))
                    # Planar float at the source's own rate and layout, whatever the codec's sample format.
                    native = av.AudioResampler(format="fltp", layout=frame.layout, rate=frame.sample_rate)
                for out in native.resample(frame):
                    meter.add(out.to_ndarray())
                chunks.extend(_mono_samples(mono.resample(frame)))
            if meter is not None:
                for out in native.resample(None):
                    meter.add(out.to_ndarray())
            chunks.extend(_mono_samples(mono.resample(None)))
        except (av.FFmpegError, ValueError) as exc:
            raise InvalidAudioError("the audio stream could not be decoded; the file may be corrupt") from exc

    levels = meter.finish() if meter is not None else None
    if levels is None or meter is None or levels.samples == 0:
        raise InvalidAudioError("the audio stream contains no samples")
    # A file of a few samples can resample to none at 16 kHz; the frame tracks then see one frame of silence.
    pcm = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
    return _Decoded(
        sample_rate=meter.rate,
        layout=layout,
        channels=meter.channels,
        duration_sec=levels.samples / meter.rate,
        levels=levels,
        pcm=pcm,
    )


def _mono_samples(frames: Sequence[av.AudioFrame]) -> list[npt.NDArray[np.int16]]:
    return [frame.to_ndarray().reshape(-1).astype(np.int16, copy=False) for frame in frames if frame.samples]


def _describe_layout(layout: Any) -> tuple[str, list[str]]:
    """The layout's name and channel names, with ffmpeg's default order when the file leaves it unspecified."""
    names = [channel.name for channel in layout.channels]
    if all(name == "NONE" for name in names) and len(names) in _DEFAULT_LAYOUTS:
        default = av.AudioLayout(_DEFAULT_LAYOUTS[len(names)])
        return default.name, [channel.name for channel in default.channels]
    return str(layout.name), names


def _channel_weights(names: Sequence[str]) -> F64:
    """BS.1770-4 channel weights: 1.41 for side and back channels, 0 for LFE, 1 for the rest."""
    weights = [0.0 if name.startswith("LFE") else _SURROUND_WEIGHT if name in _SURROUND else 1.0 for name in names]
    return np.array(weights, dtype=np.float64)


# ================================================================================================================
# Native-rate metering
# ================================================================================================================


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


# ================================================================================================================
# 16 kHz frame tracks
# ================================================================================================================


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


# ================================================================================================================
# Tempo
# ================================================================================================================


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


# ================================================================================================================
# Silence, speech, music: the timeline
# ================================================================================================================

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
    labels: npt.NDArray[np.int8], silent: Bools, speech: Spans, music: Spans | None
) -> npt.NDArray[np.int8]:
    """Speech where the voice-activity model found it, music where the tagger did, other sound elsewhere."""
    times = np.arange(len(labels)) / _FRAME_RATE

    def inside(spans: Spans) -> Bools:
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


# ================================================================================================================
# The analysis
# ================================================================================================================


Spans = Sequence[tuple[float, float]]


def analyze_audio(
    path: Path, *, content_from: Callable[[npt.NDArray[np.int16]], tuple[Spans, Spans | None]] | None = None
) -> AcousticReport:
    """Measure the first audio stream of a local file.

    Parameters
    ----------
    path
        A local audio or video file in any format the speech engine's decoder reads.
    content_from
        Models that say where the speech and the music are, given the 16 kHz mono PCM: (speech spans, music spans
        or None). Their spans replace the heuristic's speech and music labels (silence stays measured); with music
        None only speech is replaced, and the heuristic's speech elsewhere becomes other sound.

    Returns
    -------
    AcousticReport
        Levels, clipping, stereo image, the speech/music/silence timeline, tempo, pitch and spectrum. Audio too
        short or too quiet for a measure has ``None`` there, never a made-up value.

    Raises
    ------
    InvalidAudioError
        The file is not decodable audio.
    """
    decoded = _decode(path)
    tracks = _frame_tracks(decoded.pcm)
    silent = _silent_frames(tracks.energy_db)
    rhythm = _rhythm(tracks.flux)
    labels = _label_frames(tracks, silent, rhythm.strength)
    if content_from is not None:
        labels = _labels_from_models(labels, silent, *content_from(decoded.pcm))
    shares = np.bincount(labels, minlength=len(_LABELS)) / len(labels)
    levels = decoded.levels
    background, loud = np.percentile(tracks.energy_db, [10, 95])
    return AcousticReport(
        duration_sec=round(decoded.duration_sec, 3),
        sample_rate=decoded.sample_rate,
        channels=decoded.channels,
        channel_layout=decoded.layout,
        loudness=levels.loudness,
        clipping=levels.clipping,
        stereo=levels.stereo,
        content=ContentShares(
            speech=round(float(shares[_SPEECH]), 3),
            music=round(float(shares[_MUSIC]), 3),
            other=round(float(shares[_OTHER]), 3),
            silence=round(float(shares[_SILENCE]), 3),
        ),
        timeline=_timeline(labels, decoded.duration_sec),
        tempo=rhythm.tempo,
        pitch=_pitch_range(tracks.f0_hz, labels != _SILENCE),
        speech_pitch=_pitch_range(tracks.f0_hz, labels == _SPEECH),
        background_level_dbfs=round(float(background), 1),
        dynamic_range_db=round(float(loud - background), 1),
        spectrum=levels.spectrum,
    )


# ================================================================================================================
# Answers from the measurements
# ================================================================================================================


def _keywords(*words: str) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(words) + r")\b", re.IGNORECASE)


# Topics the analyzer has measurements for.
_MEASURED: dict[str, re.Pattern[str]] = {
    "loudness": _keywords(r"loud\w*", "volume", r"levels?", "lufs", "lkfs", r"quiet\w*", "soft", "db", r"decibels?",
                          r"normali[sz]\w*", "gain", r"peaks?", "dbfs", "dbtp", r"dynamics?"),
    "music": _keywords(r"music\w*", r"songs?", "genres?", "tempo", "bpm", r"beats?", r"rhythm\w*", r"melod\w*",
                       r"chords?", "tune", r"sing\w*", "sung", r"danc\w*", r"instrument\w*", "style"),
    "speech": _keywords("speech", r"speak\w*", "spoken", r"talk\w*", r"voices?", r"vocal\w*", "say", "says", "said",
                        r"words?", r"pitch\w*", r"convers\w*", r"dialog\w*", r"narrat\w*", r"emotion\w*", r"mood\w*",
                        "tone", "language", r"accents?", r"persons?", "people", "man", "woman", "male", "female"),
    "silence": _keywords(r"silen\w*", r"pauses?", r"gaps?", "dead air", r"empty", "blank", "nothing"),
    "quality": _keywords(r"nois\w*", r"clip\w*", r"distort\w*", "quality", r"hiss\w*", "hum", r"buzz\w*", "static",
                         "background", "snr", "clean", r"crackl\w*", r"artifacts?", r"artefacts?", "bandwidth",
                         r"muffled", "stereo", "mono", r"channels?", r"frequenc\w*", "bass", "treble", "spectrum",
                         r"sample.?rate", "bright", "dull"),
}  # fmt: skip

# What it cannot tell, and how to say so.
_UNMEASURED: tuple[tuple[re.Pattern[str], str], ...] = (
    (_keywords(r"emotion\w*", r"mood\w*", r"feel\w*", "sentiment", r"angry", "anger", r"happ\w*", r"sad\w*",
               r"tone of", r"excit\w*", "calm", r"tense", r"stress\w*", r"sarcas\w*", "attitude", r"upset"),
     "emotions or mood"),
    (_keywords(r"genres?", "style", "jazz", "rock", "pop", "classical", r"hip.?hop", "rap", "electronic", "edm",
               "country", "metal", "blues", "folk", "reggae", "techno", "house"),
     "genres"),
    (_keywords(r"instrument\w*", r"guitars?", r"pianos?", r"drums?", r"violins?", r"synth\w*", r"orchestra\w*",
               r"saxophones?", r"trumpets?", r"keyboards?", r"key of", "chord progression"),
     "instruments, keys or chords"),
    (_keywords(r"title", r"artists?", r"singers?", r"name of", r"which song", r"what song", "who sings", "band"),
     "songs or artists"),
    (_keywords(r"languages?", "english", "spanish", "french", "german", "chinese", "mandarin", "japanese", "arabic",
               "hindi", "portuguese", "russian", "italian", r"accents?", r"dialects?"),
     "languages or accents"),
    (_keywords("who", r"speakers?", r"identif\w*", "identity", "how many", "gender", "male", "female", "man",
               "woman", "men", "women", r"age", "old", "young", r"child\w*", r"kids?", r"boys?", r"girls?"),
     "speakers (who, how many, their gender or age)"),
    (_keywords(r"dogs?", r"birds?", r"cars?", r"sirens?", "applause", r"clap\w*", r"laugh\w*", r"cough\w*",
               r"animals?", "traffic", "rain", "wind", r"doors?", r"guns?\w*", r"explosions?", r"sound effects?",
               r"what (?:sound|noise)s?", "glass", r"phones?", r"alarms?", r"engines?", r"footsteps?", "water",
               r"events?", "environment", r"where (?:was|is) (?:this|it|that) recorded", r"location"),
     "specific sounds, their sources or the place"),
)  # fmt: skip

_SUMMARY = _keywords("describe", "description", r"summar\w*", "overview", r"what(?:'s| is) (?:in|this|it|happening)",
                     r"contain\w*", "hear", r"analy[sz]\w*", "tell me about", "anything")  # fmt: skip
_UPSTREAM = "configure an upstream audio model for that"
_TRANSCRIPT_CHARS = 300
_CONTENT_NAMES = {
    "speech": "speech",
    "music": "music",
    "other": "other sound (noise, tones or effects)",
    "silence": "silence",
}


def answer_question(report: AcousticReport, question: str, transcript: str | None) -> str:
    """Answer ``question`` about the audio from the measurements in ``report``, and only from them.

    The answer opens with what the audio is (length, format, how much is speech, music and silence), adds
    the measurements the question's keywords ask about (loudness, music and tempo, speech and pitch,
    silence, quality: clipping, background, stereo, spectrum), quotes ``transcript`` when there is speech, and
    ends by saying plainly what the analyzer cannot determine: the things the question asked that are not
    acoustics (emotions, genres, languages, speakers, sound sources), or all of them when it asked nothing
    specific.

    Parameters
    ----------
    report
        ``analyze_audio``'s measurements.
    question
        The user's question, in English.
    transcript
        What the speech engine heard, if it ran; quoted as is (it may contain recognition errors).

    Returns
    -------
    str
        A few sentences of plain text.
    """
    asked = {topic for topic, pattern in _MEASURED.items() if pattern.search(question)}
    cannot = [what for pattern, what in _UNMEASURED if pattern.search(question)]
    general = not asked or bool(_SUMMARY.search(question))

    sentences = [_overview(report)]
    if general or "loudness" in asked:
        sentences += _loudness_facts(report)
    if general or "music" in asked:
        sentences += _music_facts(report, detailed="music" in asked)
    if general or "speech" in asked:
        sentences += _speech_facts(report, detailed="speech" in asked)
    if "silence" in asked:
        sentences += _silence_facts(report)
    if "quality" in asked:
        sentences += _quality_facts(report)
    elif general and report.clipping.detected:
        sentences += _clipping_facts(report)
    if report.content.speech > 0 and transcript and transcript.strip():
        sentences.append(f"Transcript (automatic, may contain errors): “{_excerpt(transcript)}”")
    elif "speech" in asked and report.content.speech > 0 and re.search(r"\b(?:say|says|said|words?)\b", question, re.I):
        sentences.append("No transcript was available to say what was said.")
    if cannot:
        sentences.append(
            f"The embedded analyzer measures acoustics; it cannot recognise {_join(cannot)} — {_UPSTREAM}."
        )
    else:
        sentences.append(
            "The embedded analyzer measures acoustics only; it cannot recognise emotions, genres, instruments, "
            f"languages, speakers or specific sounds — {_UPSTREAM}."
        )
    return " ".join(sentences)


def extract_facts(report: AcousticReport, prompt: str, transcript: str | None) -> dict[str, Any]:
    """The measurements as a JSON-ready document, for extraction in JSON mode.

    Parameters
    ----------
    report
        ``analyze_audio``'s measurements.
    prompt
        What the caller asked to extract; the things it asks for that are not acoustics are listed under
        ``cannot_determine`` (the analyzer never guesses them).
    transcript
        What the speech engine heard, or ``None``.

    Returns
    -------
    dict
        Every field of ``AcousticReport`` (``None`` where nothing was measurable), plus ``transcript``,
        ``cannot_determine`` and ``measured_by``. Contains no NaN or infinity.
    """
    facts: dict[str, Any] = report.model_dump(mode="json")
    facts["transcript"] = transcript.strip() if transcript and transcript.strip() else None
    facts["cannot_determine"] = [what for pattern, what in _UNMEASURED if pattern.search(prompt)]
    facts["measured_by"] = "embedded acoustic analyzer (measurements only, no recognition)"
    return facts


def _overview(report: AcousticReport) -> str:
    layout = report.channel_layout
    if layout not in {"mono", "stereo"}:
        layout = f"{report.channels}-channel" + (f" ({layout})" if "channel" not in layout else "")
    shares = sorted(
        ((share, name) for name, share in report.content.model_dump().items() if share >= 0.005),
        reverse=True,
    )
    content = _join([f"{_percent(share)} {_CONTENT_NAMES[name]}" for share, name in shares]) or "nothing measurable"
    text = (
        f"This is {_duration(report.duration_sec)} of {layout} audio at {report.sample_rate / 1000:g} kHz: {content}."
    )
    spans = [span for span in report.timeline if span.end - span.start >= 0.5]
    if 2 <= len(spans) <= 6 and len({span.label for span in spans}) > 1:
        text += (
            " In order: " + ", ".join(f"{span.label} {_clock(span.start)}-{_clock(span.end)}" for span in spans) + "."
        )
    return text


def _loudness_facts(report: AcousticReport) -> list[str]:
    loudness = report.loudness
    if loudness.sample_peak_dbfs is None:
        return ["Every sample is zero: the audio is digital silence, so it has no loudness."]
    if loudness.integrated_lufs is not None:
        facts = [
            f"Its integrated loudness is {loudness.integrated_lufs:.1f} LUFS (ITU-R BS.1770), "
            f"{_loudness_context(loudness.integrated_lufs)}."
        ]
    elif report.duration_sec < 0.4:
        facts = ["It is too short (under 0.4 s) for an integrated loudness measurement."]
    else:
        facts = ["It is too quiet for an integrated loudness: nothing rises above the -70 LUFS gate of ITU-R BS.1770."]
    peak = f"The sample peak is {loudness.sample_peak_dbfs:.1f} dBFS"
    if loudness.true_peak_dbtp is not None:
        peak += f" and the true peak {loudness.true_peak_dbtp:.1f} dBTP"
        if loudness.true_peak_dbtp > 0:
            peak += " (above 0 dBTP: it may clip after resampling or lossy encoding)"
    facts.append(peak + ".")
    if loudness.loudness_range_lu is not None:
        spread = (
            " (a very even level)"
            if loudness.loudness_range_lu < 3
            else " (wide dynamics)"
            if loudness.loudness_range_lu > 15
            else ""
        )
        facts.append(f"Its loudness range is {loudness.loudness_range_lu:.1f} LU{spread}.")
    return facts


def _loudness_context(lufs: float) -> str:
    if lufs >= -10:
        return "very loud: well above the -14 LUFS most streaming services normalise to"
    if lufs >= -17:
        return "around the -14 to -16 LUFS that streaming services and podcasts aim for"
    if lufs >= -21:
        return "moderate: between podcast (-16 LUFS) and broadcast (-23 LUFS) levels"
    if lufs >= -25:
        return "close to the EBU R 128 broadcast target of -23 LUFS"
    if lufs >= -35:
        return "quiet: below broadcast level (-23 LUFS)"
    return "very quiet"


def _music_facts(report: AcousticReport, *, detailed: bool) -> list[str]:
    facts = []
    if detailed:
        facts.append(
            "Music here means a steady beat or sustained notes that change; "
            + ("none was found." if report.content.music == 0 else "the share above is measured that way.")
        )
    if report.tempo.bpm is not None:
        facts.append(
            f"There is a steady beat at about {report.tempo.bpm:.0f} BPM "
            f"(regularity {report.tempo.confidence:.2f} of 1)."
        )
    elif detailed or report.content.music > 0:
        facts.append("No steady beat was found, so there is no tempo to report.")
    if detailed and report.content.music > 0 and report.spectrum.dominant_bands:
        facts.append(_bands_fact(report))
    return facts


def _speech_facts(report: AcousticReport, *, detailed: bool) -> list[str]:
    facts = []
    if detailed and report.content.speech == 0:
        facts.append("No speech was detected.")
    pitch = report.speech_pitch
    if pitch is not None:
        spread = 12 * math.log2(pitch.p90_hz / pitch.p10_hz) if pitch.p10_hz > 0 else 0.0
        facts.append(
            f"The voice's pitch centres on {pitch.median_hz:.0f} Hz ({pitch.p10_hz:.0f} to {pitch.p90_hz:.0f} Hz for "
            f"the middle 80%, a spread of {spread:.0f} semitones), {_voice_register(pitch.median_hz)}."
        )
    elif report.content.speech > 0 and detailed:
        facts.append("Too little of the speech is voiced (pitched) to measure its pitch, as with whispering.")
    elif detailed and report.pitch is not None:
        facts.append(
            f"The pitched sound centres on {report.pitch.median_hz:.0f} Hz "
            f"({report.pitch.p10_hz:.0f} to {report.pitch.p90_hz:.0f} Hz for the middle 80%)."
        )
    return facts


def _voice_register(median_hz: float) -> str:
    if median_hz < 120:
        return "a low-pitched voice"
    if median_hz < 200:
        return "a mid-pitched voice"
    return "a high-pitched voice"


def _silence_facts(report: AcousticReport) -> list[str]:
    quiet = [span for span in report.timeline if span.label == "silence"]
    if not quiet:
        return ["There is no silence: no quiet stretch of half a second or more, and none at either end."]
    if report.content.silence >= 0.995:
        return ["It is silent throughout (below -60 dBFS, or digital silence)."]
    longest = max(quiet, key=lambda span: span.end - span.start)
    return [
        f"Silence (below -60 dBFS or 35 dB under the loud parts, for at least 0.5 s, or at either end) makes up "
        f"{_percent(report.content.silence)} in {len(quiet)} stretch{'es' if len(quiet) > 1 else ''}; the longest "
        f"lasts {_duration(longest.end - longest.start)} from {_clock(longest.start)}."
    ]


def _quality_facts(report: AcousticReport) -> list[str]:
    facts = _clipping_facts(report)
    if report.background_level_dbfs <= -90:
        facts.append("Its quietest parts are digital silence, so there is no background noise between sounds.")
    else:
        facts.append(
            f"Its background level (the quietest tenth) is {report.background_level_dbfs:.0f} dBFS, "
            f"{report.dynamic_range_db:.0f} dB below the loud parts"
            + (
                " — little contrast, as with a steady sound or noticeable background noise"
                if report.dynamic_range_db < 15
                else ""
            )
            + "."
        )
    if report.stereo is None:
        facts.append("It is mono.")
    elif report.stereo.channels_identical:
        facts.append("Its two channels are identical: mono content in a stereo file.")
    else:
        side = ""
        balance = report.stereo.balance_db
        if balance is not None and abs(balance) >= 3:
            side = f", {abs(balance):.0f} dB louder on the {'left' if balance > 0 else 'right'}"
        correlation = f" (correlation {report.stereo.correlation:.2f})" if report.stereo.correlation is not None else ""
        facts.append(f"Its channels differ{correlation}{side}.")
    if report.spectrum.dominant_bands:
        facts.append(_bands_fact(report))
    return facts


def _clipping_facts(report: AcousticReport) -> list[str]:
    clipping = report.clipping
    if clipping.detected:
        return [
            f"Clipping was detected: {clipping.clipped_runs} run{'s' if clipping.clipped_runs > 1 else ''} of "
            f"consecutive full-scale samples ({clipping.clipped_sample_share:.2%} of samples)"
            + (
                "; that much usually sounds distorted."
                if clipping.clipped_sample_share >= 0.001
                else "; a few brief clips may be inaudible."
            )
        ]
    if report.loudness.sample_peak_dbfs is None:
        return ["There is no clipping (every sample is zero)."]
    return [f"No clipping was detected (the sample peak is {report.loudness.sample_peak_dbfs:.1f} dBFS)."]


def _bands_fact(report: AcousticReport) -> str:
    bands = {band.name: band for band in report.spectrum.bands}
    named = [
        f"{name} ({_hz(bands[name].low_hz)} to {_hz(bands[name].high_hz)}, {_percent(bands[name].share)})"
        for name in report.spectrum.dominant_bands
    ]
    text = f"Most of the energy is in the {_join(named)} band{'s' if len(named) > 1 else ''}"
    if report.spectrum.rolloff_hz is not None:
        text += f"; 95% of it lies below {_hz(report.spectrum.rolloff_hz)}"
    return text + "."


def _excerpt(transcript: str) -> str:
    text = " ".join(transcript.split())
    if len(text) <= _TRANSCRIPT_CHARS:
        return text
    return text[:_TRANSCRIPT_CHARS].rsplit(" ", 1)[0] + "…"


def _join(items: Sequence[str], conjunction: str = "and") -> str:
    if len(items) <= 2:
        return f" {conjunction} ".join(items)
    return ", ".join(items[:-1]) + f" {conjunction} " + items[-1]


def _percent(share: float) -> str:
    return f"{share:.0%}" if share >= 0.01 else "under 1%"


def _hz(frequency: float) -> str:
    return f"{frequency / 1000:.3g} kHz" if frequency >= 1000 else f"{frequency:.0f} Hz"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def _clock(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{rest:02d}" if hours else f"{minutes}:{rest:02d}"
