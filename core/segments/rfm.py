"""The RFM segments marketers already know, from quintile scores and a visible rule table.

Scores are 1–5 among customers who ordered at least once: R from recency (more recent is
higher), F from orders, M from revenue. A score is the fifth a customer's percentile rank
falls in, ties ranked at the bottom of their run: two customers with the same number of
orders never get different scores by the accident of row order, and where most customers
ordered once, one order scores F=1, as a marketer would expect. FM is the mean of F and M, rounded half
up. The first rule in ``RFM_RULES`` that matches (R, FM) names the segment; together the
rules cover all 25 cells. Users with no order are "Prospects", ahead of the table.

Quintiles are relative: on a log where most customers bought once, long ago, the top fifth by
recency can be ten months old. So a name is kept only where its rule also holds in plain numbers:
names that promise recent buying (Champions, Loyal, Potential loyalists, New, Promising) need a
last order within ``horizon_days`` of the log's end, and names that promise repeat buying
(Champions, Loyal, Potential loyalists, Can't lose them, At risk) need at least two orders.
Otherwise the customer gets a neutral name that only states those two facts ("Lapsed one-time
buyers"). Without revenue (no revenue column, or all zero) M cannot be scored: FM is F alone, and
``rfm_notices`` says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["RfmRule", "RFM_RULES", "PROSPECTS", "PROSPECT_RULE", "NEUTRAL_NAMES", "ACTIVE_DAYS", "rfm_scores", "rfm_segment",
           "assign_rfm", "has_monetary", "rfm_notices", "rule_table", "grid"]

PROSPECTS = "Prospects"
ACTIVE_DAYS = 90  # default horizon: a last order within this many days of the log's end is "recent"
RECENT_NAMES = frozenset({"Champions", "Loyal", "Potential loyalists", "New", "Promising"})
REPEAT_NAMES = frozenset({"Champions", "Loyal", "Potential loyalists", "Can't lose them", "At risk"})
# (recent, repeat) -> the name given when a rule's promise does not hold in absolute terms.
NEUTRAL_NAMES = {
    (True, True): "Recent repeat buyers",
    (True, False): "Recent one-time buyers",
    (False, True): "Lapsed repeat buyers",
    (False, False): "Lapsed one-time buyers",
}


@dataclass(frozen=True)
class RfmRule:
    name: str
    r: tuple[int, int]  # inclusive score range
    fm: tuple[int, int]
    meaning: str
    action: str

    def matches(self, r: int, fm: int) -> bool:
        return self.r[0] <= r <= self.r[1] and self.fm[0] <= fm <= self.fm[1]


RFM_RULES: tuple[RfmRule, ...] = (
    RfmRule("Champions", (5, 5), (4, 5), "Bought very recently, often and for a lot.", "Reward; ask for reviews; early access."),
    RfmRule("Loyal", (3, 4), (4, 5), "Buy often and spend well, if not in the last few days.", "Upsell; loyalty programme."),
    RfmRule("Potential loyalists", (4, 5), (2, 3), "Recent customers with average frequency and spend.", "Membership offers; recommendations."),
    RfmRule("New", (5, 5), (1, 1), "Bought for the first time very recently.", "Onboarding; make the second order easy."),
    RfmRule("Promising", (4, 4), (1, 1), "Recent, but bought little so far.", "Build awareness; free trials."),
    RfmRule("Need attention", (3, 3), (1, 3), "Average recency, frequency and spend.", "Limited-time offers based on past purchases."),
    RfmRule("Can't lose them", (1, 2), (5, 5), "Used to buy the most and the most often; long gone.", "Win back with new products; talk to them."),
    RfmRule("At risk", (1, 2), (3, 4), "Spent well and often, a long time ago.", "Personal emails; renewals; helpful resources."),
    RfmRule("Hibernating", (2, 2), (1, 2), "Last order a while back; low frequency and spend.", "Relevant offers; recreate brand value."),
    RfmRule("Lost", (1, 1), (1, 2), "Lowest recency, frequency and spend.", "Revive with outreach or let go."),
)
PROSPECT_RULE = RfmRule(PROSPECTS, (0, 0), (0, 0), "Active in the log but never ordered.", "Convert: first-order offers, social proof.")


def rfm_segment(r: int, fm: int) -> str:
    """The segment of one (R, FM) cell; ``r == 0`` means the user never ordered."""
    if r == 0:
        return PROSPECTS
    for rule in RFM_RULES:
        if rule.matches(r, fm):
            return rule.name
    raise ValueError(f"No RFM rule covers R={r}, FM={fm}")  # the table covers all 25 cells


def _quintile(values: pd.Series) -> pd.Series:
    """1–5 by percentile rank, ties at the bottom of their run; higher value, higher score."""
    pct = values.rank(method="min", pct=True)
    return np.clip(np.ceil(pct * 5), 1, 5).astype(int)


def has_monetary(features: pd.DataFrame) -> bool:
    """Whether buyers have any revenue to score: no revenue column mapped, or all zero, means no."""
    buyers = features["frequency"].fillna(0) > 0
    return bool(buyers.any() and features.loc[buyers, "monetary"].fillna(0).abs().sum() > 0)


def rfm_notices(features: pd.DataFrame) -> list[str]:
    """What the user must know before reading RFM segments of these features."""
    if not (features["frequency"].fillna(0) > 0).any():
        return ["No user has a purchase event, so every user is a prospect: RFM needs purchases."]
    if not has_monetary(features):
        return ["The purchases carry no revenue (no revenue column was mapped on import, or every value is zero): "
                "monetary is missing, so segments use recency and frequency only (FM is F)."]
    return []


def rfm_scores(features: pd.DataFrame) -> pd.DataFrame:
    """R, F, M and FM scores per user (all 0 for users without an order; M 0 without revenue).

    Needs the columns ``recency_days``, ``frequency`` and ``monetary`` (see features.py).
    """
    monetary = has_monetary(features)
    out = pd.DataFrame(0, index=features.index, columns=["r", "f", "m", "fm"], dtype=int)
    buyers = features["frequency"].fillna(0) > 0
    if buyers.any():
        b = features.loc[buyers]
        out.loc[buyers, "r"] = _quintile(-b["recency_days"].fillna(b["recency_days"].max()))
        out.loc[buyers, "f"] = _quintile(b["frequency"])
        if monetary:
            out.loc[buyers, "m"] = _quintile(b["monetary"])
            out.loc[buyers, "fm"] = np.floor((out.loc[buyers, "f"] + out.loc[buyers, "m"]) / 2 + 0.5).astype(int)
        else:  # a constant M would pull every FM towards the middle: score on F alone
            out.loc[buyers, "fm"] = out.loc[buyers, "f"]
    return out


def assign_rfm(features: pd.DataFrame, *, horizon_days: float = ACTIVE_DAYS) -> pd.DataFrame:
    """Scores plus the segment name per user, each name held to its rule in absolute terms."""
    scores = rfm_scores(features)
    lookup = {(r, fm): rfm_segment(r, fm) for r in range(0, 6) for fm in range(0, 6) if (r == 0) == (fm == 0)}
    names = pd.Series([lookup[(r, fm)] for r, fm in zip(scores["r"].tolist(), scores["fm"].tolist())], index=scores.index)
    recent = features["recency_days"].le(horizon_days).fillna(False)
    repeat = features["frequency"].fillna(0).ge(2)
    broken = (names.isin(RECENT_NAMES) & ~recent) | (names.isin(REPEAT_NAMES) & ~repeat)
    names[broken] = [NEUTRAL_NAMES[(bool(a), bool(b))] for a, b in zip(recent[broken], repeat[broken])]
    scores["segment"] = names
    return scores


def rule_table() -> pd.DataFrame:
    """The rules as shown to a marketer: first match wins, top to bottom."""
    rows = [{"segment": PROSPECT_RULE.name, "R": "no order", "FM": "no order", "meaning": PROSPECT_RULE.meaning, "action": PROSPECT_RULE.action}]
    for rule in RFM_RULES:
        rng = lambda lo_hi: f"{lo_hi[0]}" if lo_hi[0] == lo_hi[1] else f"{lo_hi[0]}–{lo_hi[1]}"  # noqa: E731
        rows.append({"segment": rule.name, "R": rng(rule.r), "FM": rng(rule.fm), "meaning": rule.meaning, "action": rule.action})
    for (recent, repeat), name in NEUTRAL_NAMES.items():
        rows.append({"segment": name, "R": "any", "FM": "any",
                     "meaning": f"A name above whose promise does not hold in plain numbers: last order "
                                f"{'within' if recent else 'more than'} the horizon ago, {'two or more orders' if repeat else 'one order'}.",
                     "action": "Read the facts on the card; " + ("keep them buying." if recent else "win back or let go.")})
    return pd.DataFrame(rows)


def grid() -> pd.DataFrame:
    """The 5 x 5 map of segment names: rows R 5..1, columns FM 1..5."""
    return pd.DataFrame(
        [[rfm_segment(r, fm) for fm in range(1, 6)] for r in range(5, 0, -1)],
        index=pd.Index(range(5, 0, -1), name="R"), columns=pd.Index(range(1, 6), name="FM"),
    )
