// "Waiting for me": the open approval requests the caller may decide (or all of them),
// filters kept in the URL, live; bulk approve or deny with one confirmation; and one
// request's page, its review form beside the execution's context.

import { api, executionPath, flowPath } from "../api.js";
import { badge, debounce, fill, formatDuration, h, json, timeElement } from "../dom.js";
import {
  commentNeeded, refusalText, requestTitle, reviewCard, sendVote, standingsOf, voteCount,
} from "../review.js";
import { follow } from "../sse.js";
import { announce, askInDialog, showNotice } from "../ui.js";
import { approvalsChanged, onApprovalsChange } from "../waiting.js";

const FILTERS = ["namespace", "flow", "label", "age"];
const AGES = [
  ["", "Any age"],
  ["PT15M", "Waiting 15 min or more"],
  ["PT1H", "Waiting 1 h or more"],
  ["PT4H", "Waiting 4 h or more"],
  ["P1D", "Waiting 1 day or more"],
];
const VERBS = { approve: "Approve", deny: "Deny" };

export const requestPath = (executionId, pauseId) =>
  `/approvals/${encodeURIComponent(executionId)}/${encodeURIComponent(pauseId)}`;

const keyOf = (item) => `${item.execution_id}:${item.pause_id}`;
const mayDecide = (item) => item.me.may_approve || item.me.may_deny;

function mayText(me) {
  if (me.voted) return `Voted ${me.voted}`;
  if (me.may_approve && me.may_deny) return "Approve or deny";
  if (me.may_deny) return `Deny only — ${me.why_not}`;
  return me.why_not ?? "—";
}

export async function renderApprovals(view, params, session) {
  const everyone = params.get("all") === "1";
  const selected = new Set();
  const body = h("tbody", {});
  const total = h("p", { class: "muted", id: "approvals-total", "aria-live": "polite" });
  const selection = h("p", { class: "muted", id: "selection-count", "aria-live": "polite" });
  const results = h("section", { id: "bulk-results", class: "card", "aria-live": "polite",
    hidden: true });
  const toolbar = session.canControl
    ? h("div", { class: "toolbar", role: "toolbar", "aria-label": "Selected requests" },
      Object.entries(VERBS).map(([decision, verb]) => h("button", {
        type: "button", class: decision === "deny" ? "secondary danger-text" : "secondary",
        disabled: true, dataset: { bulk: decision }, onclick: () => bulk(decision),
      }, `${verb} selected`)),
      selection)
    : null;
  const selectAll = session.canControl ? h("input", {
    type: "checkbox", id: "select-all", "aria-label": "Select all requests you may decide",
    onchange: () => {
      for (const item of items) if (mayDecide(item)) toggle(keyOf(item), selectAll.checked);
      render();
    },
  }) : null;
  let items = [];
  let loadedAt = Date.now();

  fill(view,
    h("h1", {}, everyone ? "Open approval requests" : "Waiting for me"),
    filterForm(params),
    results,
    h("section", { class: "card", "aria-labelledby": "approvals-title" },
      h("h2", { id: "approvals-title", class: "visually-hidden" }, "Approval requests"),
      toolbar, total,
      h("div", { class: "table-wrap" }, h("table", { id: "approvals" },
        h("thead", {}, h("tr", {},
          session.canControl ? h("th", { scope: "col" }, selectAll) : null,
          h("th", { scope: "col" }, "Flow"),
          h("th", { scope: "col" }, "Execution"),
          h("th", { scope: "col" }, "Request"),
          h("th", { scope: "col" }, "Waiting"),
          h("th", { scope: "col" }, "Due"),
          h("th", { scope: "col" }, "Votes"),
          h("th", { scope: "col" }, "You"))),
        body))));

  function toggle(key, on) {
    if (on) selected.add(key);
    else selected.delete(key);
  }

  function query() {
    const search = new URLSearchParams({ assigned: everyone ? "anyone" : "me", limit: "200" });
    if (params.get("namespace")) search.set("namespace", params.get("namespace"));
    if (params.get("flow")) search.set("flow_id", params.get("flow"));
    for (const label of params.getAll("label")) search.append("label", label);
    if (params.get("age")) search.set("older_than", params.get("age"));
    return search;
  }

  let latestLoad = 0;

  async function load() {
    const thisLoad = ++latestLoad;
    try {
      const page = await api(`/approvals?${query()}`, { signal: session.signal });
      if (thisLoad !== latestLoad) return; // a newer answer is on its way
      items = page.items;
      loadedAt = Date.now();
      total.textContent = page.total > items.length
        ? `${items.length} of ${page.total} shown, oldest first.`
        : `${page.total} open request${page.total === 1 ? "" : "s"}.`;
      render();
    } catch (error) {
      if (error.name !== "AbortError") showNotice(error.message);
    }
  }

  // Rows that did not change are kept: a live update must not take the focus away.
  const renderedRows = new Map();

  function render() {
    const shown = new Set(items.filter(mayDecide).map(keyOf));
    for (const key of [...selected]) if (!shown.has(key)) selected.delete(key);
    const next = new Map();
    for (const item of items) {
      const signature = JSON.stringify({ ...item, waiting_seconds: 0 });
      const kept = renderedRows.get(keyOf(item));
      next.set(keyOf(item), kept?.signature === signature ? kept
        : { signature, element: renderRow(item) });
    }
    renderedRows.clear();
    for (const [key, entry] of next) renderedRows.set(key, entry);
    const focused = document.activeElement;
    body.replaceChildren(...[...next.values()].map((entry) => entry.element));
    if (focused instanceof HTMLElement && body.contains(focused)) focused.focus();
    for (const [key, { element }] of renderedRows) {
      element.classList.toggle("selected", selected.has(key));
      const box = element.querySelector("input[data-select]");
      if (box) box.checked = selected.has(key);
    }
    tickWaiting();
    if (!items.length) {
      const filtered = FILTERS.some((name) => params.get(name));
      body.append(h("tr", {}, h("td", { colspan: 8, class: "muted" },
        filtered ? "No open request matches these filters."
          : everyone ? "No approval request is open."
            : "Nothing is waiting for you.")));
    }
    if (selectAll) selectAll.checked = shown.size > 0 && selected.size === shown.size;
    if (toolbar) {
      for (const button of toolbar.querySelectorAll("button")) {
        button.disabled = selected.size === 0;
      }
      selection.textContent = selected.size ? `${selected.size} selected` : "";
    }
  }

  function renderRow(item) {
    const flow = `${item.namespace}.${item.flow_id}`;
    const title = requestTitle(item.request, item.task_id);
    const key = keyOf(item);
    return h("tr", { dataset: { executionId: item.execution_id, pauseId: item.pause_id } },
      session.canControl ? h("td", { class: "select" }, mayDecide(item) ? h("input", {
        type: "checkbox", dataset: { select: key },
        "aria-label": `Select ${title} (${flow}, execution ${item.execution_id})`,
        onchange: (event) => { toggle(key, event.target.checked); render(); },
      }) : null) : null,
      h("td", { "data-label": "Flow" }, h("a", { href: `#${flowPath(item.namespace, item.flow_id)}` },
        flow), Object.entries(item.labels).map(([k, v]) => h("span", { class: "label-chip" },
        `${k}:${v}`))),
      h("td", { "data-label": "Execution" }, h("a", {
        href: `#${executionPath(item.execution_id)}`, class: "mono",
      }, item.execution_id), " ", badge(item.execution_state)),
      h("td", { "data-label": "Request" },
        h("a", { href: `#${requestPath(item.execution_id, item.pause_id)}` }, title)),
      h("td", { "data-label": "Waiting", dataset: { waiting: item.waiting_seconds } }),
      h("td", { "data-label": "Due" }, timeElement(item.due)),
      h("td", { "data-label": "Votes", class: "votes-cell" }, voteCount(item.request)),
      h("td", { "data-label": "You", class: mayDecide(item) ? "may" : "may-not" },
        mayText(item.me)));
  }

  // Waiting times count up on screen from what the server measured (no clock skew).
  function tickWaiting() {
    const since = Date.now() - loadedAt;
    for (const cell of body.querySelectorAll("td[data-waiting]")) {
      cell.textContent = formatDuration(Number(cell.dataset.waiting) * 1000 + since);
    }
  }

  async function bulk(decision) {
    const verb = VERBS[decision];
    const chosen = items.filter((item) => selected.has(keyOf(item)));
    const allowed = (item) => (decision === "approve" ? item.me.may_approve : item.me.may_deny);
    const sent = chosen.filter(allowed);
    const left = chosen.filter((item) => !allowed(item));
    const required = sent.some((item) => commentNeeded(item.request.comment_required, decision));
    const comment = h("textarea", { id: "bulk-comment", rows: 3, maxlength: 5000,
      "aria-describedby": "bulk-comment-hint", "aria-required": required ? "true" : null });
    const describe = (item) => [
      h("strong", {}, requestTitle(item.request, item.task_id)), ` — ${item.namespace}.`
        + `${item.flow_id}, execution `, h("span", { class: "mono" }, item.execution_id)];
    const listing = h("div", {},
      sent.length
        ? [h("p", {}, `${verb} these ${sent.length} request${sent.length === 1 ? "" : "s"}:`),
          h("ul", { id: "bulk-list" }, sent.map((item) => h("li", {
            dataset: { executionId: item.execution_id },
          }, describe(item))))]
        : h("p", {}, `You may ${decision} none of the selected requests.`),
      left.length
        ? [h("p", {}, `Left alone (${left.length}): you may not ${decision} them.`),
          h("ul", { id: "bulk-skipped" }, left.map((item) => h("li", {}, describe(item),
            ` — ${item.me.why_not ?? "not allowed"}`)))]
        : null,
      sent.length ? h("div", { class: "field" },
        h("label", { for: "bulk-comment" }, required ? "Comment (required)" : "Comment (optional)"),
        h("p", { class: "hint", id: "bulk-comment-hint" },
          "Recorded with each vote.",
          required ? ` Some of them need a comment to ${decision}.` : ""),
        comment) : null);
    await askInDialog({
      title: `${verb} ${sent.length} request${sent.length === 1 ? "" : "s"}?`,
      body: listing,
      confirmLabel: sent.length ? `${verb} ${sent.length}` : "Nothing to do",
      danger: decision === "deny",
      onConfirm: async () => {
        if (!sent.length) return;
        const text = comment.value.trim() || null;
        const outcomes = [];
        // One at a time: each vote is its own decision, and its own answer.
        for (const item of sent) {
          try {
            await sendVote(item.execution_id, item.pause_id, decision, { comment: text });
            outcomes.push({ item, ok: true, words: `${decision} recorded` });
          } catch (error) {
            outcomes.push({ item, ok: false, words: `refused: ${refusalText(error, decision)}` });
          }
        }
        for (const item of left) {
          outcomes.push({ item, ok: false, words: `not sent: ${item.me.why_not ?? "not allowed"}` });
        }
        showResults(verb, outcomes);
        selected.clear();
        approvalsChanged();
        await load();
      },
    });
  }

  function showResults(verb, outcomes) {
    const done = outcomes.filter((outcome) => outcome.ok).length;
    fill(results,
      h("h2", { id: "bulk-results-title" }, `${verb}: ${done} of ${outcomes.length} recorded`),
      h("ul", { class: "results" }, outcomes.map(({ item, ok, words }) => h("li", {
        class: ok ? "ok" : "refused",
        dataset: { executionId: item.execution_id, outcome: ok ? "recorded" : "refused" },
      }, h("a", { href: `#${requestPath(item.execution_id, item.pause_id)}` },
        requestTitle(item.request, item.task_id)), ` (execution `,
      h("span", { class: "mono" }, item.execution_id), `): ${words}`))),
      h("button", { type: "button", class: "secondary", onclick: () => { results.hidden = true; } },
        "Dismiss"));
    results.hidden = false;
    announce(`${verb}: ${done} of ${outcomes.length} recorded.`);
  }

  const refresh = debounce(load, 150);
  const ticker = setInterval(tickWaiting, 1000);
  session.signal.addEventListener("abort", () => clearInterval(ticker));
  onApprovalsChange(refresh, session.signal);
  await load();
}

function filterForm(params) {
  const text = (name, label, placeholder) => h("div", { class: "field" },
    h("label", { for: `filter-${name}` }, label),
    h("input", { id: `filter-${name}`, name, value: params.get(name) ?? "", placeholder }));
  const everyone = h("input", {
    type: "checkbox", role: "switch", id: "filter-all", name: "all",
    checked: params.get("all") === "1",
    onchange: () => { location.hash = hashOf(form); },
  });
  const form = h("form", { class: "card filters", role: "search",
    "aria-label": "Filter approval requests" },
  h("div", { class: "field" }, h("label", { class: "check", for: "filter-all" }, everyone,
    "All open requests, not only mine")),
  text("namespace", "Namespace", "company.team"),
  text("flow", "Flow", "flow id"),
  text("label", "Label", "key:value"),
  h("div", { class: "field" }, h("label", { for: "filter-age" }, "Age"),
    h("select", { id: "filter-age", name: "age" }, AGES.map(([value, label]) =>
      h("option", { value, selected: (params.get("age") ?? "") === value }, label)))),
  h("div", { class: "toolbar" },
    h("button", { type: "submit" }, "Apply filters"),
    h("a", { href: "#/approvals", class: "button secondary" }, "Clear")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = hashOf(form);
  });
  return form;
}

function hashOf(form) {
  const search = new URLSearchParams();
  if (form.elements.all.checked) search.set("all", "1");
  for (const name of FILTERS) {
    const value = form.elements[name].value.trim();
    if (value) search.set(name, value);
  }
  const query = search.toString();
  return `#/approvals${query ? `?${query}` : ""}`;
}

/** One request: its review form, beside the execution's context; live. */
export async function renderApprovalRequest(view, executionId, pauseId, session) {
  const path = executionPath(executionId);
  const { signal } = session;
  let execution = await api(path, { signal });
  const whose = (shown) => [{
    execution_id: shown.id, namespace: shown.namespace, flow_id: shown.flow_id }];
  let standings = await standingsOf(whose(execution), signal);
  let card = null;
  let taskRunId = null;

  const title = h("h1", {});
  const left = h("div", { id: "review" });
  const context = h("dl", { class: "meta", id: "review-context" });
  const runs = h("ol", { class: "runs", id: "review-task-runs" });

  fill(view,
    h("p", {}, h("a", { href: "#/approvals" }, "← Waiting for me")),
    title,
    h("div", { class: "grid-2" },
      left,
      h("div", {},
        h("section", { class: "card", "aria-labelledby": "review-execution-title" },
          h("h2", { id: "review-execution-title" }, "Execution"), context),
        h("section", { class: "card", "aria-labelledby": "review-runs-title" },
          h("h2", { id: "review-runs-title" }, "Task runs so far"), runs))));

  function render() {
    const point = execution.pause_points.find((open) => open.id === pauseId
      && open.kind === "decision");
    const me = standings.get(`${execution.id}:${pauseId}`) ?? null;
    if (point) {
      taskRunId = point.task_run_id;
      title.textContent = requestTitle(point.approval, point.task_id);
      if (card) {
        card.update(point, me);
      } else {
        card = reviewCard({ executionId: execution.id, point, me, headingLevel: 2,
          heading: "Your review",
          onVoted: async () => { approvalsChanged(); await refresh(); } });
        fill(left, card.element);
      }
    } else {
      card = null;
      if (!title.textContent) title.textContent = "Approval request";
      fill(left, h("section", { class: "card", id: "review-closed" },
        h("h2", {}, "This request is not open"), closedText()));
    }
    renderContext();
    renderRuns();
  }

  function closedText() {
    const run = execution.task_runs.find((candidate) => candidate.id === taskRunId);
    const outputs = run?.outputs ?? {};
    if (!outputs.decision) {
      return h("p", {}, "It was decided, expired, or never opened. ",
        h("a", { href: `#${path}` }, "See the execution"), ".");
    }
    return h("p", { id: "review-decision" }, `Decision: ${outputs.decision}`,
      outputs.by ? ` by ${outputs.by}` : "", outputs.on ? [" at ", timeElement(outputs.on)] : "",
      outputs.comment ? ` — “${outputs.comment}”` : "", ".");
  }

  function renderContext() {
    const rows = [
      ["Flow", h("a", { href: `#${flowPath(execution.namespace, execution.flow_id)}` },
        `${execution.namespace}.${execution.flow_id}`)],
      ["Execution", [h("a", { href: `#${path}`, class: "mono" }, execution.id), " ",
        badge(execution.state)]],
      ["Started", timeElement(execution.started_at ?? execution.created_at)],
      ["Labels", Object.keys(execution.labels).length
        ? Object.entries(execution.labels).map(([k, v]) => h("span", { class: "label-chip" },
          `${k}:${v}`)) : "—"],
      ["Inputs", Object.keys(execution.inputs ?? {}).length
        ? h("pre", { class: "json", id: "review-inputs" }, json(execution.inputs)) : "—"],
    ];
    fill(context, rows.flatMap(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]));
  }

  function renderRuns() {
    // Outputs someone opened stay open across live updates.
    const open = new Set([...runs.querySelectorAll("li[data-run-id] details[open]")]
      .map((details) => details.closest("li").dataset.runId));
    fill(runs, execution.task_runs.map((run) => {
      const hasOutputs = run.outputs && Object.keys(run.outputs).length > 0;
      return h("li", { dataset: { runId: run.id, taskId: run.task_id } },
        badge(run.state), " ", h("strong", {}, run.task_id), " ",
        h("span", { class: "muted" }, run.type),
        run.error ? h("div", { class: "error" }, run.error) : null,
        hasOutputs ? h("details", { open: open.has(run.id) }, h("summary", {}, "Outputs"),
          h("pre", { class: "json" }, json(run.outputs))) : null);
    }));
    if (!execution.task_runs.length) runs.append(h("li", { class: "muted" }, "None yet."));
  }

  let latestRefresh = 0;

  async function refresh() {
    const thisRefresh = ++latestRefresh;
    try {
      const fresh = await api(path, { signal });
      const freshStandings = fresh.pause_points.some((point) => point.kind === "decision")
        ? await standingsOf(whose(fresh), signal) : new Map();
      if (thisRefresh !== latestRefresh) return; // a newer answer is on its way
      execution = fresh;
      standings = freshStandings;
      render();
    } catch (error) {
      if (error.name !== "AbortError") showNotice(error.message);
    }
  }

  render();
  const refreshSoon = debounce(refresh, 100);
  follow(`${path}/events`, { signal, onEvent: refreshSoon, onOpen: refreshSoon });
}
