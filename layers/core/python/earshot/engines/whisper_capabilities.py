"""What each embedded Whisper SKU can do, checked before any charge: light (no numpy, no model), shared by the lazy
proxy (``earshot.engines.embedded``) and the engine (``earshot.engines.whisper_engine``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from earshot.engines.base import TranscriptionOptions
from earshot.errors import InvalidRequestError, ProviderError, UnsupportedByModelError
from earshot.languages import WHISPER_LANGUAGES, language_name, normalize_language

# The Whisper models ``embedded:whisper`` SKUs can name (``upstream_model``), and whether each is multilingual.
WHISPER_MODELS: dict[str, bool] = {"whisper-base": True, "whisper-tiny-en": False}
# The multilingual model that identifies the language for English-only ones.
LANGUAGE_ID_ASSET = "whisper-base"
# What the analyzer listens with when its catalog entry names no Whisper model.
DEFAULT_SPEECH_ASSET = "whisper-base"


@dataclass(frozen=True)
class WhisperCapabilities:
    """What one ``embedded:whisper`` SKU can do, from the catalog and the model it names."""

    sku: str
    asset: str
    multilingual: bool
    languages: frozenset[str]

    @classmethod
    def of(cls, sku: str, asset: str, languages: Sequence[str] | None) -> WhisperCapabilities:
        """Capabilities of catalog model ``sku``: ``asset`` must be a known Whisper model, and the catalog's
        ``languages`` (all the model has when absent) must be languages that model has."""
        if asset not in WHISPER_MODELS:
            raise ProviderError(f"model {sku!r} names an unknown embedded Whisper model {asset!r}")
        multilingual = WHISPER_MODELS[asset]
        available = frozenset(WHISPER_LANGUAGES) if multilingual else frozenset({"en"})
        chosen = available if languages is None else frozenset(normalize_language(code) or code for code in languages)
        if not chosen <= available:
            raise ProviderError(f"model {sku!r} lists languages {asset} lacks: {', '.join(sorted(chosen - available))}")
        return cls(sku=sku, asset=asset, multilingual=multilingual, languages=chosen)


def check_whisper_request(capabilities: WhisperCapabilities, options: TranscriptionOptions) -> str | None:
    """Refuse what ``capabilities`` cannot do, before any charge; return the request's Whisper language code.

    Raises
    ------
    InvalidRequestError
        ``language`` names no language Whisper knows.
    UnsupportedByModelError
        The SKU does not have that language, or cannot translate.
    """
    if options.task == "translate" and not capabilities.multilingual:
        raise UnsupportedByModelError(f"{capabilities.sku} is English-only and cannot translate", param="model")
    if options.language is None or not options.language.strip():
        return None
    code = normalize_language(options.language)
    if code is None:
        raise InvalidRequestError(
            f"language {options.language!r} is not a language code we know; use ISO-639-1, e.g. 'en', 'de'",
            param="language",
        )
    if code not in capabilities.languages:
        hint = "; it only transcribes English, try model=transcribe" if not capabilities.multilingual else ""
        raise UnsupportedByModelError(
            f"{capabilities.sku} does not transcribe {language_name(code)} ({code}){hint}", param="language"
        )
    return code
