// Entry point: sign-in, the session, and the hash router that swaps views.

import { api, forgetKey, setUnauthorizedHandler, storedKey, storeKey } from "./api.js";
import { fill, h } from "./dom.js";
import { clearNotice, showNotice } from "./ui.js";
import { renderApprovalRequest, renderApprovals } from "./views/approvals.js";
import { renderExecutionList } from "./views/executions.js";
import { renderExecution } from "./views/execution.js";
import { renderFlow, renderFlowList } from "./views/flows.js";
import { watchWaitingCount } from "./waiting.js";

const ROUTES = [
  [/^\/executions\/([^/]+)$/, (view, match, params, session) =>
    renderExecution(view, decodeURIComponent(match[1]), session)],
  [/^\/executions$/, (view, match, params, session) => renderExecutionList(view, params, session)],
  [/^\/flows\/([^/]+)\/([^/]+)$/, (view, match, params, session) =>
    renderFlow(view, decodeURIComponent(match[1]), decodeURIComponent(match[2]), session)],
  [/^\/flows$/, (view, match, params, session) => renderFlowList(view, session)],
  [/^\/approvals\/([^/]+)\/([^/]+)$/, (view, match, params, session) =>
    renderApprovalRequest(view, decodeURIComponent(match[1]), decodeURIComponent(match[2]),
      session)],
  [/^\/approvals$/, (view, match, params, session) => renderApprovals(view, params, session)],
];

let session = null;
let leaveView = () => {};
// The header's count of requests waiting for me lives as long as the session.
let countWatch = new AbortController();

/** The session: who is signed in, and what the role allows. */
function makeSession(me) {
  return {
    ...me,
    canControl: me.role === "operator" || me.role === "admin",
    navigate(hash) { location.hash = hash; },
  };
}

async function start() {
  setUnauthorizedHandler(() => signOut("Your API key was not accepted any more. Sign in again."));
  document.getElementById("sign-out").addEventListener("click", () => signOut());
  const key = takeKeyFromLink() ?? storedKey();
  if (key && await signIn(key)) return;
  showSignIn();
}

/** The key of a sign-in link (`#key=…`), removed from the address bar; null without one. */
function takeKeyFromLink() {
  const fromLink = /^#key=([^&]+)/.exec(location.hash);
  if (!fromLink) return null;
  // The key must not stay in the address bar, the history or a bookmark.
  history.replaceState(null, "", `${location.pathname}${location.search}#/executions`);
  return decodeURIComponent(fromLink[1]);
}

async function signIn(key) {
  let me;
  try {
    me = await api("/me", { key });
  } catch (error) {
    forgetKey();
    showSignIn(error.status === 401
      ? "That API key was not accepted. Check it and try again."
      : error.message);
    return false;
  }
  storeKey(key);
  session = makeSession(me);
  document.getElementById("identity-text").textContent = `${me.org} · ${me.role}`;
  document.getElementById("identity").hidden = false;
  document.getElementById("main-nav").hidden = false;
  countWatch.abort();
  countWatch = new AbortController();
  watchWaitingCount(document.getElementById("approvals-count"), countWatch.signal);
  window.addEventListener("hashchange", route);
  if (!location.hash.startsWith("#/")) history.replaceState(null, "", "#/executions");
  await route();
  return true;
}

function signOut(message) {
  forgetKey();
  session = null;
  leaveView();
  leaveView = () => {};
  countWatch.abort();
  window.removeEventListener("hashchange", route);
  document.getElementById("identity").hidden = true;
  document.getElementById("main-nav").hidden = true;
  history.replaceState(null, "", location.pathname);
  showSignIn(message);
}

function showSignIn(message) {
  clearNotice();
  const view = document.getElementById("view");
  const input = h("input", {
    id: "api-key", name: "api-key", type: "password", autocomplete: "current-password",
    required: true, "aria-describedby": "api-key-hint",
  });
  const form = h("form", { class: "card signin", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title" }, "Sign in"),
    h("div", { class: "field" },
      h("label", { for: "api-key" }, "API key"),
      h("p", { class: "hint", id: "api-key-hint" },
        "The key printed when the server first started (or one from ",
        h("code", {}, "pausepoint keys create"), "). It is kept for this browser tab only."),
      input),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Sign in")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = input.value.trim();
    if (!key) {
      showNotice("Enter an API key to sign in.");
      input.focus();
      return;
    }
    clearNotice();
    await signIn(key);
  });
  fill(view, form);
  if (message) showNotice(message);
  input.focus();
}

async function route(event) {
  if (!session) return;
  const linkKey = takeKeyFromLink();
  if (linkKey) {
    await signIn(linkKey);
    return;
  }
  const moved = event instanceof HashChangeEvent;
  const [path, query = ""] = location.hash.slice(1).split("?");
  const params = new URLSearchParams(query);
  leaveView();
  leaveView = () => {};
  clearNotice();
  const view = document.getElementById("view");
  for (const link of document.querySelectorAll("[data-nav]")) {
    const current = path.startsWith(`/${link.dataset.nav}`);
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  for (const [pattern, render] of ROUTES) {
    const match = pattern.exec(path);
    if (match) {
      const controller = new AbortController();
      leaveView = () => controller.abort();
      fill(view, h("p", { class: "muted" }, "Loading…"));
      try {
        await render(view, match, params, { ...session, signal: controller.signal });
        // After a navigation, start keyboard and screen-reader users at the new page.
        const heading = view.querySelector("h1");
        if (moved && heading) {
          heading.tabIndex = -1;
          heading.focus({ preventScroll: true });
        }
      } catch (error) {
        if (error.name !== "AbortError") {
          fill(view, h("h1", {}, "Something went wrong"), h("p", {}, error.message));
        }
      }
      return;
    }
  }
  fill(view, h("h1", {}, "Page not found"),
    h("p", {}, h("a", { href: "#/executions" }, "Go to the executions")));
}

start();
