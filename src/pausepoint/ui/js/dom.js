// Small DOM and formatting helpers shared by every view.

/**
 * Create an element: h("a", {href: "#/"}, "text", child).
 * Attributes starting with "on" become listeners; `null`/`false` values are skipped.
 */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2).toLowerCase(), value);
    } else if (name === "dataset") {
      Object.assign(element.dataset, value);
    } else if (value === true) {
      element.setAttribute(name, "");
    } else {
      element.setAttribute(name, String(value));
    }
  }
  append(element, children);
  return element;
}

/** Replace an element's children (skipping null/false, like h()). */
export function fill(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
}

export const TERMINAL_STATES = new Set([
  "COMPLETED", "WARNING", "FAILED", "CANCELLED", "TERMINATED", "TIMED_OUT",
]);

export const EXECUTION_STATES = [
  "QUEUED", "RUNNING", "PAUSING", "PAUSED", "CANCELLING",
  ...TERMINAL_STATES,
];

export function badge(state) {
  return h("span", { class: `badge s-${state}` }, state);
}

export function formatTime(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  const sameDay = date.toDateString() === new Date().toDateString();
  return sameDay
    ? date.toLocaleTimeString()
    : `${date.toLocaleDateString()} ${date.toLocaleTimeString()}`;
}

export function timeElement(iso) {
  return iso ? h("time", { datetime: iso, title: iso }, formatTime(iso)) : "—";
}

export function formatDuration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "—";
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  const seconds = ms / 1000;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${Math.floor(seconds % 60)} s`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} h ${minutes % 60} min`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

/** Duration between two ISO times; a running thing counts up to now. */
export function elapsed(startIso, endIso) {
  if (!startIso) return null;
  const end = endIso ? Date.parse(endIso) : Date.now();
  return end - Date.parse(startIso);
}

export function json(value) {
  return JSON.stringify(value, null, 2);
}

/** Collapse bursts of calls (e.g. one refresh per batch of live events). */
export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}
