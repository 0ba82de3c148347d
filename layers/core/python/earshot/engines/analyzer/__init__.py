"""The embedded acoustic analyzer: how /v1/audio/understand and extraction answer with no upstream audio model.

It measures and says so; it recognises nothing. Loudness, peaks, clipping, the stereo image, how much of the
audio is speech, music or silence, tempo, pitch and the spectrum are measured; emotions, genres, instruments,
sound sources, languages and speakers are not, and answers say that plainly.

One decoding pass (``decoding``) feeds two views of the audio:

- **Native rate and channels**, streamed in one-second blocks, for everything a meter reads (``levels``): ITU-R
  BS.1770-4 integrated loudness (K-weighting, gating, surround weights), EBU Tech 3342 loudness range, sample and
  true peak (the BS.1770-4 Annex 2 interpolator), clipping, the stereo image and the long-term spectrum. Memory
  stays constant however long the file is.
- **16 kHz mono**, 16-bit like the speech engine's input (58 MB for 30 minutes), framed every 10 ms in 20-second
  blocks (``tracks``): energy, spectral flatness, tonality, flux and stability, and YIN pitch. The speech/music/
  silence timeline (``timeline``), the tempo (``tempo``) and the pitch range come from those frame tracks.

``analysis`` runs it all into an ``AcousticReport`` (``report``); ``answers`` turns a report into plain answers.

Only numpy, no scipy: the K-weighting filters run as an FFT convolution with their impulse response (exact to
1e-9), which keeps ~130 MB of scipy out of a Lambda layer that is already close to its 250 MB limit.
"""

from __future__ import annotations

from earshot.engines.analyzer.analysis import analyze_audio
from earshot.engines.analyzer.answers import answer_question, extract_facts
from earshot.engines.analyzer.report import AcousticReport

__all__ = ["AcousticReport", "analyze_audio", "answer_question", "extract_facts"]
