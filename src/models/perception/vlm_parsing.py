"""Reading a vision-language model's free text: object lists, edit prompts, marked descriptions.

A VLM is asked for a fixed format (a JSON list, a JSON object) and mostly answers in it, but
real answers also come as numbered lists, comma lists, inside Markdown code fences, after a
"Sure! Here is ..." preamble, cut off at the token limit, or (from a random or broken model) as
byte soup. Every parser here either returns clean text or raises ``VLMParseError``; callers
record the failure and fall back to templates, so one bad answer never stops a run.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

MAX_NAME_WORDS = 4
MAX_NAME_CHARS = 40
MAX_PROMPT_WORDS = 40
MAX_PHRASE_WORDS = 12
MIN_LETTER_FRACTION = 0.6  # of the non-space characters; byte soup from a random model fails it

_FENCE = re.compile(r"```[a-zA-Z]*\s*(.*?)(?:```|$)", re.DOTALL)
_CHAT_TOKENS = re.compile(r"<\|[^|>]*\|>|</?s>|\[/?INST\]")
_ROLE_PREFIX = re.compile(r"^\s*(?:assistant|answer|output|response)\s*[:\n]\s*", re.IGNORECASE)
_PREAMBLE = re.compile(
    r"^\s*(?:sure|certainly|of course|okay|ok|here(?:'s| is| are)|below is)\b[^\n:]*[:\n]\s*", re.IGNORECASE
)
_LABEL_PREFIX = re.compile(
    r"^\s*(?:(?:the\s+)?(?:edit(?:ing)?\s+)?(?:prompt|instruction|description|caption|phrase)|objects?)\s*[:=-]\s*",
    re.IGNORECASE,
)
_LIST_ITEM = re.compile(r"^\s*(?:\d+\s*[.):]|[-*\u2022])\s+(.*\S)\s*$")
_NAME_OK = re.compile(r"^[a-z][a-z' -]*[a-z]$|^[a-z]$")
_LEADING_DETERMINERS = re.compile(
    r"^(?:(?:a|an|the|some|several|many|two|three|four|five|\d+)\s+)+", re.IGNORECASE
)
_QUOTES = "\"'`\u201c\u201d\u2018\u2019"


class VLMParseError(ValueError):
    """A VLM answer that does not hold what was asked for.

    Attributes:
        task: what was being parsed ("object list", "edit prompt", ...).
        text: the raw answer, cut to 200 characters (for the log; never shown as a prompt).
    """

    def __init__(self, task: str, reason: str, text: str):
        self.task = task
        self.reason = reason
        self.text = text[:200]
        super().__init__(f"could not read the {task} in the VLM answer ({reason}): {self.text!r}")


def _clean(text: str) -> str:
    """Drop chat-template tokens, a role/preamble line and Markdown fences; keep the content."""
    if not isinstance(text, str):
        raise TypeError(f"VLM answer must be a str, got {type(text).__name__}")
    text = _CHAT_TOKENS.sub("", text)
    fenced = _FENCE.search(text)
    if fenced and fenced.group(1).strip():
        text = fenced.group(1)
    text = _ROLE_PREFIX.sub("", text, count=1)
    text = _PREAMBLE.sub("", text, count=1)
    return text.strip()


# A refusal ("I'm sorry, I can't help with that.") would otherwise read as the object "sorry" or
# as a prompt to paint; instruction-tuned VLMs (Llama 3.2 Vision especially) answer so at times.
_REFUSAL = re.compile(r"^(?:i'?m sorry|i am sorry|sorry|i cannot|i can'?t|i am unable|i'?m unable|unfortunately|"
                      r"as an ai)\b", re.IGNORECASE)


def _refuse_refusal(cleaned: str, task: str, text: str) -> None:
    """Raise VLMParseError when the answer is the model declining to answer."""
    if _REFUSAL.match(cleaned.replace("\u2019", "'")):
        raise VLMParseError(task, "the model declined to answer", text)


def _looks_like_text(text: str) -> str | None:
    """None when ``text`` reads as language, else the reason it does not."""
    if not text.strip():
        return "empty answer"
    if "\ufffd" in text:
        return "undecodable bytes"
    if any(unicodedata.category(c) in {"Cc", "Co", "Cs"} and c not in "\n\t" for c in text):
        return "control characters"
    visible = [c for c in text if not c.isspace()]
    letters = sum(c.isalpha() for c in visible)
    if letters / len(visible) < MIN_LETTER_FRACTION:
        return f"only {letters}/{len(visible)} letters"
    if not re.search(r"[A-Za-z]{2,}", text):
        return "no word of two or more Latin letters"
    return None


def _first_json(text: str, opener: str, closer: str) -> Any | None:
    """The first JSON value starting at ``opener`` that parses, else None."""
    start = text.find(opener)
    while start != -1:
        depth = 0
        for end in range(start, len(text)):
            if text[end] == opener:
                depth += 1
            elif text[end] == closer:
                depth -= 1
                if depth == 0:
                    try:
                        return json.loads(text[start : end + 1])
                    except json.JSONDecodeError:
                        # Python-style single quotes are common; try once more with double quotes.
                        try:
                            return json.loads(text[start : end + 1].replace("'", '"'))
                        except json.JSONDecodeError:
                            break
        start = text.find(opener, start + 1)
    return None


def _strip_quotes(text: str) -> str:
    text = text.strip()
    while len(text) >= 2 and text[0] in _QUOTES and text[-1] in _QUOTES:
        text = text[1:-1].strip()
    return text.strip(_QUOTES + " ")


def normalise_name(raw: str) -> str | None:
    """An object name as a lower-case phrase of 1-4 words, or None when it is not one.

    Drops list numbering, Markdown emphasis ("**Person**", as Llama 3.2 Vision writes lists),
    quotes, trailing explanations ("dog: brown, lying down", "car (red)"), leading determiners ("two dogs" -> "dogs", "the sky" -> "sky") and final punctuation.

    >>> normalise_name('2. "A red car" (parked)'), normalise_name("the sky."), normalise_name("\u00bf?")
    ('red car', 'sky', None)
    """
    if not isinstance(raw, str):
        return None
    text = raw.strip()
    item = _LIST_ITEM.match(text)
    if item:
        text = item.group(1)
    text = re.sub(r"(\*\*|__|\*|`)(.+?)\1", r"\2", text)
    text = re.split(r"\s*(?::|\(|\s-\s|\u2013|\u2014)", text, maxsplit=1)[0]
    text = _strip_quotes(text).rstrip(".!;,").strip()
    text = _LEADING_DETERMINERS.sub("", text).lower()
    text = " ".join(text.split())
    if not text or len(text) > MAX_NAME_CHARS or len(text.split()) > MAX_NAME_WORDS:
        return None
    return text if _NAME_OK.match(text) else None


def parse_object_list(text: str, max_objects: int = 10) -> list[str]:
    """Object names from a VLM answer, most important first, at most ``max_objects``.

    Accepts a JSON list of strings (or of objects with a "name"/"object"/"label" key, or a JSON
    object holding such a list under "objects"), a numbered or bulleted list, or names separated
    by commas, semicolons or new lines. Names are normalised with ``normalise_name``; invalid
    ones (sentences, numbers, byte soup) are skipped and duplicates dropped.

    Raises:
        VLMParseError: no valid name at all.
    """
    task = "object list"
    cleaned = _LABEL_PREFIX.sub("", _clean(text), count=1)
    _refuse_refusal(cleaned, task, text)
    items: list[Any] | None = None
    data = _first_json(cleaned, "[", "]")
    if isinstance(data, list):
        items = data
    elif cleaned.startswith("["):
        # A JSON list cut off at the token limit: keep the names whose quotes were closed.
        items = re.findall(r'"([^"\n]+)"\s*(?=[,\]])', cleaned)
    else:
        obj = _first_json(cleaned, "{", "}")
        if isinstance(obj, dict):
            for key in ("objects", "object_names", "names", "items"):
                if isinstance(obj.get(key), list):
                    items = obj[key]
                    break
    if items is not None:
        names_raw = []
        for item in items:
            if isinstance(item, dict):
                keys = ("name", "object", "label", "category")
                item = next((item[k] for k in keys if isinstance(item.get(k), str)), None)
            if isinstance(item, str):
                names_raw.append(item)
    else:
        lines = [line for line in cleaned.splitlines() if line.strip()]
        listed = [m.group(1) for m in map(_LIST_ITEM.match, lines) if m]
        if len(listed) >= 2 or (listed and len(lines) == 1):
            names_raw = listed
        else:
            body = " ".join(lines[1:]) if len(lines) > 1 and lines[0].rstrip().endswith(":") else " ".join(lines)
            names_raw = re.split(r"\s*[,;\n]\s*|\s+and\s+(?=[^,;]*$)", body.rstrip("."))
    names: list[str] = []
    for raw in names_raw:
        name = normalise_name(raw)
        if name and name not in names:
            names.append(name)
    if not names:
        reason = _looks_like_text(cleaned) or "no short object names"
        raise VLMParseError(task, reason, text)
    return names[: max(1, int(max_objects))]


def _single_text(text: str, task: str, keys: tuple[str, ...], max_words: int, min_words: int) -> str:
    cleaned = _clean(text)
    _refuse_refusal(cleaned, task, text)
    candidate: str | None = None
    obj = _first_json(cleaned, "{", "}")
    if isinstance(obj, dict):
        candidate = next((obj[k] for k in keys if isinstance(obj.get(k), str)), None)
        if candidate is None:
            candidate = next((v for v in obj.values() if isinstance(v, str)), None)
    elif cleaned.lstrip().startswith("{"):
        # A JSON object cut off at the token limit: take the value if its quote was closed.
        match = re.search(r'"(?:%s)"\s*:\s*"([^"]+)"' % "|".join(keys), cleaned)
        if match is None:
            raise VLMParseError(task, "truncated JSON", text)
        candidate = match.group(1)
    if candidate is None:
        data = _first_json(cleaned, "[", "]") if cleaned.lstrip().startswith("[") else None
        if isinstance(data, list) and data and isinstance(data[0], str):
            candidate = data[0]
        else:
            lines = [line for line in cleaned.splitlines() if line.strip()]
            candidate = lines[0] if lines else ""
    candidate = _LABEL_PREFIX.sub("", candidate.strip(), count=1)
    item = _LIST_ITEM.match(candidate)
    if item:
        candidate = item.group(1)
    candidate = " ".join(_strip_quotes(candidate).split())
    reason = _looks_like_text(candidate)
    if reason:
        raise VLMParseError(task, reason, text)
    words = candidate.split()
    if not min_words <= len(words) <= max_words:
        raise VLMParseError(task, f"{len(words)} words, need {min_words} to {max_words}", text)
    return candidate


def parse_edit_prompt(text: str) -> str:
    """One edit prompt from a VLM answer: the "prompt" value of a JSON object, else the first
    line, without preamble, label ("Prompt:"), list marker or quotes; 2 to 40 words.

    Raises:
        VLMParseError: nothing that reads as a short sentence.
    """
    return _single_text(text, "edit prompt", ("prompt", "edit_prompt", "instruction", "text"), MAX_PROMPT_WORDS, 2)


def parse_phrase(text: str) -> str:
    """A short description (at most 12 words), e.g. "the blue sky", from a VLM answer.

    Raises:
        VLMParseError: nothing that reads as a short phrase.
    """
    return _single_text(text, "description", ("description", "phrase", "caption", "text"), MAX_PHRASE_WORDS, 1)


def parse_marked(text: str, marker: str) -> tuple[str, str]:
    """A description with one part between ``marker`` signs (BR-Gen marks stuff with "#" and the
    subject of a background description with "$").

    Returns:
        ``(description, marked)``: the whole description with the markers removed, and the
        marked part alone.

    Raises:
        VLMParseError: no marked part, or the text does not read as language.
    """
    if len(marker) != 1:
        raise ValueError(f"marker must be one character, got {marker!r}")
    cleaned = _clean(text)
    lines = [line for line in cleaned.splitlines() if marker in line]
    if not lines:
        raise VLMParseError(f"{marker}-marked description", f"no {marker}...{marker} part", text)
    line = lines[0]
    colon = line.rfind(":", 0, line.find(marker))
    if colon != -1:  # "Rewritten description: #the starry sky#"
        line = line[colon + 1 :]
    line = _strip_quotes(line)
    match = re.search(re.escape(marker) + r"([^" + re.escape(marker) + r"]+)" + re.escape(marker), line)
    if match is None:
        raise VLMParseError(f"{marker}-marked description", f"unclosed {marker}", text)
    description = " ".join(_strip_quotes(line.replace(marker, "")).split())
    marked = " ".join(match.group(1).split())
    for part in (description, marked):
        reason = _looks_like_text(part)
        if reason:
            raise VLMParseError(f"{marker}-marked description", reason, text)
    if len(description.split()) > MAX_PROMPT_WORDS:
        raise VLMParseError(f"{marker}-marked description", "too long", text)
    return description, marked


# OpenSDI's "add an object" instruction: what to add, and where (a relation to a place phrase) ----
# Relations the placement rule knows (``additions.addition_mask``), with the ways VLMs write them;
# longer phrases first so "on top of" is not read as "on".
ADD_RELATIONS = ("on", "in", "next to")
_RELATION_WORDS = {
    "on top of": "on", "on": "on", "onto": "on", "atop": "on", "upon": "on", "over": "on", "above": "on",
    "inside of": "in", "inside": "in", "in front of": "in", "within": "in", "into": "in", "in": "in", "at": "in",
    "among": "in", "behind": "in",
    "next to": "next to", "beside": "next to", "besides": "next to", "near": "next to", "by": "next to",
    "alongside": "next to", "to the left of": "next to", "to the right of": "next to", "close to": "next to",
}
_RELATION_RE = "|".join(re.escape(w) for w in sorted(_RELATION_WORDS, key=len, reverse=True))
_ADD_SENTENCE = re.compile(r"^(?:please\s+)?(?:add|place|put|insert|paint|draw|include)\s+(.+?)\s+(%s)\s+(.+)$"
                           % _RELATION_RE, re.IGNORECASE)
_LEADING_RELATION = re.compile(r"^(%s)\s+(.+)$" % _RELATION_RE, re.IGNORECASE)
MAX_ADD_WORDS = 8


@dataclass(frozen=True)
class AddProposal:
    """What a VLM proposes to add (OpenSDI's "adding objects").

    Attributes:
        object: the new object as written, e.g. "a red bicycle" (1-8 words).
        name: the object's short name, e.g. "red bicycle" (``normalise_name``: 1-4 words).
        relation: "on", "in" or "next to" (``ADD_RELATIONS``).
        place: the place phrase to ground, e.g. "the wooden bench" (1-8 words).
    """

    object: str
    name: str
    relation: str
    place: str

    @property
    def instruction(self) -> str:
        """The edit instruction: "add a red bicycle on the wooden bench"."""
        return f"add {self.object} {self.relation} {self.place}"

    @property
    def prompt(self) -> str:
        """The inpainting prompt, naming the new object in its place: "a red bicycle on the wooden bench"."""
        return f"{self.object} {self.relation} {self.place}"


def _relation(text: str | None) -> str | None:
    return _RELATION_WORDS.get(" ".join(str(text or "").lower().split()))


def _add_part(value: Any, what: str, text: str) -> str:
    if not isinstance(value, str):
        raise VLMParseError("addition", f"no {what}", text)
    value = " ".join(_strip_quotes(value).rstrip(".!;,").split())
    reason = _looks_like_text(value) if value else f"empty {what}"
    if reason:
        raise VLMParseError("addition", f"{what}: {reason}", text)
    if len(value.split()) > MAX_ADD_WORDS:
        raise VLMParseError("addition", f"{what} has {len(value.split())} words, at most {MAX_ADD_WORDS}", text)
    return value


def parse_add_proposal(text: str) -> AddProposal:
    """An addition from a VLM answer: a JSON object ``{"object": ..., "relation": ..., "place": ...}``
    (also "item" / "new_object", "position" / "preposition", "location" / "where"; a relation may
    instead lead the place: ``"place": "on the table"``), or a sentence "Add a red bicycle on the
    wooden bench." A relation is mapped to "on" / "in" / "next to" (``ADD_RELATIONS``: "on top of"
    -> on, "beside" -> next to, ...); an unknown or missing one reads as "in".

    Raises:
        VLMParseError: no object or no place, a part that is not short text, or an object whose
            name is not 1-4 words.
    """
    task = "addition"
    cleaned = _clean(text)
    _refuse_refusal(cleaned, task, text)
    obj = _first_json(cleaned, "{", "}")
    if isinstance(obj, dict):
        pick = lambda *keys: next((obj[k] for k in keys if isinstance(obj.get(k), str)), None)  # noqa: E731
        what, where = pick("object", "new_object", "item", "add"), pick("place", "location", "where", "target")
        relation = pick("relation", "position", "preposition")
    elif cleaned.lstrip().startswith("{"):
        raise VLMParseError(task, "truncated JSON", text)
    else:
        line = next((line for line in cleaned.splitlines() if line.strip()), "")
        match = _ADD_SENTENCE.match(_LABEL_PREFIX.sub("", _strip_quotes(line), count=1).rstrip(".!"))
        if match is None:
            raise VLMParseError(task, _looks_like_text(cleaned) or "no 'add <object> <relation> <place>'", text)
        what, relation, where = match.groups()
    place = _add_part(where, "place", text)
    leading = _LEADING_RELATION.match(place)
    if leading and len(place.split()) > len(leading.group(1).split()):
        relation, place = relation or leading.group(1), leading.group(2)
    what = _add_part(what, "object", text)
    what = re.sub(r"^(?:add|place|put|insert)\s+", "", what, flags=re.IGNORECASE)
    name = normalise_name(what)
    if name is None:
        raise VLMParseError(task, f"object {what!r} is not a short name", text)
    return AddProposal(object=what, name=name, relation=_relation(relation) or "in", place=place)
