"""What the embedded Whisper SKUs refuse, decided before any charge and without loading a model."""

from __future__ import annotations

import inspect
import subprocess
import sys
from collections.abc import Generator, Iterator
from types import SimpleNamespace

import pytest

from earshot.engines.base import TranscriptionOptions
from earshot.engines.embedded import LazyWhisper, WhisperCapabilities
from earshot.errors import InvalidRequestError, ProviderError, ProviderTimeoutError, UnsupportedByModelError
from earshot.languages import WHISPER_LANGUAGES, language_name, normalize_language

BASE = LazyWhisper(sku="whisper-base", asset="whisper-base")
TINY = LazyWhisper(sku="whisper-tiny-en", asset="whisper-tiny-en", languages=["en"])


@pytest.mark.parametrize(
    ("given", "code"),
    [("de", "de"), ("DE", "de"), ("de-AT", "de"), ("pt_BR", "pt"), ("German", "de"), ("haw", "haw"), ("jv", "jw")],
)
def test_languages_are_recognised_by_code_region_or_name(given: str, code: str) -> None:
    assert normalize_language(given) == code


def test_unknown_languages_are_not_guessed() -> None:
    assert normalize_language("klingon") is None
    assert normalize_language("xx") is None
    assert language_name("de") == "german" and language_name("en-US") == "english"
    assert len(WHISPER_LANGUAGES) == 99  # what Whisper base's tokenizer has (its config's lang_ids)


def test_the_multilingual_sku_takes_any_whisper_language() -> None:
    for given in ("de", "es", "ja", "German", "en-GB"):
        BASE.check(TranscriptionOptions(language=given))
    BASE.check(TranscriptionOptions(task="translate", language="fr"))
    BASE.check(TranscriptionOptions())  # no language: the model identifies it


def test_a_language_code_nobody_knows_is_a_400_naming_the_parameter() -> None:
    with pytest.raises(InvalidRequestError) as refused:
        BASE.check(TranscriptionOptions(language="klingon"))
    assert refused.value.status == 400 and refused.value.param == "language"


def test_the_english_sku_refuses_other_languages_and_points_at_one_that_has_them() -> None:
    TINY.check(TranscriptionOptions(language="en"))
    TINY.check(TranscriptionOptions(language="en-US"))
    with pytest.raises(UnsupportedByModelError, match=r"german.*model=transcribe") as refused:
        TINY.check(TranscriptionOptions(language="de"))
    assert refused.value.status == 400 and refused.value.code == "unsupported_by_model"


def test_the_english_sku_cannot_translate() -> None:
    with pytest.raises(UnsupportedByModelError, match="cannot translate"):
        TINY.check(TranscriptionOptions(task="translate"))


def test_a_catalog_narrowing_the_languages_is_obeyed() -> None:
    narrow = LazyWhisper(sku="whisper-euro", asset="whisper-base", languages=["en", "de", "fr"])
    narrow.check(TranscriptionOptions(language="fr"))
    with pytest.raises(UnsupportedByModelError, match="japanese"):
        narrow.check(TranscriptionOptions(language="ja"))


def test_a_catalog_claiming_what_the_model_lacks_is_a_configuration_error() -> None:
    with pytest.raises(ProviderError, match="lacks: de"):
        WhisperCapabilities.of("bad", "whisper-tiny-en", ["en", "de"])
    with pytest.raises(ProviderError, match="unknown embedded Whisper model"):
        WhisperCapabilities.of("bad", "whisper-huge", None)


def test_checking_a_request_imports_neither_the_model_runtime_nor_numpy() -> None:
    code = (
        "import sys\n"
        "from earshot.engines.embedded import LazyWhisper\n"
        "from earshot.engines.base import TranscriptionOptions\n"
        "LazyWhisper(sku='s', asset='whisper-base').check(TranscriptionOptions(language='de'))\n"
        "heavy = [m for m in ('faster_whisper', 'ctranslate2', 'numpy', 'av') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def _segments(ends: list[float], cost: float, clock: list[float]) -> Generator[SimpleNamespace, None, None]:
    for end in ends:
        clock[0] += cost  # each window takes `cost` seconds
        yield SimpleNamespace(end=end, seek=round((end - 30.0) * 100))  # one 30-s window per segment


def test_segments_of_a_window_already_decoded_are_never_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from earshot.engines import whisper_engine

    clock = [0.0]
    monkeypatch.setattr("earshot.engines.whisper_engine.time.monotonic", lambda: clock[0])

    def one_slow_window() -> Iterator[SimpleNamespace]:
        clock[0] += 20.0  # the window's decode; its segments then come at once
        yield SimpleNamespace(end=4.1, seek=0)
        yield SimpleNamespace(end=8.1, seek=0)

    heard = [
        s.end for s in whisper_engine._until_deadline(one_slow_window(), speech_sec=7.6, started=0.0, deadline_sec=29.0)
    ]
    assert heard == [4.1, 8.1]


def test_long_audio_stops_cleanly_before_a_window_that_cannot_finish_in_time(monkeypatch: pytest.MonkeyPatch) -> None:
    from earshot.engines import whisper_engine

    clock = [0.0]
    monkeypatch.setattr("earshot.engines.whisper_engine.time.monotonic", lambda: clock[0])
    generator = _segments([30.0, 60.0, 90.0, 120.0], cost=8.0, clock=clock)

    heard = []
    with pytest.raises(ProviderTimeoutError):
        for segment in whisper_engine._until_deadline(generator, speech_sec=120.0, started=0.0, deadline_sec=29.0):
            heard.append(segment.end)
    # 8 s per window: after three (24 s), a fourth would end at 32 s, past the 29 s deadline: not started.
    assert heard == [30.0, 60.0, 90.0]
    assert inspect.getgeneratorstate(generator) == inspect.GEN_CLOSED  # closed, not left mid-window


def test_the_last_window_is_never_refused_for_time_it_will_not_need(monkeypatch: pytest.MonkeyPatch) -> None:
    from earshot.engines import whisper_engine

    clock = [0.0]
    monkeypatch.setattr("earshot.engines.whisper_engine.time.monotonic", lambda: clock[0])
    generator = _segments([3.0], cost=20.0, clock=clock)
    heard = [s.end for s in whisper_engine._until_deadline(generator, speech_sec=3.2, started=0.0, deadline_sec=29.0)]
    assert heard == [3.0]


def test_the_engine_uses_the_threads_the_deployment_gives_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from earshot.engines import whisper_engine

    monkeypatch.setenv(whisper_engine.ENGINE_THREADS_ENV, "3")
    assert whisper_engine.cpu_threads() == 3
    monkeypatch.setenv(whisper_engine.ENGINE_THREADS_ENV, "")
    assert whisper_engine.cpu_threads() >= 1
