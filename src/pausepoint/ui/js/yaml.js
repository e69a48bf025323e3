// A small YAML highlighter for reading flows: keys, strings, numbers, comments and
// {{ template }} expressions. It colours lines; it does not parse YAML.

import { h } from "./dom.js";

const EXPRESSION = /(\{\{.*?\}\}|\{%.*?%\})/;
const WHOLE_EXPRESSION = /^(\{\{.*\}\}|\{%.*%\})$/;
const KEY = /^(\s*(?:-\s+)?)([A-Za-z_$][\w.$-]*|"[^"]*"|'[^']*')(\s*:)(?=\s|$)/;
const NUMBER_OR_CONSTANT = /^(-?\d+(\.\d+)?([eE][-+]?\d+)?|true|false|null|~)$/;

/** A <pre><code> element with the source highlighted. */
export function highlightYaml(source) {
  const code = h("code", {});
  for (const line of source.split("\n")) {
    code.append(...highlightLine(line), "\n");
  }
  return h("pre", { class: "yaml", tabindex: "0", "aria-label": "Flow source (YAML)" }, code);
}

function span(kind, text) {
  return h("span", { class: `y-${kind}` }, text);
}

function highlightLine(line) {
  const parts = [];
  let rest = line;
  const key = KEY.exec(rest);
  if (key) {
    parts.push(...punctuate(key[1]), span("key", key[2]), span("punct", key[3]));
    rest = rest.slice(key[0].length);
  } else {
    const dash = /^(\s*)(-)(\s|$)/.exec(rest);
    if (dash) {
      parts.push(dash[1], span("punct", dash[2]));
      rest = rest.slice(dash[1].length + 1);
    }
  }
  const comment = findComment(rest);
  const value = comment < 0 ? rest : rest.slice(0, comment);
  parts.push(...highlightValue(value));
  if (comment >= 0) parts.push(span("comment", rest.slice(comment)));
  return parts;
}

/** The indentation before a key, with a list item's dash marked. */
function punctuate(prefix) {
  const at = prefix.indexOf("-");
  if (at < 0) return [prefix];
  return [prefix.slice(0, at), span("punct", "-"), prefix.slice(at + 1)];
}

/** Index of a "#" that starts a comment (not inside quotes or a {{ }} expression). */
function findComment(text) {
  let quote = null;
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const char = text[i];
    if (quote) {
      if (char === quote) quote = null;
    } else if (text.startsWith("{{", i) || text.startsWith("{%", i)) {
      depth++;
    } else if (text.startsWith("}}", i) || text.startsWith("%}", i)) {
      depth = Math.max(0, depth - 1);
    } else if ((char === '"' || char === "'") && depth === 0) {
      quote = char;
    } else if (char === "#" && depth === 0 && (i === 0 || /\s/.test(text[i - 1]))) {
      return i;
    }
  }
  return -1;
}

function highlightValue(value) {
  const trimmed = value.trim();
  if (!trimmed) return [value];
  if (NUMBER_OR_CONSTANT.test(trimmed)) return [value.replace(trimmed, ""), span("num", trimmed)];
  if (/^[|>][-+]?$/.test(trimmed)) return [value.replace(trimmed, ""), span("punct", trimmed)];
  const parts = [];
  for (const piece of value.split(EXPRESSION)) {
    if (!piece) continue;
    parts.push(span(WHOLE_EXPRESSION.test(piece) ? "expr" : "str", piece));
  }
  return parts;
}
