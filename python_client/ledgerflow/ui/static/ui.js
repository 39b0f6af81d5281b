// Live pages: an element with data-live="RUN" (or "*") follows /live?run=RUN (server-sent
// events from the ledger's watch stream) and, on each note, swaps in a fresh copy of itself
// from data-refresh. No polling: nothing is fetched until the ledger says something changed.
document.querySelectorAll("[data-live]").forEach((element) => {
  const source = new EventSource("/live?run=" + encodeURIComponent(element.dataset.live));
  let pending = false;
  source.onmessage = async () => {
    if (pending) return;
    pending = true;
    try {
      const answer = await fetch(element.dataset.refresh, { headers: { Accept: "text/html" } });
      if (answer.ok) {
        element.innerHTML = await answer.text();
        element.dataset.updated = String(Date.now());
      }
    } finally {
      pending = false;
    }
  };
});
