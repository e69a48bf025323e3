// Flows: the list, and one flow's YAML (highlighted) with a form to start an execution.

import { api, flowPath } from "../api.js";
import { fill, h, timeElement } from "../dom.js";
import { schemaFields } from "../schemaform.js";
import { announce } from "../ui.js";
import { highlightYaml } from "../yaml.js";

export async function renderFlowList(view, session) {
  const flows = await api("/flows", { signal: session.signal });
  fill(view,
    h("h1", {}, "Flows"),
    h("section", { class: "card" },
      flows.length
        ? h("div", { class: "table-wrap" }, h("table", { id: "flows" },
          h("thead", {}, h("tr", {},
            h("th", { scope: "col" }, "Flow"),
            h("th", { scope: "col" }, "Namespace"),
            h("th", { scope: "col" }, "Revision"),
            h("th", { scope: "col", class: "hide-narrow" }, "Updated"))),
          h("tbody", {}, flows.map((flow) => h("tr", {},
            h("td", {}, h("a", { href: `#${flowPath(flow.namespace, flow.id)}` }, flow.id)),
            h("td", {}, flow.namespace),
            h("td", {}, flow.revision),
            h("td", { class: "hide-narrow" }, timeElement(flow.created_at)))))))
        : h("p", { class: "muted" },
          "No flows yet. Load some with ", h("code", {}, "pausepoint server --flows DIR"), ".")));
}

export async function renderFlow(view, namespace, flowId, session) {
  const flow = await api(flowPath(namespace, flowId), { signal: session.signal });
  const triggers = await api(`${flowPath(namespace, flowId)}/triggers`, { signal: session.signal });
  fill(view,
    h("p", {}, h("a", { href: "#/flows" }, "← All flows")),
    h("h1", {}, flow.id, " ",
      h("span", { class: "muted" }, `(${flow.namespace}, revision ${flow.revision})`)),
    flow.description ? h("p", {}, flow.description) : null,
    h("div", { class: "grid-2" },
      h("section", { class: "card", "aria-labelledby": "source-title" },
        h("h2", { id: "source-title" }, "Source"), highlightYaml(flow.source)),
      h("section", { class: "card", "aria-labelledby": "start-title" },
        h("h2", { id: "start-title" }, "Start an execution"),
        session.canControl ? startForm(flow, session)
          : h("p", { class: "muted" }, "Your role can read flows; an operator can start them."))),
    triggers.length ? triggerSection(flow, triggers, session) : null);
}

// Kestra's trigger toggle: pause a trigger, or resume it with or without the missed ticks.
function triggerSection(flow, triggers, session) {
  const base = `${flowPath(flow.namespace, flow.id)}/triggers`;
  const body = h("tbody");
  const problem = h("p", { class: "error", role: "alert", hidden: true });

  function row(trigger) {
    const state = trigger.paused ? "Paused" : trigger.disabled ? "Disabled" : "Active";
    const actions = h("td");
    if (session.canControl && !trigger.disabled) {
      const act = async (action, payload) => {
        problem.hidden = true;
        try {
          const updated = await api(`${base}/${encodeURIComponent(trigger.trigger_id)}/${action}`,
            { method: "POST", body: payload });
          current.replaceWith(row(updated));
          announce(`Trigger ${trigger.trigger_id} ${updated.paused ? "paused" : "resumed"}.`);
        } catch (error) {
          problem.textContent = error.message;
          problem.hidden = false;
        }
      };
      if (trigger.paused) {
        actions.append(
          h("button", { type: "button", "data-action": "resume-queue",
            onclick: () => act("resume", { catchUp: "QUEUE" }) }, "Resume, run missed"),
          " ",
          h("button", { type: "button", class: "secondary", "data-action": "resume-drop",
            onclick: () => act("resume", { catchUp: "DROP" }) }, "Resume, skip missed"));
      } else {
        actions.append(h("button", { type: "button", "data-action": "pause",
          onclick: () => act("pause", {}) }, "Pause"));
      }
    }
    const current = h("tr", { dataset: { trigger: trigger.trigger_id } },
      h("td", {}, trigger.trigger_id),
      h("td", {}, trigger.type),
      h("td", { class: "trigger-state" }, state),
      h("td", { class: "hide-narrow" }, trigger.next_fire ? timeElement(trigger.next_fire) : ""),
      h("td", { class: "hide-narrow" },
        trigger.last_fired_at ? timeElement(trigger.last_fired_at) : ""),
      actions);
    return current;
  }

  body.append(...triggers.map(row));
  return h("section", { class: "card", "aria-labelledby": "triggers-title" },
    h("h2", { id: "triggers-title" }, "Triggers"),
    h("div", { class: "table-wrap" }, h("table", { id: "triggers" },
      h("thead", {}, h("tr", {},
        h("th", { scope: "col" }, "Trigger"),
        h("th", { scope: "col" }, "Type"),
        h("th", { scope: "col" }, "State"),
        h("th", { scope: "col", class: "hide-narrow" }, "Next"),
        h("th", { scope: "col", class: "hide-narrow" }, "Last fired"),
        h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Actions")))),
      body)),
    problem);
}

function startForm(flow, session) {
  const fields = schemaFields(flow.inputs_schema, { idPrefix: "input" });
  const labels = h("input", {
    id: "start-labels", name: "labels", placeholder: "team=hr, priority=high",
    "aria-describedby": "start-labels-hint start-labels-error",
  });
  const labelError = h("p", { class: "error", id: "start-labels-error", hidden: true });
  const problem = h("p", { class: "error", role: "alert", hidden: true });
  const form = h("form", { id: "start-form", novalidate: true, "aria-labelledby": "start-title" },
    fields.element,
    h("div", { class: "field" },
      h("label", { for: "start-labels" }, "Labels (optional)"),
      h("p", { class: "hint", id: "start-labels-hint" }, "key=value pairs, separated by commas."),
      labels, labelError),
    problem,
    h("button", { type: "submit" }, "Start execution"));

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    problem.hidden = true;
    labelError.hidden = true;
    fields.clearErrors();
    try {
      const body = {
        namespace: flow.namespace, flow_id: flow.id,
        inputs: fields.values(), labels: parseLabels(labels.value),
      };
      const started = await api("/executions", { method: "POST", body });
      announce(`Started execution ${started.id}.`);
      session.navigate(`#/executions/${encodeURIComponent(started.id)}`);
    } catch (error) {
      if (error instanceof LabelError) {
        labelError.textContent = error.message;
        labelError.hidden = false;
        labels.focus();
        return;
      }
      const leftover = fields.report(error);
      problem.textContent = leftover ?? "";
      problem.hidden = !leftover;
    }
  });
  return form;
}

class LabelError extends Error {}

function parseLabels(text) {
  const labels = {};
  for (const pair of text.split(",").map((part) => part.trim()).filter(Boolean)) {
    const at = pair.indexOf("=");
    if (at <= 0) throw new LabelError(`"${pair}" must look like key=value.`);
    labels[pair.slice(0, at).trim()] = pair.slice(at + 1).trim();
  }
  return labels;
}
