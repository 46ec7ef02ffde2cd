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
