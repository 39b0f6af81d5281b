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
        element.innerHTML = await answer.text();
        element.dataset.updated = String(Date.now());
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
