"""The languages Whisper knows: their codes and English names.

The list is Whisper's own (openai/whisper's tokenizer, the same 100 codes as
faster-whisper's tokenizer; a test checks that they agree). It lives here so
that a setting can be checked without importing the engine.
"""

from __future__ import annotations

from .errors import SettingsError

LANGUAGES = {
    "en": "english", "zh": "chinese", "de": "german", "es": "spanish", "ru": "russian",
    "ko": "korean", "fr": "french", "ja": "japanese", "pt": "portuguese", "tr": "turkish",
    "pl": "polish", "ca": "catalan", "nl": "dutch", "ar": "arabic", "sv": "swedish",
    "it": "italian", "id": "indonesian", "hi": "hindi", "fi": "finnish", "vi": "vietnamese",
    "he": "hebrew", "uk": "ukrainian", "el": "greek", "ms": "malay", "cs": "czech",
    "ro": "romanian", "da": "danish", "hu": "hungarian", "ta": "tamil", "no": "norwegian",
    "th": "thai", "ur": "urdu", "hr": "croatian", "bg": "bulgarian", "lt": "lithuanian",
    "la": "latin", "mi": "maori", "ml": "malayalam", "cy": "welsh", "sk": "slovak",
    "te": "telugu", "fa": "persian", "lv": "latvian", "bn": "bengali", "sr": "serbian",
    "az": "azerbaijani", "sl": "slovenian", "kn": "kannada", "et": "estonian",
    "mk": "macedonian", "br": "breton", "eu": "basque", "is": "icelandic", "hy": "armenian",
    "ne": "nepali", "mn": "mongolian", "bs": "bosnian", "kk": "kazakh", "sq": "albanian",
    "sw": "swahili", "gl": "galician", "mr": "marathi", "pa": "punjabi", "si": "sinhala",
    "km": "khmer", "sn": "shona", "yo": "yoruba", "so": "somali", "af": "afrikaans",
    "oc": "occitan", "ka": "georgian", "be": "belarusian", "tg": "tajik", "sd": "sindhi",
    "gu": "gujarati", "am": "amharic", "yi": "yiddish", "lo": "lao", "uz": "uzbek",
    "fo": "faroese", "ht": "haitian creole", "ps": "pashto", "tk": "turkmen",
    "nn": "nynorsk", "mt": "maltese", "sa": "sanskrit", "lb": "luxembourgish",
    "my": "myanmar", "bo": "tibetan", "tl": "tagalog", "mg": "malagasy", "as": "assamese",
    "tt": "tatar", "haw": "hawaiian", "ln": "lingala", "ha": "hausa", "ba": "bashkir",
    "jw": "javanese", "su": "sundanese", "yue": "cantonese",
}
CODES_BY_NAME = {name: code for code, name in LANGUAGES.items()}
# Values that mean "no fixed language: detect it in each note".
DETECT = ("auto", "detect")


def language_code(value: str | None) -> str | None:
    """The Whisper code for `value` (a code such as 'de', or a name such as 'German');
    None for None, 'auto' or 'detect'. Raises SettingsError for anything else."""
    if value is None:
        return None
    key = value.strip().lower()
    if key in DETECT:
        return None
    if key in LANGUAGES:
        return key
    if key in CODES_BY_NAME:
        return CODES_BY_NAME[key]
    raise SettingsError(f"{unknown_language(value)}: {' '.join(sorted(LANGUAGES))}")


def unknown_language(value: str) -> str:
    """Why `value` is refused, in one line, without the list of codes `language_code`
    gives after it (the TUI's dialog has no room for it)."""
    return (f"language {value!r} is not one Whisper knows; give a code (or its English "
            "name), or 'auto' to detect")
