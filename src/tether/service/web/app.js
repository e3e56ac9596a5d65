// Tether's web page: ask (a conversation with follow-ups), citations opening their document at the cited span,
// feedback, the trace of each answer, the tenant's documents (list, upload as an ingest job, delete), and review:
// draft eval cases from thumbs-down feedback and the eval runs (an admin key).
// Everything the service sends is shown as text: nodes are built with `h` (text nodes), never from HTML strings.

import { ApiError, api, apiText, h, session, unitOffset } from "./api.js";

const $ = (id) => document.getElementById(id);

const CATEGORIES = [
  ["wrong", "Wrong"],
  ["unsupported", "Not supported by the cited passages"],
  ["incomplete", "Incomplete"],
  ["should_abstain", "Should have said it is not in the documents"],
  ["should_answer", "Should have answered: it is in the documents"],
  ["other", "Other"],
];
const STATUS_WORDS = {
  0: "Network error",
  400: "Bad request",
  401: "The key was not accepted",
  403: "Not allowed",
  404: "Not found",
  409: "No documents yet",
  413: "Too large",
  415: "Unsupported file type",
  422: "Invalid request",
  429: "Too many requests",
};
const POLL_MS = 400;

const state = { conversationId: null, busy: false, docRequest: 0, docOpener: null, docsLoaded: false };

// -- small helpers -------------------------------------------------------------------------------------------------
function describe(err) {
  if (err instanceof ApiError) {
    const words = STATUS_WORDS[err.status] || "Request failed";
    return `${words} (${err.status || "no response"} ${err.code}): ${err.message}`;
  }
  return `Something went wrong: ${err && err.message ? err.message : err}`;
}

function setStatus(text) {
  $("status").textContent = text;
}

function showError(node, err) {
  node.textContent = err ? describe(err) : "";
  node.hidden = !err;
}

function fileName(path) {
  const parts = String(path).split(/[\\/]/);
  return parts[parts.length - 1] || String(path);
}

function percent(x) {
  return `${Math.round(Number(x) * 100)}%`;
}

// -- the key -------------------------------------------------------------------------------------------------------
function showKeyState() {
  const key = session.key;
  $("key-form").hidden = Boolean(key);
  $("key-status").hidden = !key;
  $("app").hidden = !key;
  if (key) {
    const user = session.user;
    $("key-label").textContent = `Using key …${key.slice(-4)}` + (user ? ` as ${user}` : "");
  }
}

async function useKey(event) {
  event.preventDefault();
  const key = $("key-input").value.trim();
  const user = $("user-input").value.trim();
  if (!key) return;
  showError($("key-error"), null);
  try {
    await api("GET", "/v1/stats", { key, user });
  } catch (err) {
    showError($("key-error"), err);
    $("key-input").focus();
    return;
  }
  session.save(key, user);
  $("key-input").value = "";
  resetWork();
  showKeyState();
  setStatus("Key accepted. Ask a question.");
  selectTab("ask", false);
  $("question").focus();
}

function forgetKey() {
  session.forget();
  resetWork();
  showKeyState();
  setStatus("Key forgotten.");
  $("key-input").focus();
}

/** Forget what the previous key saw: the conversation, the documents, the open document. */
function resetWork() {
  state.conversationId = null;
  state.docsLoaded = false;
  $("log").replaceChildren();
  $("doc-rows").replaceChildren();
  $("jobs").replaceChildren();
  $("doc-stats").textContent = "";
  showError($("doc-error"), null);
  closeDocument(false);
}

// -- tabs ----------------------------------------------------------------------------------------------------------
const TABS = ["ask", "docs", "review"];

function selectTab(name, focus = true) {
  for (const t of TABS) {
    const tab = $(`tab-${t}`);
    const on = t === name;
    tab.setAttribute("aria-selected", String(on));
    tab.tabIndex = on ? 0 : -1;
    $(`panel-${t}`).hidden = !on;
    if (on && focus) tab.focus();
  }
  if (name === "docs" && !state.docsLoaded) loadDocuments();
  if (name === "review") loadReview();
}

function tabKeys(event) {
  const at = TABS.findIndex((t) => $(`tab-${t}`) === document.activeElement);
  if (at < 0) return;
  let next = null;
  if (event.key === "ArrowRight") next = (at + 1) % TABS.length;
  else if (event.key === "ArrowLeft") next = (at - 1 + TABS.length) % TABS.length;
  else if (event.key === "Home") next = 0;
  else if (event.key === "End") next = TABS.length - 1;
  if (next === null) return;
  event.preventDefault();
  selectTab(TABS[next]);
}

// -- asking --------------------------------------------------------------------------------------------------------
async function send(question) {
  if (!state.conversationId) {
    state.conversationId = (await api("POST", "/v1/conversations")).id;
  }
  const path = `/v1/conversations/${encodeURIComponent(state.conversationId)}/messages`;
  try {
    return await api("POST", path, { body: { question } });
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 404)) throw err;
    state.conversationId = null; // the conversation is gone (forgotten elsewhere): start a new one
    state.conversationId = (await api("POST", "/v1/conversations")).id;
    const again = `/v1/conversations/${encodeURIComponent(state.conversationId)}/messages`;
    return await api("POST", again, { body: { question } });
  }
}

async function ask(event) {
  event.preventDefault();
  const input = $("question");
  const question = input.value.trim();
  if (!question || state.busy) return;
  state.busy = true;
  $("ask-button").disabled = true;
  $("log").setAttribute("aria-busy", "true");
  const asked = h("p", { class: "asked" }, h("span", { class: "who" }, "You asked"), question);
  const turn = h("article", { class: "turn" }, asked);
  const pending = h("p", { class: "pending" }, "Looking in the documents…");
  turn.append(pending);
  $("log").append(turn);
  turn.scrollIntoView({ block: "nearest" });
  setStatus("Looking in the documents…");
  try {
    const result = await send(question);
    pending.remove();
    renderTurn(turn, result);
    input.value = "";
    setStatus(result.answer.abstained ? "Answer: not in the documents." : "Answer received.");
  } catch (err) {
    pending.replaceWith(h("p", { class: "error", role: "alert" }, describe(err)));
    setStatus("The question could not be answered.");
  } finally {
    state.busy = false;
    $("ask-button").disabled = false;
    $("log").removeAttribute("aria-busy");
    turn.scrollIntoView({ block: "nearest" });
  }
}

function newConversation() {
  state.conversationId = null;
  $("log").replaceChildren();
  closeDocument(false);
  setStatus("New conversation started.");
  $("question").focus();
}

function citationItem(c, label) {
  const section = (c.section || []).join(" › ");
  const open = h(
    "button",
    { type: "button", class: "cite", onclick: (e) => openDocument(c, e.currentTarget) },
    h("span", { class: "cite-n" }, label),
    h("span", { class: "path" }, c.path),
  );
  return h(
    "li",
    { class: "citation", dataset: { n: c.n } },
    open,
    section ? h("span", { class: "section" }, section) : null,
    h("blockquote", { class: "quote" }, c.quote),
    c.redacted ? h("p", { class: "hint" }, "Personal data in this quote was redacted.") : null,
  );
}

function renderTurn(turn, result) {
  const a = result.answer;
  if (result.standalone && result.standalone.trim() !== result.question.trim()) {
    turn.append(
      h(
        "p",
        { class: "rewrite" },
        h("span", { class: "who" }, "Read as"),
        h("q", { class: "standalone" }, result.standalone),
        result.rewrite_reason ? h("span", { class: "hint" }, ` (${result.rewrite_reason})`) : null,
      ),
    );
  }
  if (result.remembered && result.remembered.length) {
    const who = h("span", { class: "who" }, "Remembered");
    turn.append(h("p", { class: "memory remembered" }, who, result.remembered.join("; ")));
  }
  if (result.recalled && result.recalled.length) {
    const who = h("span", { class: "who" }, "Recalled about you");
    turn.append(h("p", { class: "memory recalled" }, who, result.recalled.join("; ")));
  }

  const body = h("div", { class: "answer" });
  if (a.abstained) {
    body.classList.add("abstained");
    body.append(h("p", { class: "not-found" }, "Not in the documents."));
    if (a.reason) body.append(h("p", { class: "hint" }, a.reason));
    if (a.nearest) {
      body.append(
        h(
          "section",
          { class: "nearest", "aria-label": "Nearest passage (not an answer)" },
          h("h3", {}, "Nearest passage (not an answer)"),
          h("ol", { class: "citations" }, citationItem(a.nearest, "Nearest")),
        ),
      );
    }
  } else {
    body.append(h("p", { class: "answer-text" }, a.text));
    const support = `Support ${percent(a.support)} (answers need ${percent(a.threshold)})`;
    body.append(h("p", { class: "hint support" }, support));
    if (a.citations.length) {
      body.append(
        h("h3", { class: "visually-hidden" }, "Sources"),
        h(
          "ol",
          { class: "citations", "aria-label": "Sources" },
          a.citations.map((c) => citationItem(c, `[${c.n}]`)),
        ),
      );
    }
  }
  for (const w of a.warnings || []) body.append(h("p", { class: "warning" }, `Warning: ${w}`));
  turn.append(body);

  const feedbackArea = h("div", { class: "feedback" });
  const traceArea = h("div", { class: "trace", hidden: true });
  const up = h(
    "button",
    { type: "button", class: "thumb", "aria-label": "Thumbs up: a good answer", "aria-pressed": "false" },
    thumbIcon(),
  );
  const down = h(
    "button",
    { type: "button", class: "thumb thumb-down", "aria-label": "Thumbs down: a bad answer", "aria-pressed": "false" },
    thumbIcon(),
  );
  const traceButton = h(
    "button",
    { type: "button", class: "secondary trace-button", "aria-expanded": "false" },
    "Trace",
  );
  const ctx = { result, up, down, feedbackArea };
  up.addEventListener("click", () => sendFeedback(ctx, "up", {}));
  down.addEventListener("click", () => openFeedbackForm(ctx));
  traceButton.addEventListener("click", () => toggleTrace(a.trace_id, traceButton, traceArea));
  const actions = h("div", { class: "actions" }, h("span", { class: "hint" }, "Helpful?"), up, down, traceButton);
  turn.append(actions, feedbackArea, traceArea);
}

/** A thumb (pointing up; CSS turns it for thumbs down), drawn as SVG so that it needs no emoji font. */
function thumbIcon() {
  const NS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(NS, "svg");
  for (const [k, v] of Object.entries({ viewBox: "0 0 24 24", width: "20", height: "20", "aria-hidden": "true",
    focusable: "false", fill: "none", stroke: "currentColor", "stroke-width": "1.8", "stroke-linejoin": "round" })) {
    svg.setAttribute(k, v);
  }
  const cuff = document.createElementNS(NS, "rect");
  for (const [k, v] of Object.entries({ x: "2.5", y: "10", width: "4", height: "10.5", rx: "1" })) {
    cuff.setAttribute(k, v);
  }
  const hand = document.createElementNS(NS, "path");
  hand.setAttribute("d", "M8.5 10 L12 3.2 C13.6 3.2 14.6 4.5 14.1 6.2 L13.3 9 H19.3 C20.7 9 21.7 10.3 21.3 11.7 " +
    "L19.4 18.9 C19.1 20 18.1 20.8 16.9 20.8 H8.5 Z");
  svg.append(cuff, hand);
  return svg;
}

// -- feedback ------------------------------------------------------------------------------------------------------
let formSeq = 0;

function openFeedbackForm(ctx) {
  if (ctx.feedbackArea.querySelector("form")) {
    ctx.feedbackArea.querySelector("select").focus();
    return;
  }
  const id = `fb${++formSeq}`;
  const a = ctx.result.answer;
  const select = h(
    "select",
    { id: `${id}-category`, name: "category" },
    CATEGORIES.map(([value, text]) => h("option", { value }, text)),
  );
  select.value = a.abstained ? "should_answer" : "wrong";
  const reason = h("textarea", { id: `${id}-reason`, name: "reason", rows: 2, maxlength: 2000 });
  const correction = h("textarea", { id: `${id}-correction`, name: "correction", rows: 2, maxlength: 4000 });
  const error = h("p", { class: "error", role: "alert", hidden: true });
  const form = h(
    "form",
    { class: "feedback-form", "aria-label": "Feedback on this answer" },
    h("div", { class: "field" }, h("label", { for: select.id }, "What was wrong?"), select),
    h("div", { class: "field" }, h("label", { for: reason.id }, "Comment (optional)"), reason),
    h("div", { class: "field" }, h("label", { for: correction.id }, "Correct answer (optional)"), correction),
    error,
    h(
      "div",
      { class: "actions" },
      h("button", { type: "submit" }, "Send feedback"),
      h("button", { type: "button", class: "secondary", onclick: () => cancel() }, "Cancel"),
    ),
  );
  const cancel = () => {
    form.remove();
    ctx.down.focus();
  };
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const extra = { category: select.value, reason: reason.value.trim(), correction: correction.value.trim() || null };
    const sent = await sendFeedback(ctx, "down", extra, error);
    if (sent) form.remove();
  });
  ctx.feedbackArea.append(form);
  select.focus();
}

async function sendFeedback(ctx, rating, extra, errorNode = null) {
  const a = ctx.result.answer;
  const body = {
    trace_id: a.trace_id || "",
    question: a.question || ctx.result.standalone || ctx.result.question,
    answer: a.text,
    rating,
    category: extra.category || "other",
    reason: extra.reason || "",
    correction: extra.correction ?? null,
    cited_paths: [...new Set(a.citations.map((c) => c.path))],
  };
  try {
    const got = await api("POST", "/v1/feedback", { body });
    (rating === "up" ? ctx.up : ctx.down).setAttribute("aria-pressed", "true");
    ctx.up.disabled = true;
    ctx.down.disabled = true;
    const thanks = h("p", { class: "confirm", tabindex: "-1" }, `Thank you: your feedback was recorded (#${got.id}).`);
    ctx.feedbackArea.replaceChildren(thanks);
    thanks.focus();
    setStatus("Feedback recorded.");
    return true;
  } catch (err) {
    if (errorNode) showError(errorNode, err);
    else ctx.feedbackArea.replaceChildren(h("p", { class: "error", role: "alert" }, describe(err)));
    return false;
  }
}

// -- traces --------------------------------------------------------------------------------------------------------
function formatValue(v) {
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : String(Math.round(v * 10000) / 10000);
  if (Array.isArray(v)) return v.map(formatValue).join(", ");
  if (v && typeof v === "object") return JSON.stringify(v);
  const s = String(v);
  return s.length > 400 ? `${s.slice(0, 400)}…` : s;
}

function ms(x) {
  return `${Number(x).toFixed(Number(x) < 10 ? 2 : 1)} ms`;
}

function renderTrace(detail) {
  const depth = new Map();
  const byId = new Map(detail.spans.map((s) => [s.span_id, s]));
  const depthOf = (s) => {
    if (depth.has(s.span_id)) return depth.get(s.span_id);
    let d = 0;
    for (let p = s.parent; p && byId.has(p) && d < 20; p = byId.get(p).parent) d += 1;
    depth.set(s.span_id, d);
    return d;
  };
  const total = detail.ms === null || detail.ms === undefined ? "" : ` · ${ms(detail.ms)}`;
  return [
    h("h3", {}, "Trace ", h("code", {}, detail.trace_id), total),
    h(
      "ol",
      { class: "spans" },
      detail.spans.map((s) => {
        const attrs = Object.entries(s.attributes || {});
        return h(
          "li",
          { class: `span depth-${Math.min(depthOf(s), 4)}` },
          h(
            "div",
            { class: "span-head" },
            h("span", { class: "span-name" }, s.name),
            h("span", { class: "span-ms" }, ms(s.ms)),
            h("span", { class: `span-status status-${s.status === "ok" ? "ok" : "bad"}` }, s.status),
          ),
          s.error ? h("p", { class: "error" }, s.error) : null,
          attrs.length
            ? h("dl", { class: "attrs" }, attrs.map(([k, v]) => [h("dt", {}, k), h("dd", {}, formatValue(v))]))
            : null,
        );
      }),
    ),
  ];
}

async function toggleTrace(traceId, button, area) {
  if (button.getAttribute("aria-expanded") === "true") {
    area.hidden = true;
    button.setAttribute("aria-expanded", "false");
    return;
  }
  button.setAttribute("aria-expanded", "true");
  area.hidden = false;
  if (area.dataset.loaded) return;
  if (!traceId) {
    area.replaceChildren(h("p", { class: "hint" }, "No trace: tracing is off for this service."));
    return;
  }
  area.replaceChildren(h("p", { class: "pending" }, "Loading the trace…"));
  try {
    const detail = await api("GET", `/v1/traces/${encodeURIComponent(traceId)}`);
    area.replaceChildren(...renderTrace(detail));
    area.dataset.loaded = "1";
    setStatus(`Trace loaded: ${detail.spans.length} spans.`);
  } catch (err) {
    area.replaceChildren(h("p", { class: "error", role: "alert" }, describe(err)));
  }
}

// -- the document panel --------------------------------------------------------------------------------------------
async function openDocument(cite, opener) {
  const request = ++state.docRequest;
  state.docOpener = opener || null;
  const panel = $("doc-panel");
  panel.hidden = false;
  document.querySelector(".layout").classList.add("with-doc");
  $("doc-title").textContent = "Loading…";
  $("doc-path").textContent = cite.path || "";
  $("doc-text").replaceChildren();
  let got;
  try {
    got = await api("GET", `/v1/documents/${encodeURIComponent(cite.doc_id)}`);
  } catch (err) {
    if (request !== state.docRequest) return;
    $("doc-title").textContent = "Document";
    $("doc-text").replaceChildren(h("p", { class: "error", role: "alert" }, describe(err)));
    return;
  }
  if (request !== state.docRequest) return; // another document was asked for meanwhile
  const text = got.text;
  $("doc-title").textContent = got.document.title || fileName(got.document.path);
  $("doc-path").textContent = got.document.path;
  const box = $("doc-text");
  let mark = null;
  if (Number.isInteger(cite.start) && Number.isInteger(cite.end) && cite.end > cite.start) {
    const s = unitOffset(text, cite.start);
    const e = unitOffset(text, cite.end);
    mark = h("mark", { id: "cited" }, text.slice(s, e));
    box.replaceChildren(text.slice(0, s), mark, text.slice(e));
  } else {
    box.replaceChildren(text);
    box.scrollTop = 0;
  }
  $("doc-title").focus({ preventScroll: true });
  if (mark) {
    mark.scrollIntoView({ block: "center" });
    setStatus(`Opened ${$("doc-title").textContent}; the cited passage is highlighted.`);
  } else {
    panel.scrollIntoView({ block: "nearest" });
    setStatus(`Opened ${$("doc-title").textContent}.`);
  }
}

function closeDocument(restoreFocus = true) {
  state.docRequest += 1;
  $("doc-panel").hidden = true;
  $("doc-text").replaceChildren();
  document.querySelector(".layout").classList.remove("with-doc");
  const opener = state.docOpener;
  state.docOpener = null;
  if (restoreFocus && opener && opener.isConnected) opener.focus();
  if (restoreFocus) setStatus("Document closed.");
}

// -- review: feedback drafts and eval runs ------------------------------------------------------------------------
async function loadReview() {
  try {
    const got = await api("GET", "/v1/feedback/drafts");
    const n = got.drafts.length;
    $("drafts-info").textContent = n
      ? `${n} draft case${n === 1 ? "" : "s"} from your organization's thumbs-down feedback.`
      : "No thumbs-down feedback yet.";
    $("drafts-yaml").textContent = got.yaml;
    $("drafts-yaml").hidden = n === 0;
    const link = $("drafts-download");
    if (link.href) URL.revokeObjectURL(link.href);
    link.href = URL.createObjectURL(new Blob([got.yaml], { type: "text/yaml" }));
    link.hidden = n === 0;
  } catch (err) {
    $("drafts-info").textContent = describe(err);
  }
  showError($("runs-error"), null);
  let runs;
  try {
    runs = await api("GET", "/v1/evals/runs");
  } catch (err) {
    $("runs-table").hidden = true;
    $("runs-empty").hidden = true;
    showError($("runs-error"), err);
    return;
  }
  $("runs-rows").replaceChildren(...runs.map(runRow));
  $("runs-table").hidden = runs.length === 0;
  $("runs-empty").hidden = runs.length > 0;
}

async function startRun(event) {
  event.preventDefault();
  showError($("runs-error"), null);
  try {
    const got = await api("POST", "/v1/evals/runs", { body: { path: $("run-path").value.trim() } });
    setStatus(`Started an eval run of ${got.cases} case${got.cases === 1 ? "" : "s"} from ${got.path}; it is listed when it ends.`);
    pollRuns((await api("GET", "/v1/evals/runs")).length);
  } catch (err) {
    showError($("runs-error"), err);
  }
}

async function pollRuns(before, tries = 300) {
  for (let i = 0; i < tries; i += 1) {
    await new Promise((done) => setTimeout(done, 1000));
    let runs;
    try {
      runs = await api("GET", "/v1/evals/runs");
    } catch {
      return;
    }
    if (runs.length > before) {
      setStatus(`Eval run ${runs[0].run_id} finished: ${percent(runs[0].pass_rate)} passed.`);
      loadReview();
      return;
    }
  }
}

function runRow(r) {
  const get = h("button", { type: "button", class: "secondary" }, "Download report");
  get.addEventListener("click", async () => {
    try {
      const html = await apiText(`/v1/evals/runs/${encodeURIComponent(r.run_id)}/report`);
      const url = URL.createObjectURL(new Blob([html], { type: "text/html" }));
      h("a", { href: url, download: `${r.run_id}.html` }).click();
      setStatus(`Report of run ${r.run_id} downloaded.`);
    } catch (err) {
      setStatus(describe(err));
    }
  });
  const rate = r.cases ? percent(r.pass_rate) : "-";
  return h("tr", {}, h("td", {}, r.run_id), h("td", {}, String(r.created).slice(0, 19).replace("T", " ")),
    h("td", {}, String(r.cases)), h("td", {}, rate), h("td", {}, get));
}

// -- documents -----------------------------------------------------------------------------------------------------
async function loadDocuments() {
  state.docsLoaded = true;
  showError($("doc-error"), null);
  let docs;
  try {
    docs = (await api("GET", "/v1/documents?limit=1000")).documents;
  } catch (err) {
    state.docsLoaded = false;
    showError($("doc-error"), err);
    return;
  }
  const shared = docs.filter((d) => !d.tenant).length;
  const chunks = docs.reduce((n, d) => n + (d.n_chunks || 0), 0);
  $("doc-stats").textContent =
    `${docs.length} document${docs.length === 1 ? "" : "s"} (${docs.length - shared} uploaded by your organization, ` +
    `${shared} shared), ${chunks} passages.`;
  $("doc-rows").replaceChildren(...docs.map(documentRow));
  $("doc-empty").hidden = docs.length > 0;
}

function documentRow(d) {
  const title = d.title || fileName(d.path);
  const actions = h("td", { class: "row-actions" });
  const view = h("button", { type: "button", class: "secondary", "aria-label": `View ${title}` }, "View");
  view.addEventListener("click", () => openDocument({ doc_id: d.doc_id, path: d.path }, view));
  actions.append(view);
  if (d.tenant) {
    const del = h("button", { type: "button", class: "danger", "aria-label": `Delete ${title}` }, "Delete");
    del.addEventListener("click", () => confirmDelete(d, title, actions, view, del));
    actions.append(del);
  }
  return h(
    "tr",
    { dataset: { docId: d.doc_id } },
    h("td", {}, title),
    h("td", { class: "path" }, d.path),
    h("td", {}, d.tenant ? "uploaded" : "shared"),
    h("td", {}, String(d.n_chunks)),
    actions,
  );
}

function confirmDelete(d, title, cell, view, del) {
  const yes = h("button", { type: "button", class: "danger" }, "Yes, delete");
  const no = h("button", { type: "button", class: "secondary" }, "Cancel");
  const ask = h("span", { class: "confirm-delete", role: "group", "aria-label": `Confirm deleting ${title}` },
    `Delete “${title}”?`, yes, no);
  cell.replaceChildren(ask);
  no.addEventListener("click", () => {
    cell.replaceChildren(view, del);
    del.focus();
  });
  yes.addEventListener("click", async () => {
    yes.disabled = true;
    try {
      await api("DELETE", `/v1/documents/${encodeURIComponent(d.doc_id)}`);
      setStatus(`Deleted ${title}.`);
      await loadDocuments();
      $("refresh-docs").focus();
    } catch (err) {
      showError($("doc-error"), err);
      cell.replaceChildren(view, del);
      del.focus();
    }
  });
  no.focus();
}

function jobLine(job) {
  const p = job.progress || {};
  if (job.status === "queued") return "queued";
  if (job.status === "running") {
    if (p.files_total) {
      const est = p.estimated ? "~" : "";
      return `running: ${p.files_done} of ${p.files_total} files, ${p.chunks_done}/${est}${p.chunks_total} passages`;
    }
    return "running";
  }
  if (job.status === "failed") return `failed: ${job.error || "unknown error"}`;
  const s = job.summary || {};
  const parts = [`${s.added || 0} added`, `${s.updated || 0} updated`, `${s.unchanged || 0} unchanged`];
  if (s.chunks !== undefined) parts.push(`${s.chunks} passages`);
  let line = `done: ${parts.join(", ")}`;
  const skipped = s.skipped || [];
  if (skipped.length) line += `; skipped ${skipped.map((k) => `${fileName(k.path)} (${k.reason})`).join(", ")}`;
  if (s.note) line += ` (${s.note})`;
  return line;
}

async function upload(event) {
  event.preventDefault();
  const input = $("upload-files");
  if (!input.files.length) return;
  showError($("doc-error"), null);
  const form = new FormData();
  const names = [];
  for (const f of input.files) {
    form.append("files", f, f.name);
    names.push(f.name);
  }
  $("upload-button").disabled = true;
  let job;
  try {
    job = await api("POST", "/v1/documents", { form });
  } catch (err) {
    showError($("doc-error"), err);
    $("upload-button").disabled = false;
    return;
  }
  input.value = "";
  $("upload-button").disabled = false;
  const line = h("span", { class: "job-state" }, jobLine(job));
  const what = `Upload of ${names.join(", ")}: `;
  const row = h("p", { class: "job", dataset: { jobId: job.id, status: job.status } }, what, line);
  $("jobs").prepend(row);
  setStatus(`Uploaded ${names.length} file${names.length === 1 ? "" : "s"}; ingesting.`);
  await pollJob(job.id, row, line);
}

async function pollJob(id, row, line) {
  for (;;) {
    let job;
    try {
      job = await api("GET", `/v1/jobs/${encodeURIComponent(id)}`);
    } catch (err) {
      line.textContent = describe(err);
      row.dataset.status = "failed";
      return;
    }
    line.textContent = jobLine(job);
    row.dataset.status = job.status;
    if (job.status === "done" || job.status === "failed") {
      setStatus(job.status === "done" ? "Upload ingested." : "The upload could not be ingested.");
      await loadDocuments();
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

// -- wiring --------------------------------------------------------------------------------------------------------
function main() {
  $("key-form").addEventListener("submit", useKey);
  $("forget-key").addEventListener("click", forgetKey);
  for (const t of TABS) $(`tab-${t}`).addEventListener("click", () => selectTab(t));
  document.querySelector("[role=tablist]").addEventListener("keydown", tabKeys);
  $("ask-form").addEventListener("submit", ask);
  $("new-conversation").addEventListener("click", newConversation);
  $("doc-close").addEventListener("click", () => closeDocument());
  $("doc-panel").addEventListener("keydown", (e) => {
    if (e.key === "Escape") closeDocument();
  });
  $("upload-form").addEventListener("submit", upload);
  $("refresh-docs").addEventListener("click", loadDocuments);
  $("refresh-review").addEventListener("click", loadReview);
  $("run-form").addEventListener("submit", startRun);
  showKeyState();
  if (!session.key) $("key-input").focus(); // with a key, nothing is focused: Tab starts at the top
  document.body.dataset.ready = "1";
}

main();
