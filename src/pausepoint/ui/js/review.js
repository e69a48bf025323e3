// An approval request as its reviewers see it: the rules, the votes so far, who may not
// approve and why, and the review form. The inbox's request page and the execution page
// show the same card; the server alone decides what a vote may be (its 422 names the
// field, its 403 and 409 say why), and the card shows that answer where it belongs.

import { api, executionPath } from "./api.js";
import { h, json, timeElement } from "./dom.js";
import { schemaFields } from "./schemaform.js";
import { announce } from "./ui.js";

const DECISIONS = ["approve", "deny"];

/** The request's name: its title, or its task's id when the flow gave none. */
export function requestTitle(request, taskId) {
  return request.title || `Approval ${taskId}`;
}

/** The votes against the quorum: "1 of 2 approvals", per group "finance 1 of 2", denials. */
export function voteCount(request) {
  const approvals = request.votes.filter((vote) => vote.decision === "approve");
  const denials = request.votes.length - approvals.length;
  const quorum = request.quorum;
  const parts = typeof quorum === "number"
    ? [`${approvals.length} of ${quorum} approval${quorum === 1 ? "" : "s"}`]
    : Object.entries(quorum).map(([group, needed]) =>
      `${group} ${approvals.filter((vote) => vote.groups.includes(group)).length} of ${needed}`);
  if (denials) parts.push(`${denials} denial${denials === 1 ? "" : "s"}`);
  return parts.join(" · ");
}

/** What the caller may do with a request (the inbox's `me`), in words. */
export function standingText(me) {
  if (!me) return "";
  if (me.voted) return `You voted ${me.voted}.`;
  if (me.may_approve && me.may_deny) return "You may approve or deny it.";
  if (me.may_deny) return `You may not approve it (${me.why_not}); you may deny it.`;
  return `You may not decide it: ${me.why_not}.`;
}

/** Whether `commentRequired` asks for a comment with `decision`. */
export function commentNeeded(commentRequired, decision) {
  return commentRequired === "ALWAYS"
    || (commentRequired === "ON_DENY" && decision === "deny")
    || (commentRequired === "ON_APPROVE" && decision === "approve");
}

/** Why the server refused a vote, in one sentence (for a message, not a field). */
export function refusalText(error, decision) {
  const detail = typeof error.body?.detail === "string" ? error.body.detail : null;
  if (error.status === 403 && detail) return `You may not ${decision} it: ${detail}.`;
  if (error.status === 409 && detail) return `Not counted: ${detail}.`;
  if (error.status === 422 && typeof error.body?.message === "string") return error.body.message;
  return error.message;
}

/** Send one vote; resolves with the control result, rejects with the ApiError. */
export function sendVote(executionId, pauseId, decision, { comment = null, inputs = {} } = {}) {
  return api(`${executionPath(executionId)}/review`, {
    method: "POST", body: { decision, comment, inputs, pause_id: pauseId },
  });
}

/**
 * What the caller may do with the open requests of `executions` (each {execution_id,
 * namespace, flow_id}): a Map from "execution_id:pause_id" to the inbox's `me`.
 */
export async function standingsOf(executions, signal) {
  const flows = new Map();
  for (const { namespace, flow_id: flowId } of executions) {
    flows.set(JSON.stringify([namespace, flowId]), { namespace, flowId });
  }
  const wanted = new Set(executions.map((entry) => entry.execution_id));
  const standings = new Map();
  for (const { namespace, flowId } of flows.values()) {
    const query = new URLSearchParams({
      assigned: "anyone", namespace, flow_id: flowId, limit: "500",
    });
    const page = await api(`/approvals?${query}`, { signal });
    for (const item of page.items) {
      if (wanted.has(item.execution_id)) {
        standings.set(`${item.execution_id}:${item.pause_id}`, item.me);
      }
    }
  }
  return standings;
}

function listOrNone(values) {
  return values.length ? values.join(", ") : null;
}

function rulesOf(request) {
  const { users, groups, roles } = request.approvers;
  const who = [
    listOrNone(users) && `users ${listOrNone(users)}`,
    listOrNone(groups) && `groups ${listOrNone(groups)}`,
    listOrNone(roles) && `roles ${listOrNone(roles)}`,
  ].filter(Boolean).join("; ") || "anyone who may control the execution";
  const quorum = request.quorum;
  const needed = typeof quorum === "number"
    ? `${quorum} approval${quorum === 1 ? "" : "s"}`
    : Object.entries(quorum).map(([group, count]) => `${count} from ${group}`).join(", ");
  const deny = request.deny_policy === "ANY"
    ? "one deny denies it"
    : "denied when the denials outnumber half the approvals needed";
  return h("dl", { class: "meta rules" },
    h("dt", {}, "Who decides"), h("dd", {}, who),
    h("dt", {}, "Needed"), h("dd", {}, needed, ` (${deny})`),
    h("dt", {}, "Separation of duties"), h("dd", {}, request.separation_of_duties ? "on" : "off"));
}

/**
 * The card of one open approval request of execution `executionId`.
 *
 * `point` is its pause point (kind "decision"), `me` what the caller may do (null when
 * unknown: the form is offered and the server answers). `onVoted(decision)` runs after
 * a vote was accepted. Returns {element, update(point, me)}: an update redraws the
 * votes and the caller's standing and never touches what is typed in the form.
 */
export function reviewCard({ executionId, point, me = null, note = null, headingLevel = 3,
  heading: headingText = null, onVoted = async () => {} }) {
  const decisions = point.approval.decisions;
  const idPrefix = `review-${executionId}-${point.id}`.replace(/[^A-Za-z0-9_-]/g, "_");
  const headingId = `${idPrefix}-title`;
  const heading = h(`h${headingLevel}`, { id: headingId });
  const opened = h("p", { class: "muted" });
  const rules = h("div");
  const votes = h("div", { class: "votes" });
  const excluded = h("div", { class: "excluded" });
  const standing = h("p", { class: "standing", id: `${idPrefix}-standing` });
  const form = reviewForm();
  const element = h("section", {
    class: "card pause-point review", "aria-labelledby": headingId,
    dataset: { pauseId: point.id, executionId },
  }, heading, opened, note, rules, votes, excluded, standing, form.element);
  let voted = null;

  function update(fresh, freshMe) {
    point = fresh;
    me = freshMe ?? me;
    const request = point.approval;
    heading.textContent = headingText ?? requestTitle(request, point.task_id);
    opened.replaceChildren(`Approval task ${point.task_id} · opened `, timeElement(point.opened_at),
      point.deadline ? [" · due ", timeElement(point.deadline)] : "");
    rules.replaceChildren(rulesOf(request));
    votes.replaceChildren(
      h(`h${headingLevel + 1}`, {}, "Votes ", h("span", { class: "muted vote-count" },
        `(${voteCount(request)})`)),
      request.votes.length
        ? h("ul", { class: "vote-list" }, request.votes.map((vote) => h("li", {
          dataset: { by: vote.by, decision: vote.decision },
        },
        h("strong", {}, vote.by), " ",
        h("span", { class: `vote vote-${vote.decision}` }, decisions[vote.decision] ?? vote.decision),
        " ", timeElement(vote.on),
        vote.groups.length ? h("span", { class: "muted" }, ` for ${vote.groups.join(", ")}`) : null,
        vote.comment ? h("div", { class: "comment" }, vote.comment) : null,
        vote.inputs && Object.keys(vote.inputs).length
          ? h("pre", { class: "json" }, json(vote.inputs)) : null)))
        : h("p", { class: "muted" }, "No votes yet."));
    const shut = Object.entries(request.excluded);
    excluded.replaceChildren(...(request.separation_of_duties && shut.length ? [
      h(`h${headingLevel + 1}`, {}, "May not approve"),
      h("ul", { class: "excluded-list" }, shut.map(([user, why]) =>
        h("li", { dataset: { user } }, h("strong", {}, user), ` — ${why}`))),
    ] : []));
    const mine = voted ? { ...me, voted } : me;
    standing.textContent = standingText(mine);
    standing.hidden = !mine;
    form.allow(mine);
  }

  function reviewForm() {
    const fields = schemaFields(point.on_resume_schema, { idPrefix: `${idPrefix}-input` });
    const hasInputs = fields.fields.length > 0;
    const commentId = `${idPrefix}-comment`;
    const rule = point.approval.comment_required;
    const commentHint = h("p", { class: "hint", id: `${commentId}-hint` },
      "Recorded with your vote, for everyone who reads the execution.");
    const commentError = h("p", { class: "error", id: `${commentId}-error`, hidden: true });
    const comment = h("textarea", {
      id: commentId, name: "comment", rows: 3, maxlength: 5000,
      "aria-describedby": `${commentId}-hint ${commentId}-error`,
      "aria-required": rule === "ALWAYS" ? "true" : null,
    });
    const commentLabel = rule === "NEVER" ? "Comment (optional)"
      : rule === "ALWAYS" ? "Comment (required)"
        : `Comment (required to ${decisions[rule === "ON_DENY" ? "deny" : "approve"]})`;
    const problem = h("p", { class: "error", role: "alert", hidden: true });
    const buttons = Object.fromEntries(DECISIONS.map((decision) => {
      const button = h("button", {
        type: "button", class: decision === "deny" ? "danger" : null,
        dataset: { decision }, onclick: () => vote(decision),
      }, decisions[decision]);
      // The comment is marked required for the decision about to be chosen.
      const mark = () => {
        if (commentNeeded(rule, decision)) comment.setAttribute("aria-required", "true");
        else comment.removeAttribute("aria-required");
      };
      button.addEventListener("focus", mark);
      button.addEventListener("pointerenter", mark);
      return [decision, button];
    }));
    const element = h("form", {
      class: "review-form", novalidate: true,
      "aria-label": `Review ${requestTitle(point.approval, point.task_id)}`,
      onsubmit: (event) => event.preventDefault(), // a stray Enter must not decide anything
    },
    hasInputs ? fields.element : null,
    hasInputs && point.on_resume_schema?.required?.length
      ? h("p", { class: "hint" }, `Required inputs are needed to ${decisions.approve}; `
        + `${decisions.deny} may leave them empty.`) : null,
    h("div", { class: "field" },
      h("label", { for: commentId }, commentLabel), commentHint, comment, commentError),
    problem,
    h("div", { class: "toolbar" }, Object.values(buttons)));

    function setCommentError(message) {
      commentError.hidden = !message;
      commentError.textContent = message ?? "";
      if (message) comment.setAttribute("aria-invalid", "true");
      else comment.removeAttribute("aria-invalid");
    }

    function clear() {
      problem.hidden = true;
      problem.textContent = "";
      fields.clearErrors();
      setCommentError(null);
    }

    /** Each problem at its field (422 loc), the rest as one message. */
    function show(error, decision) {
      const fieldErrors = error.fieldErrors ?? [];
      const inputErrors = fieldErrors.filter((e) => e.path[0] === "inputs" && e.path.length > 1)
        .map((e) => ({ ...e, path: e.path.slice(1).flatMap((part) => part.split(".")) }));
      const commentErrors = fieldErrors.filter((e) => e.path[0] === "comment");
      const others = fieldErrors.filter((e) => e.path[0] !== "comment"
        && !(e.path[0] === "inputs" && e.path.length > 1));
      const unplaced = [...fields.showErrors(inputErrors), ...others];
      if (commentErrors.length) {
        setCommentError(commentErrors.map((e) => e.message).join("; "));
        if (!fields.fields.some((field) => field.hasError())) comment.focus();
      }
      const words = !fieldErrors.length ? refusalText(error, decision)
        : unplaced.map((e) => `${e.path.join(".") || "review"}: ${e.message}`).join("; ");
      problem.textContent = words;
      problem.hidden = !words;
    }

    async function vote(decision) {
      clear();
      let inputs;
      try {
        inputs = fields.values();
      } catch (error) {
        problem.textContent = fields.report(error) ?? "";
        problem.hidden = !problem.textContent;
        return;
      }
      const text = comment.value.trim();
      for (const button of Object.values(buttons)) button.disabled = true;
      try {
        await sendVote(executionId, point.id, decision, { comment: text || null, inputs });
        voted = decision;
        announce(`Your vote (${decisions[decision]}) was recorded.`);
        update(point, me);
        await onVoted(decision);
      } catch (error) {
        if (error.name === "AbortError") return;
        show(error, decision);
      } finally {
        allow(voted ? { ...me, voted } : me);
      }
    }

    /** Offer only what `mine` allows (everything while unknown). */
    function allow(mine) {
      element.hidden = Boolean(mine && (mine.voted || !(mine.may_approve || mine.may_deny)));
      buttons.approve.disabled = Boolean(mine && !mine.may_approve);
      buttons.deny.disabled = Boolean(mine && !mine.may_deny);
      buttons.approve.title = mine && !mine.may_approve && mine.why_not
        ? `You may not approve it: ${mine.why_not}` : "";
    }

    return { element, allow };
  }

  update(point, me);
  return { element, update };
}
