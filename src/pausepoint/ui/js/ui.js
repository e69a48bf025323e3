// Page-wide feedback: the error notice, polite status announcements, the dialog.

import { h } from "./dom.js";

const notice = () => document.getElementById("notice");

/** Show an error (or with kind "info", a message) above the page until dismissed. */
export function showNotice(message, kind = "error") {
  const element = notice();
  element.className = `notice ${kind === "info" ? "info" : ""}`;
  element.setAttribute("role", kind === "info" ? "status" : "alert");
  element.replaceChildren(
    h("span", {}, message),
    h("button", { type: "button", class: "secondary", onclick: clearNotice }, "Dismiss"),
  );
  element.hidden = false;
}

export function clearNotice() {
  const element = notice();
  element.hidden = true;
  element.replaceChildren();
}

/** Tell screen-reader users what just changed (the visible page shows it already). */
export function announce(message) {
  const status = document.getElementById("status");
  status.textContent = "";
  requestAnimationFrame(() => { status.textContent = message; });
}

/**
 * Ask in the modal dialog. `body` is a node (e.g. fields); `onConfirm` runs on submit
 * and may throw to keep the dialog open (its message is shown inside the dialog).
 * Resolves true when confirmed, false when dismissed.
 */
export function askInDialog({ title, body, confirmLabel = "Confirm", danger = false, onConfirm }) {
  const dialog = document.getElementById("dialog");
  const form = document.getElementById("dialog-form");
  const confirm = document.getElementById("dialog-confirm");
  const back = document.getElementById("dialog-cancel");
  const problem = h("p", { class: "error", role: "alert", hidden: true });
  document.getElementById("dialog-title").textContent = title;
  document.getElementById("dialog-body").replaceChildren(body, problem);
  confirm.textContent = confirmLabel;
  confirm.className = danger ? "danger" : "";
  confirm.disabled = false;
  const opener = document.activeElement;

  return new Promise((resolve) => {
    const finish = (confirmed) => {
      form.removeEventListener("submit", submit);
      back.removeEventListener("click", dismiss);
      dialog.removeEventListener("cancel", dismiss);
      dialog.close();
      if (opener instanceof HTMLElement && opener.isConnected) opener.focus();
      resolve(confirmed);
    };
    const dismiss = (event) => {
      event.preventDefault();
      finish(false);
    };
    const submit = async (event) => {
      event.preventDefault();
      confirm.disabled = true;
      problem.hidden = true;
      try {
        await onConfirm?.();
        finish(true);
      } catch (error) {
        problem.textContent = error.message;
        problem.hidden = false;
        confirm.disabled = false;
      }
    };
    form.addEventListener("submit", submit);
    back.addEventListener("click", dismiss);
    dialog.addEventListener("cancel", dismiss);
    dialog.showModal();
    const firstField = dialog.querySelector("#dialog-body :is(input, textarea, select)");
    (firstField ?? confirm).focus();
  });
}
