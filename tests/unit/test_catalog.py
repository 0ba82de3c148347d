"""The catalog is data: loaded from TOML, validated, resolving aliases."""

from __future__ import annotations

from pathlib import Path

import pytest

from earshot.catalog import load_catalog
from earshot.config import Settings
from earshot.errors import NotATranscriptionModelError


def test_default_catalog_prices_the_embedded_engine_and_aliases_transcribe() -> None:
    catalog = load_catalog(Settings().resolved_catalog())
    model = catalog.resolve_transcription("transcribe")
    assert (model.sku, model.provider, model.upstream_model) == ("whisper-base", "embedded:whisper", "whisper-base")
    assert model.price_micro_usd_per_minute == 900
    assert model.translates and model.languages is not None and {"en", "de", "es", "fr"} <= set(model.languages)
    assert catalog.resolve_transcription(model.sku) is model


def test_the_fast_english_model_says_it_only_has_english_and_does_not_translate() -> None:
    catalog = load_catalog(Settings().resolved_catalog())
    fast = catalog.resolve_transcription("transcribe-fast")
    assert (fast.sku, fast.languages, fast.translates) == ("whisper-tiny-en", ["en"], False)
    assert fast.price_micro_usd_per_minute < catalog.resolve_transcription("transcribe").price_micro_usd_per_minute
    with pytest.raises(NotATranscriptionModelError, match="does not translate"):
        catalog.resolve_transcription("transcribe-fast", translate=True)


def test_unknown_or_wrong_kind_models_are_rejected() -> None:
    catalog = load_catalog(Settings().resolved_catalog())
    with pytest.raises(NotATranscriptionModelError):
        catalog.resolve_transcription("gpt-4o")


def test_duplicate_names_and_float_prices_are_refused(tmp_path: Path) -> None:
    dup = tmp_path / "dup.toml"
    dup.write_text(
        '[[models]]\nsku="a"\nkind="transcription"\nprovider="embedded:whisper"\nprice_micro_usd_per_minute=1\naliases=["t"]\n'
        '[[models]]\nsku="b"\nkind="transcription"\nprovider="embedded:whisper"\nprice_micro_usd_per_minute=1\naliases=["t"]\n'
    )
    with pytest.raises(RuntimeError, match="used twice"):
        load_catalog(dup)
    floaty = tmp_path / "float.toml"
    floaty.write_text(
        '[[models]]\nsku="a"\nkind="transcription"\nprovider="embedded:whisper"\nprice_micro_usd_per_minute=0.5\n'
    )
    with pytest.raises(RuntimeError):
        load_catalog(floaty)
