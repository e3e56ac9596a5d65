"""Closed word lists for the rule-based follow-up rewriter: function words, verbs, people and vague nouns."""

from __future__ import annotations

import re


def word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


WH = word_set("what which who whom whose when where why how")
AUX = word_set(
    "am is are was were be been being do does did have has had can could will would should shall may might must"
)
DO_SUPPORT = word_set("do does did can could will would should shall may might must")
BE = word_set("am is are was were be been being")
DETERMINERS = word_set(
    "the a an this that these those my your our their its his her any some each every all no another other "
    "either neither both such"
)
POSSESSIVES = word_set("my your our their its his her")
FIRST_PERSON_POSSESSIVES = word_set("my our")
DEICTIC = word_set("this that these those")
PREPOSITIONS = word_set(
    "in at for to from on of with without by about under over after before during between within per into onto "
    "across via through outside inside near since until against among beyond above below regarding towards toward "
    "than as like"
)
SUBJECT_PRONOUNS = word_set("i we you he she it they")
PRONOUNS = word_set("i me we us you he him she her it they them")
# Pronouns that point back to something said before (first and second person never do).
ANAPHORS = word_set("it they them their theirs its he him she her his this that these those")
CONJUNCTIONS = word_set("and or but nor plus")

# Adverbs and other words that are not part of a noun phrase. The first group carries meaning of its own.
CONTENT_ADVERBS = word_set("remotely abroad overseas online offline onsite offsite hybrid part-time full-time")
ADVERBS = CONTENT_ADVERBS | word_set(
    "too also still only just already again ever never always usually often sometimes now today tomorrow "
    "yesterday currently exactly really actually even well then yet here instead together automatically manually "
    "early late earlier later soon first last next once twice anymore either else otherwise so very much many "
    "long far back away please up out down off"
)

NUMBER_WORDS = word_set(
    "zero one two three four five six seven eight nine ten eleven twelve fifteen twenty thirty forty fifty "
    "hundred thousand million half"
)
MONTHS = word_set(
    "january february march april may june july august september october november december "
    "jan feb mar apr jun jul aug sep sept oct nov dec"
)
WEEKDAYS = word_set(
    "monday tuesday wednesday thursday friday saturday sunday mondays tuesdays wednesdays thursdays fridays "
    "saturdays sundays weekend weekends weekday weekdays"
)
UNITS = word_set(
    "euro euros eur dollar dollars usd pound pounds gbp chf yen percent % day days hour hours week weeks month "
    "months year years minute minutes km kilometres kilometers miles mile gb mb tb seats people users"
)
QUARTER_RE = re.compile(r"(?:q[1-4]|h[12]|fy\d{2,4}|\d{4}|\d{4}-\d{2}(?:-\d{2})?)$")
NUMBER_RE = re.compile(r"[$€£]?\d[\d,.]*(?:[kmb%]|st|nd|rd|th)?%?$")

# Heads of noun phrases that name groups of people (compared by stem).
PEOPLE = word_set(
    "employee staff contractor intern manager freelancer consultant temp trainee apprentice director executive "
    "engineer developer worker hire member visitor guest customer client vendor supplier partner admin "
    "administrator user lead student volunteer part-timer colleague teammate people person newcomer retiree "
    "expat officer agent representative nurse teacher driver technician analyst designer researcher supervisor "
    "boss dependant dependent spouse child children family parent contributor starter joiner leaver employer "
    "team-lead approver reviewer owner sales head chief ceo cfo cto coo ciso hr-partner recruiter candidate "
    "applicant team department"
)
SUBORDINATORS = word_set("if unless whether because while although though once")
RELATIVE_TIME = word_set("this next last previous coming current following upcoming same")
TIME_UNITS = word_set("year years month months week weeks quarter quarters semester day days")
# Words that describe a noun after "is": "Is the policy mandatory for managers?"
PREDICATE_ADJECTIVES = word_set(
    "mandatory optional available possible eligible free open closed valid taxable necessary compulsory "
    "different true refundable reimbursable enough ready due overdue active expired pending public private "
    "similar same new old current binding legal illegal applicable"
)

# Nouns too vague to make a question stand alone ("What is the deadline?"): they need the earlier topic.
GENERIC_NOUNS = word_set(
    "deadline deadlines limit limits cap caps maximum max minimum min cost costs price prices fee fees rate rates "
    "amount amounts total process procedure procedures step steps rule rules policy policies requirement "
    "requirements criteria criterion eligibility exception exceptions difference differences reason reasons "
    "detail details info information date dates time times duration period length frequency number form forms "
    "template approval approvals contact email address link url page document doc docs documentation "
    "version status option options alternative alternatives penalty penalties consequence consequences notice "
    "thing things case cases example examples day days week weeks month months year years hour hours minute "
    "minutes percent percentage allowance balance quota threshold schedule timeline default value values type "
    "types kind kinds list summary overview purpose scope history origin source name size format syntax "
    "signature usage output input argument arguments parameter parameters result results one ones same rest "
    "way ways procedure contact person responsible charge entitlement amount lot"
)

# Verbs that say little on their own: "Can interns apply?" still needs the earlier topic.
GENERIC_VERBS = word_set(
    "apply applies applied applying get gets got getting gotten have has had having do does did done doing work "
    "works worked working use uses used using count counts counted happen happens happened mean means meant "
    "cost costs take takes took taken need needs needed qualify qualifies qualified matter matters change "
    "changes changed differ differs exist exists receive receives received start starts started end ends ended "
    "begin begins began last lasts lasted be is are was were been go goes went gone come comes came make makes "
    "made see look find found know ask"
)

# Verbs that are never nouns in a workplace question.
_VERBS = """
    approve submit receive install configure renew cancel find need want allow require include happen mean
    introduce begin expire make go come know see ask tell give keep let put decide choose join earn accrue
    qualify register enroll enrol sign connect reimburse delete remove add create edit upload deploy verify
    validate enable disable raise throw accept reject differ compare calculate define affect belong exist
    write lose forget miss wear park eat bring hire promote pass fail provide escalate notify inform postpone
    extend reduce exceed spend borrow lend buy sell pick attend complete finish certify onboard offboard
    prorate combine take get apply reset happen say mention explain describe contain carry pay entitle get
    become allow grant deny waive reach invite mean stand take handle manage obtain retrieve generate convert
    migrate restore rotate revoke assign unlock lock sync expect prefer like live move stay receive send
    maintain present organise organize host publish announce enforce audit monitor track measure supervise
    coordinate prepare sponsor decide approve reimburse sign explain cancel withdraw renew replace repair
    repay recover report refer hand notify clean inspect own operate accept
"""
# Words that are verbs or nouns depending on where they stand ("request leave" / "a leave request").
_AMBIGUOUS = """
    work use claim book update access contact return start end change leave travel report request review
    schedule process transfer order plan store share download build test fix check support cost last count
    list show print open close fire offer rent drop train split cover set run call file expense invoice
    refund increase log login sign move stay charge limit cap pay
"""
_IRREGULAR = """
    got gotten took taken brought sent made did done went gone came knew known saw seen told gave given kept let
    put set ran run left paid found began begun wrote written read lost forgot forgotten spent lent bought sold
    built chose chosen meant wore worn ate eaten drank drunk taught held stood understood thought sat fell fallen
    broke broken spoke spoken drove driven flew flown
"""


def _inflections(base: str) -> set[str]:
    """base, -s, -ed and -ing forms by the common spelling rules (good enough for a closed list)."""
    forms = {base}
    if base.endswith(("s", "x", "z", "ch", "sh")):
        forms.add(base + "es")
    elif base.endswith("y") and base[-2:-1] not in "aeiou":
        forms.add(base[:-1] + "ies")
    else:
        forms.add(base + "s")
    if base.endswith("e"):
        forms.update({base + "d", base[:-1] + "ing"})
    elif base.endswith("y") and base[-2:-1] not in "aeiou":
        forms.update({base[:-1] + "ied", base + "ing"})
    else:
        stem = base
        if len(base) <= 4 and re.fullmatch(r"[^aeiou]*[aeiou][^aeiouwxy]", base):
            stem = base + base[-1]
        forms.update({stem + "ed", stem + "ing", base + "ed", base + "ing"})
    return forms


def _forms(text: str) -> frozenset[str]:
    out: set[str] = set()
    for base in text.split():
        out |= _inflections(base)
    return frozenset(out)


_PARTICIPLES = frozenset(w for w in _forms(_VERBS) if w.endswith(("ing", "ed")))
AMBIGUOUS_BASES = word_set(_AMBIGUOUS)
# -ing and -ed forms also modify nouns ("parking spot", "approved vendors", "paid leave").
AMBIGUOUS = _forms(_AMBIGUOUS) | _PARTICIPLES | word_set("paid built set run left")
VERBS = (_forms(_VERBS) | word_set(_IRREGULAR)) - AMBIGUOUS
