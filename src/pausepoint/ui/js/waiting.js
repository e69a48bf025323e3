// The count of open approval requests waiting for the signed-in person, in the header.
// It follows the organization's event feed, and the inbox listens here instead of
// opening a second stream: a browser keeps few connections per server.

import { api } from "./api.js";
import { debounce } from "./dom.js";
import { follow } from "./sse.js";

// What may change the set of open requests: one opened, a vote, a decision (or an
// expiry), and an execution ending (its open request ends with it).
const CHANGES = new Set(["approval.voted", "approval.decided"]);
// A safety net, not the mechanism: the feed carries only what happens while connected.
const POLL_MS = 60_000;

const listeners = new Set();
let changed = () => {};

function concernsApprovals(event) {
  if (CHANGES.has(event.type) || event.terminal) return true;
  return event.type === "task.paused" && event.data?.data?.kind === "decision";
}

/** Keep `badge` showing how many open requests the caller may decide, until `signal`. */
export function watchWaitingCount(badge, signal) {
  async function load() {
    try {
      const page = await api("/approvals?assigned=me&limit=1", { signal });
      badge.textContent = String(page.total);
      badge.toggleAttribute("data-zero", page.total === 0);
      badge.hidden = false;
      badge.closest("a")?.setAttribute("aria-label", `Waiting for me: ${page.total} open `
        + `approval request${page.total === 1 ? "" : "s"}`);
    } catch (error) {
      if (error.name !== "AbortError") badge.hidden = true;
    }
  }
  changed = debounce(() => {
    if (signal.aborted) return;
    load();
    for (const listener of listeners) listener();
  }, 200);
  follow("/events", {
    signal,
    onEvent: (event) => { if (concernsApprovals(event)) changed(); },
    onOpen: () => changed(),
  });
  load();
  const timer = setInterval(load, POLL_MS);
  signal.addEventListener("abort", () => {
    clearInterval(timer);
    changed = () => {};
    badge.hidden = true; // the next person to sign in sees their own count, not this one
  });
}

/** Say that the open requests changed (e.g. after this page's own vote). */
export function approvalsChanged() {
  changed();
}

/** Call `listener` whenever the open requests may have changed, until `signal` aborts. */
export function onApprovalsChange(listener, signal) {
  listeners.add(listener);
  signal.addEventListener("abort", () => listeners.delete(listener));
}
