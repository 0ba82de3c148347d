"""The analysis: one decoding pass feeding the meters and the frame tracks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

# The decoder's demuxer whitelist: the analyzer opens uploads exactly as safely as the speech path does.
from earshot.engines.analyzer.decoding import _decode
from earshot.engines.analyzer.report import AcousticReport, ContentShares
from earshot.engines.analyzer.tempo import _rhythm
from earshot.engines.analyzer.timeline import (
    _LABELS,
    _MUSIC,
    _OTHER,
    _SILENCE,
    _SPEECH,
    _label_frames,
    _labels_from_models,
    _pitch_range,
    _silent_frames,
    _timeline,
)
from earshot.engines.analyzer.tracks import _frame_tracks

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
