// One execution, live: state, controls, resume and review forms, task-run tree, context,
// event log.

import { api, executionPath, flowPath } from "../api.js";
import {
  TERMINAL_STATES, badge, debounce, elapsed, fill, formatDuration, h, json, timeElement,
} from "../dom.js";
import { reviewCard, standingsOf } from "../review.js";
import { schemaFields } from "../schemaform.js";
import { follow } from "../sse.js";
import { announce, askInDialog, showNotice } from "../ui.js";
import { approvalsChanged } from "../waiting.js";

const ACTIVE = new Set(["QUEUED", "RUNNING", "PAUSING", "PAUSED"]);

/** Which operations the state allows now (ARCHITECTURE §3); the API answers 409 otherwise. */
export function legalOperations(state) {
  const live = !TERMINAL_STATES.has(state);
  return {
    pause: state === "QUEUED" || state === "RUNNING",
    resume: state === "PAUSING" || state === "PAUSED",
    cancel: ACTIVE.has(state),
    terminate: live,
    inject: live,
  };
}

export async function renderExecution(view, executionId, session) {
  const path = executionPath(executionId);
  let execution = await api(path, { signal: session.signal });
  // What the caller may do with each open approval request ("execution_id:pause_id").
  let standings = await standingsFor(execution);
  const seenEvents = new Set();

  const stateBadge = h("span", { id: "execution-state", "aria-live": "polite" });
  const meta = h("dl", { class: "meta" });
  const controls = session.canControl ? h("div", { class: "toolbar controls", role: "toolbar",
    "aria-label": "Control this execution" }) : null;
  const pauseSection = h("section", { id: "pause-points", "aria-labelledby": "pause-title" });
  const pauseForms = new Map();
  let pauseSignature = null;
  const resumedList = h("ul", { id: "resumed", class: "messages" });
  const tree = h("ul", { class: "tree", id: "task-runs" });
  const outcome = h("div", { id: "outcome" });
  const messages = h("ol", { class: "messages", id: "context-messages" });
  const events = h("ol", { class: "events", id: "event-log", "aria-label": "Events, oldest first" });
  const injectForm = session.canControl ? buildInjectForm() : null;

  fill(view,
    h("div", { class: "detail-head" },
      h("h1", {}, "Execution ", h("span", { class: "mono" }, execution.id)), stateBadge),
    h("div", { class: "card" }, meta, controls),
    pauseSection,
    h("div", { class: "grid-2" },
      h("div", {},
        h("section", { class: "card", "aria-labelledby": "runs-title" },
          h("h2", { id: "runs-title" }, "Task runs"), tree, outcome)),
      h("div", {},
        h("section", { class: "card", "aria-labelledby": "context-title" },
          h("h2", { id: "context-title" }, "Context"), messages, injectForm),
        h("section", { class: "card", "aria-labelledby": "events-title" },
          h("h2", { id: "events-title" }, "Event log"), events))));

  function render() {
    const state = execution.state;
    stateBadge.replaceChildren(badge(state));
    renderMeta();
    renderControls(state);
    renderPausePoints(state);
    renderTree();
    renderContext();
    if (injectForm) injectForm.hidden = TERMINAL_STATES.has(state);
  }

  function renderMeta() {
    const flow = `${execution.namespace}.${execution.flow_id}`;
    const rows = [
      ["Flow", h("a", { href: `#${flowPath(execution.namespace, execution.flow_id)}` },
        `${flow} (revision ${execution.flow_revision})`)],
      ["Started", timeElement(execution.started_at ?? execution.created_at)],
      ["Ended", timeElement(execution.ended_at)],
      ["Duration", formatDuration(elapsed(execution.started_at, execution.ended_at))],
    ];
    if (Object.keys(execution.labels).length) {
      rows.push(["Labels", Object.entries(execution.labels).map(([k, v]) =>
        h("span", { class: "label-chip" }, `${k}:${v}`))]);
    }
    if (execution.parent_id) {
      rows.push(["Parent", h("a", { href: `#${executionPath(execution.parent_id)}`,
        id: "parent-link", class: "mono" }, execution.parent_id)]);
      if (execution.root_id && execution.root_id !== execution.parent_id) {
        rows.push(["Root", h("a", { href: `#${executionPath(execution.root_id)}`,
          class: "mono" }, execution.root_id)]);
      }
    }
    if (execution.children?.length) {
      rows.push(["Subflows", h("ul", { id: "children", class: "children" },
        execution.children.map((child) => h("li", {},
          h("a", { href: `#${executionPath(child.id)}`, class: "mono" }, child.id), " ",
          `${child.namespace}.${child.flow_id} `, badge(child.state),
          child.cascade_error ? h("span", { class: "error" },
            ` cascade failed: ${child.cascade_error}`) : null)))]);
    }
    if (execution.checkpoint) rows.push(["Checkpoint", execution.checkpoint]);
    if (execution.pause_reason) rows.push(["Pause reason", execution.pause_reason]);
    if (execution.error) rows.push(["Error", h("span", { class: "error" }, execution.error)]);
    fill(meta, rows.flatMap(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]));
  }

  // The buttons are made once and only switched on and off, so that a live update
  // never takes focus (or a click) away from the one a user is on.
  const buttons = controls ? {
    pause: controlButton("pause", "Pause", () => control("pause", {})),
    resume: controlButton("resume", "Resume", resumeFromToolbar),
    cancel: controlButton("cancel", "Cancel", cancel),
    terminate: controlButton("terminate", "Terminate", terminate, "danger"),
    inject: controlButton("inject", "Inject…", () => injectForm.elements.message.focus()),
  } : {};
  controls?.append(...Object.values(buttons));

  function controlButton(op, label, onclick, style = "secondary") {
    return h("button", { type: "button", class: style, dataset: { op }, onclick }, label);
  }

  function renderControls(state) {
    if (!controls) return;
    // A finished execution takes no control at all: no buttons rather than dead ones.
    controls.hidden = TERMINAL_STATES.has(state);
    const legal = legalOperations(state);
    const focused = Object.values(buttons).find((button) => button === document.activeElement);
    for (const [op, button] of Object.entries(buttons)) {
      button.disabled = !legal[op];
      button.title = legal[op] ? "" : `Not possible while the execution is ${state}`;
    }
    if (focused?.disabled) handFocusOn(focused);
  }

  // A button that turns off under the keyboard focus must not keep it: Enter on it
  // would do nothing, and browsers differ on what follows (older Chromium blurred it
  // to the page, current Chromium leaves the focus on the dead button). Either way
  // the keyboard user's place moves to the nearest button still on, the next one first.
  function handFocusOn(disabledButton) {
    const all = Object.values(buttons);
    const at = all.indexOf(disabledButton);
    const nearest = [...all.slice(at + 1), ...all.slice(0, at).reverse()];
    nearest.find((button) => !button.disabled)?.focus();
  }

  /** Send a control request; the reply, or null after showing why it was refused. */
  async function control(op, body, successMessage = `${op} requested`) {
    let reply = null;
    try {
      reply = await api(`${path}/${op}`, { method: "POST", body });
      announce(`${successMessage}: the execution is ${reply.state}.`);
    } catch (error) {
      showNotice(error.message);
    }
    await refresh();
    return reply;
  }

  async function resumeFromToolbar() {
    const open = execution.pause_points;
    const takesInputs = open.some((point) => point.kind === "decision"
      || Object.keys(point.on_resume_schema?.properties ?? {}).length > 0);
    if (execution.state === "PAUSED" && (open.length > 1 || takesInputs)) {
      // The inputs (or the vote) belong to a pause point: send the user to its form.
      pauseSection.querySelector("form input, form select, form textarea, form button")?.focus();
      announce("Fill in the form of the pause point below.");
      return;
    }
    const body = open.length === 1 ? { pause_id: open[0].id } : {};
    await control("resume", body, "Resume");
  }

  async function cancel() {
    const reason = h("textarea", { id: "cancel-reason", maxlength: 500, rows: 3 });
    await askInDialog({
      title: "Cancel this execution?",
      body: h("div", { class: "field" },
        h("p", {}, "In-flight tasks are asked to stop cooperatively; nothing new starts."),
        h("label", { for: "cancel-reason" }, "Reason (optional)"), reason),
      confirmLabel: "Cancel execution",
      danger: true,
      onConfirm: () => {
        const why = reason.value.trim();
        return sendFromDialog("cancel", why ? { reason: why } : {});
      },
    });
  }

  async function terminate() {
    const reason = h("textarea", {
      id: "terminate-reason", required: true, maxlength: 500, rows: 3,
      "aria-describedby": "terminate-hint",
    });
    await askInDialog({
      title: "Terminate this execution?",
      body: h("div", { class: "field" },
        h("p", { id: "terminate-hint" },
          "Terminating stops it at once: in-flight work is killed and no cleanup runs. ",
          "Say why (1 to 500 characters); the reason is recorded."),
        h("label", { for: "terminate-reason" }, "Reason (required)"), reason),
      confirmLabel: "Terminate",
      danger: true,
      onConfirm: () => {
        if (!reason.value.trim()) {
          reason.focus();
          throw new Error("Give a reason to terminate.");
        }
        return sendFromDialog("terminate", { reason: reason.value.trim() });
      },
    });
  }

  async function sendFromDialog(op, body) {
    const reply = await api(`${path}/${op}`, { method: "POST", body });
    announce(`${op} requested: the execution is ${reply.state}.`);
    await refresh();
  }

  function buildInjectForm() {
    const form = h("form", { id: "inject-form", "aria-labelledby": "inject-title", novalidate: true },
      h("h3", { id: "inject-title" }, "Inject a message"),
      h("div", { class: "field" },
        h("label", { for: "inject-message" }, "Message"),
        h("p", { class: "hint", id: "inject-hint" },
          "Appended to the execution's context; an agent reads it at its next turn."),
        h("textarea", { id: "inject-message", name: "message", rows: 3, maxlength: 100000,
          "aria-describedby": "inject-hint" })),
      h("div", { class: "field" },
        h("label", { for: "inject-role" }, "Role"),
        h("select", { id: "inject-role", name: "role" },
          h("option", { value: "user" }, "user"), h("option", { value: "system" }, "system"))),
      h("button", { type: "submit", dataset: { op: "inject" } }, "Inject"));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const message = form.elements.message.value.trim();
      if (!message) {
        showNotice("Write a message to inject.");
        form.elements.message.focus();
        return;
      }
      const reply = await control("inject", { message, role: form.elements.role.value },
        "Message injected");
      if (reply) form.elements.message.value = "";
    });
    return form;
  }

  function renderPausePoints(state) {
    // An approval request waits on its own while the rest of the execution may run on.
    const own = state === "PAUSED" || state === "PAUSING" ? execution.pause_points
      : TERMINAL_STATES.has(state) ? []
        : execution.pause_points.filter((point) => point.kind === "decision");
    // A subflow's Pause task is answered from here too (the request goes to the subflow).
    const below = TERMINAL_STATES.has(state) ? [] : execution.descendant_pause_points ?? [];
    const open = [
      ...own.map((point) => ({ id: point.id, point, owner: null })),
      ...below.map((entry) => ({ id: `${entry.execution_id}:${entry.pause_point.id}`,
        point: entry.pause_point, owner: entry })),
    ];
    const openIds = new Set(open.map((entry) => entry.id));
    for (const [id, entry] of pauseForms) {
      if (!openIds.has(id)) {
        entry.element.remove();
        pauseForms.delete(id);
      }
    }
    // A form already on screen is kept as it is, so live updates never wipe what is typed;
    // an approval request's card redraws its votes beside it.
    for (const { id, point, owner } of open) {
      if (!pauseForms.has(id)) pauseForms.set(id, buildPauseForm(point, owner));
      else pauseForms.get(id).update?.(point, standingOf(point, owner));
    }
    const resumed = execution.task_runs.filter((run) => run.outputs?.resumed);
    // Rebuild only on change: moving a form out and back in would take the focus (and
    // the caret) from someone typing in it.
    const signature = JSON.stringify([open.map((point) => point.id), resumed.map((run) => run.id)]);
    if (signature === pauseSignature) return;
    pauseSignature = signature;
    const focused = document.activeElement;
    resumedList.replaceChildren(...resumed.map((run) => h("li", { class: "resumed-entry" },
      h("strong", {}, run.task_id), ` resumed by ${run.outputs.resumed.by} `,
      timeElement(run.outputs.resumed.on),
      run.outputs.onResume && Object.keys(run.outputs.onResume).length
        ? h("pre", { class: "json" }, json(run.outputs.onResume)) : null)));
    const sections = [];
    if (open.length) {
      const decisions = open.every((entry) => entry.point.kind === "decision");
      sections.push(h("h2", { id: "pause-title" }, decisions
        ? open.length > 1 ? `Waiting for ${open.length} decisions` : "Waiting for a decision"
        : open.length > 1 ? `Waiting at ${open.length} pause points` : "Waiting at a pause point"));
      sections.push(...open.map((entry) => pauseForms.get(entry.id).element));
    }
    if (resumed.length) {
      sections.push(h("h2", { id: open.length ? "resumed-title" : "pause-title" }, "Resumed"),
        h("div", { class: "card" }, resumedList));
    }
    pauseSection.replaceChildren(...sections);
    if (focused instanceof HTMLElement && pauseSection.contains(focused)) focused.focus();
  }

  function standingOf(point, owner) {
    return standings.get(`${owner?.execution_id ?? execution.id}:${point.id}`) ?? null;
  }

  /** The card of one open pause point: of this execution, or of ``owner`` below it. */
  function buildPauseForm(point, owner = null) {
    if (point.kind === "decision") return buildReviewCard(point, owner);
    const own = point.kind === "approval" ? `Approve a call of the tool ${point.task_id}`
      : point.kind === "queue" ? "Queued: waiting for a free slot"
      : point.kind === "subflow" ? `Subflow task ${point.task_id} waits for its execution`
      : point.task_id ? `Pause task ${point.task_id}` : "Paused by request";
    const title = owner ? `${own} in subflow ${owner.namespace}.${owner.flow_id}` : own;
    const target = owner ? executionPath(owner.execution_id) : path;
    const headingId = `pause-${owner ? owner.execution_id + "-" : ""}${point.id}-title`;
    const details = h("p", { class: "muted" },
      "Opened ", timeElement(point.opened_at),
      point.by ? ` by ${point.by}` : "",
      point.reason ? ` — ${point.reason}` : "",
      point.deadline ? [" · resumes on its own at ", timeElement(point.deadline)] : "");
    const element = h("section", { class: "card pause-point", "aria-labelledby": headingId,
      dataset: { pauseId: point.id, executionId: owner?.execution_id ?? execution.id } },
      h("h3", { id: headingId }, title), details);
    if (owner) {
      details.append(" · ", h("a", { href: `#${target}`, class: "mono" }, owner.execution_id));
    }
    if (point.kind === "queue") {
      element.append(h("p", { class: "muted" },
        "It starts by itself when the flow's concurrency limit frees a slot."));
      return { element };
    }
    if (point.kind === "subflow") {
      element.append(h("p", { class: "muted" }, "It goes on when execution ",
        h("a", { href: `#${executionPath(point.child_execution_id)}`, class: "mono" },
          point.child_execution_id), " ends."));
      return { element };
    }
    if (!session.canControl) {
      element.append(h("p", { class: "muted" }, "An operator can resume it."));
      return { element };
    }
    const fields = schemaFields(point.on_resume_schema,
      { idPrefix: `resume-${owner ? owner.execution_id + "-" : ""}${point.id}` });
    const problem = h("p", { class: "error", role: "alert", hidden: true });
    const form = h("form", { novalidate: true, "aria-label": `Resume ${title}` },
      fields.element, problem,
      h("div", { class: "toolbar" }, h("button", { type: "submit" }, "Resume")));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      problem.hidden = true;
      fields.clearErrors();
      const submit = form.querySelector("button[type=submit]");
      submit.disabled = true;
      try {
        const inputs = fields.values();
        const body = { inputs, pause_id: point.id };
        await api(`${target}/resume/validate`, { method: "POST", body });
        await api(`${target}/resume`, { method: "POST", body });
        announce(`Resumed ${title}.`);
        await refresh();
      } catch (error) {
        const leftover = fields.report(error);
        problem.textContent = leftover ?? "";
        problem.hidden = !leftover;
      } finally {
        submit.disabled = false;
      }
    });
    element.append(form);
    return { element };
  }

  /** An approval task's open request: its votes, and the review form when one may vote. */
  function buildReviewCard(point, owner) {
    const note = owner ? h("p", { class: "muted" },
      `In subflow ${owner.namespace}.${owner.flow_id}, execution `,
      h("a", { href: `#${executionPath(owner.execution_id)}`, class: "mono" },
        owner.execution_id)) : null;
    return reviewCard({
      executionId: owner?.execution_id ?? execution.id,
      point,
      me: standingOf(point, owner),
      note,
      onVoted: async () => {
        approvalsChanged();
        await refresh();
      },
    });
  }

  function renderTree() {
    const children = new Map();
    for (const run of execution.task_runs) {
      const key = run.parent ?? "";
      if (!children.has(key)) children.set(key, []);
      children.get(key).push(run);
    }
    const build = (parent) => (children.get(parent) ?? []).map((run) => {
      const nested = children.has(run.id) ? h("ul", {}, build(run.id)) : null;
      const hasOutputs = run.outputs && Object.keys(run.outputs).length;
      return h("li", { dataset: { runId: run.id, taskId: run.task_id, state: run.state } },
        h("div", { class: "run" },
          badge(run.state),
          h("span", { class: "task-id" }, run.task_id),
          h("span", { class: "muted" }, run.type),
          h("span", { class: run.attempt > 1 ? "retried" : "muted" }, `attempt ${run.attempt}`),
          h("span", { class: "muted" }, formatDuration(elapsed(run.started_at, run.ended_at))),
          run.outputs?.resumed ? h("span", { class: "resumed" },
            `Resumed by ${run.outputs.resumed.by} at `, timeElement(run.outputs.resumed.on)) : null,
          run.error ? h("span", { class: "error" }, run.error) : null,
          hasOutputs || run.value !== null ? h("details", {},
            h("summary", {}, "Outputs"),
            h("pre", { class: "json" }, json(hasOutputs ? run.outputs : run.value))) : null),
        nested);
    });
    // Outputs someone opened stay open, and the focus stays on the same task run.
    const openDetails = new Set([...tree.querySelectorAll("li[data-run-id] > .run > details[open]")]
      .map((details) => details.closest("li").dataset.runId));
    const focusedRun = tree.contains(document.activeElement)
      ? document.activeElement.closest("li[data-run-id]")?.dataset.runId : null;
    tree.replaceChildren(...build(""));
    for (const li of tree.querySelectorAll("li[data-run-id]")) {
      const details = li.querySelector(":scope > .run > details");
      if (openDetails.has(li.dataset.runId)) details?.setAttribute("open", "");
      if (li.dataset.runId === focusedRun) details?.querySelector("summary").focus();
    }
    if (!execution.task_runs.length) {
      tree.append(h("li", { class: "muted" }, "No task has started yet."));
    }
    const hasOutputs = Object.keys(execution.outputs ?? {}).length > 0;
    fill(outcome, hasOutputs && [
      h("h3", {}, "Execution outputs"), h("pre", { class: "json" }, json(execution.outputs))]);
  }

  function renderContext() {
    messages.replaceChildren(...execution.context.map((message) => h("li", {},
      h("div", { class: "who" }, `${message.role} · ${message.by} · `, timeElement(message.at)),
      h("div", { class: "text" }, message.message))));
    if (!execution.context.length) messages.append(h("li", { class: "muted" }, "No messages."));
  }

  function addEvent(event) {
    const data = event.data;
    if (!data || seenEvents.has(data.seq)) return;
    seenEvents.add(data.seq);
    const summary = Object.entries(data.data ?? {})
      .filter(([key, value]) => key !== "logs" && value !== null)
      .map(([key, value]) => `${key}=${typeof value === "string" ? value : JSON.stringify(value)}`)
      .join(" ");
    const logs = (data.data?.logs ?? []).map((log) => `${log.level}: ${log.message}`).join("\n");
    const atBottom = events.scrollTop + events.clientHeight >= events.scrollHeight - 8;
    events.append(h("li", { dataset: { type: data.type } },
      h("span", { class: "seq" }, data.seq),
      timeElement(data.at),
      h("span", { class: "type" }, data.type),
      summary || logs
        ? h("span", { class: "data" }, [summary, logs].filter(Boolean).join(" · ")) : null));
    if (atBottom) events.scrollTop = events.scrollHeight;
  }

  let latestRefresh = 0;

  async function refresh() {
    const thisRefresh = ++latestRefresh;
    try {
      const fresh = await api(path, { signal: session.signal });
      const freshStandings = await standingsFor(fresh);
      if (thisRefresh !== latestRefresh) return; // a newer answer is on its way
      execution = fresh;
      standings = freshStandings;
      render();
      followTree();
    } catch (error) {
      if (error.name !== "AbortError") showNotice(error.message);
    }
  }

  const refreshSoon = debounce(refresh, 100);

  // A tree: what moves below this execution shows here live too. Its own stream says
  // nothing of its subflows, so once it has some, the organization's stream is followed
  // and its descendants' events (children, what still moves, what waits) refresh the page.
  const refreshTree = debounce(refresh, 500);
  let followingTree = false;
  const below = () => new Set([
    ...(execution.children ?? []).map((child) => child.id),
    ...(execution.busy_descendants ?? []),
    ...(execution.descendant_pause_points ?? []).map((point) => point.execution_id),
  ]);
  function followTree() {
    if (followingTree || !execution.children?.length) return;
    followingTree = true;
    follow("/events", {
      signal: session.signal,
      onEvent: (event) => { if (below().has(event.data?.execution_id)) refreshTree(); },
      onOpen: refreshTree,
    });
  }

  async function standingsFor(shown) {
    const own = shown.pause_points.some((point) => point.kind === "decision")
      ? [{ execution_id: shown.id, namespace: shown.namespace, flow_id: shown.flow_id }] : [];
    const below = (shown.descendant_pause_points ?? [])
      .filter((entry) => entry.pause_point.kind === "decision");
    const open = [...own, ...below];
    return open.length ? standingsOf(open, session.signal) : new Map();
  }

  render();
  followTree();
  const ticker = setInterval(() => {
    if (!execution.ended_at) renderMeta();
  }, 1000);
  session.signal.addEventListener("abort", () => clearInterval(ticker));
  follow(`${path}/events`, {
    signal: session.signal,
    onEvent: (event) => { addEvent(event); refreshSoon(); },
    onOpen: refreshSoon,
  });
}
