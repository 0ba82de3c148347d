"""Spoken languages: the codes Whisper knows and the English names OpenAI's verbose_json reports.

Light on purpose (no audio stack): requests are checked against it before anything is charged.
"""

from __future__ import annotations

# Whisper's languages (ISO-639-1 where one exists), in the order of its tokenizer, with the names it gives them.
WHISPER_LANGUAGES: dict[str, str] = {
    "en": "english", "zh": "chinese", "de": "german", "es": "spanish", "ru": "russian", "ko": "korean",
    "fr": "french", "ja": "japanese", "pt": "portuguese", "tr": "turkish", "pl": "polish", "ca": "catalan",
    "nl": "dutch", "ar": "arabic", "sv": "swedish", "it": "italian", "id": "indonesian", "hi": "hindi",
    "fi": "finnish", "vi": "vietnamese", "he": "hebrew", "uk": "ukrainian", "el": "greek", "ms": "malay",
    "cs": "czech", "ro": "romanian", "da": "danish", "hu": "hungarian", "ta": "tamil", "no": "norwegian",
    "th": "thai", "ur": "urdu", "hr": "croatian", "bg": "bulgarian", "lt": "lithuanian", "la": "latin",
    "mi": "maori", "ml": "malayalam", "cy": "welsh", "sk": "slovak", "te": "telugu", "fa": "persian",
    "lv": "latvian", "bn": "bengali", "sr": "serbian", "az": "azerbaijani", "sl": "slovenian", "kn": "kannada",
    "et": "estonian", "mk": "macedonian", "br": "breton", "eu": "basque", "is": "icelandic", "hy": "armenian",
    "ne": "nepali", "mn": "mongolian", "bs": "bosnian", "kk": "kazakh", "sq": "albanian", "sw": "swahili",
    "gl": "galician", "mr": "marathi", "pa": "punjabi", "si": "sinhala", "km": "khmer", "sn": "shona",
    "yo": "yoruba", "so": "somali", "af": "afrikaans", "oc": "occitan", "ka": "georgian", "be": "belarusian",
    "tg": "tajik", "sd": "sindhi", "gu": "gujarati", "am": "amharic", "yi": "yiddish", "lo": "lao",
    "uz": "uzbek", "fo": "faroese", "ht": "haitian creole", "ps": "pashto", "tk": "turkmen", "nn": "nynorsk",
    "mt": "maltese", "sa": "sanskrit", "lb": "luxembourgish", "my": "myanmar", "bo": "tibetan", "tl": "tagalog",
    "mg": "malagasy", "as": "assamese", "tt": "tatar", "haw": "hawaiian", "ln": "lingala", "ha": "hausa",
    "ba": "bashkir", "jw": "javanese", "su": "sundanese",
}  # fmt: skip

_BY_NAME = {name: code for code, name in WHISPER_LANGUAGES.items()}
# Other spellings callers use for the same languages.
_ALIASES = {
    "jv": "jw", "iw": "he", "nb": "no", "fil": "tl", "castilian": "es", "flemish": "nl", "burmese": "my",
    "valencian": "ca", "haitian": "ht", "letzeburgesch": "lb", "pushto": "ps", "panjabi": "pa", "moldavian": "ro",
    "moldovan": "ro", "sinhalese": "si", "mandarin": "zh",
}  # fmt: skip


def normalize_language(value: str) -> str | None:
    """The Whisper code for ``value`` (a code such as ``de``/``de-AT``/``pt_BR``, or an English name such as
    ``German``), or ``None`` when Whisper does not know the language."""
    text = value.strip().lower().replace("_", "-")
    if text in WHISPER_LANGUAGES:
        return text
    if text in _BY_NAME:
        return _BY_NAME[text]
    if text in _ALIASES:
        return _ALIASES[text]
    primary = text.split("-", 1)[0]
    if primary in WHISPER_LANGUAGES:
        return primary
    return _ALIASES.get(primary)


def language_name(code: str) -> str:
    """The English name of a language code, as verbose_json reports it (``de`` -> ``german``)."""
    normalized = normalize_language(code)
    return WHISPER_LANGUAGES[normalized] if normalized else code
