"""Embedded Whisper: OpenAI's Whisper models in CTranslate2 form, run by faster-whisper with int8 weights on the CPU.

The weights come from pinned data packages, built into place and verified by ``earshot.engines.weights``; the
model loads from that local directory with ``local_files_only``, so nothing is ever fetched from a hub.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from earshot.audio.decode import SAMPLE_RATE, decode_to_pcm16k
from earshot.engines import weights
from earshot.engines.base import Segment, Transcript, TranscriptionOptions, Word
from earshot.engines.whisper_capabilities import (
    LANGUAGE_ID_ASSET,
    WhisperCapabilities,
    check_whisper_request,
)
from earshot.errors import EngineError, ProviderTimeoutError, UnsupportedByModelError
from earshot.languages import language_name
from earshot.live import report_segment

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

# Beam search as OpenAI's reference decoder uses it; greedy decoding would save little (the encoder, not the
# decoder, is most of the CPU) and costs accuracy.
BEAM_SIZE = 5
# Candidates sampled at each fallback temperature above 0. OpenAI's command line samples 5; here one, because a
# window that falls back is one Whisper cannot hear well (most often synthetic or foreign speech being translated)
# and five samples at each of five temperatures made a 4-s clip cost 8 CPU-s, past a sync request's deadline on a
# busy machine, for no better text (docs/decisions.md, 2026-12-02).
BEST_OF = 1
# temperature=0 asks for OpenAI's fallback: decode greedily, and retry hotter when the result looks like a
# failure (too repetitive, too unlikely). Any other temperature samples at exactly that temperature.
FALLBACK_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
# The English-only model cannot tell languages apart and turns any speech into English words, so the multilingual
# model listens first to the speech (found by faster-whisper's bundled Silero VAD, so noise or music cannot pass for
# a language) and speech it does not identify as English is refused. Below this much speech there is nothing to
# identify.
MIN_SPEECH_FOR_LANGUAGE_ID_SEC = 0.3
# faster-whisper's VAD defaults (Silero, threshold 0.5, regions padded by 0.4 s, pauses under 2 s kept): generous
# to quiet speech. A plain dict, so that this module imports without faster-whisper.
VAD_OPTIONS: dict[str, Any] = {"threshold": 0.5, "min_silence_duration_ms": 2000, "speech_pad_ms": 400}
# Stop starting new 30-second windows this close to the caller's deadline, so it can still answer.
_DEADLINE_MARGIN_SEC = 1.0
# Speech left beyond the current window shorter than this needs no new window worth waiting for.
_TAIL_SEC = 1.0
# faster-whisper's windows: 30 s of features at 100 frames a second (a segment's ``seek`` counts those frames).
_WINDOW_SEC = 30.0
_FRAMES_PER_SEC = 100

_models: dict[str, WhisperModel] = {}
_models_lock = threading.Lock()


@functools.cache
def _model_class() -> type[WhisperModel]:
    from faster_whisper import WhisperModel

    class OnceEncodingWhisperModel(WhisperModel):  # type: ignore[misc]
        """faster-whisper encodes the first 30-second window twice when it identifies the language (once to
        identify it, once to transcribe). The encoder is most of Whisper's CPU time, so the last window encoded
        on this thread is remembered and reused when the very same features come again."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._last_encoded = threading.local()

        def encode(self, features: npt.NDArray[np.float32]) -> Any:
            last = getattr(self._last_encoded, "entry", None)
            if last is not None and last[0].shape == features.shape and np.array_equal(last[0], features):
                return last[1]
            encoded = super().encode(features)
            self._last_encoded.entry = (features, encoded)
            return encoded

    return OnceEncodingWhisperModel


ENGINE_THREADS_ENV = "EARSHOT_ENGINE_THREADS"  # set on the inference function (infra.constants.INFERENCE_VCPUS)


def cpu_threads() -> int:
    """CTranslate2's threads: ``$EARSHOT_ENGINE_THREADS`` when set, else the CPUs this process may use (a Lambda's
    vCPUs follow its memory size)."""
    configured = os.environ.get(ENGINE_THREADS_ENV, "").strip()
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def load_model(asset: str) -> WhisperModel:
    """The process's one ``WhisperModel`` for ``asset`` (a key of ``weights.ASSETS``), loaded on first use.

    Raises
    ------
    EngineError
        The weights are missing or fail verification (``weights.WeightsError``), or CTranslate2 cannot load them.
    """
    with _models_lock:
        model = _models.get(asset)
        if model is None:
            directory = weights.ready(asset)
            try:
                model = _model_class()(
                    str(directory),
                    device="cpu",
                    compute_type="int8",
                    cpu_threads=cpu_threads(),
                    num_workers=1,
                    local_files_only=True,
                )
            except Exception as exc:
                raise EngineError(f"the embedded speech model {asset} failed to load") from exc
            _models[asset] = model
        return model


class WhisperEngine:
    """``TranscriptionEngine`` for ``embedded:whisper`` SKUs.

    - ``language``: decodes in that language; without one, a multilingual model identifies it from the first
      30 seconds and reports it with its probability. An English-only model has the multilingual model identify
      the language of the speech first and refuses speech in another language (``UnsupportedByModelError``,
      refunded), whatever ``language`` says: foreign speech is never returned as English.
    - ``prompt``: Whisper's initial prompt (vocabulary, spelling, style of the preceding text).
    - ``temperature``: 0 is OpenAI's fallback ladder; anything else samples at exactly that temperature.
    - ``task="translate"``: Whisper's own speech translation into English (multilingual models only).
    - ``deadline_sec``: checked between 30-second windows; the work stops cleanly when it runs out.
    """

    def __init__(self, capabilities: WhisperCapabilities) -> None:
        self._capabilities = capabilities

    def check(self, options: TranscriptionOptions) -> None:
        check_whisper_request(self._capabilities, options)

    def transcribe(self, audio: Path, options: TranscriptionOptions) -> Transcript:
        """Transcribe (or translate) the local file ``audio``.

        Raises
        ------
        UnsupportedByModelError
            A language this SKU does not have, asked for or heard.
        InvalidAudioError
            The file does not decode.
        EngineError
            The model failed to load or to run.
        ProviderTimeoutError
            ``options.deadline_sec`` ran out before the audio ended.
        """
        started = time.monotonic()
        language = check_whisper_request(self._capabilities, options)
        samples = _float_samples(decode_to_pcm16k(audio))
        speech = _speech_only(samples)
        if not len(speech):  # silence, noise, music, tones: nothing to transcribe (and nothing to hallucinate)
            return Transcript(text="", language="en" if options.task == "translate" else language or "en")
        model = load_model(self._capabilities.asset)
        probability: float | None = None
        if not self._capabilities.multilingual:
            probability = self._refuse_foreign_speech(speech)
            language = "en"
        elif language is None:
            language, probability = self._identify_language(model, speech)
        try:
            generator, _info = model.transcribe(
                samples,
                language=language,
                task=options.task,
                beam_size=BEAM_SIZE,
                best_of=BEST_OF,
                temperature=list(FALLBACK_TEMPERATURES) if options.temperature == 0 else options.temperature,
                initial_prompt=options.prompt or None,
                word_timestamps=options.word_timestamps,
                condition_on_previous_text=True,
                # Only the speech is decoded (the same regions as _speech_only): silence costs nothing and cannot
                # turn into invented words; timestamps stay those of the original audio.
                vad_filter=True,
                vad_parameters=VAD_OPTIONS,
            )
        except Exception as exc:
            raise EngineError("the embedded speech engine failed on this audio") from exc
        built: list[Segment] = []
        speech_sec = len(speech) / SAMPLE_RATE
        for raw in _until_deadline(
            generator, speech_sec=speech_sec, started=started, deadline_sec=options.deadline_sec
        ):
            built.append(_segment(len(built), raw))
            report_segment(built[-1])  # a streaming request or a task shows it now, before the rest is decoded
        translated = options.task == "translate"
        return Transcript(
            text="".join(segment.text for segment in built).strip(),
            language="en" if translated else language,
            # Only what the model identified itself: a language the caller gave is not a measurement.
            language_probability=None if translated or options.language or probability is None else probability,
            segments=built,
            words=[word for segment in built for word in segment.words],
        )

    def _identify_language(self, model: WhisperModel, speech: npt.NDArray[np.float32]) -> tuple[str, float]:
        """The language of the first 30 seconds of ``speech``, and its probability; refuse one the SKU lacks.

        ``speech`` is what faster-whisper's own VAD filter keeps, and the features are cut exactly as it cuts its
        first window, so the encoder output computed here is reused for that window (``OnceEncodingWhisperModel``).
        """
        spoken, probability, _ = _detect_language(model, speech)
        if spoken not in self._capabilities.languages:
            raise UnsupportedByModelError(
                f"the speech is {language_name(spoken)} ({spoken}, probability {probability:.2f}), which "
                f"{self._capabilities.sku} does not transcribe",
                param="language",
            )
        return spoken, probability

    def _refuse_foreign_speech(self, speech: npt.NDArray[np.float32]) -> float | None:
        """Identify the language of ``speech`` with the multilingual model; refuse speech that is not English.

        Returns the probability that the speech is English, or ``None`` when there is too little to identify.
        """
        if len(speech) < MIN_SPEECH_FOR_LANGUAGE_ID_SEC * SAMPLE_RATE:
            return None
        spoken, probability, english = _detect_language(load_model(LANGUAGE_ID_ASSET), speech)
        if spoken != "en":
            raise UnsupportedByModelError(
                f"the speech is {language_name(spoken)} ({spoken}, probability {probability:.2f}; English "
                f"{english:.2f}), and {self._capabilities.sku} only transcribes English. Use a multilingual model "
                "(model=transcribe) for this audio",
                param="model",
            )
        return english


def _speech_only(samples: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """The speech in ``samples`` (Silero VAD, as faster-whisper ships it), joined; empty when there is none."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    try:
        regions = get_speech_timestamps(samples, VadOptions(**VAD_OPTIONS))
    except Exception as exc:
        raise EngineError("the embedded voice activity detection failed on this audio") from exc
    if not regions:
        return samples[:0]
    joined: npt.NDArray[np.float32] = np.concatenate([samples[r["start"] : r["end"]] for r in regions])
    return joined


def _detect_language(model: WhisperModel, samples: npt.NDArray[np.float32]) -> tuple[str, float, float]:
    """Whisper's language identification on the first 30 seconds: (language, its probability, English's)."""
    try:
        features = model.feature_extractor(samples)
        # faster-whisper's transcription windows stop one frame short of the features' end; so does this one.
        window = features[..., : max(1, features.shape[-1] - 1)]
        spoken, probability, everything = model.detect_language(features=window)
    except Exception as exc:
        raise EngineError("the embedded language identification failed on this audio") from exc
    english = dict(everything).get("en", 0.0)
    return str(spoken), round(float(probability), 4), round(float(english), 4)


def _float_samples(pcm: npt.NDArray[np.int16]) -> npt.NDArray[np.float32]:
    samples: npt.NDArray[np.float32] = pcm.astype(np.float32) / 32768.0
    return samples


def _until_deadline(
    generator: Iterator[Any], *, speech_sec: float, started: float, deadline_sec: float | None
) -> Iterator[Any]:
    """Segments from faster-whisper's lazy generator, stopping cleanly (generator closed) if time runs out.

    ``speech_sec`` is the length of the speech faster-whisper decodes (its VAD keeps only that, joined). Segments
    come out window by window: a segment's ``seek`` is where its 30-second window starts in that speech, and the
    segments of a window that is already decoded cost nothing. A ``next`` that must decode a new window takes
    about as long as the slowest one so far, so while speech remains beyond the current window, the next segment is
    asked for only if that much time is left.
    """
    slowest = 0.0
    window_end = 0.0
    try:
        while True:
            before = time.monotonic()
            if deadline_sec is not None:
                expected = slowest if speech_sec - window_end > _TAIL_SEC else 0.0
                if before - started + expected > deadline_sec - _DEADLINE_MARGIN_SEC:
                    raise ProviderTimeoutError("the embedded speech engine ran out of time before the audio ended")
            try:
                segment = next(generator)
            except StopIteration:
                return
            except Exception as exc:
                raise EngineError("the embedded speech engine failed on this audio") from exc
            slowest = max(slowest, time.monotonic() - before)
            window_end = max(window_end, int(segment.seek) / _FRAMES_PER_SEC + _WINDOW_SEC)
            yield segment
    finally:
        close = getattr(generator, "close", None)
        if close is not None:
            close()


def _segment(index: int, raw: Any) -> Segment:
    words = [
        Word(
            word=word.word.strip(),
            start=round(float(word.start), 3),
            end=round(float(word.end), 3),
            probability=round(float(word.probability), 4),
        )
        for word in raw.words or ()
    ]
    return Segment(
        id=index,
        seek=int(raw.seek),
        start=round(float(raw.start), 3),
        end=round(float(raw.end), 3),
        text=raw.text,
        tokens=[int(token) for token in raw.tokens],
        temperature=float(raw.temperature) if raw.temperature is not None else None,
        avg_logprob=round(float(raw.avg_logprob), 4),
        compression_ratio=round(float(raw.compression_ratio), 4),
        no_speech_prob=round(float(raw.no_speech_prob), 4),
        words=words,
    )
