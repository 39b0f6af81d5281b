// Live pages: an element with data-live="RUN" (or "*") follows /live?run=RUN (server-sent
// events from the ledger's watch stream) and, on each note, swaps in a fresh copy of itself
// from data-refresh. No polling: nothing is fetched until the ledger says something changed.
// Each time the stream (re)opens the element is refreshed once too: what changed between
// the page's rendering (or a lost connection) and the stream's opening is not missed.
document.querySelectorAll("[data-live]").forEach((element) => {
  const source = new EventSource("/live?run=" + encodeURIComponent(element.dataset.live));
  let pending = false;
  let again = false;
  const refresh = async () => {
    if (pending) {
      again = true; // a note during a fetch: fetch once more after it
      return;
    }
    pending = true;
    try {
      const answer = await fetch(element.dataset.refresh, { headers: { Accept: "text/html" } });
      if (answer.ok) {
        const html = await answer.text();
        if (html !== element.lastHTML) { // unchanged: nothing to redraw, nothing to lose
          const kept = keepState(element);
          element.innerHTML = html;
          restoreState(element, kept);
          element.lastHTML = html;
        }
        element.dataset.updated = String(Date.now());
        document.dispatchEvent(new CustomEvent("ledgerflow:updated", { detail: element }));
      }
    } finally {
      pending = false;
      if (again) {
        again = false;
        refresh();
      }
    }
  };
  source.onopen = () => {
    element.dataset.connected = "true";
    refresh();
  };
  source.onmessage = refresh;
});

// What a redraw must not undo: which <details> are open, where boxes are scrolled to, what
// was typed and where the focus was, for each element marked data-keep="KEY" (KEY unique
// in the live part).
function keepState(element) {
  const kept = new Map();
  element.querySelectorAll("[data-keep]").forEach((node) => {
    kept.set(node.dataset.keep, {
      open: node.open, top: node.scrollTop, left: node.scrollLeft, value: node.value,
      atEnd: node.scrollTop > 0 && node.scrollTop + node.clientHeight >= node.scrollHeight - 2,
      focused: document.activeElement === node,
      selection: document.activeElement === node ? [node.selectionStart, node.selectionEnd] : null,
    });
  });
  return kept;
}

function restoreState(element, kept) {
  element.querySelectorAll("[data-keep]").forEach((node) => {
    const was = kept.get(node.dataset.keep);
    if (!was) return;
    if (node.tagName === "DETAILS") node.open = was.open;
    if (node.tagName === "INPUT" && was.value !== undefined) node.value = was.value;
    if (was.top || was.left) { // a box scrolled to its end follows what is added to it
      node.scrollTop = was.atEnd ? node.scrollHeight : was.top;
      node.scrollLeft = was.left;
      node.dataset.scrolled = was.atEnd ? "end" : "kept";
    }
    if (was.focused) {
      node.focus();
      if (was.selection) node.setSelectionRange(...was.selection);
    }
  });
}
