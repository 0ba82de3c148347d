"""The embedded English recogniser: pocketsphinx with the model its wheel ships, so transcription works
offline and with no upstream keys. Accuracy is low; it is the floor, not the product.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pocketsphinx

from earshot.audio.decode import SAMPLE_RATE, decode_to_pcm16k
from earshot.engines.base import Segment, Transcript, TranscriptionOptions, Word, check_english_only
from earshot.errors import EngineError, ProviderTimeoutError

# Voice activity detection splits the audio into utterances on pauses; each is decoded on its own, which
# keeps pocketsphinx's per-utterance search bounded and gives segments natural edges.
_VAD_WINDOW_SEC = 0.3
_VAD_RATIO = 0.9
# An utterance with no pause this long is cut anyway, at its quietest moment near the limit: it bounds
# the work between deadline checks (noise runs at ~0.8x real time) and keeps segments Whisper-sized.
_MAX_UTTERANCE_SEC = 20.0
_CUT_SEARCH_SEC = 5.0
_CUT_WINDOW_SEC = 0.1
# Inside an utterance, a gap between words at least this long starts a new segment.
_SEGMENT_PAUSE_SEC = 0.5
# Word posteriors can underflow to zero; floor them so avg_logprob stays finite.
_MIN_POSTERIOR = 1e-10
# Stop starting new utterances this close to the caller's deadline, so it can still answer.
_DEADLINE_MARGIN_SEC = 1.0

_ALTERNATE_PRONUNCIATION = re.compile(r"\(\d+\)$")

_decoder: Any = None
_decoder_lock = threading.Lock()


@dataclass(frozen=True)
class _RecognisedWord:
    text: str
    start: float
    end: float
    posterior: float


class PocketsphinxEngine:
    """``TranscriptionEngine`` backed by pocketsphinx's bundled US English model.

    What it ignores, and why:

    - ``temperature``: pocketsphinx's search is deterministic (beam search over an n-gram language model);
      there is no sampling for a temperature to control.
    - ``prompt``: pocketsphinx cannot be primed with preceding text, and adding the prompt's words to the
      language model would bias every later request sharing the decoder.
    - ``task="translate"``: the engine only hears English, and English is what translate produces.

    The decoder loads once per process, on first use (about a third of a second), and is reused by warm
    Lambdas. It is not thread-safe, so one lock serialises recognition across the local server's threads.
    """

    def check(self, options: TranscriptionOptions) -> None:
        """Raise ``UnsupportedByModelError`` unless the request is English (or leaves the language open)."""
        check_english_only(options)

    def transcribe(self, audio: Path, options: TranscriptionOptions) -> Transcript:
        """Transcribe the local file ``audio``.

        Parameters
        ----------
        audio
            A local audio or video file in any format ``decode_to_pcm16k`` reads.
        options
            The request; see the class docstring for what is ignored. ``deadline_sec`` bounds the work.

        Returns
        -------
        Transcript
            Segments (always) with word timestamps (only when ``options.word_timestamps``); silence gives
            an empty text and no segments.

        Raises
        ------
        UnsupportedByModelError
            ``options`` ask for a language other than English.
        InvalidAudioError
            The file does not decode.
        EngineError
            Pocketsphinx failed on audio that decoded.
        ProviderTimeoutError
            ``options.deadline_sec`` ran out before the audio was recognised.
        """
        started = time.monotonic()
        self.check(options)
        pcm = decode_to_pcm16k(audio)
        duration = len(pcm) / SAMPLE_RATE
        utterances = list(_utterances(pcm))  # its own endpointer per call: no need to hold the lock

        words_by_segment: list[list[_RecognisedWord]] = []
        with _decoder_lock:
            decoder = _load_decoder()
            _forget_previous_audio(decoder)
            for first, last in utterances:
                if _out_of_time(started, options.deadline_sec):
                    raise ProviderTimeoutError("the embedded engine ran out of time before the audio ended")
                words = _recognise(decoder, pcm[first:last], offset=first / SAMPLE_RATE, duration=duration)
                words_by_segment.extend(_split_on_pauses(words))

        segments = [
            _segment(index, words, with_words=options.word_timestamps) for index, words in enumerate(words_by_segment)
        ]
        return Transcript(
            text=" ".join(segment.text for segment in segments),
            language="en",
            segments=segments,
            words=[word for segment in segments for word in segment.words],
        )


def _out_of_time(started: float, deadline_sec: float | None) -> bool:
    return deadline_sec is not None and time.monotonic() - started > deadline_sec - _DEADLINE_MARGIN_SEC


def _load_decoder() -> Any:
    """The process's one decoder, built on first use. Call with ``_decoder_lock`` held."""
    global _decoder
    if _decoder is None:
        try:
            _decoder = pocketsphinx.Decoder(
                hmm=pocketsphinx.get_model_path("en-us/en-us"),
                lm=pocketsphinx.get_model_path("en-us/en-us.lm.bin"),
                dict=pocketsphinx.get_model_path("en-us/cmudict-en-us.dict"),
                samprate=SAMPLE_RATE,
                loglevel="ERROR",  # its INFO chatter is a few hundred lines per utterance
            )
        except Exception as exc:
            raise EngineError("the embedded speech engine failed to load its model") from exc
    return _decoder


def _forget_previous_audio(decoder: Any) -> None:
    """Reset the feature pipeline's running cepstral mean, which otherwise carries the last request's
    audio into this one: a transcript must not depend on what another caller sent before."""
    try:
        decoder.reinit_feat()
    except Exception as exc:
        _discard_decoder()
        raise EngineError("the embedded speech engine failed to reset") from exc


def _discard_decoder() -> None:
    """Forget the process's decoder. Call with ``_decoder_lock`` held."""
    global _decoder
    _decoder = None


def _utterances(pcm: npt.NDArray[np.int16]) -> Iterator[tuple[int, int]]:
    """Sample ranges of speech, from pocketsphinx's endpointer, none longer than ``_MAX_UTTERANCE_SEC``."""
    for first, last in _speech_regions(pcm):
        yield from _cap_length(pcm, first, last)


def _speech_regions(pcm: npt.NDArray[np.int16]) -> Iterator[tuple[int, int]]:
    try:
        endpointer = pocketsphinx.Endpointer(window=_VAD_WINDOW_SEC, ratio=_VAD_RATIO, sample_rate=SAMPLE_RATE)
        frame = endpointer.frame_bytes // pcm.itemsize
        # end_stream takes the last (possibly partial, never empty) frame and closes any open region.
        body = (len(pcm) - 1) // frame * frame
        regions: list[tuple[float, float]] = []
        for chunk in pcm[:body].reshape(-1, frame):
            if endpointer.process(chunk.tobytes()) is not None and not endpointer.in_speech:
                regions.append((endpointer.speech_start, endpointer.speech_end))
        if endpointer.end_stream(pcm[body:].tobytes()) is not None:
            regions.append((endpointer.speech_start, endpointer.speech_end))
    except Exception as exc:
        raise EngineError("the embedded speech engine failed to find speech in the audio") from exc
    for start, end in regions:
        first, last = max(0, round(start * SAMPLE_RATE)), min(len(pcm), round(end * SAMPLE_RATE))
        if last > first:
            yield first, last


def _cap_length(pcm: npt.NDArray[np.int16], first: int, last: int) -> Iterator[tuple[int, int]]:
    limit = round(_MAX_UTTERANCE_SEC * SAMPLE_RATE)
    window = round(_CUT_WINDOW_SEC * SAMPLE_RATE)
    while last - first > limit:
        # Cut at the quietest window in the last few seconds before the limit, so no word is split
        # when the speaker paused at all.
        search_from = first + limit - round(_CUT_SEARCH_SEC * SAMPLE_RATE)
        span = pcm[search_from : first + limit].astype(np.float32)
        usable = len(span) // window * window
        energy = np.square(span[:usable]).reshape(-1, window).sum(axis=1)
        cut = search_from + int(np.argmin(energy)) * window + window // 2
        yield first, cut
        first = cut
    yield first, last


def _recognise(decoder: Any, pcm: npt.NDArray[np.int16], *, offset: float, duration: float) -> list[_RecognisedWord]:
    """Decode one utterance; return its words (fillers dropped) with times in the whole file."""
    try:
        decoder.start_utt()
        # full_utt: the whole utterance is here, so pocketsphinx normalises with its own statistics.
        decoder.process_raw(pcm.tobytes(), no_search=False, full_utt=True)
        decoder.end_utt()
        frame_rate = float(decoder.config["frate"])
        entries = [(s.word, s.start_frame, s.end_frame, s.prob) for s in decoder.seg()]
    except Exception as exc:
        _discard_decoder()  # it may be stuck mid-utterance; the next request gets a fresh one
        raise EngineError("the embedded speech engine failed on this audio") from exc

    words: list[_RecognisedWord] = []
    for token, start_frame, end_frame, posterior in entries:
        if _is_filler(token):
            continue
        start = min(duration, offset + start_frame / frame_rate)
        end = min(duration, offset + (end_frame + 1) / frame_rate)
        words.append(_RecognisedWord(_ALTERNATE_PRONUNCIATION.sub("", token), start, end, posterior))
    return words


def _is_filler(token: str) -> bool:
    # <s>, </s>, <sil>, [NOISE], [SPEECH], and the ++NOISE++ style of older models.
    return token.startswith(("<", "[", "+"))


def _split_on_pauses(words: Sequence[_RecognisedWord]) -> Iterator[list[_RecognisedWord]]:
    current: list[_RecognisedWord] = []
    for word in words:
        if current and word.start - current[-1].end >= _SEGMENT_PAUSE_SEC:
            yield current
            current = []
        current.append(word)
    if current:
        yield current


def _segment(index: int, words: Sequence[_RecognisedWord], *, with_words: bool) -> Segment:
    return Segment(
        id=index,
        start=round(words[0].start, 3),
        end=round(words[-1].end, 3),
        text=" ".join(word.text for word in words),
        words=[Word(word=w.text, start=round(w.start, 3), end=round(w.end, 3)) for w in words] if with_words else [],
        # Mean log posterior of the words: the closest pocketsphinx has to Whisper's token log-probability.
        avg_logprob=round(sum(math.log(max(w.posterior, _MIN_POSTERIOR)) for w in words) / len(words), 4),
    )
