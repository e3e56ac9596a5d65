"""Score the offline follow-up rewriter (``tether.memory.rewrite_followup``) on held-out conversations.

The cases in ``tests/memory/`` were the tuning set of the rules; the conversations below are held out: they were
written before the rules were last changed and were not used to change them. Each conversation is replayed as a
caller would: the history keeps every user turn's rewritten text. A follow-up counts as correct when the rewrite
contains every required word and none of the forbidden ones (case-insensitive, whole words); a standalone turn
counts as correct when it comes back unchanged.

    python bench/memory_rewrite.py [--json]
"""

from __future__ import annotations

import argparse
import json
import re
import time
from dataclasses import dataclass

from tether.memory import Turn, rewrite_followup


@dataclass(frozen=True)
class Step:
    question: str
    followup: bool  # False: must come back unchanged
    required: tuple[str, ...] = ()
    forbidden: tuple[str, ...] = ()


def f(question: str, required: str, forbidden: str = "") -> Step:
    """A follow-up step; ``required`` and ``forbidden`` are '|'-separated words or phrases."""
    return Step(question, True, tuple(filter(None, required.split("|"))), tuple(filter(None, forbidden.split("|"))))


def s(question: str) -> Step:
    """A standalone step."""
    return Step(question, False)


CONVERSATIONS: list[list[Step]] = [
    [
        s("What is the per diem for business trips to Madrid?"),
        f("and to Paris?", "per diem|Paris", "Madrid"),
        f("what about Warsaw?", "per diem|Warsaw", "Paris|Madrid"),
    ],
    [
        s("How much is the annual training budget for engineers?"),
        f("what about designers?", "training budget|designers", "engineers"),
        f("and for interns?", "training budget|interns", "designers|engineers"),
        f("how do they request it?", "interns|training budget"),
    ],
    [
        s("Which laptop models can new hires choose from?"),
        f("and monitors?", "monitors|new hires"),
        s("How do I enroll my phone in MFA?"),
        f("what if I lose it?", "phone"),
    ],
    [
        s("What is the rate limit of the search API?"),
        f("and of the upload API?", "rate limit|upload API", "search"),
        f("how do I raise it?", "rate limit"),
    ],
    [
        s("When are bonuses paid out in Germany?"),
        f("and in Spain?", "bonuses|Spain", "Germany"),
        f("what about the UK?", "bonuses|UK", "Spain|Germany"),
    ],
    [
        s("How many sick days can part-time employees take without a doctor's note?"),
        f("and full-time employees?", "sick days|full-time", "part-time"),
        s("Where is the nearest pharmacy to the Dublin office?"),
    ],
    [
        s("Who signs off on purchase orders above 10,000 euros?"),
        f("and above 50,000 euros?", "purchase orders|50,000", "10,000"),
        f("is there a deadline?", "deadline|purchase orders"),
    ],
    [
        s("What does the parse_config function raise on a missing key?"),
        f("and load_settings?", "load_settings", "parse_config"),
        f("what does it return on success?", "load_settings|success"),
    ],
    [
        s("Is the gym at the Rotterdam site open on public holidays?"),
        f("and the canteen?", "canteen|Rotterdam"),
        f("what about the Utrecht site?", "Utrecht", "Rotterdam"),
    ],
    [
        s("How long is maternity leave in Portugal?"),
        f("and paternity leave?", "paternity leave|Portugal", "maternity"),
        f("is it paid?", "paternity leave"),
    ],
    [
        s("What was the customer churn rate in Q1?"),
        f("and in Q2?", "churn rate|Q2", "Q1"),
        f("what about 2023?", "churn rate|2023"),
    ],
    [
        s("Can contractors use the company VPN from home?"),
        f("what about interns?", "VPN|interns", "contractors"),
        s("How do I book a desk in the Lyon office?"),
        f("and a parking space?", "parking space|Lyon"),
    ],
    [
        s("What is the maximum hotel rate in London?"),
        f("and in New York?", "hotel rate|New York", "London"),
        f("does that include breakfast?", "hotel rate|breakfast"),
    ],
    [
        s("Who is responsible for approving software licences?"),
        f("and hardware purchases?", "hardware purchases|approving"),
        s("What is the process for reporting a phishing email?"),
        f("who handles it?", "phishing email"),
    ],
    [
        s("How often are passwords rotated for service accounts?"),
        f("and for admin accounts?", "passwords|admin accounts", "service"),
        f("what about API keys?", "API keys|rotated"),
    ],
    [
        s("What is the notice period for senior managers?"),
        f("and for junior staff?", "notice period|junior staff", "senior managers"),
        f("can it be shortened?", "notice period|shortened"),
    ],
    [
        s("How much pension contribution does the company make for employees in the Netherlands?"),
        f("and in Belgium?", "pension contribution|Belgium", "Netherlands"),
        s("Are there any courses on data protection for new employees?"),
        f("are they mandatory?", "courses|mandatory"),
    ],
    [
        s("What timeout does the payment service use for card authorisations?"),
        f("and for refunds?", "timeout|refunds|payment service", "card authorisations"),
        f("where is it configured?", "timeout|configured"),
    ],
    [
        s("How many days of remote work per week are allowed for the finance team?"),
        f("what about the legal team?", "remote work|legal team", "finance"),
        f("and during the probation period?", "remote work|probation"),
    ],
    [
        s("What is the reimbursement limit for home office equipment?"),
        f("and for mobile phones?", "reimbursement limit|mobile phones", "home office"),
        f("how do I claim it?", "reimbursement limit|claim"),
    ],
    [
        s("Which holidays does the Singapore office observe in February?"),
        f("and in October?", "holidays|Singapore|October", "February"),
        f("what about the Tokyo office?", "holidays|Tokyo", "Singapore"),
    ],
    [
        s("Who can access the payroll system?"),
        f("and the HR database?", "access|HR database", "payroll"),
        s("When does the annual performance review cycle start?"),
        f("who takes part in it?", "performance review"),
    ],
    [
        s("What is the deadline for submitting Q4 expense claims?"),
        s("Is it necessary to get approval before booking a conference?"),
        s("How long does it take to receive a new badge?"),
        s("Are there lockers for cyclists at the Oslo campus?"),
        s("Do managers have to approve their team's overtime?"),
        s("And how does the referral bonus work for engineering roles?"),
        s("What happens to unused training budget at the end of the year?"),
        s("Can I bring my dog to the Amsterdam office?"),
    ],
    [
        s("Which cloud regions does the analytics platform run in?"),
        s("How do I rotate the credentials of the staging database?"),
        s("What is the escalation path for a severity one incident?"),
        s("Who owns the customer onboarding documentation?"),
        s("Is it true that contractors cannot attend the summer party?"),
        s("What are the core working hours in the Austin office?"),
    ],
]

_WORD_EDGE = r"(?<![\w-]){}(?![\w-])"


def _contains(text: str, phrase: str) -> bool:
    return re.search(_WORD_EDGE.format(re.escape(phrase.lower())), text.lower()) is not None


@dataclass
class Score:
    followups: int = 0
    followups_ok: int = 0
    standalone: int = 0
    standalone_ok: int = 0
    rewrites: int = 0
    seconds: float = 0.0


def run() -> tuple[Score, list[str]]:
    score = Score()
    misses: list[str] = []
    for convo in CONVERSATIONS:
        history: list[Turn] = []
        for i, step in enumerate(convo):
            t0 = time.perf_counter()
            result = rewrite_followup(history, step.question)
            score.seconds += time.perf_counter() - t0
            score.rewrites += 1
            if i > 0:
                if step.followup:
                    score.followups += 1
                    ok = (
                        result.rewritten
                        and all(_contains(result.question, w) for w in step.required)
                        and not any(_contains(result.question, w) for w in step.forbidden)
                    )
                    score.followups_ok += ok
                else:
                    score.standalone += 1
                    ok = not result.rewritten and result.question == step.question
                    score.standalone_ok += ok
                if not ok:
                    previous = next(t.text for t in reversed(history) if t.role == "user")
                    misses.append(f"{previous!r} + {step.question!r} -> {result.question!r}")
            history += [Turn(role="user", text=result.question), Turn(role="assistant", text="(answer)")]
    return score, misses


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    ap.add_argument("--misses", action="store_true", help="list the turns that were scored wrong")
    args = ap.parse_args()
    score, misses = run()
    figures = {
        "conversations": len(CONVERSATIONS),
        "followups": score.followups,
        "followups_correct": round(score.followups_ok / max(score.followups, 1), 3),
        "standalone": score.standalone,
        "standalone_unchanged": round(score.standalone_ok / max(score.standalone, 1), 3),
        "rewrites": score.rewrites,
        "mean_ms_per_rewrite": round(1000 * score.seconds / max(score.rewrites, 1), 3),
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    rows = [
        ("conversations", str(len(CONVERSATIONS)), ""),
        (
            "follow-ups correctly rewritten",
            f"{score.followups_ok}/{score.followups}",
            f"{figures['followups_correct']:.1%}",
        ),
        (
            "standalone left alone",
            f"{score.standalone_ok}/{score.standalone}",
            f"{figures['standalone_unchanged']:.1%}",
        ),
        ("mean time per rewrite", f"{figures['mean_ms_per_rewrite']:.3f} ms", ""),
    ]
    print(f"{'measure':<32}{'count':>12}{'share':>9}")
    print("-" * 53)
    for name, count, share in rows:
        print(f"{name:<32}{count:>12}{share:>9}")
    if args.misses:
        for m in misses:
            print("miss:", m)


if __name__ == "__main__":
    main()
