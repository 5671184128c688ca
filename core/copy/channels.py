"""Channels and tones as data: what each ad format holds, how long it may be, and how it should sound.

A channel is a tuple of fields, each with the hard limit the ad platform enforces (or the
truncation point past which shoppers stop seeing the text). The limits are kept by code in
``core.copy.limits``, never left to the model: a 135M model does not count characters.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import InvalidRequestError, NotFoundError


@dataclass(frozen=True)
class FieldSpec:
    key: str  # key in copy_variants.fields; the first field of a group keeps the bare name ("headline")
    label: str  # how the prompt's output format names it, and how the parser finds it ("Headline 2:")
    max_chars: int | None  # hard limit, counted in Unicode characters as the platforms count them
    required: bool = True  # a variant without it is not shown; optional fields are filled from product data
    min_sentences: int | None = None
    max_sentences: int | None = None
    group: str = ""  # fields that are one list on the platform: export writes them as Headline 1..n
    forbidden: str = ""  # characters the platform refuses in this field; removed by repair
    why: str = ""  # where the limit comes from

    @property
    def group_name(self) -> str:
        return self.group or self.key


@dataclass(frozen=True)
class ChannelSpec:
    name: str
    label: str
    fields: tuple[FieldSpec, ...]
    # Attributes a variant should mention to count as fully covering the product: a 30-character
    # headline cannot carry eight facts, so coverage is scored against this many, not all.
    coverage_target: int
    # About 1.5x the longest few-shot answer in SmolLM2 tokens: room for a whole answer, while
    # the model's habit of running on ("Headline 4: … Headline 15: …") is cut short.
    max_new_tokens: int
    why: str = ""
    # Formats whose ad is a pool of assets (an RSA's 15 headlines): the model writes ``answer``-shaped
    # answers (3 headlines, 2 descriptions: what a small model can do in one go, as the few-shot
    # examples show), and the ad is assembled from the assets of many answers (core.copy.assemble).
    answer: ChannelSpec | None = None

    @property
    def writes(self) -> ChannelSpec:
        """What the model writes in one answer: the prompt's format, parsing and repair use it."""
        return self.answer or self

    @property
    def pooled(self) -> bool:
        return self.answer is not None

    def field(self, key: str) -> FieldSpec:
        for spec in self.fields:
            if spec.key == key:
                return spec
        raise NotFoundError(f"{self.label} has no field {key!r}; its fields are {', '.join(f.key for f in self.fields)}.",
                             title="Unknown copy field")

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(f.key for f in self.fields)

    @property
    def required_keys(self) -> tuple[str, ...]:
        return tuple(f.key for f in self.fields if f.required)

    def group(self, name: str) -> tuple[FieldSpec, ...]:
        return tuple(f for f in self.fields if f.group_name == name)

    @property
    def stop_strings(self) -> tuple[str, ...]:
        """Where an answer is over: a blank line, or the next number of a group ("Headline 4").

        A small model runs on past the format ("Headline 15: …", "Note: …"); the parser drops
        that anyway, so the row stops there instead of holding its batch for max_new_tokens.
        """
        stops = ["\n\n"]
        for name in dict.fromkeys(f.group_name for f in self.fields):
            members = self.group(name)
            stops.append(f"\n{members[0].label} {len(members) + 1}")
        return tuple(stops)


def _numbered(key: str, label: str, count: int, max_chars: int, required: int, **kw: object) -> tuple[FieldSpec, ...]:
    """``headline``, ``headline_2``, ``headline_3``…: the first keeps the bare key, matching saved demo copy."""
    return tuple(
        FieldSpec(key if i == 1 else f"{key}_{i}", label if i == 1 else f"{label} {i}", max_chars,
                  required=i <= required, group=key, **kw)  # type: ignore[arg-type]
        for i in range(1, count + 1)
    )


# What the model writes per answer for an RSA: 3 headlines and 2 descriptions, the format of
# the few-shot examples. The first of each is required from the model; the rest are filled from
# the product's own data when the model leaves them out.
GOOGLE_RSA_ANSWER = ChannelSpec(
    "google_rsa",
    "Google responsive search ad",
    (
        *_numbered("headline", "Headline", 3, 30, required=1, forbidden="!",
                   why="Google Ads responsive search ad headline: 30 characters"),
        *_numbered("description", "Description", 2, 90, required=1,
                   why="Google Ads responsive search ad description: 90 characters"),
    ),
    coverage_target=3,
    max_new_tokens=150,
)

GOOGLE_RSA = ChannelSpec(
    "google_rsa",
    "Google responsive search ad",
    (
        # Google Ads RSA: 3-15 headlines of at most 30 characters, no exclamation mark in a
        # headline (editorial policy); 2-4 descriptions of at most 90; two optional display-URL
        # paths of at most 15. Every headline and description unique within the ad.
        *_numbered("headline", "Headline", 15, 30, required=3, forbidden="!",
                   why="Google Ads responsive search ad headline: 30 characters"),
        *_numbered("description", "Description", 4, 90, required=2,
                   why="Google Ads responsive search ad description: 90 characters"),
        FieldSpec("path_1", "Path 1", 15, required=False, forbidden=" /!", group="path",
                  why="Google Ads display path: 15 characters, no spaces"),
        FieldSpec("path_2", "Path 2", 15, required=False, forbidden=" /!", group="path",
                  why="Google Ads display path: 15 characters, no spaces"),
    ),
    coverage_target=3,
    max_new_tokens=150,
    why="Google Ads Help, 'About responsive search ads' (answer 7684791).",
    answer=GOOGLE_RSA_ANSWER,
)

# One answer for Meta: one primary text, one headline, one description (the few-shot format).
META_ANSWER = ChannelSpec(
    "meta",
    "Meta (Facebook/Instagram) ad",
    (
        FieldSpec("primary_text", "Primary text", 125, why="Meta ads guide: ~125 characters visible before truncation"),
        FieldSpec("headline", "Headline", 40, why="Meta ads guide: headline 40 characters"),
        FieldSpec("description", "Description", 30, required=False, why="Meta ads guide: link description 30 characters"),
    ),
    coverage_target=3,
    max_new_tokens=100,
)

META = ChannelSpec(
    "meta",
    "Meta (Facebook/Instagram) ad",
    (
        # Meta's text variations (Advantage+ creative): up to 5 primary texts and 5 headlines per
        # ad, Meta showing the combination it predicts works best. About 125 characters of primary
        # text show before "… See more"; we keep all of it visible. Headline 40 and description 30
        # are Meta's recommended lengths for link ads, past which most placements cut the text.
        *_numbered("primary_text", "Primary text", 5, 125, required=1,
                   why="Meta ads guide: ~125 characters visible before truncation"),
        *_numbered("headline", "Headline", 5, 40, required=1, why="Meta ads guide: headline 40 characters"),
        FieldSpec("description", "Description", 30, required=False, why="Meta ads guide: link description 30 characters"),
    ),
    coverage_target=3,
    max_new_tokens=100,
    why="Meta Ads Guide, image ad text recommendations; multiple text options per ad.",
    answer=META_ANSWER,
)

EMAIL = ChannelSpec(
    "email",
    "Email",
    (
        # Inboxes cut subject lines at roughly 40-60 characters (mobile shortest); 50 keeps the
        # whole subject visible on most. Preheaders show 40-140 characters by client; 90 is a
        # middle that desktop clients show in full.
        FieldSpec("subject", "Subject", 50, why="inbox truncation: ~50 characters on mobile clients"),
        FieldSpec("preheader", "Preheader", 90, why="preview text shown beside the subject: ~90 characters"),
    ),
    coverage_target=2,
    max_new_tokens=70,
    why="Common inbox truncation points (Litmus, Mailchimp guidance).",
)

PRODUCT_DESCRIPTION = ChannelSpec(
    "product_description",
    "Product description",
    (
        # A product-page description: two to four sentences, so it is more than a tagline and
        # less than a spec sheet. 600 characters is about four long sentences.
        FieldSpec("description", "Description", 600, min_sentences=2, max_sentences=4,
                  why="house style: 2-4 sentences for a product page"),
    ),
    coverage_target=4,
    max_new_tokens=170,
    why="House style for product pages.",
)

AMAZON = ChannelSpec(
    "amazon",
    "Amazon listing",
    (
        # Amazon's product title policy caps titles at 200 characters including spaces (many
        # categories ask for less). Listings show five "About this item" bullets; Amazon's style
        # guides recommend keeping each under about 250 characters.
        FieldSpec("title", "Title", 200, why="Amazon product title requirements: 200 characters"),
        *_numbered("bullet", "Bullet", 5, 250, required=1, why="Amazon bullet points: about 250 characters each"),
    ),
    coverage_target=5,
    max_new_tokens=300,
    why="Amazon Seller Central product title and bullet point guidelines.",
)

CHANNELS: dict[str, ChannelSpec] = {c.name: c for c in (GOOGLE_RSA, META, EMAIL, PRODUCT_DESCRIPTION, AMAZON)}


@dataclass(frozen=True)
class Tone:
    name: str
    guidance: str  # one line the prompt carries; short, because a small model follows short text best


TONES: dict[str, Tone] = {t.name: t for t in (
    # Short, with nothing quotable and no words to avoid: SmolLM2 echoed "like a helpful shop
    # assistant" as copy, and naming what not to say ("no discounts") primes a small model to say it.
    Tone("friendly", "Warm and plain. Short everyday words."),
    Tone("premium", "Calm and confident. Lead with the materials."),
    Tone("playful", "Light and witty. Keep the facts exact."),
    Tone("urgent", "Direct, with a clear call to act now, using only the facts given."),
    Tone("technical", "Precise and factual. Lead with the numbers in the data."),
)}


def get_channel(name: str) -> ChannelSpec:
    try:
        return CHANNELS[name]
    except KeyError:
        raise InvalidRequestError(f"Unknown channel {name!r}; choose one of {', '.join(CHANNELS)}.", title="Unknown channel") from None


def get_tone(name: str) -> Tone:
    try:
        return TONES[name]
    except KeyError:
        raise InvalidRequestError(f"Unknown tone {name!r}; choose one of {', '.join(TONES)}.", title="Unknown tone") from None
