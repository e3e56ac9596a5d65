"""The web page (`GET /`) in a real browser: headless Chromium (Debian's, driven by Playwright) against a real
`tether serve` process on loopback. Asking with a citation that opens its document at the cited span, a follow-up
shown rewritten, "Not in the documents.", feedback the API then holds, the trace view, the documents tab (a 403
shown, an upload job, a delete), hostile HTML in a document shown as text, and keyboard-only asking.

Skips when playwright is not installed or no Chromium binary is found (`.ci/run` installs Debian's `chromium`
when it runs as root). Screenshots go to the test's tmp_path and, when TETHER_TEST_ARTIFACTS is set, are copied
there too."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from service_env import free_port, make_env, start_serve, stop, wait_ready

try:
    from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright
except ImportError:  # pragma: no cover - the dev extra brings it
    pytest.skip("playwright is not installed (pip install -e '.[dev]')", allow_module_level=True)


def _chromium() -> str | None:
    for candidate in (shutil.which("chromium"), "/usr/bin/chromium", shutil.which("chromium-browser")):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


CHROMIUM = _chromium()
if CHROMIUM is None:
    pytest.skip(
        "no Chromium binary (apt-get install chromium; .ci/run does it when run as root)", allow_module_level=True
    )

TIMEOUT_MS = 30_000
PORTO = "What is the meal allowance in Porto?"
NOT_THERE = "What is the capital of Mongolia?"
HOSTILE = (
    "# Badge notes\n\nThe Falcon badge colour is teal <img src=x onerror=alert(1)> for visitors.\n\n"
    "<script>alert(2)</script>\n\nVisitors sign in at the front desk.\n"
)


# -- the server ----------------------------------------------------------------------------------------------------
@dataclass
class Server:
    base: str
    keys: dict[str, str]

    def get(self, path: str, who: str) -> Any:
        r = httpx.get(self.base + path, headers={"Authorization": f"Bearer {self.keys[who]}"}, timeout=30)
        r.raise_for_status()
        return r.json()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("page")
    t, keys = make_env(root)
    t.close()  # the service opens the index itself
    (root / "cases.yaml").write_text(  # for the Review tab's eval run
        '- id: porto\n  input: {user: "What is the meal allowance in Porto?"}\n  expected: {must_include: ["35"]}\n'
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_serve(root, port)
    try:
        wait_ready(base, proc)
        yield Server(base, keys)
    finally:
        stop(proc)


# -- the browser ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield b
        finally:
            b.close()


@dataclass
class Tab:
    """A fresh browser context and page, recording what must not happen: dialogs (a script that ran), page
    errors, and Content-Security-Policy violations."""

    page: Page
    shots: Path
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def shot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, (path, len(data))
        if out := os.environ.get("TETHER_TEST_ARTIFACTS"):
            Path(out).mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, Path(out) / path.name)
        return path

    def clean(self) -> None:
        assert self.dialogs == [], f"a dialog fired (a script ran): {self.dialogs}"
        assert self.errors == [], self.errors


@pytest.fixture
def tab(browser: Browser, tmp_path: Path) -> Iterator[Tab]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    shots = tmp_path / "artifacts"
    shots.mkdir()
    t = Tab(page, shots)

    def on_dialog(d: Any) -> None:
        t.dialogs.append(f"{d.type}: {d.message}")
        d.dismiss()

    def on_console(m: Any) -> None:
        if "Content Security Policy" in m.text or "Content-Security-Policy" in m.text:
            t.errors.append(f"CSP: {m.text}")

    page.on("dialog", on_dialog)
    page.on("pageerror", lambda e: t.errors.append(f"page error: {e}"))
    page.on("console", on_console)
    try:
        yield t
    finally:
        context.close()


# -- steps ---------------------------------------------------------------------------------------------------------
def sign_in(page: Page, server: Server, who: str, user: str = "") -> None:
    page.goto(server.base + "/")
    page.get_by_label("API key").fill(server.keys[who])
    if user:
        page.get_by_label("User name").fill(user)
    page.get_by_role("button", name="Use key").click()
    expect(page.locator("#app")).to_be_visible()
    expect(page.locator("#key-label")).to_contain_text(server.keys[who][-4:])


def ask(page: Page, question: str) -> Locator:
    """Ask through the question box (Enter submits); the turn, once its answer is shown."""
    before = page.locator(".turn").count()
    box = page.get_by_label("Your question")
    box.fill(question)
    box.press("Enter")
    turn = page.locator(".turn").nth(before)
    expect(turn.locator(".answer")).to_be_visible()
    expect(box).to_have_value("")
    return turn


def open_citation(page: Page, citation: Locator) -> None:
    quote = citation.locator(".quote").text_content()
    assert quote
    citation.locator("button.cite").click()
    mark = page.locator("#doc-text mark")
    expect(mark).to_have_count(1)
    assert mark.text_content() == quote  # exactly the cited span, highlighted
    expect(mark).to_be_in_viewport()


# -- tests ---------------------------------------------------------------------------------------------------------
def test_ask_cite_follow_up_and_abstain_keyboard_only(tab: Tab, server: Server) -> None:
    page = tab.page
    page.goto(server.base + "/")
    expect(page.get_by_label("API key")).to_be_focused()
    tab.shot("key")
    page.keyboard.type(server.keys["acme"])
    page.keyboard.press("Enter")
    expect(page.locator("#app")).to_be_visible()
    page.reload()  # the key stays for this tab (sessionStorage); nothing is focused after a load
    expect(page.locator("#app")).to_be_visible()
    for _ in range(8):  # keyboard only: Tab to the question box (skip link, forget key, the Ask tab, the box)
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement && document.activeElement.id") == "question":
            break
    expect(page.get_by_label("Your question")).to_be_focused()
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"  # focus is visible
    page.keyboard.type(PORTO)
    page.keyboard.press("Enter")
    first = page.locator(".turn").first
    expect(first.locator(".answer-text")).to_contain_text("35 euros in Porto")
    expect(page.locator("#log")).to_have_attribute("aria-live", "polite")
    expect(page.locator("#status")).to_have_text("Answer received.")
    citation = first.locator(".citation").first
    expect(citation.locator(".path")).to_contain_text("travel.md")
    expect(citation.locator(".quote")).to_contain_text("35 euros in Porto")
    open_citation(page, citation)
    expect(page.locator("#doc-title")).to_have_text("Travel policy")
    tab.shot("answer-and-document")

    follow = ask(page, "and in Lisbon?")
    expect(follow.locator(".rewrite .standalone")).to_have_text("What is the meal allowance in Lisbon?")
    expect(follow.locator(".answer-text")).to_contain_text("40 euros in Lisbon")

    none = ask(page, NOT_THERE)
    expect(none.locator(".not-found")).to_have_text("Not in the documents.")
    expect(none.locator(".answer-text")).to_have_count(0)
    nearest = none.locator(".nearest")
    expect(nearest.get_by_role("heading")).to_have_text("Nearest passage (not an answer)")
    open_citation(page, nearest.locator(".citation"))
    tab.shot("not-in-the-documents")

    page.get_by_role("button", name="New conversation").click()
    expect(page.locator(".turn")).to_have_count(0)
    expect(page.get_by_label("Your question")).to_be_focused()
    tab.clean()


def test_feedback_reaches_the_api_and_the_trace_lists_spans(tab: Tab, server: Server) -> None:
    page = tab.page
    sign_in(page, server, "acme", user="ana")
    turn = ask(page, PORTO)
    turn.get_by_role("button", name="Thumbs down: a bad answer").click()
    category = turn.get_by_label("What was wrong?")
    expect(category).to_be_focused()
    category.select_option("wrong")
    turn.get_by_label("Correct answer (optional)").fill("35 euros a day in Porto, 40 in Lisbon")
    turn.get_by_role("button", name="Send feedback").click()
    expect(turn.locator(".confirm")).to_contain_text("your feedback was recorded")
    expect(turn.get_by_role("button", name="Thumbs down: a bad answer")).to_have_attribute("aria-pressed", "true")
    records = server.get("/v1/feedback", "acme")
    mine = [r for r in records if r["feedback"]["correction"] == "35 euros a day in Porto, 40 in Lisbon"]
    assert len(mine) == 1, records
    rec = mine[0]
    assert rec["category"] == "wrong" and rec["feedback"]["rating"] == "down"
    assert rec["feedback"]["question"] == PORTO and "35 euros" in rec["feedback"]["answer"]
    assert rec["feedback"]["cited_paths"] and rec["feedback"]["cited_paths"][0].endswith("travel.md")
    assert len(rec["trace_id"]) == 32

    trace_button = turn.get_by_role("button", name="Trace")
    trace_button.click()
    expect(trace_button).to_have_attribute("aria-expanded", "true")
    spans = turn.locator(".trace .span")
    expect(spans.first).to_be_visible()
    names = [n.strip() for n in turn.locator(".trace .span-name").all_text_contents()]
    assert names[0] == "tether.ask" and "stage.retrieve" in names and "stage.answer" in names, names
    assert names.count("tether.ask") == 1 and len(names) == spans.count()
    retrieve = spans.filter(has=page.locator(".span-name", has_text="stage.retrieve"))
    expect(retrieve.locator("dt", has_text="hits")).to_have_count(1)
    expect(retrieve.locator("dt", has_text="top_scores")).to_have_count(1)
    answer_span = spans.filter(has=page.locator(".span-name", has_text="stage.answer"))
    expect(answer_span.locator("dt", has_text="support").first).to_be_visible()
    expect(spans.first.locator(".span-ms")).to_contain_text(" ms")
    expect(spans.first.locator(".span-status")).to_have_text("ok")
    tab.shot("feedback-and-trace")

    up = ask(page, "and in Lisbon?")
    up.get_by_role("button", name="Thumbs up: a good answer").click()
    expect(up.locator(".confirm")).to_be_visible()
    assert server.get("/v1/feedback", "acme")[0]["feedback"]["rating"] == "up"

    said = ask(page, "I am a contractor. How many vacation days do I get?")  # a fact about ana, remembered
    expect(said.locator(".remembered")).to_contain_text("I am a contractor")
    tab.clean()


def test_documents_tab_upload_delete_errors_and_hostile_html(tab: Tab, server: Server, tmp_path: Path) -> None:
    page = tab.page
    note = tmp_path / "parking.md"
    note.write_text("# Parking\n\nGlobex visitors park on level 2 of the north garage.\n", encoding="utf-8")
    badge = tmp_path / "badge.md"
    badge.write_text(HOSTILE, encoding="utf-8")

    # a reader's key (role user) may list documents but not upload: the API's 403 is shown
    sign_in(page, server, "acme")
    page.get_by_role("tab", name="Ask").focus()
    page.keyboard.press("ArrowRight")  # tabs move with the arrow keys
    docs_tab = page.get_by_role("tab", name="Documents")
    expect(docs_tab).to_be_focused()
    expect(docs_tab).to_have_attribute("aria-selected", "true")
    expect(page.get_by_role("tabpanel", name="Documents")).to_be_visible()
    expect(page.get_by_role("tabpanel", name="Ask")).to_be_hidden()
    rows = page.locator("#doc-rows tr")
    expect(rows).to_have_count(2)
    expect(page.locator("#doc-rows")).to_contain_text("travel.md")
    page.get_by_label("Upload files").set_input_files(str(note))
    page.get_by_role("button", name="Upload", exact=True).click()
    expect(page.locator("#doc-error")).to_contain_text("403")
    expect(page.locator("#doc-error")).to_contain_text("may not change documents")

    page.get_by_role("button", name="Forget key").click()
    expect(page.get_by_label("API key")).to_be_visible()
    expect(page.locator("#app")).to_be_hidden()
    assert page.evaluate("sessionStorage.getItem('tether.key')") is None
    page.get_by_label("API key").fill(server.keys["revoked"])  # a revoked key is refused with the API's 401
    page.get_by_role("button", name="Use key").click()
    expect(page.locator("#key-error")).to_contain_text("401")
    expect(page.locator("#app")).to_be_hidden()

    # an editor uploads; the job is followed until done and the list shows the new documents
    sign_in(page, server, "globex")
    page.get_by_role("tab", name="Documents").click()
    expect(page.locator("#doc-empty")).to_be_visible()
    page.get_by_label("Upload files").set_input_files([str(note), str(badge)])
    page.get_by_role("button", name="Upload", exact=True).click()
    job = page.locator("#jobs .job").first
    expect(job).to_have_attribute("data-status", "done")
    expect(job).to_contain_text("2 added")
    expect(rows).to_have_count(2)
    expect(page.locator("#doc-rows")).to_contain_text("parking.md")
    expect(page.locator("#doc-rows")).to_contain_text("Badge notes")

    # hostile HTML in a document is text: in the panel, and in an answer quoting it
    page.get_by_role("button", name="View Badge notes").click()
    text = page.locator("#doc-text")
    expect(text).to_contain_text("<img src=x onerror=alert(1)>")
    expect(text).to_contain_text("<script>alert(2)</script>")
    expect(text.locator("img, script")).to_have_count(0)
    tab.shot("documents")

    page.get_by_role("button", name="Delete parking").click()  # the title is "Parking"
    page.get_by_role("button", name="Yes, delete").click()
    expect(rows).to_have_count(1)
    expect(page.locator("#doc-rows")).not_to_contain_text("parking.md")

    page.get_by_role("tab", name="Ask").click()
    turn = ask(page, "What colour is the Falcon badge?")
    expect(turn.locator(".answer-text")).to_contain_text("teal <img src=x onerror=alert(1)> for visitors")
    expect(page.locator("#log img, #log script")).to_have_count(0)
    open_citation(page, turn.locator(".citation").first)
    expect(page.locator("#doc-text mark")).to_contain_text("<img src=x onerror=alert(1)>")
    page.get_by_role("button", name="Close").click()
    expect(page.locator("#doc-panel")).to_be_hidden()
    expect(turn.locator("button.cite").first).to_be_focused()  # focus goes back where it came from
    tab.shot("hostile-html-as-text")
    tab.clean()


def test_review_tab_shows_feedback_drafts_and_eval_runs_for_admins(tab: Tab, server: Server) -> None:
    page = tab.page
    sign_in(page, server, "acme", user="rev")
    turn = ask(page, PORTO)
    turn.get_by_role("button", name="Thumbs down: a bad answer").click()
    turn.get_by_label("What was wrong?").select_option("incomplete")
    turn.get_by_label("Correct answer (optional)").fill("35 euros in Porto (review tab)")
    turn.get_by_role("button", name="Send feedback").click()
    expect(turn.locator(".confirm")).to_contain_text("your feedback was recorded")
    page.get_by_role("tab", name="Review").click()
    expect(page.locator("#drafts-info")).to_contain_text("draft case")
    expect(page.locator("#drafts-yaml")).to_contain_text("35 euros in Porto (review tab)")
    expect(page.locator("#drafts-download")).to_be_visible()
    expect(page.locator("#runs-error")).to_contain_text("admin")  # a user key: eval runs are the operator's
    tab.shot("review-drafts")
    page.get_by_role("button", name="Forget key").click()
    sign_in(page, server, "acme_admin")
    page.get_by_role("tab", name="Review").click()
    expect(page.locator("#runs-error")).to_be_hidden()
    expect(page.locator("#runs-empty")).to_be_visible()  # none run on this server's index yet
    page.get_by_label("Cases to run (a file or folder in the project)").fill("../outside")
    page.get_by_role("button", name="Start a run").click()
    expect(page.locator("#runs-error")).to_contain_text("bad_path")
    page.get_by_label("Cases to run (a file or folder in the project)").fill("cases.yaml")
    page.get_by_role("button", name="Start a run").click()
    expect(page.locator("#runs-rows tr")).to_have_count(1, timeout=120_000)
    expect(page.locator("#runs-rows tr").first).to_contain_text("100%")
    tab.shot("review-eval-run")
    tab.clean()
