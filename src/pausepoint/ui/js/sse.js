// Server-sent events over fetch(): EventSource cannot send the X-API-Key header.

import { storedKey } from "./api.js";

const RETRY_MS = 1000;
const MAX_RETRY_MS = 15000;

/**
 * Follow an SSE stream of the API until `signal` aborts.
 *
 * Calls `onEvent({id, type, data})` per event (data parsed as JSON). On a dropped
 * connection it reconnects with `Last-Event-ID`, so nothing is missed on streams that
 * replay; `onOpen()` runs on every (re)connection so callers can catch up on streams
 * that do not. A stream the server ends on purpose (an execution's, after its
 * terminal event) is not reopened.
 */
export async function follow(path, { onEvent, onOpen = () => {}, onError = () => {}, signal }) {
  let lastEventId = null;
  let retry = RETRY_MS;
  while (!signal.aborted) {
    const headers = { Accept: "text/event-stream", "X-API-Key": storedKey() ?? "" };
    if (lastEventId !== null) headers["Last-Event-ID"] = lastEventId;
    try {
      const response = await fetch(`/api/v1${path}`, { headers, signal, cache: "no-store" });
      if (!response.ok || !response.body) {
        onError(response.status);
        if (response.status >= 400 && response.status < 500) return;
        throw new Error(`stream answered ${response.status}`);
      }
      retry = RETRY_MS;
      onOpen();
      let endedOnPurpose = false;
      for await (const event of readEvents(response.body)) {
        if (event.id !== null) lastEventId = event.id;
        onEvent(event);
        if (event.terminal) endedOnPurpose = true;
      }
      if (endedOnPurpose) return;
    } catch (error) {
      if (signal.aborted) return;
      onError(0, error);
    }
    await wait(retry, signal);
    retry = Math.min(retry * 2, MAX_RETRY_MS);
  }
}

function wait(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}

const TERMINAL_TYPES = new Set([
  "workflow.completed", "workflow.failed", "workflow.cancelled",
  "workflow.terminated", "workflow.timed_out",
]);

/** Parse the text/event-stream format (fields id, event, data; comments ignored). */
export async function* readEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let fields = { id: null, type: "message", data: [] };
  try {
    while (true) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let newline;
      while ((newline = buffer.search(/\r\n|\r|\n/)) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + (buffer.startsWith("\r\n", newline) ? 2 : 1));
        if (line === "") {
          if (fields.data.length) {
            const text = fields.data.join("\n");
            let data;
            try { data = JSON.parse(text); } catch { data = text; }
            const terminal = TERMINAL_TYPES.has(fields.type);
            yield { id: fields.id, type: fields.type, data, terminal };
          }
          fields = { id: fields.id, type: "message", data: [] };
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const name = colon < 0 ? line : line.slice(0, colon);
        const raw = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (name === "id") fields.id = raw;
        else if (name === "event") fields.type = raw;
        else if (name === "data") fields.data.push(raw);
      }
    }
  } finally {
    reader.releaseLock();
  }
}
