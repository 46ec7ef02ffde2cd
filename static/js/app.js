// omega-web: the little script the pages need. No inline scripts anywhere (the CSP forbids them).
"use strict";

// A tab that htmx replaced (the "who sees what" tabs swap their whole section) takes the keyboard focus
// with it; give it back to the tab now selected, so keyboard users stay where they were.
document.addEventListener("htmx:afterSettle", (event) => {
  const trigger = event.detail.requestConfig && event.detail.requestConfig.elt;
  if (!trigger || trigger.getAttribute("role") !== "tab" || document.activeElement !== document.body) {
    return;
  }
  const selected = document.querySelector('[role="tab"][aria-selected="true"]');
  if (selected) {
    selected.focus();
  }
});

// A figure drawn in a narrow column (the dialogue page's reading mode) wraps its horizontal legend onto many rows:
// give it the height, so the legend sits under the axis instead of over it.
function narrowed(el, layout) {
  if (!layout || !layout.legend || layout.legend.orientation !== "h" || el.clientWidth >= 520) {
    return layout;
  }
  const height = (layout.height || 280) + 200;
  return Object.assign({}, layout, { height, legend: Object.assign({}, layout.legend, { y: -0.4 }) });
}

// Figures are built in Python and handed over as JSON in a data-figure attribute (their text is escaped there).
// Draw them when the page loads and whenever htmx brings in a new one (a live update replaces the chart).
function drawFigures(root) {
  if (typeof Plotly === "undefined") {
    return;
  }
  const found = root.matches && root.matches("[data-figure]") ? [root] : [];
  found.push(...root.querySelectorAll("[data-figure]"));
  for (const el of found) {
    let figure;
    try {
      figure = JSON.parse(el.dataset.figure);
    } catch (error) {
      el.textContent = "This figure could not be read.";
      continue;
    }
    Plotly.react(el, figure.data, narrowed(el, figure.layout), { displayModeBar: false, responsive: true });
  }
}

// A live fragment says that something ended with an element such as <span hidden data-emit="run-settled">
// (ADR 0026): the event is triggered on <body> once, and the parts of the page counted from what ended listen for
// it (hx-trigger="run-settled from:body") and draw themselves again.
function emitEvents(root) {
  const found = root.matches && root.matches("[data-emit]") ? [root] : [];
  found.push(...root.querySelectorAll("[data-emit]"));
  for (const el of found) {
    const name = el.dataset.emit;
    el.removeAttribute("data-emit");
    htmx.trigger(document.body, name);
  }
}

// The swap style "morph" (hx-ext="morph" on <body>; ADR 0026): the element is changed in place by idiomorph, so a
// button under the pointer stays the same button and a field being typed in keeps what was typed. Only "morph" is
// an inline swap here; every other style (an out-of-band "beforeend:…" wrapper) stays htmx's own.
if (typeof htmx !== "undefined" && typeof Idiomorph !== "undefined") {
  Idiomorph.defaults.ignoreActiveValue = true;
  htmx.defineExtension("morph", {
    isInlineSwap: (swapStyle) => swapStyle === "morph",
    handleSwap: (swapStyle, target, fragment) => {
      if (swapStyle === "morph") {
        return Idiomorph.morph(target, fragment.children, { morphStyle: "outerHTML" });
      }
      return false;
    },
  });
}

document.addEventListener("DOMContentLoaded", () => {
  drawFigures(document);
  if (typeof htmx !== "undefined") {
    htmx.onLoad((elt) => {
      if (elt !== document.body) {
        drawFigures(elt);
        emitEvents(elt);
      }
    });
  }
});

// Keyboard on a dialogue page: j / k next / previous turn, n next step, ? help.
function typingInto(target) {
  // a checked chip or radio keeps the keys working; a text field takes them
  const field = target.closest("input, textarea, select, [contenteditable='true']");
  return field !== null && !(field.type === "checkbox" || field.type === "radio");
}

function moveTurn(step) {
  const turns = Array.from(document.querySelectorAll(".timeline > .turn"));
  if (!turns.length) {
    return;
  }
  const current = turns.findIndex((el) => el.classList.contains("current"));
  let next = current === -1 ? (step > 0 ? 0 : turns.length - 1) : current + step;
  next = Math.max(0, Math.min(turns.length - 1, next));
  turns.forEach((el) => el.classList.remove("current"));
  turns[next].classList.add("current");
  turns[next].focus({ preventScroll: true });
  turns[next].scrollIntoView({ block: "nearest", behavior: "smooth" });
}

function openKeysHelp() {
  const help = document.getElementById("keys-help");
  if (help && !help.open) {
    help.showModal();
  }
}

document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey || typingInto(event.target)) {
    return;
  }
  if (!document.querySelector(".timeline")) {
    return;
  }
  if (event.key === "j") {
    moveTurn(1);
  } else if (event.key === "k") {
    moveTurn(-1);
  } else if (event.key === "n") {
    const button = document.querySelector("[data-step-next]");
    if (button && !button.disabled) {
      button.click();
    }
  } else if (event.key === "f") {
    // fork from the current turn (the link shows only to roles that may fork)
    const link = document.querySelector(".timeline.can-fork .turn.current .fork-link");
    if (!link) {
      return;
    }
    link.click();
  } else if (event.key === "m" && document.querySelector("[data-mode-switch]")) {
    switchMode();
  } else if (annotateKey(event)) {
    // handled: a label, the quality, a correction or a decision
  } else if (event.key === "?") {
    openKeysHelp();
  } else {
    return;
  }
  event.preventDefault();
});

document.addEventListener("click", (event) => {
  if (event.target.closest("[data-keys-help]")) {
    openKeysHelp();
  }
});

// --- annotation: keys on the current turn, and forms for turns that arrive live ---------------------------

function currentSlot() {
  const turn = document.querySelector(".timeline .turn.current");
  return turn ? turn.querySelector(".annot-slot form") : null;
}

function toggle(input, checked) {
  input.checked = checked;
  input.dispatchEvent(new Event("change", { bubbles: true })); // the form saves on change
}

function annotateKey(event) {
  // the annotation keys work in annotating mode only: a reader's digits do not label turns
  if (!document.querySelector("[data-annotating]") || !document.querySelector('.dialogue-live[data-mode="annotating"]')) {
    return false;
  }
  const digit = /^Digit([1-9])$/.exec(event.code);
  const form = currentSlot();
  if (digit && form) {
    if (event.shiftKey) {
      const quality = form.querySelector(`[data-quality="${digit[1]}"]`);
      if (quality) {
        toggle(quality, true);
      }
    } else {
      const label = form.querySelector(`[data-label-key="${digit[1]}"]`);
      if (label) {
        toggle(label, !label.checked);
      }
    }
    return true;
  }
  if (event.key === "c" && form) {
    const details = form.querySelector("details.annot-correct");
    details.open = true;
    details.querySelector("textarea").focus();
    return true;
  }
  const keys = { a: "accept", x: "reject", v: "needs_review" };
  if (keys[event.key]) {
    const choice = document.querySelector(`.decision-form input[value="${keys[event.key]}"]`);
    if (choice) {
      choice.checked = true;
      choice.closest("form").requestSubmit(choice.closest("form").querySelector('button[name="save"]'));
      return true;
    }
  }
  return false;
}

// A turn appended by a live update comes with an empty annotation slot: fill it for annotators.
document.body.addEventListener("htmx:oobAfterSwap", () => {
  if (!document.querySelector("[data-annotating]") || !window.htmx) {
    return;
  }
  document.querySelectorAll(".annot-slot:empty[data-turn-annotation]:not([data-loading])").forEach((slot) => {
    slot.setAttribute("data-loading", "");
    // each slot is its own source: requests from one source would be dropped while another is in flight
    window.htmx.ajax("GET", slot.dataset.turnAnnotation, { source: slot, target: slot, swap: "outerHTML" });
  });
});

// A figure's PNG / SVG button: Plotly draws the image in the browser from the figure on the page.
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-download]");
  if (!button || typeof Plotly === "undefined") {
    return;
  }
  const el = document.getElementById(button.dataset.target);
  if (!el || !el.data) {
    return;
  }
  Plotly.downloadImage(el, {
    format: button.dataset.download,
    filename: button.dataset.filename || "figure",
    width: el.offsetWidth || 800,
    height: el.offsetHeight || 400,
  });
});


// --- reading and annotating (the dialogue page): switched in place, the address kept for a reload --------------

function switchMode(target) {
  const live = document.querySelector(".dialogue-live[data-mode]");
  if (!live) {
    return;
  }
  const mode = target || (live.dataset.mode === "reading" ? "annotating" : "reading");
  live.dataset.mode = mode;
  live.classList.toggle("mode-reading", mode === "reading");
  live.classList.toggle("mode-annotating", mode === "annotating");
  document.querySelectorAll("[data-mode-switch]").forEach((link) => {
    if (link.dataset.modeSwitch === mode) {
      link.setAttribute("aria-current", "true");
    } else {
      link.removeAttribute("aria-current");
    }
  });
  const url = new URL(window.location.href);
  if (mode === "annotating") {
    url.searchParams.set("annotate", "1");
  } else {
    url.searchParams.delete("annotate");
  }
  window.history.replaceState(window.history.state, "", url);
  const current = document.querySelector(".timeline .turn.current");
  if (current) {
    current.scrollIntoView({ block: "nearest" });
  }
}

document.addEventListener("click", (event) => {
  const link = event.target.closest("[data-mode-switch]");
  if (!link || event.ctrlKey || event.metaKey || event.shiftKey) {
    return;
  }
  event.preventDefault();
  switchMode(link.dataset.modeSwitch);
});

// --- a new turn: flagged, and a button to jump to it when it arrives out of sight ------------------------------

function turnInView(turn) {
  const box = turn.getBoundingClientRect();
  return box.top < window.innerHeight && box.bottom > 0;
}

function showNewTurn(turn) {
  const button = document.querySelector("[data-new-turn]");
  turn.classList.add("fresh");
  if (!button || turnInView(turn)) {
    return;
  }
  button.dataset.target = turn.id;
  button.textContent = `New turn ${turn.dataset.turn} ↓`;
  button.hidden = false;
}

document.addEventListener("htmx:oobAfterSwap", (event) => {
  const target = event.detail.target;
  if (!target || !target.classList || !target.classList.contains("timeline")) {
    return;
  }
  const turns = target.querySelectorAll(":scope > .turn:not([data-seen])");
  turns.forEach((turn) => turn.setAttribute("data-seen", ""));
  if (turns.length && document.querySelector(".timeline > .turn[data-seen]") !== turns[0]) {
    showNewTurn(turns[turns.length - 1]);
  }
});

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll(".timeline > .turn").forEach((turn) => turn.setAttribute("data-seen", ""));
});

document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-new-turn]");
  if (!button) {
    return;
  }
  const turn = document.getElementById(button.dataset.target);
  button.hidden = true;
  if (turn) {
    document.querySelectorAll(".timeline > .turn.current").forEach((el) => el.classList.remove("current"));
    turn.classList.add("current");
    turn.focus({ preventScroll: true });
    turn.scrollIntoView({ block: "start", behavior: "smooth" });
  }
});

document.addEventListener(
  "scroll",
  () => {
    const button = document.querySelector("[data-new-turn]:not([hidden])");
    const turn = button && document.getElementById(button.dataset.target);
    if (turn && turnInView(turn)) {
      button.hidden = true;
    }
  },
  { passive: true },
);