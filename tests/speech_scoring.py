"""Word error rate, with the light text normalisation every ASR comparison needs (case, punctuation, hyphens,
titles, small numbers), shared by the tests and ``make bench``."""

from __future__ import annotations

import re
from collections.abc import Sequence

_TITLES = {"mr": "mister", "mrs": "missus", "dr": "doctor", "st": "saint"}
_ONES = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
    "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
)  # fmt: skip
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")


def _number_words(number: int) -> list[str]:
    if number < 20:
        return [_ONES[number]]
    if number < 100:
        tens, ones = divmod(number, 10)
        return [_TENS[tens]] + ([_ONES[ones]] if ones else [])
    if number < 1000:
        hundreds, rest = divmod(number, 100)
        return [_ONES[hundreds], "hundred"] + (_number_words(rest) if rest else [])
    return [str(number)]


def normalize_words(text: str) -> list[str]:
    """Lower-case words without punctuation: "Mr. Dashwood, ill-disposed 10" -> mister dashwood ill disposed ten."""
    words: list[str] = []
    for raw in re.sub(r"[-\u2010-\u2015/]", " ", text.lower()).split():
        word = re.sub(r"[^\w']", "", raw).strip("'")
        if not word:
            continue
        if word in _TITLES:
            words.append(_TITLES[word])
        elif word.isdigit():
            words.extend(_number_words(int(word)))
        else:
            words.append(word)
    return words


def _edit_distance(reference: Sequence[str], hypothesis: Sequence[str]) -> int:
    previous = list(range(len(hypothesis) + 1))
    for i, ref_word in enumerate(reference, start=1):
        current = [i]
        for j, hyp_word in enumerate(hypothesis, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_word != hyp_word)))
        previous = current
    return previous[-1]


def word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus WER: total word edits over total reference words, after ``normalize_words``."""
    if len(references) != len(hypotheses):
        raise ValueError("one hypothesis per reference")
    errors = words = 0
    for reference, hypothesis in zip(references, hypotheses, strict=True):
        ref = normalize_words(reference)
        errors += _edit_distance(ref, normalize_words(hypothesis))
        words += len(ref)
    return errors / max(1, words)
