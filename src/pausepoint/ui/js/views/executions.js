// The executions list: filters kept in the URL, live over the organization's SSE feed,
// and bulk pause / resume / cancel with a confirmation of what will be touched.

import { api, flowPath } from "../api.js";
import {
  EXECUTION_STATES, badge, debounce, elapsed, fill, formatDuration, h, timeElement,
} from "../dom.js";
import { follow } from "../sse.js";
import { announce, askInDialog, showNotice } from "../ui.js";

const FILTERS = ["state", "namespace", "flow", "label"];
const BULK_OPS = [
  ["pause", "Pause"],
  ["resume", "Resume"],
  ["cancel", "Cancel"],
];

export async function renderExecutionList(view, params, session) {
  const selected = new Set();
  const body = h("tbody", {});
  const count = h("p", { class: "muted", id: "selection-count", "aria-live": "polite" });
  const toolbar = session.canControl
    ? h("div", { class: "toolbar", role: "toolbar", "aria-label": "Selected executions" },
      BULK_OPS.map(([op, label]) => h("button", {
        type: "button", class: "secondary", disabled: true, onclick: () => bulk(op, label),
      }, `${label} selected`)),
      count)
    : null;
  const selectAll = session.canControl ? h("input", {
    type: "checkbox", id: "select-all", "aria-label": "Select all executions shown",
    onchange: () => {
      for (const box of body.querySelectorAll("input[data-select]")) {
        box.checked = selectAll.checked;
        toggle(box.dataset.select, box.checked);
      }
    },
  }) : null;
  let rows = [];

  fill(view,
    h("h1", {}, "Executions"),
    filterForm(params),
    h("section", { class: "card", "aria-labelledby": "executions-title" },
      h("h2", { id: "executions-title", class: "visually-hidden" }, "Executions list"),
      toolbar,
      h("div", { class: "table-wrap" }, h("table", { id: "executions" },
        h("thead", {}, h("tr", {},
          session.canControl ? h("th", { scope: "col" }, selectAll) : null,
          h("th", { scope: "col" }, "State"),
          h("th", { scope: "col" }, "Execution"),
          h("th", { scope: "col" }, "Flow"),
          h("th", { scope: "col" }, "Labels"),
          h("th", { scope: "col" }, "Started"),
          h("th", { scope: "col" }, "Duration"))),
        body))));

  function toggle(id, on) {
    if (on) selected.add(id);
    else selected.delete(id);
    body.querySelector(`tr[data-id="${CSS.escape(id)}"]`)?.classList.toggle("selected", on);
    updateToolbar();
  }

  function updateToolbar() {
    if (!toolbar) return;
    for (const button of toolbar.querySelectorAll("button")) button.disabled = selected.size === 0;
    count.textContent = selected.size ? `${selected.size} selected` : "";
  }

  function query() {
    const search = new URLSearchParams({ limit: "100" });
    for (const state of params.getAll("state")) search.append("state", state);
    if (params.get("namespace")) search.set("namespace", params.get("namespace"));
    if (params.get("flow")) search.set("flow_id", params.get("flow"));
    for (const label of params.getAll("label")) search.append("label", label);
    return search;
  }

  let latestLoad = 0;

  async function load() {
    const thisLoad = ++latestLoad;
    try {
      const page = await api(`/executions?${query()}`, { signal: session.signal });
      if (thisLoad !== latestLoad) return; // a newer answer is on its way
      rows = page.items;
      render();
    } catch (error) {
      if (error.name !== "AbortError") showNotice(error.message);
    }
  }

  // Rows that did not change are kept as they are: a live update must not steal the
  // focus from a checkbox or a link someone is on.
  const renderedRows = new Map();

  function render() {
    const shown = new Set(rows.map((row) => row.id));
    for (const id of [...selected]) if (!shown.has(id)) selected.delete(id);
    const next = new Map();
    for (const row of rows) {
      // A running execution's duration ticks on screen; it is not a change of the row.
      const signature = JSON.stringify({ ...row, duration_ms: row.ended_at ? row.duration_ms : 0 });
      const kept = renderedRows.get(row.id);
      const unchanged = kept?.signature === signature;
      next.set(row.id, unchanged ? kept : { signature, element: renderRow(row) });
    }
    renderedRows.clear();
    for (const [id, entry] of next) renderedRows.set(id, entry);
    const focused = document.activeElement;
    body.replaceChildren(...[...next.values()].map((entry) => entry.element));
    if (focused instanceof HTMLElement && body.contains(focused)) focused.focus();
    for (const [id, { element }] of renderedRows) {
      const on = selected.has(id);
      element.classList.toggle("selected", on);
      const box = element.querySelector("input[data-select]");
      if (box) box.checked = on;
    }
    if (!rows.length) {
      body.append(h("tr", {}, h("td", { colspan: 7, class: "muted" },
        FILTERS.some((f) => params.get(f)) ? "No execution matches these filters."
          : "No executions yet. Start one from a flow's page.")));
    }
    if (selectAll) selectAll.checked = rows.length > 0 && selected.size === rows.length;
    updateToolbar();
  }

  function renderRow(row) {
    const flow = `${row.namespace}.${row.flow_id}`;
    return h("tr", { dataset: { id: row.id, state: row.state } },
    session.canControl ? h("td", { class: "select" }, h("input", {
      type: "checkbox", dataset: { select: row.id },
      "aria-label": `Select execution ${row.id} (${flow}, ${row.state})`,
      onchange: (event) => toggle(row.id, event.target.checked),
    })) : null,
    h("td", { "data-label": "State" }, badge(row.state)),
    h("td", { "data-label": "Execution" },
      h("a", { href: `#/executions/${encodeURIComponent(row.id)}`, class: "mono" }, row.id)),
    h("td", { "data-label": "Flow" }, h("a", {
      href: `#${flowPath(row.namespace, row.flow_id)}`,
    }, flow)),
    h("td", { "data-label": "Labels" }, Object.entries(row.labels).map(([key, value]) =>
      h("span", { class: "label-chip" }, `${key}:${value}`))),
    h("td", { "data-label": "Started" }, timeElement(row.started_at ?? row.created_at)),
    // A running execution's duration is counted on screen (see the ticker below).
    h("td", { "data-label": "Duration", dataset: { duration: row.ended_at ? "" : row.started_at ?? "" } },
      formatDuration(row.ended_at ? row.duration_ms : elapsed(row.started_at, null))));
  }

  async function bulk(op, label) {
    const ids = [...selected];
    let preview;
    try {
      preview = await api(`/executions/bulk/${op}`, {
        method: "POST", body: { ids, dry_run: true },
      });
    } catch (error) {
      showNotice(error.message);
      return;
    }
    const touched = preview.results.filter((item) => item.status < 300);
    const skipped = preview.results.filter((item) => item.status >= 300);
    const listing = h("div", {},
      touched.length
        ? [h("p", {}, `${label} will be sent to ${touched.length} execution(s):`),
          h("ul", { id: "bulk-touched" }, touched.map((item) =>
            h("li", {}, h("span", { class: "mono" }, item.execution_id), " ",
              badge(item.state ?? "?"))))]
        : h("p", {}, `None of the selected executions can be told to ${op} now.`),
      skipped.length
        ? [h("p", {}, `Left alone (${skipped.length}):`),
          h("ul", { id: "bulk-skipped" }, skipped.map((item) =>
            h("li", {}, h("span", { class: "mono" }, item.execution_id), ` — ${item.message}`)))]
        : null);
    await askInDialog({
      title: `${label} ${touched.length} execution(s)?`,
      body: listing,
      confirmLabel: touched.length ? `${label} ${touched.length}` : "Nothing to do",
      danger: op === "cancel",
      onConfirm: async () => {
        if (!touched.length) return;
        const reply = await api(`/executions/bulk/${op}`, {
          method: "POST", body: { ids: touched.map((item) => item.execution_id) },
        });
        const accepted = reply.results.filter((item) => item.status < 300).length;
        announce(`${label}: ${accepted} of ${reply.results.length} accepted.`);
        const refused = reply.results.filter((item) => item.status >= 300);
        if (refused.length) {
          showNotice(`${refused.length} not changed: ${refused.map((i) => i.message).join("; ")}`);
        }
        selected.clear();
        await load();
      },
    });
  }

  const refresh = debounce(load, 150);
  const ticker = setInterval(() => {
    for (const cell of body.querySelectorAll("td[data-duration]")) {
      const started = cell.dataset.duration;
      if (started) cell.textContent = formatDuration(elapsed(started, null));
    }
  }, 1000);
  session.signal.addEventListener("abort", () => clearInterval(ticker));
  await load();
  follow("/events", { signal: session.signal, onEvent: refresh, onOpen: refresh });
}

function filterForm(params) {
  const stateSelect = h("select", { id: "filter-state", name: "state" },
    h("option", { value: "" }, "Any state"),
    EXECUTION_STATES.map((state) => h("option", {
      value: state, selected: params.get("state") === state,
    }, state)));
  const text = (name, label, placeholder) => h("div", { class: "field" },
    h("label", { for: `filter-${name}` }, label),
    h("input", { id: `filter-${name}`, name, value: params.get(name) ?? "", placeholder }));
  const form = h("form", { class: "card filters", role: "search", "aria-label": "Filter executions" },
    h("div", { class: "field" }, h("label", { for: "filter-state" }, "State"), stateSelect),
    text("namespace", "Namespace", "company.team"),
    text("flow", "Flow", "flow id"),
    text("label", "Label", "key:value"),
    h("div", { class: "toolbar" },
      h("button", { type: "submit" }, "Apply filters"),
      h("a", { href: "#/executions", class: "button secondary" }, "Clear")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const search = new URLSearchParams();
    for (const name of FILTERS) {
      const value = form.elements[name].value.trim();
      if (value) search.set(name, value);
    }
    const query = search.toString();
    location.hash = `#/executions${query ? `?${query}` : ""}`;
  });
  return form;
}
