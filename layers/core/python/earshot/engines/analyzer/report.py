"""The report: what the analyzer measured, as pydantic models."""

from __future__ import annotations

from pydantic import BaseModel, Field

# The decoder's demuxer whitelist: the analyzer opens uploads exactly as safely as the speech path does.
from earshot.engines.analyzer._types import ContentLabel


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
