"""Symbolic rules: checks certain enough to override the self-judge's label.

`salmon aggregate` asks every enabled rule about each pair; a rule returns +1 (response a
is better), -1 (b is better) or 0 (no opinion), and says 0 whenever it is not sure, so
that it only replaces the AI label where the check is certain:

- `banned_phrase`: one response carries AI boilerplate ("As an AI language model ...")
  and the other does not; the clean one wins. Silent when the prompt itself talks about
  AI, since then the phrase may be the honest answer.
- `language_mismatch`: one response is in the language the user wrote in (or the one
  a "reply in French" style request names) and the other confidently is not. Uses langid
  (offline); quoted material, code and parentheses are removed first, and texts with
  too few letters, low confidence, or a script that does not fit the detected language
  are left undecided, as are prompts that mention a language without asking for it.
- `list_count`: the prompt asks for N items ("give 3 tips", "list five ...", "donne
  trois conseils"); both responses contain a list and exactly one has N top-level items.
  Not applied when either response was cut off (`finished_a`/`finished_b` false).

Add a rule with the `@rule("name")` decorator; `principle=` names the principle the rule
checks, so that a sampled negation of that principle flips the rule's label, and
`needs_finished=True` keeps it off pairs with a response cut off by the token limit.

    from salmon.rules import RULES, apply_rules
    apply_rules(["banned_phrase"], prompt, response_a, response_b)  # -> ("banned_phrase", -1)
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

Rule = Callable[[str, str, str], int]


@dataclass(frozen=True)
class RuleInfo:
    fn: Rule
    principle: str | None = None  # the principle this rule checks (its negation flips the label)
    needs_finished: bool = False  # unreliable on responses cut off by the token limit


RULES: dict[str, RuleInfo] = {}


def rule(name: str, principle: str | None = None, needs_finished: bool = False) -> Callable[[Rule], Rule]:
    """Register `fn(prompt, response_a, response_b) -> +1 | -1 | 0` under `name`."""
    def register(fn: Rule) -> Rule:
        RULES[name] = RuleInfo(fn, principle, needs_finished)
        return fn
    return register


def apply_rules(names: list[str], prompt: str, response_a: str, response_b: str) -> tuple[str, int]:
    """Run the named rules in order; (first rule that fired, its verdict), or ("", 0) when
    none fired or two fired in opposite directions (then no check is certain)."""
    fired = [(n, RULES[n].fn(prompt, response_a, response_b)) for n in names]
    fired = [(n, v) for n, v in fired if v != 0]
    if not fired or len({v for _, v in fired}) > 1:
        return "", 0
    return fired[0]


def _prefer(ok_a: bool, ok_b: bool) -> int:
    return 1 if ok_a and not ok_b else -1 if ok_b and not ok_a else 0


# --- banned_phrase ---------------------------------------------------------------

BANNED_PHRASES = [
    r"\bas an? (?:ai|artificial intelligence)(?: language)? (?:model|assistant|system)\b",
    r"\bas an? ai\b(?:,| i\b)",
    r"\bas an? (?:large )?language model\b",
    r"\bi(?: am|'m) (?:just|only|merely) an? (?:ai|artificial intelligence|language model|computer program)\b",
    r"\bi(?: am|'m) an? ai (?:language )?model\b",
    r"\ben tant qu'(?:ia|intelligence artificielle|assistant virtuel)\b",
    r"\ben tant que mod[eè]le de langage\b",
    r"\bals (?:ki|künstliche intelligenz|ki-sprachmodell|sprachmodell)\b",
    r"\bcomo (?:un )?(?:modelo de lenguaje|ia|inteligencia artificial)\b",
    r"\bcome (?:un )?(?:modello (?:di )?linguistico|ia|intelligenza artificiale)\b",
    r"\bcomo (?:um )?modelo de linguagem\b",
    r"作为一个?(?:人工智能|ai|AI)(?:语言模型|助手|模型)?",
    r"(?:ai|AI)言語モデルとして",
]
_BANNED = [re.compile(p, re.IGNORECASE) for p in BANNED_PHRASES]
_PROMPT_ABOUT_AI = re.compile(
    r"\b(?:A\.?I|KI|IA|LLMs?|GPT\w*)\b|人工智能|(?i:artificial intelligence|language model|chat ?bot|"
    r"intelligence artificielle|künstliche intelligenz|inteligencia artificial|intelligenza artificiale)"
)


def has_boilerplate(text: str) -> bool:
    return any(p.search(text) for p in _BANNED)


@rule("banned_phrase", principle="No Boilerplate")
def banned_phrase(prompt: str, response_a: str, response_b: str) -> int:
    if _PROMPT_ABOUT_AI.search(prompt) or has_boilerplate(prompt):
        return 0
    return _prefer(not has_boilerplate(response_a), not has_boilerplate(response_b))


# --- language_mismatch -------------------------------------------------------------

MIN_LETTERS = 20
MIN_LETTERS_CJK = 10  # a Chinese or Japanese character carries about a word's worth of evidence
MIN_CONFIDENCE = 0.99
# Languages langid confuses with each other on short texts: never called a mismatch.
NEAR = [{"es", "pt", "gl", "ca", "an", "oc"}, {"da", "no", "nb", "nn", "sv"}, {"hr", "sr", "bs", "sl"},
        {"ru", "uk", "be", "bg", "mk", "sr"}, {"id", "ms"}, {"cs", "sk"}, {"zh", "ja"}]
SCRIPTS = {"ja": {"CJK"}, "zh": {"CJK"}, "ko": {"HANGUL"},
           "ru": {"CYRILLIC"}, "uk": {"CYRILLIC"}, "bg": {"CYRILLIC"}, "mk": {"CYRILLIC"},
           "be": {"CYRILLIC"}, "kk": {"CYRILLIC"}, "mn": {"CYRILLIC"}, "el": {"GREEK"},
           "ar": {"ARABIC"}, "fa": {"ARABIC"}, "ur": {"ARABIC"}, "he": {"HEBREW"},
           "hi": {"DEVANAGARI"}, "mr": {"DEVANAGARI"}, "ne": {"DEVANAGARI"}, "th": {"THAI"}}
# How each language is named (lower case) in English, in itself and in a few others.
LANGUAGE_NAMES = {
    "en": ["english", "anglais", "englisch", "inglés", "ingles", "inglese", "inglês", "engels",
           "英语", "英文", "英語", "영어", "английском", "по-английски"],
    "fr": ["french", "français", "francais", "französisch", "francés", "francese", "francês", "frans",
           "法语", "フランス語", "프랑스어", "французском", "по-французски"],
    "de": ["german", "deutsch", "allemand", "alemán", "aleman", "tedesco", "alemão", "duits", "德语", "ドイツ語",
           "독일어", "немецком", "по-немецки"],
    "es": ["spanish", "español", "espanol", "espagnol", "spanisch", "spagnolo", "espanhol", "spaans",
           "西班牙语", "スペイン語", "스페인어", "испанском"],
    "it": ["italian", "italiano", "italien", "italienisch", "italiaans", "意大利语", "イタリア語", "итальянском"],
    "pt": ["portuguese", "português", "portugues", "portugais", "portugiesisch", "portugués", "portoghese",
           "portugees", "葡萄牙语", "ポルトガル語"],
    "nl": ["dutch", "nederlands", "néerlandais", "niederländisch", "holandés", "olandese", "holandês"],
    "ru": ["russian", "русском", "по-русски", "russe", "russisch", "ruso", "russo", "俄语", "ロシア語"],
    "zh": ["chinese", "mandarin", "中文", "汉语", "中国語", "chinois", "chinesisch", "chino", "cinese",
           "chinês", "중국어", "китайском"],
    "ja": ["japanese", "日本語", "日语", "japonais", "japanisch", "japonés", "giapponese", "japonês",
           "japans", "일본어", "японском"],
    "ko": ["korean", "한국어", "韩语", "韓国語", "coréen", "koreanisch", "coreano", "koreaans", "корейском"],
}
_DIRECTIVE_VERBS = (
    r"answer|reply|respond|write|rewrite|translate|explain|response|"
    r"réponds|répondez|réponse|écris|écrivez|traduis|traduisez|antworte|antworten|antwort|schreib|schreibe|"
    r"übersetze|responde|respuesta|escribe|traduce|rispondi|risposta|scrivi|traduci|responda|resposta|"
    r"escreva|traduza|antwoord|schrijf|vertaal|ответь|ответ|напиши|переведи"
)
# "in French", "into plain English", "en français", "auf Deutsch", "em português", "на русском".
_IN = r"(?:(?:in|into|to|en|auf|em|in het|на)\s+(?:(?:plain|simple|fluent|good|proper)\s+)?|(?=по-))"
_CJK_DIRECTIVE = re.compile(r"用(中文|汉语|英语|英文|日语|法语|德语|西班牙语)|(日本語|英語|中国語)で|(한국어|영어)로")
_QUOTED = re.compile(r"\"[^\"\n]*\"|“[^”\n]*”|„[^“”\n]*[“”]|«[^»\n]*»|「[^」\n]*」|『[^』\n]*』|"
                     r"(?<!\w)'[^'\n]{1,80}'(?!\w)|‘[^’\n]{1,80}’|\([^)\n]*\)|（[^）\n]*）")
_CODE = re.compile(r"```.*?(?:```|$)|`[^`\n]*`|https?://\S+", re.DOTALL)
_CODE_LINE = re.compile(r"[{}=<>\[\]]|^\s{4,}\S|^\s*(?:def|class|import|return|for|if|while)\b")


def _name_to_code() -> dict[str, str]:
    return {name: code for code, names in LANGUAGE_NAMES.items() for name in names}


def requested_language(prompt: str) -> tuple[str | None, bool]:
    """(language code the prompt explicitly asks the answer to be in, whether the prompt
    mentions any language at all). A mention without a clear request ("how do you say
    thanks in Japanese?") returns (None, True): the expected language is then unsure."""
    text = prompt.lower()
    names = _name_to_code()
    mentioned = {code for name, code in names.items() if _mentions(text, name)}
    requested = set()
    cjk = _CJK_DIRECTIVE.search(prompt)
    if cjk:
        requested.add(names.get(next(g for g in cjk.groups() if g), ""))
    alternation = "|".join(sorted((re.escape(n) for n in names), key=len, reverse=True))
    pattern = (rf"\b(?:{_DIRECTIVE_VERBS})\b[^.?!\n]{{0,40}}?{_IN}({alternation})(?![\w-])"
               rf"(?!\s*(?:(?:and|or|und|oder|et|ou|y|o|e)\s+|[,/]\s*)(?:{alternation}))")
    requested |= {names[m.group(1)] for m in re.finditer(pattern, text)}
    requested.discard("")
    if len(requested) == 1:
        return requested.pop(), True
    return None, bool(mentioned or requested)


def _mentions(text: str, name: str) -> bool:
    if name.isascii():
        return re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text) is not None
    return name in text


def prose(text: str) -> str:
    """The text with code, URLs, quoted material and parenthesised asides removed: what
    is left is the writer's own language."""
    text = _QUOTED.sub(" ", _CODE.sub(" ", text))
    return "\n".join(line for line in text.splitlines() if not _CODE_LINE.search(line))


@lru_cache(maxsize=1)
def _identifier():
    from langid.langid import LanguageIdentifier, model

    return LanguageIdentifier.from_modelstring(model, norm_probs=True)


def _dominant_script(text: str) -> tuple[str, float]:
    counts: dict[str, int] = {}
    for ch in text:
        if ch.isalpha():
            script = unicodedata.name(ch, "UNKNOWN").split()[0]
            script = "CJK" if script in ("HIRAGANA", "KATAKANA") else script  # Japanese mixes all three
            counts[script] = counts.get(script, 0) + 1
    if not counts:
        return "", 0.0
    script = max(counts, key=counts.get)
    return script, counts[script] / sum(counts.values())


def detect_language(text: str) -> str | None:
    """The language code of `text`'s own prose, or None when langid is not reliable here
    (too few letters, low confidence, mixed scripts, or a script the language does not use)."""
    body = prose(text)
    script, share = _dominant_script(body)
    letters = sum(ch.isalpha() for ch in body)
    if share < 0.8 or letters < (MIN_LETTERS_CJK if script in ("CJK", "HANGUL") else MIN_LETTERS):
        return None
    code, prob = _identifier().classify(body)
    if prob < MIN_CONFIDENCE or script not in SCRIPTS.get(code, {"LATIN"}):
        return None
    return code


def same_language(x: str, y: str) -> bool:
    return x == y or any(x in group and y in group for group in NEAR)


@rule("language_mismatch", principle="Matches User Language")
def language_mismatch(prompt: str, response_a: str, response_b: str) -> int:
    expected, mentioned = requested_language(prompt)
    if expected is None:
        if mentioned:
            return 0
        expected = detect_language(prompt)
        if expected is None:
            return 0
    lang_a, lang_b = detect_language(response_a), detect_language(response_b)
    if lang_a is None or lang_b is None:
        return 0
    match_a, match_b = same_language(lang_a, expected), same_language(lang_b, expected)
    if match_a == match_b or same_language(lang_a, lang_b):
        return 0
    return 1 if match_a else -1


def both_wrong_language(prompt: str, response_a: str, response_b: str) -> bool:
    """True when both responses are confidently in a language other than the one the user
    asked for or wrote in (the SALMON reference drops such pairs). Undecided -> False."""
    expected, mentioned = requested_language(prompt)
    if expected is None:
        expected = None if mentioned else detect_language(prompt)
    langs = [detect_language(r) for r in (response_a, response_b)]
    if expected is None or None in langs:
        return False
    return not any(same_language(lang, expected) for lang in langs)


# --- list_count --------------------------------------------------------------------

NUMBER_WORDS = {
    "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
    "deux": 2, "trois": 3, "quatre": 4, "cinq": 5, "sept": 7, "huit": 8, "neuf": 9, "dix": 10,
    "zwei": 2, "drei": 3, "vier": 4, "fünf": 5, "sechs": 6, "sieben": 7, "acht": 8, "neun": 9, "zehn": 10,
    "dos": 2, "tres": 3, "cuatro": 4, "cinco": 5, "seis": 6, "siete": 7, "ocho": 8, "nueve": 9, "diez": 10,
    "due": 2, "tre": 3, "quattro": 4, "sette": 7, "otto": 8, "nove": 9, "dieci": 10,
    "dois": 2, "duas": 2, "três": 3, "quatro": 4, "oito": 8,
    "twee": 2, "drie": 3, "vijf": 5, "zes": 6, "zeven": 7, "negen": 9, "tien": 10,
}
LIST_NOUNS = (
    r"bullet points|bullets|points|items|tips|ideas|ways|reasons|examples|steps|things|options|"
    r"suggestions|facts|benefits|advantages|disadvantages|questions|names|methods|strategies|"
    r"alternatives|recommendations|features|differences|uses|exercises|activities|"
    r"conseils|idées|raisons|exemples|façons|avantages|étapes|astuces|"
    r"tipps|ideen|gründe|beispiele|vorteile|schritte|möglichkeiten|"
    r"consejos|razones|ejemplos|formas|maneras|beneficios|pasos|ventajas|"
    r"consigli|idee|ragioni|motivi|esempi|vantaggi|passi|modi|"
    r"dicas|ideias|razões|motivos|exemplos|vantagens|passos|"
    r"ideeën|redenen|voorbeelden|voordelen|stappen|manieren"
)
LIST_VERBS = (
    r"list|name|give(?: me| us)?|suggest|provide|share|recommend|offer|enumerate|top|"
    r"donne(?:-moi)?|cite|énumère|propose|nenne|gib(?: mir)?|dame|enumera|menciona|nombra|sugiere|"
    r"elenca(?:ne)?|dammi|indica|suggerisci|dê|liste|geef|noem"
)
_NUM = r"(\d{1,2}|" + "|".join(NUMBER_WORDS) + r")"
_JOINER = r"(?:and|or|of|for|with|to|in|on|at|about|from|but|per|et|ou|de|und|oder|y|o|e|di|en)\b"
# "three vegetarian dinner ideas": the number, up to three describing words, a list noun.
_COUNT_NOUN = re.compile(rf"(?<![\w-]){_NUM}\s+(?:(?!{_JOINER})[\w'-]+\s+){{0,3}}?(?:{LIST_NOUNS})\b")
_COUNT_VERB = re.compile(rf"\b(?:{LIST_VERBS})\s+(?:exactly\s+|only\s+|just\s+|the\s+|your\s+)?{_NUM}(?![\w-])")
_ITEM = re.compile(r"^(\s*)(?:\*\*)?(?:(\d{1,2})[.)．、]|([-*+•·・–]))\s+\S")


def requested_count(prompt: str) -> int | None:
    """How many list items the prompt asks for, or None when it asks for none or the
    number is ambiguous (two different counts, quoted material aside)."""
    text = _QUOTED.sub(" ", prompt).lower()
    found = {m.group(1) for m in _COUNT_NOUN.finditer(text)} | {m.group(1) for m in _COUNT_VERB.finditer(text)}
    counts = {int(n) if n.isdigit() else NUMBER_WORDS[n] for n in found}
    counts = {c for c in counts if 2 <= c <= 20}
    return counts.pop() if len(counts) == 1 else None


def count_list_items(text: str) -> int | None:
    """Top-level list items in `text`: numbered items if any (which must run 1..n, else
    None), otherwise bullets at the outermost indentation; None when there is no list."""
    numbered, bullets = [], []
    for line in _CODE.sub(" ", text).splitlines():
        m = _ITEM.match(line)
        if m:
            indent = len(m.group(1).expandtabs(4))
            (numbered if m.group(2) else bullets).append((indent, int(m.group(2) or 0)))
    items = numbered or bullets
    if not items:
        return None
    top = min(indent for indent, _ in items)
    top_items = [n for indent, n in items if indent == top]
    if numbered and top_items != list(range(1, len(top_items) + 1)):
        return None
    return len(top_items)


@rule("list_count", needs_finished=True)  # a cut-off list shows fewer items than it has
def list_count(prompt: str, response_a: str, response_b: str) -> int:
    want = requested_count(prompt)
    if want is None:
        return 0
    count_a, count_b = count_list_items(response_a), count_list_items(response_b)
    if count_a is None or count_b is None:
        return 0
    return _prefer(count_a == want, count_b == want)
