"""Personas written strictly from a segment's profile numbers, and checked against them.

The language model is passed in as a callable (core/llm builds it; tests pass a fake):

    generate(prompts: list[list[dict]], n: int, max_new_tokens: int, temperature: float,
             seed: int) -> list[list[str]]     # n completions per chat prompt

Each segment's facts are rendered as text once (``persona_facts``); the prompt shows those
lines and nothing else about the segment, and the grounding check accepts a number in the
persona only when it is one of the numbers in those lines (or that number rounded to the
precision quoted). A persona that quotes anything else, names a category or device the
segment is not known for, or is not a name plus two or three sentences is rejected; the next
candidate is tried, then a new batch with another seed, and when none passes the persona is
written from a template that quotes the facts verbatim (``source='template'``). The facts stay
attached to the persona, so a page can show the numbers beside the words.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

from core.errors import MarketLabError
from core.llm.grouped import engine_generate_fn
from core.segments.profiles import Difference, SegmentProfile
from core.units import measure

__all__ = ["Generate", "Fact", "Persona", "persona_facts", "persona_prompt", "check_grounding", "parse_persona",
           "template_persona", "write_personas", "from_engine"]

Generate = Callable[..., list[list[str]]]


def from_engine(engine: object) -> Generate:
    """A core.llm ``Engine`` as ``Generate``: the answers' texts, per prompt, in variant order (``engine_generate_fn``)."""
    grouped = engine_generate_fn(engine)

    def generate(prompts: list[list[dict]], n: int, max_new_tokens: int, temperature: float, seed: int) -> list[list[str]]:
        return [[r.text for r in group] for group in grouped(prompts, n=n, max_new_tokens=max_new_tokens,
                                                               temperature=temperature, seed=seed)]

    return generate


@dataclass(frozen=True)
class Fact:
    label: str
    value: str  # as shown to the model and to the marketer

    def line(self) -> str:
        return f"- {self.label}: {self.value}"


def _num(x: float) -> str:
    """A plain number: whole when it is (nearly) whole, else one decimal, thousands separated."""
    if abs(x - round(x)) < 0.05 or abs(x) >= 100:
        return f"{round(x):,}"
    return f"{x:,.1f}"


def _pct(x: float) -> str:
    p = x * 100
    return f"{p:.1f}%" if 0 < abs(p) < 1 else f"{round(p)}%"


# The event log's revenue carries no currency; the demo store and the real exports are in dollars.
_CURRENCY = "USD"


def _money(x: float) -> str:
    return measure(x, "money", _CURRENCY)


def _value(unit: str, x: float) -> str:
    return measure(x, unit, _CURRENCY)  # as the segment page shows the same differences


def persona_facts(p: SegmentProfile, base: SegmentProfile) -> list[Fact]:
    """The numbers a persona may use, as text."""
    facts = [
        Fact("Users", f"{p.size:,} ({_pct(p.share)} of all users)"),
        Fact("Ordered in the period", f"{_pct(p.conversion_rate)} of users (all users: {_pct(base.conversion_rate)})"),
        Fact("Share of revenue", _pct(p.revenue_share)),
        Fact("Revenue per user", f"{_money(p.monetary_mean)} (all users: {_money(base.monetary_mean)})"),
    ]
    if p.aov is not None:
        facts.append(Fact("Average order value", _money(p.aov) + (f" (all users: {_money(base.aov)})" if base.aov is not None else "")))
    if p.days_since_visit_median is not None and base.days_since_visit_median is not None:
        facts.append(Fact("Median days since last visit", f"{_num(p.days_since_visit_median)} (all users: {_num(base.days_since_visit_median)})"))
    if p.sessions_median is not None and base.sessions_median is not None:
        facts.append(Fact("Median sessions", f"{_num(p.sessions_median)} (all users: {_num(base.sessions_median)})"))
    if p.campaign_share is not None and base.campaign_share is not None:
        facts.append(Fact("Sessions from campaigns", f"{_pct(p.campaign_share)} (all users: {_pct(base.campaign_share)})"))
    if p.top_categories:
        facts.append(Fact("Top categories by activity", ", ".join(f"{c} ({_pct(s)})" for c, s in p.top_categories)))
    if p.top_devices:
        facts.append(Fact("Devices by sessions", ", ".join(f"{d} ({_pct(s)})" for d, s in p.top_devices)))
    for d in p.differences:
        word = "higher" if d.std_diff > 0 else "lower"
        facts.append(Fact(f"Stands out ({word} than all users)", f"{d.label}: {_value(d.unit, d.segment)} vs {_value(d.unit, d.base)}"))
    return facts


_SYSTEM = (
    "You write short customer personas for an e-commerce marketing team. Use only the facts you are given. "
    "Quote a number only exactly as it is written in the facts. Do not invent ages, genders, jobs, motives, "
    "products, places or any number. Answer in exactly this format:\n"
    "Name: <a persona name of 2 to 4 words>\n"
    "Persona: <2 or 3 sentences>"
)
_EXAMPLE_FACTS = (
    "- Users: 812 (9% of all users)\n"
    "- Ordered in the period: 31% of users (all users: 6%)\n"
    "- Share of revenue: 44%\n"
    "- Devices by sessions: desktop (81%), mobile (15%)\n"
    "- Stands out (higher than all users): sessions in office hours: 64% vs 30%"
)
_EXAMPLE_ANSWER = (
    "Name: Office-Hours Desktop Buyers\n"
    "Persona: These 812 customers shop from a desktop in office hours, with 64% of sessions between nine and five. "
    "31% of them ordered in the period, and together they bring in 44% of revenue."
)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9%$.]+", text.lower())


_EXAMPLE_4GRAMS = {tuple(w[i:i + 4]) for w in [_words(_EXAMPLE_ANSWER.split("Persona:", 1)[1])] for i in range(len(w) - 3)}


def _copied_from_example(text: str) -> list[str]:
    """Small models lift phrases from the worked example ("shop from a desktop in office hours")."""
    w = _words(text)
    hits = [" ".join(g) for g in (tuple(w[i:i + 4]) for i in range(len(w) - 3)) if g in _EXAMPLE_4GRAMS]
    return [f"copied from the example: {hits[0]}"] if hits else []


def persona_prompt(facts: Sequence[Fact]) -> list[dict[str, str]]:
    """A chat prompt: instructions, one worked example, then this segment's facts."""
    ask = "Write the persona for this segment.\nFacts:\n"
    return [
        {"role": "system", "content": _SYSTEM},
        {"role": "user", "content": ask + _EXAMPLE_FACTS},
        {"role": "assistant", "content": _EXAMPLE_ANSWER},
        {"role": "user", "content": ask + "\n".join(f.line() for f in facts)},
    ]


_NUMBER = re.compile(r"(?<![A-Za-z])(\$?)(\d[\d,]*(?:\.\d+)?)(\s*(?:%|percent\b|per cent\b))?", re.IGNORECASE)


def _numbers(text: str) -> list[tuple[str, float, int, str]]:
    """(as written, value, decimals, unit) for every number in ``text``; unit is '$', '%' or ''."""
    out = []
    for m in _NUMBER.finditer(text):
        dollar, s, pct = m.group(1), m.group(2).rstrip(","), m.group(3)
        digits = s.replace(",", "")
        if not re.fullmatch(r"\d+(\.\d+)?", digits):
            continue
        dec = len(digits.split(".")[1]) if "." in digits else 0
        unit = "%" if pct else "$" if dollar else ""
        out.append((f"{dollar}{s}{'%' if pct else ''}", float(digits), dec, unit))
    return out


def _allowed(facts: Sequence[Fact]) -> list[tuple[float, str]]:
    return [(v, unit) for f in facts for _, v, _, unit in _numbers(f"{f.label}: {f.value}")]


def check_grounding(text: str, facts: Sequence[Fact], *, vocabulary: Sequence[str] = (), known: Sequence[str] = ()) -> list[str]:
    """Problems with ``text`` against ``facts``; an empty list means it is grounded.

    A number is grounded when it equals a fact's number of the same kind (a share with a
    share, money with money, a plain number with a plain number), or that number rounded to
    the decimals quoted ("$56" for "$56.10"; not "28.4%" for "28%", not "1.49%" for a price
    level of 1.49). ``vocabulary`` lists the names (categories, devices) the store knows and
    ``known`` the ones the facts name: naming one outside ``known`` is a claim the numbers
    do not show.
    """
    allowed = _allowed(facts)
    issues = []
    for written, value, dec, unit in _numbers(text):
        if not any(u == unit and abs(round(a, dec) - value) < 1e-9 for a, u in allowed):
            issues.append(f"number not in the profile: {written}")
    lowered = text.lower()
    known_l = {k.lower() for k in known}
    for word in vocabulary:
        w = word.lower()
        if w not in known_l and re.search(rf"(?<![a-z]){re.escape(w)}(?![a-z])", lowered):
            issues.append(f"claim not in the profile: {word}")
    return issues


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'“A-Z0-9])")


def _sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(text.strip()) if s]


_MAX_SENTENCE_WORDS = 40


def parse_persona(raw: str) -> tuple[str, str] | None:
    """(name, 2–3 sentences) from a completion, or None when it is not in that shape."""
    text = raw.strip().strip("`").strip()
    name_m = re.search(r"^\W*name\W*[:\-]\s*(.+)$", text, re.IGNORECASE | re.MULTILINE)
    body_m = re.search(r"^\W*(?:persona|description)\W*[:\-]\s*(.+)", text, re.IGNORECASE | re.MULTILINE | re.DOTALL)
    if name_m and body_m:
        name, body = name_m.group(1), body_m.group(1)
    else:
        lines = [ln for ln in text.splitlines() if ln.strip()]
        if len(lines) < 2:
            return None
        name, body = lines[0], " ".join(lines[1:])
    name = re.sub(r"[*#\"“”_]", "", name).strip().rstrip(".:")
    body = " ".join(re.sub(r"[*#_]", "", body).split())
    if not name or len(name) > 60 or not 1 <= len(name.split()) <= 6:
        return None
    # Whole sentences only (a completion cut at max_new_tokens loses its tail), at most three,
    # none repeated and none rambling: small models loop.
    sentences = [x for x in _sentences(body) if x[-1] in ".!?"][:3]
    if len(sentences) < 2 or len({x.lower() for x in sentences}) < len(sentences):
        return None
    if any(len(x.split()) > _MAX_SENTENCE_WORDS for x in sentences):
        return None
    return name, " ".join(sentences)


@dataclass
class Persona:
    segment_id: str
    name: str
    text: str
    source: str  # model | template
    facts: list[Fact] = field(default_factory=list)
    issues: list[str] = field(default_factory=list)  # why model candidates were rejected (most recent first)
    candidates_checked: int = 0
    # The language model that was asked ('' when none was): with source='template' it tells the
    # card that the model's drafts were rejected, not that nobody tried.
    model: str = ""

    @property
    def byline(self) -> str:
        """Who wrote these words, for the card: the model's name or the grounded template."""
        if self.source == "model":
            return f"Written by {self.model or 'the language model'}, checked against the numbers"
        return "Written by the grounded template, from the numbers alone"

    @property
    def fallback_note(self) -> str | None:
        """Why a model that was asked is not the one speaking; None when it is, or when none was asked."""
        if self.source == "model" or not (self.model or self.issues):
            return None
        who = self.model or "The language model"
        # A grounding problem says most about why the words were refused; a shape problem least.
        ranked = sorted(self.issues, key=lambda i: 0 if i.startswith(("number not", "claim not")) else
                        1 if i.startswith(("the model failed", "copied")) else 2)
        if ranked and ranked[0].startswith("the model failed"):
            return f"{ranked[0][0].upper()}{ranked[0][1:]}; showing the grounded summary."
        reason = ranked[0] if ranked else "no draft was produced"
        drafts = f"{self.candidates_checked} draft{'s' if self.candidates_checked != 1 else ''}"
        return f"{who}'s {drafts} did not pass the grounding check ({reason}); showing the grounded summary."

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["facts"] = [[f.label, f.value] for f in self.facts]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> Persona:
        d = dict(d)
        d["facts"] = [Fact(*f) for f in d.get("facts") or []]
        return cls(**d)


# Words for the template's name, by feature and direction of the difference.
_WORDS: dict[str, tuple[str, str]] = {
    "days_since_visit": ("Lapsing", "Recently active"),
    "recency_days": ("Long-ago", "Recent"),
    "sessions": ("Frequent", "Occasional"),
    "active_days": ("Frequent", "Occasional"),
    "views": ("Heavy-browsing", "Light-browsing"),
    "views_per_session": ("Deep-browsing", "Quick-look"),
    "secs_per_event": ("Unhurried", "Fast-clicking"),
    "campaign_share": ("Campaign-driven", "Organic"),
    "price_index": ("Premium", "Bargain"),
    "tenure_days": ("Long-standing", "Newly arrived"),
    "frequency": ("Repeat-buying", "One-off"),
    "monetary": ("High-value", "Low-spend"),
    "aov": ("Big-basket", "Small-basket"),
    "conversion_rate": ("Converting", "Non-converting"),
    "cart_rate": ("Cart-happy", "Cart-shy"),
    "cart_adds": ("Cart-happy", "Cart-shy"),
    "checkouts": ("Checkout-reaching", "Checkout-shy"),
    "office_hours_share": ("Office-hours", "Off-hours"),
    "evening_share": ("Evening", "Daytime"),
    "reviews": ("Reviewing", "Quiet"),
}


def _word(d: Difference) -> str | None:
    up = d.std_diff > 0
    if d.feature.startswith("device:"):
        return f"{d.feature[7:].capitalize()}-first" if up else None
    if d.feature.startswith("cat:"):
        return f"{d.feature[4:]}-focused" if up else None
    pair = _WORDS.get(d.feature)
    return (pair[0] if up else pair[1]) if pair else None


def template_persona(p: SegmentProfile, base: SegmentProfile, facts: Sequence[Fact] | None = None) -> Persona:
    """A persona made only of the facts' own words and numbers: grounded by construction."""
    facts = list(facts) if facts is not None else persona_facts(p, base)
    words: list[str] = []
    for d in p.differences:
        w = _word(d)
        if w and w not in words:
            words.append(w)
        if len(words) == 2:
            break
    noun = "customers" if p.conversion_rate >= max(2 * base.conversion_rate, 0.05) else "shoppers"
    name = " ".join(words + [noun]) if words else f"Typical {noun}"
    name = name[0].upper() + name[1:]
    # What sets them apart leads; ordering is cited only when it differs ("3 % ordered against 3 %" says nothing).
    sentences = []
    if p.differences:
        parts = [f"{d.label} ({_value(d.unit, d.segment)} vs {_value(d.unit, d.base)})" for d in p.differences[:2]]
        sentences.append("They stand out on " + " and ".join(parts) + ".")
    ordering_differs = abs(p.conversion_rate - base.conversion_rate) > max(0.005, 0.25 * base.conversion_rate)
    sentences.append(
        f"{p.size:,} {'user' if p.size == 1 else 'users'} ({_pct(p.share)} of all users)"
        + (f"; {_pct(p.conversion_rate)} ordered in the period against {_pct(base.conversion_rate)} of all users"
           if ordering_differs else "")
        + f", bringing {_pct(p.revenue_share)} of revenue.")
    where = []
    if p.top_categories:
        c, s = p.top_categories[0]
        where.append(f"most of their activity is in {c} ({_pct(s)})")
    if p.top_devices:
        dname, s = p.top_devices[0]
        where.append(f"{_pct(s)} of their sessions are on {dname}")
    if where:
        text = "; ".join(where) + "."
        sentences.append(text[0].upper() + text[1:])
    return Persona(p.segment_id, name, " ".join(sentences[:3]), "template", facts)


def _vocabulary(profiles: Sequence[SegmentProfile], base: SegmentProfile, extra: Sequence[str]) -> list[str]:
    names = {c for p in [base, *profiles] for c, _ in p.top_categories} | {d for p in [base, *profiles] for d, _ in p.top_devices}
    return sorted(names | set(extra), key=len, reverse=True)


def _named_in(vocabulary: Sequence[str], facts: Sequence[Fact]) -> list[str]:
    text = " ".join(f"{f.label} {f.value}" for f in facts).lower()
    return [w for w in vocabulary if re.search(rf"(?<![a-z]){re.escape(w.lower())}(?![a-z])", text)]


def write_personas(
    profiles: Sequence[SegmentProfile],
    base: SegmentProfile,
    generate: Generate | None = None,
    *,
    candidates: int = 4,
    attempts: int = 2,
    max_new_tokens: int = 120,
    temperature: float = 0.7,
    seed: int = 0,
    vocabulary: Sequence[str] = (),
    model: str = "",
) -> list[Persona]:
    """One persona per profile: from the model when a candidate passes the checks, else the template.

    ``vocabulary`` adds names (every category and device of the store) that a persona may
    only mention when the segment's facts name them. ``model`` names the model behind
    ``generate``; it is kept on every persona so a card can say who wrote it, or whose
    drafts were refused.
    """
    facts = [persona_facts(p, base) for p in profiles]
    vocab = _vocabulary(profiles, base, vocabulary)
    known = [_named_in(vocab, fs) for fs in facts]
    chosen: list[Persona | None] = [None] * len(profiles)
    issues: list[list[str]] = [[] for _ in profiles]
    checked = [0] * len(profiles)
    if generate is not None:
        for attempt in range(attempts):
            todo = [i for i, c in enumerate(chosen) if c is None]
            if not todo:
                break
            try:
                outputs = generate([persona_prompt(facts[i]) for i in todo], n=candidates, max_new_tokens=max_new_tokens,
                                   temperature=temperature, seed=seed + attempt)
            except MarketLabError as e:  # a failed model costs the personas, not the segmentation
                for i in todo:
                    issues[i].append(f"the model failed: {e.msg}")
                break
            for i, outs in zip(todo, outputs):
                for raw in outs:
                    checked[i] += 1
                    parsed = parse_persona(raw)
                    if parsed is None:
                        issues[i].append("not a name plus 2–3 sentences")
                        continue
                    problems = check_grounding(f"{parsed[0]} {parsed[1]}", facts[i], vocabulary=vocab, known=known[i])
                    problems += _copied_from_example(f"{parsed[0]} {parsed[1]}")
                    if problems:
                        issues[i].extend(problems)
                        continue
                    chosen[i] = Persona(profiles[i].segment_id, parsed[0], parsed[1], "model", facts[i])
                    break
    out = []
    for i, p in enumerate(profiles):
        persona = chosen[i] or template_persona(p, base, facts[i])
        persona.issues = list(dict.fromkeys(reversed(issues[i])))[:10]
        persona.candidates_checked = checked[i]
        persona.model = model if generate is not None else ""
        out.append(persona)
    _dedupe_names(out)
    return out


def _dedupe_names(personas: list[Persona]) -> None:
    """Two segments may earn the same words; the segment id tells them apart (no new number)."""
    seen: set[str] = set()
    for p in personas:
        if p.name.lower() in seen:
            p.name = f"{p.name} ({p.segment_id})"
        seen.add(p.name.lower())
