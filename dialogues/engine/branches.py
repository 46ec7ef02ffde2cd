"""The strategy branches: which prompt (or who) produced a turn. Defined once, here; the engine's configuration,
strategy selection and state use them, and the models' choices are built from them."""

from __future__ import annotations

from enum import StrEnum


class Branch(StrEnum):
    NSC = "NSC"  # native strategy clone: the plain agent prompt
    SSI = "SSI"  # simple strategy injection: perspective taking
    NSI = "NSI"  # negotiation strategy injection: the four-step workflow
    FORCED = "forced"  # a leave the method imposes (termination vote, the other left, the end of NSI)
    HUMAN = "human"  # typed by a person playing this side: no strategy, no model call
    IMPORTED = "import"  # made elsewhere and imported without strategy data (never chosen by the engine)


STRATEGIES = (Branch.NSC, Branch.SSI, Branch.NSI)  # the method's own strategies: what an experiment may force
# What each strategy is, in words for the pages (the fork form explains its choices with these).
STRATEGY_MEANINGS = {
    Branch.NSC: "native strategy clone: the agent's plain prompt, nothing injected",
    Branch.SSI: "simple strategy injection: the plain prompt plus a perspective-taking instruction (steer toward both "
    "sides reaching their goals)",
    Branch.NSI: "negotiation strategy injection: the four-step negotiation workflow (resources, differences, "
    "proposals, exit)",
}
