// Forms generated from the JSON Schema the API publishes for flow inputs and for a
// Pause task's onResume inputs (see flow/inputs.py: x-pausepoint-type picks the widget).

import { h, json } from "./dom.js";

let formCounter = 0;

/**
 * Render the fields of `schema` (an object schema) into a new container.
 * Returns {element, values(), report(error), showErrors(fieldErrors), clearErrors()}.
 * `values()` returns the inputs to send, or throws FormError for values that cannot
 * even be sent (e.g. JSON that does not parse); empty optional fields are left out so
 * that the server applies their defaults.
 */
export function schemaFields(schema, { idPrefix = `f${++formCounter}` } = {}) {
  const fields = [];
  const element = h("div", { class: "schema-fields" });
  renderObject(schema ?? {}, [], element, fields, idPrefix);
  if (!fields.length) element.append(h("p", { class: "muted" }, "No inputs to fill in."));

  return {
    element,
    fields,
    values() {
      const values = {};
      const problems = [];
      for (const field of fields) {
        try {
          const value = field.read();
          if (value !== undefined) setPath(values, field.path, value);
        } catch (error) {
          problems.push({ path: field.path, message: error.message });
        }
      }
      if (problems.length) throw new FormError(problems);
      return values;
    },
    showErrors(errors) {
      this.clearErrors();
      const unplaced = [];
      for (const error of errors) {
        const field = fields.find((f) => samePath(f.path, error.path));
        if (field) field.setError(error.message);
        else unplaced.push(error);
      }
      const first = fields.find((f) => f.hasError());
      first?.focus();
      return unplaced;
    },
    clearErrors() {
      for (const field of fields) field.setError(null);
    },
    /**
     * Show a failed submission: each field's problem at the field (from a FormError or
     * a 422 naming `inputs.…`). Returns what could not be placed, in words, or null.
     */
    report(error) {
      const fieldErrors = error instanceof FormError ? error.fieldErrors
        : (error.fieldErrors ?? []).map((e) => ({ ...e, path: inputsErrorPath(e.path) }));
      if (!fieldErrors.length) return error.message;
      const unplaced = this.showErrors(fieldErrors);
      return unplaced.length
        ? unplaced.map((e) => `${e.path.join(".") || "inputs"}: ${e.message}`).join("; ")
        : null;
    },
  };
}

export class FormError extends Error {
  constructor(problems) {
    super(problems.map((p) => `${p.path.join(".")}: ${p.message}`).join("; "));
    this.fieldErrors = problems;
  }
}

/** The path of an API error inside the inputs object ("inputs.a.b" or "inputs", "a.b"). */
function inputsErrorPath(path) {
  const start = path[0] === "inputs" ? 1 : 0;
  return path.slice(start).flatMap((part) => String(part).split("."));
}

function samePath(a, b) {
  return a.length === b.length && a.every((part, i) => part === b[i]);
}

function setPath(target, path, value) {
  let node = target;
  for (const part of path.slice(0, -1)) node = node[part] ??= {};
  node[path.at(-1)] = value;
}

function renderObject(schema, path, container, fields, idPrefix) {
  const required = new Set(schema.required ?? []);
  for (const [name, property] of Object.entries(schema.properties ?? {})) {
    const childPath = [...path, name];
    if (property.type === "object" && property.properties) {
      const fieldset = h("fieldset", {}, h("legend", {}, property.title ?? name));
      if (property.description) fieldset.append(h("p", { class: "hint" }, property.description));
      renderObject(property, childPath, fieldset, fields, idPrefix);
      container.append(fieldset);
    } else {
      const field = renderField(property, childPath, required.has(name), idPrefix);
      fields.push(field);
      container.append(field.element);
    }
  }
}

function kindOf(property) {
  const declared = property["x-pausepoint-type"];
  if (declared) return declared === "ENUM" ? "SELECT" : declared;
  if (property.enum) return "SELECT";
  if (property.type === "array") return property.items?.enum ? "MULTISELECT" : "ARRAY";
  return {
    boolean: "BOOLEAN", integer: "INT", number: "FLOAT", object: "JSON",
  }[property.type] ?? (property.format === "password" ? "SECRET" : "STRING");
}

const TEXT_INPUTS = {
  DATE: { type: "date" },
  DATETIME: { type: "datetime-local", step: "1" },
  TIME: { type: "time", step: "1" },
  URI: { type: "url", placeholder: "https://…" },
  EMAIL: { type: "email", autocomplete: "off" },
  SECRET: { type: "password", autocomplete: "new-password" },
  DURATION: { type: "text", placeholder: "ISO-8601, e.g. PT30M" },
  // Numbers are typed as text (inputmode brings up the numeric keypad): the server's
  // message for "12x" is clearer than a browser silently dropping the value.
  INT: { type: "text", inputmode: "numeric" },
  FLOAT: { type: "text", inputmode: "decimal" },
};

function renderField(property, path, required, idPrefix) {
  const kind = kindOf(property);
  const id = `${idPrefix}-${path.join("-")}`.replace(/[^A-Za-z0-9_-]/g, "_");
  const hintId = `${id}-hint`;
  const errorId = `${id}-error`;
  const title = property.title ?? path.at(-1);
  const hints = [];
  if (property.description) hints.push(property.description);
  if (property.minimum !== undefined) hints.push(`At least ${property.minimum}.`);
  if (property.maximum !== undefined) hints.push(`At most ${property.maximum}.`);
  if (kind === "JSON") hints.push("JSON.");
  if (kind === "DATETIME") hints.push("Your local time.");
  if (kind === "ARRAY") hints.push("One value per line.");
  const hint = hints.length ? h("p", { class: "hint", id: hintId }, hints.join(" ")) : null;
  const error = h("p", { class: "error", id: errorId, hidden: true });
  const describedBy = [hint ? hintId : null, errorId].filter(Boolean).join(" ");
  const labelText = [title, required ? " (required)" : ""];
  const defaultValue = property.default;

  let control;
  let read;
  let focusTarget;
  let wrapper;

  if (kind === "BOOLEAN") {
    control = h("input", {
      type: "checkbox", id, name: path.join("."), "aria-describedby": describedBy,
      checked: defaultValue === true,
    });
    read = () => control.checked;
    wrapper = h("div", { class: "field" },
      h("label", { class: "check", for: id }, control, labelText), hint, error);
  } else if (kind === "MULTISELECT") {
    const options = property.items?.enum ?? [];
    const chosen = new Set(Array.isArray(defaultValue) ? defaultValue : []);
    const boxes = options.map((option, i) => h("input", {
      type: "checkbox", id: `${id}-${i}`, value: option, checked: chosen.has(option),
    }));
    control = h("fieldset", { class: "check-group", id, "aria-describedby": describedBy },
      h("legend", {}, labelText),
      boxes.map((box, i) => h("label", { for: box.id }, box, options[i])));
    read = () => boxes.filter((b) => b.checked).map((b) => b.value);
    focusTarget = boxes[0];
    wrapper = h("div", { class: "field" }, control, hint, error);
  } else {
    if (kind === "SELECT" && property.enum) {
      control = h("select", { id, name: path.join("."), "aria-describedby": describedBy },
        required && defaultValue !== undefined ? null : h("option", { value: "" }, "— choose —"),
        property.enum.map((option) => h("option", {
          value: String(option), selected: option === defaultValue,
        }, String(option))));
      read = () => (control.value === "" ? undefined : control.value);
    } else if (kind === "JSON" || kind === "YAML" || kind === "ARRAY") {
      const text = defaultValue === undefined ? ""
        : kind === "ARRAY" && Array.isArray(defaultValue) ? defaultValue.join("\n")
          : kind === "JSON" ? json(defaultValue) : String(defaultValue);
      control = h("textarea", {
        id, name: path.join("."), class: kind === "ARRAY" ? null : "json",
        spellcheck: "false", "aria-describedby": describedBy,
      });
      control.value = text;
      read = () => {
        const raw = control.value.trim();
        if (raw === "") return undefined;
        if (kind === "ARRAY") return raw.split("\n").map((line) => line.trim()).filter(Boolean);
        if (kind === "YAML") return raw;
        try {
          return JSON.parse(raw);
        } catch (problem) {
          throw new Error(`not valid JSON (${problem.message})`);
        }
      };
    } else {
      const attributes = TEXT_INPUTS[kind] ?? { type: "text" };
      const list = property.examples ? `${id}-examples` : null;
      control = h("input", {
        ...attributes, id, name: path.join("."), list, "aria-describedby": describedBy,
        "aria-required": required ? "true" : null,
      });
      if (defaultValue !== undefined && defaultValue !== null) {
        control.value = kind === "DATETIME" ? localDateTime(defaultValue) : String(defaultValue);
      }
      read = () => {
        const raw = control.value.trim();
        if (raw === "") return undefined;
        // The picker shows the user's local time; the server is told the instant.
        if (kind === "DATETIME") return new Date(raw).toISOString();
        if (kind === "INT" || kind === "FLOAT") {
          const number = Number(raw);
          return Number.isFinite(number) ? number : raw;
        }
        return raw;
      };
    }
    wrapper = h("div", { class: "field" },
      h("label", { for: id }, labelText), hint, control, error,
      property.examples ? h("datalist", { id: `${id}-examples` },
        property.examples.map((example) => h("option", { value: String(example) }))) : null);
  }

  return {
    path,
    element: wrapper,
    read,
    focus: () => (focusTarget ?? control).focus(),
    hasError: () => !error.hidden,
    setError(message) {
      error.hidden = !message;
      error.textContent = message ?? "";
      if (message) control.setAttribute("aria-invalid", "true");
      else control.removeAttribute("aria-invalid");
    },
  };
}

/** An ISO instant as the value of a datetime-local input, in the user's time zone. */
function localDateTime(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`
    + `T${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}
