"""Headlines built from a product's data alone, of the kinds a marketer puts in every RSA.

Google's guidance for responsive search ads is to give it headlines of different kinds: the
product's name and what it is, its features and benefits (``core.copy.selling_points``), a price or
offer, a call to action. This module writes the ones the data fully backs, so that a product with
few facts still fills an ad with distinct, grounded headlines:

- the title's own phrases: a marketplace title is a string of phrases ("AMERICAN GREETINGS Rainbow
  Latex Balloons | Pack of 20 | Party Decor"), each of which, brand and codes aside, names the
  product or a fact about it ("Rainbow Latex Balloons", "Pack of 20");
- the price, said with what it buys ("Tumbler for $20.99"), never alone (a gate refuses that);
- a call to action naming the product ("Shop the Summit Tumbler");
- and, for a description of one short fact, a closing sentence of the same kinds
  ("Comes in Sand. Yours for $20.99.").

Every text here still goes through limits, the gates and the faithfulness check in ``assemble``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from core.copy.facts import SMALL_PRINT, ProductFacts
from core.units import with_currency
from core.copy.limits import SHOUTED, calm_capitals, title_case

__all__ = ["ad_keyword", "call_to_action", "call_to_action_sentence", "closing_sentences", "kind_is_named", "maker_name", "offer_sentence", "price_headline", "price_text", "product_names", "second_call_to_action", "title_phrases"]

# Where a marketplace title's phrases end: a bar, a dash between spaces, a comma, a colon, brackets.
_PHRASE_BREAK = re.compile(r"\s*[|•]\s*|\s+[-–—]\s+|,\s+|:\s+|\s*[()\[\]]\s*")
_CODE = re.compile(r"^(?=.*\d)[A-Za-z0-9-]*[\d-][A-Za-z0-9-]*$")  # "000914", "9-2705101", "B07XJ8C8F5"
# A code stands in a phrase only when a word it counts follows ("1000 Piece", "iPhone 17 Pro") or
# "of" precedes it ("Pack of 20"); "AMI 675513" is a part number.


def _strip_brand(text: str, brands: Sequence[str]) -> str:
    """``text`` without the brand it starts with (the catalog's, a known one, or a shouted name)."""
    for brand in sorted((b for b in brands if b), key=len, reverse=True):
        if text.lower().startswith(brand.lower() + " "):
            return text[len(brand) + 1:].strip()
    words = text.split()
    shouted = 0
    while shouted < len(words) - 1 and SHOUTED.match(words[shouted]):
        shouted += 1
    return " ".join(words[shouted:])


def _reads_as_phrase(words: list[str]) -> bool:
    """Two or more words, at least two of them words rather than numbers or codes, and no bare part number."""
    if len([w for w in words if re.search(r"[A-Za-z]{2,}", w) and not _CODE.match(w)]) < 2:
        return False
    for i, word in enumerate(words):
        if _CODE.match(word):
            counts_something = i + 1 < len(words) and words[i + 1][:1].isalpha()
            counted = i > 0 and words[i - 1].lower() == "of"
            if not (counts_something or counted) or len(re.sub(r"\D", "", word)) > 4:
                return False
    return True


def title_phrases(facts: ProductFacts, limit: int, brands: Sequence[str] = (), *, first_only: bool = False) -> list[str]:
    """The phrases of the title that fit ``limit`` and name something, brand and part numbers left out.

    "AMERICAN GREETINGS Rainbow Latex Balloons| Pack of 20 | Party Decor" gives "Rainbow Latex
    Balloons", "Pack of 20", "Party Decor". A phrase too long is never cut at the end (that is how
    "10000 mm Waterproof Rain" happened); only its tail from a count on is taken, since English
    puts the noun last: "Ravensburger Mama Knows Best 1000 Piece Jigsaw Puzzle" gives "1000 Piece
    Jigsaw Puzzle". ``first_only``: only the title's first phrase, the one that names the product.
    """
    title = (facts.title or "").strip()
    if not title:
        return []
    brands = [facts.brand or "", *brands]
    out: list[str] = []
    for i, phrase in enumerate(p.strip(" .-–—") for p in _PHRASE_BREAK.split(title)):
        # "Color/Packaging May Vary" is the seller's small print, not a name; "Spot It!" is named "Spot It"
        # in a headline, where Google allows no exclamation mark.
        phrase = phrase.rstrip("!").rstrip()
        if not phrase or SMALL_PRINT.search(phrase):
            continue
        if i == 0:
            phrase = _strip_brand(phrase, brands)
        words = phrase.split()
        # A leading part number ("CHROMA 000914 914 Hello Kitty…"): the phrase starts after it.
        # A short count before a word stays ("1000 Piece Jigsaw Puzzle"), unless it follows a part number.
        dropped = False
        while words and _CODE.match(words[0]) and (dropped or not (len(words) > 1 and words[1][:1].isalpha()
                                                                   and len(words[0]) <= 4)):
            words, dropped = words[1:], True
        if len(" ".join(words)) > limit:
            counts = [j for j, w in enumerate(words) if j and re.fullmatch(r"\d[\d,.]*", w) and len(re.sub(r"\D", "", w)) <= 4
                      and j + 1 < len(words)
                      and words[j + 1][:1].isalpha()]  # a count, not a set number ("41288 Building Kit")
            words = words[counts[-1]:] if counts else _tail(words, limit)
        phrase = calm_capitals(" ".join(words))
        if phrase and not _reads_as_phrase(phrase.split()):
            phrase = calm_capitals(" ".join(_tail(words, limit)))  # "Harry Potter 9 & 3/4 … Soft Touch Magnet": its noun phrase
        if phrase and len(phrase) <= limit and _reads_as_phrase(phrase.split()):
            out.append(phrase)
        if first_only:
            break
    return list(dict.fromkeys(out))


def _tail(words: list[str], limit: int) -> list[str]:
    """The longest end of a noun phrase, three words at most, that fits ``limit``: English puts the head
    noun last, so "Harry Potter 9 & 3/4 Platform Soft Touch Magnet" gives "Soft Touch Magnet". What the
    phrase is for or comes with is left off first ("… Fat Suit Costume For Adults" -> "… Costume"),
    and a tail never starts on a joining word or symbol ("& 3/4 …", "and Rockets Navy")."""
    head = _NOUN_PHRASE_BREAK.split(" ".join(words))[0].split()
    # Not when the break is inside a name: "Created by Me! … Craft Kit" (a noun phrase ends on a noun, not "-ed").
    words = head if len(head) >= 2 and not head[-1].lower().endswith("ed") else words
    codes = [i for i, w in enumerate(words) if _CODE.match(w) and len(re.sub(r"\D", "", w)) > 4]
    # At most three words: a longer tail starts inside the names titles open with ("Doug Star Diner
    # Restaurant" of "Melissa & Doug …", "Wheels Blastin' Rig Vehicle" of "Hot Wheels …").
    for start in range(max(codes[-1] + 1 if codes else 0, len(words) - 3), len(words) - 1):  # "… Strikes 41288 Building Kit": after the set number
        tail = words[start:]
        # Nor inside a name joined by a small word: "Lord of the | Rings LCG" is not a name.
        inside = start > 0 and words[start - 1].lower() in _JOINING
        if (len(" ".join(tail)) <= limit and tail[0][:1].isalpha() and tail[0].lower() not in _JOINING and not inside
                and all(re.fullmatch(r"[A-Za-z][\w'’.&-]*|\d{1,4}", w) for w in tail)):  # not "59# Racing Series"
            return tail
    return words


_JOINING = frozenset("and or of the a an & + with for by to in on at".split())


def _lead_name(words: list[str]) -> list[str]:
    """The name a title opens with, two words at most ("Harry Potter", "Melissa & Doug", "LEGO"), or none
    where the name goes on past them ("Lord | of the Rings") or the title opens in lower case ("amscan")."""
    lead: list[str] = []
    for word in words[:4]:
        if word == "&" and lead:
            lead.append(word)
            continue
        if not re.fullmatch(r"[A-Z][\w'’.-]*", word) or _CODE.match(word) or word.lower() in _JOINING:
            break
        lead.append(word)
        if len([w for w in lead if w != "&"]) == 2:
            break
    following = words[len(lead)].lower() if len(words) > len(lead) else ""
    if not lead or lead[-1] == "&" or following in ("of", "and", "&", "'s", "’s"):
        return []
    return lead


def maker_name(facts: ProductFacts, limit: int) -> str | None:
    """The title's opening name with the thing it ends on, as shoppers search for it: "Harry Potter 9 & 3/4
    Platform Soft Touch Magnet" -> "Harry Potter Soft Touch Magnet"; "Aurora World Plush Graduation Bear"
    -> "Aurora World Graduation Bear" (modifiers dropped from the left while too long; the head noun stays)."""
    first = _PHRASE_BREAK.split((facts.title or "").strip())[0].rstrip("!").split()
    lead = _lead_name(first)
    while first and _UNIT_WORD.match(first[-1]):
        first = first[:-1]  # "… Daily Moisturizer 75 ml": the thing is the moisturizer
    thing = _tail(first, 999)
    while thing and _UNIT_WORD.match(thing[0]):
        thing = thing[1:]  # "890 ml Steel Tumbler" is named "Steel Tumbler" after the maker, not "ml Steel Tumbler"
    if not lead or len(thing) >= len(first) or {w.lower() for w in lead} & {w.lower() for w in thing}:
        return None  # the title is the name and the thing already ("Crazy Bonez Gothic Lantern")
    for start in range(len(thing)):
        name = calm_capitals(" ".join(lead + thing[start:]))
        if len(name) <= limit:
            return name if name.split() != first else None
    return None


def _singular(word: str) -> str:
    """"Kits" -> "Kit", "Puppies" -> "Puppy", case kept; "Glass" stays."""
    if word.lower().endswith("ies"):
        return word[:-3] + ("Y" if word.isupper() else "y")
    return word[:-1] if word.lower().endswith("s") and not word.lower().endswith("ss") else word


_UNIT_WORD = re.compile(r"^(?:\d[\d.,]*\S*|ml|l|cl|g|kg|oz|lbs?|mm|cm|m|in|inch(?:es)?|ft|w|v|mah|pack|pcs?|count|ct|spf)$", re.I)
# A title's noun phrase also ends before what it is for or comes with: "Trail Case | for iPhone 17 Pro".
_NOUN_PHRASE_BREAK = re.compile(_PHRASE_BREAK.pattern + r"|\s+(?:for|with|by|from|in)\s+", re.I)


def _head_nouns(title: str) -> set[str]:
    """The last word of each of the title's phrases, counts and units aside: "Dewly Ceramide Daily
    Moisturizer 75 ml" -> moisturizer; "Hasbro … Cuddle Pillow, Large, Blue" -> pillow, large, blue."""
    heads = set()
    for phrase in _NOUN_PHRASE_BREAK.split(title):
        words = re.findall(r"[\w'.]+", phrase)
        while words and _UNIT_WORD.match(words[-1]):
            words.pop()
        if words:
            heads.add(_singular(words[-1].lower()))
    return heads


def kind_is_named(facts: ProductFacts) -> bool:
    """Whether the title's own head noun is what the product is said to be. A catalog's category leaf
    is often a shelf, not the product: "Birthday Candles" for latex balloons, "Butterflies" for a
    butterfly net, "Bobbleheads" for a Funko Pop."""
    if re.search(r"&|,| and ", facts.kind or ""):
        return False  # "Stuffed Animals & Teddy Bears": a shelf of several kinds, whatever the title says
    # A plural kind: "Air Hockey" in "AIR Hockey Table" is the game, not the table.
    if len((facts.kind or "").split()) >= 2 and facts.kind.endswith("s") and re.search(rf"\b{re.escape(facts.kind)}\b", facts.title or "", re.I):
        return True  # "Oopsy Daisy Growth Charts Robots and Rockets Navy": said in so many words
    kind_words = re.findall(r"[A-Za-z]+", facts.kind or "")
    return bool(kind_words) and _singular(kind_words[-1].lower()) in _head_nouns(facts.title or "")


def _one_of(kind: str, title: str) -> str:
    """A category named for one product: "Craft Kits" -> "Craft Kit" when the title says "Kit", not "Kits"."""
    *rest, last = kind.split(" ")
    return " ".join([*rest, last if last.lower() in title.lower().split() else _singular(last)])


def product_names(facts: ProductFacts, limit: int, brands: Sequence[str] = ()) -> list[str]:
    """Names of the product that fit ``limit``, shortest sensible first: brand and kind, the kind, the
    title's first phrase. The kind only where the title bears it out (see ``kind_is_named``)."""
    kind = _one_of(title_case(facts.kind.strip()), facts.title or "") if facts.kind and kind_is_named(facts) else ""
    names = [f"{facts.brand} {kind}" if facts.brand and kind else "", kind]
    lead = title_phrases(facts, limit, brands, first_only=True)
    return [n for n in dict.fromkeys([*names, *lead]) if n and len(n) <= limit]


def ad_keyword(facts: ProductFacts, brands: Sequence[str] = ()) -> str:
    """The search term an ad group for this product would bid on, when the marketer set none: what the
    product is, if the title bears out its kind, else the last two words of the title's first phrase."""
    if facts.kind and kind_is_named(facts):
        return _one_of(facts.kind.strip(), facts.title or "").lower()
    lead = title_phrases(facts, 999, brands, first_only=True)
    # What the product is comes before what it is for or by whom: "Growth Chart | by Finny and Zook".
    head = _NOUN_PHRASE_BREAK.split(lead[0])[0] if lead else ""
    words = re.findall(r"[A-Za-z][A-Za-z'-]+", head)
    return " ".join(words[-2:]).lower()


def _product_name(facts: ProductFacts, limit: int, room: int, brands: Sequence[str]) -> str | None:
    return next((n for n in product_names(facts, limit - room, brands)), None)


def price_text(facts: ProductFacts) -> str | None:
    """The price as a shopper reads it: "$20.99", "$20", "€9.50", "129.00 SEK"."""
    if facts.price is None or facts.price <= 0:
        return None
    amount = f"{facts.price:.0f}" if float(facts.price).is_integer() else f"{facts.price:.2f}"
    return with_currency(amount, facts.currency or "USD")


def price_headline(facts: ProductFacts, limit: int, brands: Sequence[str] = ()) -> str | None:
    """The price with what it buys ("Summit Tumbler for $20.99"): a price alone says nothing."""
    price = price_text(facts)
    if not price:
        return None
    name = _product_name(facts, limit, len(" for ") + len(price), brands)
    return f"{name} for {price}" if name else None


def call_to_action(facts: ProductFacts, limit: int, brands: Sequence[str] = ()) -> str | None:
    """"Shop the Summit Tumbler": a call to action that names the product, not a bare "Shop Now"."""
    name = _product_name(facts, limit, len("Shop the "), brands)
    return f"Shop the {name}" if name else None


def second_call_to_action(facts: ProductFacts, limit: int, brands: Sequence[str] = ()) -> str | None:
    """"Get Your Summit Tumbler Today": Google's guidance is a call to action among the headlines, and an ad
    has room for two worded apart, so that either may show with the others."""
    # The first call to action's name: a name made shorter to fit would be cut inside ("Touch Magnet").
    name = _product_name(facts, limit, len("Shop the "), brands)
    fitting = [t for t in (f"Get Your {name} Today", f"Get Your {name}") if len(t) <= limit] if name else []
    return fitting[0] if fitting else None


def offer_sentence(facts: ProductFacts, limit: int, brands: Sequence[str] = ()) -> str | None:
    """A description that stands alone for a product with few facts: "Get the Acrylic Key Ring for $3.33."
    Worded apart from the closing sentences, so an ad with both does not say the same thing twice."""
    price = price_text(facts)
    name = _product_name(facts, limit, len("Get the  for .") + len(price or ""), brands) if price else None
    return f"Get the {name} for {price}." if name else None


def call_to_action_sentence(facts: ProductFacts, limit: int, brands: Sequence[str] = ()) -> str | None:
    """"Shop the Summit Tumbler today.": the call to action as a sentence, to close a description or stand as one."""
    name = _product_name(facts, limit, len("Shop the  today."), brands)
    return f"Shop the {name} today." if name else None


def closing_sentences(facts: ProductFacts, limit: int, brands: Sequence[str] = ()) -> list[str]:
    """Sentences that close a short description as an ad would: a call to action, the price.

    "Comes in Sand." alone is a fact, not a description; "Comes in Sand. Shop the Summit Tumbler
    today." is one. Each is used once per ad (``assemble``), so no two descriptions end alike.
    """
    call = call_to_action_sentence(facts, limit, brands)
    out = [call] if call else []
    price = price_text(facts)
    if price:
        out.append(f"Yours for {price}.")
    return out
