"""Model output -> fields within the channel's limits, by code.

``repair`` parses the labelled lines the prompt asked for, cleans each value, and keeps every
limit: text over a limit is trimmed at a sentence, clause or word boundary (never inside a
word, never ending on a dangling 'and', 'with' or comma); what cannot be trimmed into shape,
or is missing, is replaced by a deterministic short form built from the product's own title
and attributes. ``field_problems`` is the independent check: a copy is compliant only when it
finds nothing, whatever the repair did.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from itertools import chain

from core.copy.channels import ChannelSpec, FieldSpec
from core.copy.facts import WEB_ADDRESS, ProductFacts, attribute_key, is_plumbing, without_instructions

# --- cleaning --------------------------------------------------------------------------

_CONTROL = re.compile(r"<\|[^|<>]{0,40}\|>|</?s>|\[/?INST\]")
_MARKDOWN = re.compile(r"\*\*|__|`+|^#+\s*")
_SPACE = re.compile(r"\s+")
# Bullets, numbering and characters a spreadsheet would run as a formula (=, +, -, @ and their
# full-width forms): copy never needs to start with them, and the export stays literal.
_LEADING_JUNK = re.compile(r"^(?:[\s>*•·\-–—=+@＝＋－＠]+|\d{1,2}[.)]\s+)+")
_QUOTES = {'"': '"', "'": "'", "“": "”", "‘": "’", "«": "»"}


def clean_text(value: str) -> str:
    """One tidy line: control tokens, markdown, bullets and wrapping quotes removed, spaces collapsed."""
    text = _CONTROL.sub(" ", str(value))
    text = _MARKDOWN.sub("", text)
    text = _SPACE.sub(" ", text).strip()
    text = _LEADING_JUNK.sub("", text).strip()
    for _ in range(2):
        if len(text) >= 2 and text[0] in _QUOTES and text[-1] == _QUOTES[text[0]]:
            text = text[1:-1].strip()
    return text


# --- sentences -------------------------------------------------------------------------

_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'”’)]?\s+(?=[\"'“‘(]?[A-Z0-9])")


def sentences(text: str) -> list[str]:
    """Sentences of a text: split after . ! ? followed by a space and a capital or digit ("4.2 L" stays whole)."""
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]


# --- trimming --------------------------------------------------------------------------

# Words that cannot end a piece of copy: the sentence obviously goes on after them.
DANGLING = frozenset("""
a an the and or but nor so yet with without for of to in on at by from into onto over under than as via per plus
your our its their his her my this that these those which who whose whom while when where if because although
is are was were be been being has have had will would can could should may might must
just very more most less both either neither every each no not such also like including featuring
""".split())
_TRAILING_PUNCT = " ,;:-–—/&+(\"'“‘«"
_CLAUSE_MARKS = ",;:—–"


def _before_word(text: str, index: int) -> str:
    """Text before the word that holds ``index``: an open bracket goes with its whole word."""
    return text[: text.rfind(" ", 0, index) + 1]


def tidy_end(text: str) -> str:
    """Drop what would leave a clause hanging: trailing commas and dashes, dangling words, unclosed brackets."""
    text = text.strip()
    while text:
        before = text
        text = text.rstrip(_TRAILING_PUNCT + " ")
        if text.count("(") > text.count(")"):
            text = _before_word(text, text.rfind("("))
            continue
        if text.count('"') % 2:
            text = _before_word(text, text.rfind('"'))
            continue
        words = text.split(" ")
        last = words[-1].strip(".!?,;:").lower() if words else ""
        if last in DANGLING:
            text = " ".join(words[:-1])
            continue
        if text == before:
            break
    return text.strip()


# Participles that do not end in -ed: "is made | of nylon" must not be cut after "made".
_IRREGULAR_PARTICIPLES = frozenset("made built sold worn sewn cut kept held set put shown given taken done known grown woven".split())


def _opens_phrase(word: str) -> bool:
    word = word.lower().strip("\"'“‘(")
    return (word in DANGLING or word in _IRREGULAR_PARTICIPLES
            or (len(word) > 4 and word.isalpha() and word.endswith(("ed", "ing"))))


def trim_to_limit(text: str, max_chars: int) -> str | None:
    """The longest clean prefix within ``max_chars``, cut at a sentence, clause or word end; None if none.

    Cuts happen only at spaces, so no word is ever split; what the cut leaves is passed through
    ``tidy_end`` so nothing ends on 'and', 'with', a comma or an open bracket.
    """
    text = _SPACE.sub(" ", text).strip()
    if len(text) <= max_chars:
        return tidy_end(text) or None
    # Positions where the text may be cut: before a space (so the kept part ends a whole word).
    spaces = [i for i in range(1, min(len(text), max_chars + 1)) if text[i] == " "]
    if not spaces:
        return None  # the first word alone is too long
    sentence_cuts = [i for i in spaces if text[i - 1] in ".!?"]
    clause_cuts = [i for i in spaces if text[i - 1] in _CLAUSE_MARKS or text[i + 1 : i + 2] in ("—", "–")]
    # Before a word that opens a phrase ("… power bank | designed to provide"), what is kept
    # usually ends on a complete noun phrase rather than a verb waiting for its object.
    # A run of such words ("designed to") is cut before its first one.
    phrase_cuts = [i for i in spaces
                   if _opens_phrase(text[i + 1 :].split(" ", 1)[0]) and not _opens_phrase(text[:i].rsplit(" ", 1)[-1])]
    # Prefer a whole sentence or clause that keeps half the room, then a phrase that keeps 40 %.
    for cuts, share in ((sentence_cuts, 0.5), (clause_cuts, 0.5), (phrase_cuts, 0.4)):
        if cuts and cuts[-1] >= max_chars * share:
            trimmed = tidy_end(text[: cuts[-1]])
            if trimmed:
                return trimmed
    for cut in reversed(spaces):
        trimmed = tidy_end(text[:cut])
        if trimmed:
            return trimmed
    return None


# --- checking --------------------------------------------------------------------------


def field_problems(value: str | None, spec: FieldSpec) -> list[str]:
    """Why a field's value breaks its channel's rules; empty when it keeps them all."""
    if value is None or not str(value).strip():
        return ["missing"] if spec.required else []
    problems = []
    if spec.max_chars is not None and len(value) > spec.max_chars:
        problems.append(f"{len(value)} characters, over the {spec.max_chars}-character limit")
    if "\n" in value or "\r" in value:
        problems.append("more than one line")
    bad = sorted({c for c in value if c in spec.forbidden})
    if bad:
        problems.append(f"contains {' '.join(repr(c) for c in bad)}, which {spec.label} may not")
    if spec.min_sentences or spec.max_sentences:
        count = len(sentences(value))
        if spec.min_sentences and count < spec.min_sentences:
            problems.append(f"{count} sentence(s), fewer than {spec.min_sentences}")
        if spec.max_sentences and count > spec.max_sentences:
            problems.append(f"{count} sentences, more than {spec.max_sentences}")
    return problems


def check_fields(fields: Mapping[str, str], spec: ChannelSpec) -> dict[str, list[str]]:
    """Problems per channel field (only fields with problems are listed).

    Besides each field's own rules: the fields of one group must differ (Google Ads refuses
    an RSA whose headlines, or descriptions, repeat one another).
    """
    found = {f.key: field_problems(fields.get(f.key), f) for f in spec.fields}
    seen: dict[tuple[str, str], str] = {}
    for f in spec.fields:
        value = fields.get(f.key)
        if not value or len(spec.group(f.group_name)) < 2:
            continue
        same = seen.setdefault((f.group_name, " ".join(value.lower().split())), f.key)
        if same != f.key:
            found[f.key].append(f"repeats {same}")
    return {k: v for k, v in found.items() if v}


def is_compliant(fields: Mapping[str, str], spec: ChannelSpec) -> bool:
    return not check_fields(fields, spec)


# --- parsing ---------------------------------------------------------------------------

_LABEL_LINE = re.compile(r"^(?P<label>[A-Za-z][A-Za-z \-]{0,30}?)\s*(?P<num>\d{1,2})?\s*[:：]\s*(?P<value>.*)$")
_SYNONYMS = {"subject line": "subject", "preview text": "preheader", "preview": "preheader", "pre header": "preheader",
             "primary": "primary text", "text": "primary text", "body": "primary text", "bullet point": "bullet",
             "product title": "title", "product description": "description"}


def _base_label(label: str) -> str:
    return re.sub(r"\s+\d+$", "", label.strip().lower())


def parse_output(text: str, spec: ChannelSpec) -> tuple[dict[str, str], bool]:
    """Fields from the model's labelled lines, and whether any label was found.

    Accepts "Headline 2:", "**Headline:**", "- Headline 1:"; a label repeated without a number
    fills the group's next free slot. Lines after a long field (primary text, descriptions
    of a product page) continue it; after a short one they are ignored. With no label at all,
    non-empty lines fill the required fields in order. ``spec``'s answer format is what is parsed.
    """
    spec = spec.writes
    groups: dict[str, list[FieldSpec]] = {}
    for f in spec.fields:
        groups.setdefault(_base_label(f.label), []).append(f)
    fields: dict[str, str] = {}
    current: FieldSpec | None = None
    labelled = False
    for raw_line in str(text).splitlines():
        line = _MARKDOWN.sub("", _CONTROL.sub(" ", raw_line)).strip()
        line = re.sub(r"^[\s>*•\-]+", "", line)
        if not line:
            continue
        match = _LABEL_LINE.match(line)
        if match:
            base = _SPACE.sub(" ", match["label"].strip().lower())
            base = _SYNONYMS.get(base, base)
            slots = groups.get(base)
            if slots is None:
                current = None  # an unknown label ("Note:") ends the field before it
                continue
            labelled = True
            num = int(match["num"]) if match["num"] else None
            if num is not None and 1 <= num <= len(slots):
                target = slots[num - 1]
            else:
                target = next((s for s in slots if s.key not in fields), None)
            if target is None or target.key in fields:
                current = None
                continue
            fields[target.key] = match["value"].strip()
            current = target
        elif current is not None and (current.max_chars is None or current.max_chars > 120):
            fields[current.key] = (fields[current.key] + " " + line).strip()
    if not labelled:
        lines = [clean_text(ln) for ln in str(text).splitlines()]
        lines = [ln for ln in lines if ln]
        for f, line in zip([f for f in spec.fields if f.required], lines):
            fields[f.key] = line
    return fields, labelled


# --- fallback: short forms from the product's own data ----------------------------------

_UNITS = (("_mah", "mAh"), ("_gsm", "gsm"), ("_ml", "ml"), ("_mm", "mm"), ("_cm", "cm"), ("_kg", "kg"), ("_g", "g"),
          ("_l", "L"), ("_m", "m"), ("_w", "W"), ("_h", "hours"), ("_c", "°C"), ("_in", "in"), ("_oz", "oz"))
_MINOR = frozenset("a an and or of for with in on to the by at from".split())
_SKIP_FACTS = frozenset({"type", "description", "title", "name"})
MAX_FACT_CHARS = 120  # a longer attribute is a paragraph (a spec dump), not a fact to restate
_BOILERPLATE = re.compile(r"make sure this fits|click here|see more product details|visit the .{1,40} store", re.IGNORECASE)


SHOUTED = re.compile(r"^(?=(?:[^A-Z]*[A-Z]){5})[A-Z][A-Z'&-]+$")  # "AMERICAN", "GREETINGS"; "LEGO", "USB-C" stay


def calm_capitals(text: str) -> str:
    """Shouted words in title case ("AMERICAN" -> "American", "NO SOLDERING" -> "No Soldering"): Google
    refuses excessive capitals. Short names stay ("LEGO", "USB-C"); short plain words do not ("NO", "AND")."""
    return " ".join(w.capitalize() if SHOUTED.match(w) or (w.isupper() and w.lower() in DANGLING) else w
                    for w in text.split())


def title_case(text: str) -> str:
    words = text.split(" ")
    out = []
    for i, w in enumerate(words):
        if w.replace("'", "").isalpha() and w.islower() and len(w) > 2 and (i == 0 or w not in _MINOR):  # "chef's" too
            w = w[0].upper() + w[1:]
        elif "-" in w and w.replace("-", "").replace("'", "").isalpha() and w.islower():  # "t-shirt" -> "T-Shirt"
            w = "-".join(part[:1].upper() + part[1:] for part in w.split("-"))
        out.append(w)
    return " ".join(out)


def _number(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def flag_phrase(key: str) -> str:
    """'bpa_free' -> 'BPA-free', 'dishwasher_safe' -> 'dishwasher safe', 'pre_seasoned' -> 'pre-seasoned'."""
    words = attribute_key(key).split("_")
    if words[-1] == "free" and len(words) >= 2:
        head = " ".join(words[:-1])
        return (head.upper() if len(head) <= 4 else head) + "-free"
    if words[0] in ("pre", "non", "anti", "noise"):
        return words[0] + "-" + " ".join(words[1:])
    return " ".join(words)


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def split_unit(key: str) -> tuple[str, str]:
    """An attribute name as words and its unit: 'capacity_ml' -> ('capacity', 'ml'), 'battery_h' -> ('battery', 'hours')."""
    name = attribute_key(key)
    for suffix, unit in _UNITS:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)].replace("_", " ").strip(), unit
    return name.replace("_", " ").strip(), ""


def _fact_line(key: str, value: object) -> str | None:
    key = attribute_key(key)
    if isinstance(value, bool) or value in (None, "", [], {}) or key in _SKIP_FACTS:
        return None
    name, unit = split_unit(key)
    label = name.capitalize()
    if key.endswith(("certifications", "certification")):
        items = [str(v) for v in (value if isinstance(value, (list, tuple)) else [value])]
        return f"{_join(items)} certified." if items else None
    if key in ("material", "materials"):
        return f"Made of {value}."
    if key in ("color", "colour"):
        return f"Comes in {value}."
    if isinstance(value, (list, tuple)):
        value = ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return None
    return f"{label}: {_number(value)}{' ' + unit if unit else ''}."


def fact_sentences(facts: ProductFacts) -> list[str]:
    """Short sentences each stating one fact of the product's data: the bricks of every fallback."""
    out = [f"{facts.title.rstrip('.')}."] if facts.title else []
    flags = [flag_phrase(k) for k, v in facts.attributes.items() if v is True]
    if flags:
        text = _join(flags)
        out.append(text[0].upper() + text[1:] + ".")
    for key, value in facts.attributes.items():
        if is_plumbing(key, value):
            continue
        line = _fact_line(key, value)
        if line and len(line) <= MAX_FACT_CHARS:
            out.append(line)
    # Last, the catalog's own description, sentence by sentence (marketplace exports separate
    # bullet points with "|"); instruction-like sentences and ones holding a web address are not facts and stay out.
    for part in re.split(r"\s*\|\s*", without_instructions(facts.description or "")):
        for sentence in sentences(part):
            sentence = tidy_end(clean_text(sentence))
            if sentence and sentence[-1] not in ".!?":
                sentence += "."  # a bullet point ("Plush fabric with printed design") reads as a sentence
            if (20 <= len(sentence) <= MAX_FACT_CHARS and sentence not in out and not _BOILERPLATE.search(sentence)
                    and not WEB_ADDRESS.search(sentence)):
                out.append(sentence)
    kind = facts.kind
    if kind and "type" not in facts.attributes and facts.title and kind.lower() not in facts.title.lower():
        out.append(f"Category: {kind}.")
    return out


def short_forms(facts: ProductFacts) -> list[str]:
    """Headline-sized phrases from the title's words and the attributes, most telling first."""
    title = facts.title.strip()
    kind = facts.kind.strip()
    out = [title]
    if facts.brand and title.lower().startswith(facts.brand.lower() + " "):
        out.append(title[len(facts.brand) + 1 :])
    if facts.brand and kind:
        out.append(title_case(f"{facts.brand} {kind}"))
    material = facts.attributes.get("material")
    if isinstance(material, str) and kind:
        out.append(title_case(f"{material} {kind}"))
    flags = [flag_phrase(k) for k, v in facts.attributes.items() if v is True]
    if len(flags) >= 2:
        out.append(title_case(f"{flags[0]} and {flags[1]}"))
    if flags and kind:
        out.append(title_case(f"{flags[0]} {kind}"))
    certs = facts.attributes.get("certifications")
    if isinstance(certs, (list, tuple)) and certs:
        out.append(f"{certs[0]} Certified")
    color = facts.attributes.get("color")
    if isinstance(color, str) and kind:
        out.append(title_case(f"{kind} in {color}"))
    if kind:
        out.append(title_case(kind))
    if facts.brand:
        out.append(facts.brand)
    return [s for s in dict.fromkeys(_SPACE.sub(" ", s).strip() for s in out) if s]


def _fits(text: str, spec: FieldSpec) -> bool:
    return bool(text) and not field_problems(text, spec)


# Fields that name the product rather than describe it: their fallback is a phrase, not sentences.
PHRASE_GROUPS = frozenset({"headline", "title", "subject"})


def fallback_value(facts: ProductFacts, spec: FieldSpec, taken: set[str] = frozenset(), slots: int = 1) -> str | None:
    """A deterministic value for ``spec`` built only from the product's data, unlike any in ``taken``.

    Phrase fields (headlines, titles, subjects) take the first short form that fits as it is,
    then one trimmed at a word boundary. Text fields take the product's fact sentences, as
    many as fit; a field that is one of ``slots`` in its group (five bullets) takes its share.
    """
    taken_l = {t.lower() for t in taken}
    candidates: list[str] = []
    if spec.group_name not in PHRASE_GROUPS and (spec.max_chars or 999) >= 60:
        facts_list = fact_sentences(facts)
        if slots > 1:
            facts_list = facts_list[1:] or facts_list  # the title is the headline's job, not every slot's
        share = max(1, -(-len(facts_list) // slots)) if slots > 1 else len(facts_list)
        share = min(share, spec.max_sentences or share)
        for start in range(len(facts_list)):
            chosen: list[str] = []
            for sentence in facts_list[start:] + facts_list[:start]:
                if len(chosen) >= share:
                    break
                if any(sentence.lower() in t for t in taken_l):
                    continue
                trial = " ".join([*chosen, sentence])
                if spec.max_chars and len(trial) > spec.max_chars:
                    continue
                chosen.append(sentence)
            if chosen:
                candidates.append(" ".join(chosen))
    forms = short_forms(facts)
    several = [f for f in forms if " " in f]  # "Summit Water Bottle" before a cut title before "Costumes"
    single = [f for f in forms if " " not in f]

    def trimmed() -> Iterator[str]:  # only worked out when no form of several words fits as it is
        for form in forms:
            cut = trim_to_limit(form, spec.max_chars) if spec.max_chars else None
            if cut:
                yield cut

    for text in chain(candidates, several, trimmed(), single):
        text = clean_text(text)
        if spec.forbidden:
            text = _SPACE.sub(" ", "".join(c if c not in spec.forbidden else " " for c in text)).strip()
        if _fits(text, spec) and text.lower() not in taken_l:
            return text
    return None


# --- repair ----------------------------------------------------------------------------


@dataclass
class Repaired:
    fields: dict[str, str]
    actions: dict[str, str]  # per field: kept | cleaned | trimmed | fallback | missing
    problems: dict[str, list[str]]  # from the independent check, after repair
    labelled: bool  # whether the model used the asked-for labels
    raw: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def compliant(self) -> bool:
        return not self.problems

    @property
    def from_model(self) -> int:
        """Fields that came from the model (as written, cleaned or trimmed), not from the fallback."""
        return sum(1 for a in self.actions.values() if a in ("kept", "cleaned", "trimmed"))


def restates_title(value: str, facts: ProductFacts, spec: FieldSpec) -> bool:
    """A headline-like field that is the product's whole title, too long to fit: the model's habit.

    Cutting the title at a word leaves a fragment ("Summit 750 ml Insulated Steel"); a short
    form of the same title ("Summit Water Bottle") reads better, so the fallback takes over.
    """
    if spec.group_name not in PHRASE_GROUPS or spec.max_chars is None or not facts.title:
        return False
    title = _SPACE.sub(" ", facts.title).strip().lower()
    text = _SPACE.sub(" ", clean_text(value)).lower()
    if len(text) <= spec.max_chars:
        return False
    # The title itself, or the title with a word dropped ("Summit Coast 1000 ml Water Bottle").
    return text.startswith(title) or set(text.split()) <= set(title.split())


# Template text, not copy: "[Company] [Product]", "{product_name}", "<headline>", or the
# prompt's own "…" echoed back. Such a field counts as missing and is filled from product data.
_PLACEHOLDER = re.compile(r"\[[^\]]{1,40}\]|\{[^}]{1,40}\}|<[^>]{1,40}>|^\W*…\W*$|^\W*\.\.\.\W*$|lorem ipsum", re.IGNORECASE)


def is_placeholder(value: str) -> bool:
    return bool(_PLACEHOLDER.search(value))


def repair_value(value: str, spec: FieldSpec) -> tuple[str | None, str]:
    """One field kept within its limits by trimming; None when trimming cannot make it fit (or it is a placeholder)."""
    cleaned = clean_text(value)
    if not cleaned or is_placeholder(cleaned):
        return None, "missing"
    action = "kept" if cleaned == value.strip() else "cleaned"
    if spec.forbidden and any(c in cleaned for c in spec.forbidden):
        cleaned = _SPACE.sub(" ", "".join(c if c not in spec.forbidden else " " for c in cleaned)).strip()
        action = "cleaned"
    if spec.max_sentences:
        parts = sentences(cleaned)
        if len(parts) > spec.max_sentences:
            cleaned, action = " ".join(parts[: spec.max_sentences]), "trimmed"
    if spec.max_chars is not None and len(cleaned) > spec.max_chars:
        trimmed = trim_to_limit(cleaned, spec.max_chars)
        if trimmed is None:
            return None, "trimmed"
        cleaned, action = trimmed, "trimmed"
    else:
        tidied = tidy_end(cleaned)
        if tidied != cleaned:
            cleaned, action = tidied, "trimmed"
    if not cleaned:
        return None, action
    return cleaned, action


def repair(raw: str, spec: ChannelSpec, facts: ProductFacts, *, truncated: bool = False) -> Repaired:
    """Parse, clean, trim, and fill from product data: the model's answer as fields within limits.

    ``truncated``: generation stopped at max_new_tokens, mid-line and maybe mid-word. The
    unfinished last line is dropped (its field is then filled like a missing one); a one-line
    answer is cut back to its last whole word.
    """
    spec = spec.writes  # an answer, not an assembled ad: an RSA answer is 3 headlines and 2 descriptions
    text = str(raw)
    if truncated and text and not text[-1].isspace():
        if "\n" in text:
            text = text[: text.rfind("\n")]
        else:
            text = text[: max(text.rfind(" "), 0)]
    parsed, labelled = parse_output(text, spec)
    fields: dict[str, str] = {}
    actions: dict[str, str] = {}
    for fspec in spec.fields:
        value = parsed.get(fspec.key)
        used = {" ".join(v.lower().split()) for v in fields.values()}
        if value is not None and value.strip() and not restates_title(value, facts, fspec):
            fixed, action = repair_value(value, fspec)
            if fixed is not None and " ".join(fixed.lower().split()) in used:
                fixed = None  # the same words in a second field ("The Summit Water Bottle" three times) say nothing new
            if fixed is not None and not field_problems(fixed, fspec):
                fields[fspec.key], actions[fspec.key] = fixed, action
                continue
            if fixed is not None and fspec.min_sentences and len(sentences(fixed)) < fspec.min_sentences:
                # Too short for its sentence count: add the product's own fact sentences that fit.
                extended = fixed if fixed.endswith((".", "!", "?")) else fixed + "."
                for sentence in fact_sentences(facts)[1:]:
                    trial = f"{extended} {sentence}"
                    if fspec.max_chars and len(trial) > fspec.max_chars:
                        continue
                    extended = trial
                    if len(sentences(extended)) >= fspec.min_sentences:
                        break
                if not field_problems(extended, fspec):
                    fields[fspec.key], actions[fspec.key] = extended, "trimmed"
                    continue
        backup = fallback_value(facts, fspec, set(fields.values()), slots=len(spec.group(fspec.group_name)))
        if backup is not None:
            fields[fspec.key], actions[fspec.key] = backup, "fallback"
        else:
            actions[fspec.key] = "missing"
    return Repaired(fields, actions, check_fields(fields, spec), labelled, raw)
