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
  blocks: energy, zero-crossing rate, spectral flatness, flux and stability, and YIN pitch. The speech/music/
  silence timeline, the tempo and the pitch range come from those frame tracks.

Only numpy, no scipy: the K-weighting filters run as an FFT convolution with their impulse response (exact to
1e-9), which keeps ~130 MB of scipy out of a Lambda layer that is already close to its 250 MB limit.
"""

from __future__ import annotations

import math
import warnings
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import av
import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view
from pydantic import BaseModel, Field

# The decoder's demuxer whitelist: the analyzer opens uploads exactly as safely as the speech path does.
from earshot.audio.decode import _CONTAINER_OPTIONS, SAMPLE_RATE
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
_WINDOW = 512  # 32 ms: spectra, energy, zero crossings; also YIN's integration window
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
_TEMPO_WINDOW_FRAMES = 800  # 8-s autocorrelation windows, half overlapping
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
    timeline: list[TimelineSpan] = Field(description="Consecutive spans of one label, at most 100 (then merged)")
    tempo: Tempo
    pitch: PitchRange | None = Field(description="All periodic sound; None when nothing is periodic")
    speech_pitch: PitchRange | None = Field(description="Periodic frames inside speech only: the voice's pitch")
    noise_floor_dbfs: float | None = Field(description="Level of the quietest non-silent tenth of the audio")
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
            for frame in container.decode(stream):
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

    if meter is None or not chunks:
        raise InvalidAudioError("the audio stream contains no samples")
    levels = meter.finish()
    pcm = np.concatenate(chunks) if len(chunks) > 1 else chunks[0]
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
    if all(name in {"NONE", "USR0"} or name.startswith("USR") for name in names) and len(names) in _DEFAULT_LAYOUTS:
        default = av.AudioLayout(_DEFAULT_LAYOUTS[len(names)])
        return default.name, [channel.name for channel in default.channels]
    return str(layout.name), names


def _channel_weights(names: Sequence[str]) -> F64:
    """BS.1770-4 channel weights: 1 for front channels, 1.41 for side and back, 0 for LFE."""
    weights = []
    for name in names:
        if name.startswith("LFE"):
            weights.append(0.0)
        elif re.fullmatch(r"(B|S|SD|TB)[LRC]?\w*", name) and not name.startswith("TF"):
            weights.append(_SURROUND_WEIGHT)
        else:
            weights.append(1.0)
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
                clipped_sample_share=self._clipped_samples / total if total else 0.0,
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
        return _describe_spectrum(power, np.fft.rfftfreq(self._fft_size, 1 / self.rate))


def _k_weighting_impulse_response(rate: int) -> F64:
    """The impulse response of BS.1770-4's two K-weighting stages at ``rate``, from their frequency response.

    The biquads are libebur128's re-derivation of the Rec's 48 kHz coefficients for any rate (they reproduce the
    published table at 48 kHz). The response is sampled on a grid long enough that the impulse response has died
    out (the 38 Hz high-pass rings for ~50 ms), then cut where it falls below ``_IMPULSE_RESPONSE_FLOOR``.
    """
    shelf_b, shelf_a = _high_shelf(rate)
    highpass_b, highpass_a = _high_pass(rate)
    size = 1 << max(14, math.ceil(math.log2(rate * 2)))
    delay = np.exp(-2j * np.pi * np.arange(size // 2 + 1) / size)  # z^-1 on the rfft grid
    response = np.ones_like(delay)
    for b, a in ((shelf_b, shelf_a), (highpass_b, highpass_a)):
        response *= np.polyval(b[::-1], delay) / np.polyval(a[::-1], delay)
    impulse = np.fft.irfft(response, size)
    significant = np.flatnonzero(np.abs(impulse) > _IMPULSE_RESPONSE_FLOOR * np.abs(impulse).max())
    return impulse[: int(significant[-1]) + 1]


def _high_shelf(rate: int) -> tuple[F64, F64]:
    """Stage 1, the head's acoustic effect: +4 dB above ~1.7 kHz."""
    f0, gain_db, q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
    k = math.tan(math.pi * f0 / rate)
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
    return (running[length:] - running[:-length]) / length


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
    return round(20 * math.log10(amplitude), 2) if amplitude > 0 else None


def _rounded(value: float | None, digits: int) -> float | None:
    return round(value, digits) if value is not None and math.isfinite(value) else None


# ================================================================================================================
# 16 kHz frame tracks
# ================================================================================================================


@dataclass(frozen=True)
class _Tracks:
    """One value per 10-ms frame."""

    energy_db: F32  # level of the 32-ms window, dBFS
    zero_crossings: F32  # share of adjacent samples that change sign
    flatness: F32  # spectral flatness 62.5 Hz-7.5 kHz: ~0 for tones, towards 1 for white noise
    tonality: F32  # 1 - flatness of the whitened spectrum: ~0.45 for noise of any colour, ~1 for sustained notes
    flux: F32  # onset strength: rise of the log spectrum since the previous frame
    stability: F32  # cosine similarity of the magnitude spectrum with 50 ms earlier (NaN for the first frames)
    f0_hz: F32  # YIN pitch, NaN when aperiodic
    aperiodicity: F32  # depth of YIN's best dip: ~0 for a clean periodic sound, ~1 for noise


def _frame_tracks(pcm: npt.NDArray[np.int16]) -> _Tracks:
    """Per-frame features in blocks of ``_BLOCK_FRAMES``, so the working set stays bounded for long files."""
    # Every frame's spectral window lies inside the audio (a window running past the end would look like a
    # change of sound); YIN's longer frames read zeros past it.
    count = max(1, (len(pcm) - _WINDOW) // _HOP + 1)
    window = np.hanning(_WINDOW).astype(np.float32)
    parts: list[tuple[F32, ...]] = []
    previous_log: F32 | None = None
    previous_magnitudes = np.zeros((0, _WINDOW // 2 + 1), dtype=np.float32)
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
        signs = np.signbit(head)
        zero_crossings = np.count_nonzero(signs[:, 1:] != signs[:, :-1], axis=1).astype(np.float32) / (_WINDOW - 1)

        magnitudes = np.abs(np.fft.rfft(head * window, axis=1)).astype(np.float32)
        band = np.square(magnitudes[:, _SPECTRUM_LOW_BIN:_SPECTRUM_HIGH_BIN]) + np.float32(1e-12)
        flatness = (np.exp(np.mean(np.log(band), axis=1)) / np.mean(band, axis=1)).astype(np.float32)

        tonality = _tonality(band)

        compressed = np.log1p(np.float32(100.0) * magnitudes)
        before = np.concatenate([compressed[:1] if previous_log is None else previous_log, compressed[:-1]])
        flux = np.mean(np.maximum(compressed - before, 0), axis=1).astype(np.float32)
        previous_log = compressed[-1:]

        joined = np.concatenate([previous_magnitudes, magnitudes])
        stability = np.full(len(magnitudes), np.nan, dtype=np.float32)
        if len(joined) > _STABILITY_LAG:
            now, then = joined[_STABILITY_LAG:], joined[:-_STABILITY_LAG]
            similarity = np.sum(now * then, axis=1) / (
                np.linalg.norm(now, axis=1) * np.linalg.norm(then, axis=1) + np.float32(1e-12)
            )
            stability[len(magnitudes) - len(similarity) :] = similarity
        previous_magnitudes = magnitudes[-_STABILITY_LAG:]

        f0_hz, aperiodicity = _yin(frames)
        parts.append((energy_db, zero_crossings, flatness, tonality, flux, stability, f0_hz, aperiodicity))

    columns = [np.concatenate(column).astype(np.float32) for column in zip(*parts, strict=True)]
    return _Tracks(*columns)


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
    return (1 - flatness).astype(np.float32)


def _yin(frames: npt.NDArray[np.float32]) -> tuple[F32, F32]:
    """YIN (de Cheveigné & Kawahara 2002) on every frame at once: pitch in Hz (NaN if aperiodic) and aperiodicity.

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
    f0 = np.where(aperiodicity < _VOICED_APERIODICITY, SAMPLE_RATE / period, np.nan)
    return f0.astype(np.float32), aperiodicity.astype(np.float32)


# ================================================================================================================
# Tempo
# ================================================================================================================


@dataclass(frozen=True)
class _Rhythm:
    tempo: Tempo
    strength: F32  # per second: how periodic the onsets around it are (0..1)


def _rhythm(flux: F32) -> _Rhythm:
    """Tempo from the autocorrelation of the onset strength, averaged over 8-s windows.

    Each window's onset curve is mean-removed and autocorrelated (unbiased, normalised to 1 at lag 0); windows
    that are mostly silent are left out. The tempo is the lag between 40 and 240 BPM where the mean
    autocorrelation, weighted towards 120 BPM by a one-octave log-normal prior, peaks; the peaks at its multiples
    refine it below one frame. Its confidence is the mean autocorrelation there: ~1 for a metronome, below 0.3
    for speech or noise, where no tempo is reported.
    """
    seconds = -(-len(flux) // _SEGMENT_FRAMES)
    if len(flux) < _MIN_TEMPO_SEC * _FRAME_RATE:
        return _Rhythm(Tempo(bpm=None, confidence=0.0), np.zeros(seconds, np.float32))
    length = min(_TEMPO_WINDOW_FRAMES, len(flux))
    starts = np.arange(0, max(1, len(flux) - length) + 1, length // 2)
    if starts[-1] + length < len(flux):
        starts = np.append(starts, len(flux) - length)
    windows = flux[starts[:, None] + np.arange(length)].astype(np.float64)
    windows -= windows.mean(axis=1, keepdims=True)
    max_lag = min(length - 1, round(4 * 60 / _TEMPO_MIN_BPM * _FRAME_RATE / 4) * 2)
    size = 1 << math.ceil(math.log2(2 * length))
    power = np.square(np.abs(np.fft.rfft(windows, size, axis=1)))
    autocorrelation = np.fft.irfft(power, size, axis=1)[:, : max_lag + 1]
    autocorrelation /= length - np.arange(max_lag + 1)  # mean products; unbiased: longer lags overlap less
    zero = autocorrelation[:, :1]
    # Windows with hardly any onsets (steady tones, silence) have no rhythm, only numerical noise to correlate.
    usable = zero[:, 0] >= _MIN_ONSET_VARIANCE
    autocorrelation = autocorrelation / np.maximum(zero, _MIN_ONSET_VARIANCE)

    shortest = math.floor(60 / _TEMPO_MAX_BPM * _FRAME_RATE)
    longest = min(max_lag - 1, math.ceil(60 / _TEMPO_MIN_BPM * _FRAME_RATE))
    lags = np.arange(shortest, longest + 1)
    window_strength = np.clip(autocorrelation[:, lags].max(axis=1), 0, 1) * usable
    strength = _per_second(window_strength, starts, length, seconds)
    if not usable.any() or longest <= shortest:
        return _Rhythm(Tempo(bpm=None, confidence=0.0), strength)

    mean = autocorrelation[usable].mean(axis=0)
    prior = np.exp(-0.5 * np.square(np.log2(60 * _FRAME_RATE / lags / _TEMPO_PRIOR_BPM)))
    peaks = (mean[lags] >= mean[lags - 1]) & (mean[lags] >= mean[lags + 1])
    if not peaks.any():
        return _Rhythm(Tempo(bpm=None, confidence=0.0), strength)
    best = int(lags[np.argmax(np.where(peaks, mean[lags] * prior, -np.inf))])
    confidence = float(np.clip(mean[best], 0, 1))
    if confidence < _RHYTHMIC_CONFIDENCE:
        return _Rhythm(Tempo(bpm=None, confidence=round(confidence, 2)), strength)
    period = _refined_period(mean, best)
    return _Rhythm(Tempo(bpm=round(60 * _FRAME_RATE / period, 1), confidence=round(confidence, 2)), strength)


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


def _per_second(values: F64, starts: npt.NDArray[np.int64], length: int, seconds: int) -> F32:
    """Spread per-window values over the seconds, each second taking the window centred nearest to it."""
    centres = starts + length / 2
    second_centres = (np.arange(seconds) + 0.5) * _SEGMENT_FRAMES
    nearest = np.abs(second_centres[:, None] - centres[None, :]).argmin(axis=1)
    return values[nearest].astype(np.float32)


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
    return quiet & (np.cumsum(change)[:-1] == 0)


def _label_frames(tracks: _Tracks, silent: Bools, rhythm: F32) -> npt.NDArray[np.int8]:
    """Label every frame silence, speech, music or other.

    Each second that is not all silence is classified from features over itself and half a second either side
    (the change cue looks 1.5 s either side), as a documented heuristic built on classic speech/music
    discrimination cues (Saunders 1996; Scheirer & Slaney 1997), not a trained model:

    - speech has *syllabic dips* (many frames 12 dB under the loud ones, from gaps between syllables), an
      unsteady spectrum, and either a pitch that glides frame to frame or, whispered, a spectrum that is not
      noise-flat; and it has no steady beat.
    - music has a steady beat (periodic onsets), or sustained pitched notes (a stable spectrum, mostly
      periodic frames, pitch that holds) that change at least once in four seconds.
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
        least_stable = np.nanmin(_around_each_second(tracks.stability, seconds, 3 * _CONTEXT_FRAMES), axis=1)
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
    speech = _ramp(dips, 0.08, 0.2) * _ramp(stability, 0.95, 0.85) * voice * _ramp(rhythm, 0.6, 0.4)
    notes = (
        _ramp(stability, 0.85, 0.95)
        * _ramp(tonality, 0.6, 0.8)
        * _ramp(glide, 0.05, 0.03)
        * _ramp(least_stable, 0.98, 0.9)
    )
    music = np.maximum(_ramp(rhythm, 0.4, 0.6), notes)
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


def _around_each_second(track: npt.NDArray[Any], seconds: int, context: int) -> F32:
    """Rows of ``track`` values over each second and ``context`` frames either side (NaN beyond the ends)."""
    padded = np.full(seconds * _SEGMENT_FRAMES + 2 * context, np.nan, dtype=np.float32)
    padded[context : context + len(track)] = track
    return sliding_window_view(padded, _SEGMENT_FRAMES + 2 * context)[::_SEGMENT_FRAMES][:seconds]


def _ramp(value: F64 | F32, zero_at: float, one_at: float) -> F64:
    """0 at ``zero_at``, 1 at ``one_at``, linear between (either direction)."""
    return np.clip((np.asarray(value, dtype=np.float64) - zero_at) / (one_at - zero_at), 0.0, 1.0)
