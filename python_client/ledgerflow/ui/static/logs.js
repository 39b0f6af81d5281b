// A task's logs (templates/_logs.html): each stream comes as its last lines, numbered;
// "Show all" loads the whole text, the search box keeps the lines that hold what you
// typed (marked) and loads the whole log first. What you chose (all lines, the search)
// survives the page's live updates, which redraw the logs (ui.js keeps the typed text
// and where each box was scrolled to).
(() => {
  const chosen = new Map(); // "attempt/stream" -> {all, lines}
  const done = new WeakSet();

  function render(pre, lines, first, query) {
    const found = document.createDocumentFragment();
    const needle = query.toLowerCase();
    let shown = 0;
    lines.forEach((line, index) => {
      const at = needle ? line.toLowerCase().indexOf(needle) : 0;
      if (at < 0) return;
      const span = document.createElement("span");
      span.className = "ln";
      span.dataset.n = String(first + index);
      if (needle) {
        let from = 0;
        for (let hit = at; hit >= 0; hit = line.toLowerCase().indexOf(needle, from)) {
          span.append(line.slice(from, hit));
          const mark = document.createElement("mark");
          mark.textContent = line.slice(hit, hit + needle.length);
          span.append(mark);
          from = hit + needle.length;
        }
        span.append(line.slice(from));
      } else {
        span.append(line);
      }
      span.append("\n");
      found.append(span);
      shown += 1;
    });
    pre.replaceChildren(found);
    if (!lines.length) pre.textContent = "(empty)";
    return shown;
  }

  function setUp(viewer) {
    if (done.has(viewer)) return;
    done.add(viewer);
    const key = `${viewer.dataset.attempt}/${viewer.dataset.stream}`;
    const state = chosen.get(key) || { all: false, lines: null };
    chosen.set(key, state);
    const pre = viewer.querySelector("pre.log");
    const search = viewer.querySelector(".log-search");
    const count = viewer.querySelector(".log-count");
    const button = viewer.querySelector(".log-all");
    const total = Number(viewer.dataset.total);
    // The lines as the page came: the last ones, numbered from data-n.
    const spans = [...pre.querySelectorAll(".ln")];
    let lines = spans.map((span) => span.textContent.replace(/\n$/, ""));
    let first = spans.length ? Number(spans[0].dataset.n) : 1;

    const loadAll = async () => {
      const answer = await fetch(viewer.dataset.src);
      if (!answer.ok) return;
      const text = await answer.text();
      lines = text.split("\n");
      if (lines.length && lines[lines.length - 1] === "") lines.pop();
      first = 1;
      state.all = true;
      if (button) button.hidden = true;
      viewer.dataset.all = "true";
    };
    const show = () => {
      const query = search ? search.value : "";
      const shown = render(pre, lines, first, query);
      if (!count) return;
      if (query) count.textContent = `${shown.toLocaleString()} of ${lines.length.toLocaleString()} lines hold "${query}"`;
      else if (lines.length < total) count.textContent = `the last ${lines.length.toLocaleString()} of ${total.toLocaleString()} lines`;
      else count.textContent = `${lines.length.toLocaleString()} line${lines.length === 1 ? "" : "s"}`;
    };
    let waiting = null;
    if (search) {
      search.addEventListener("input", () => {
        clearTimeout(waiting);
        waiting = setTimeout(async () => {
          if (search.value && lines.length < total) await loadAll();
          show();
          pre.scrollTop = search.value ? 0 : pre.scrollHeight; // the first match; or the end
        }, 150);
      });
    }
    if (button) {
      button.addEventListener("click", async () => {
        await loadAll();
        show();
        pre.scrollTop = pre.scrollHeight;
      });
    }
    const scrolled = pre.dataset.scrolled;
    const kept = scrolled === "kept" ? [pre.scrollTop, pre.scrollLeft] : null;
    (async () => {
      if (state.all || (search && search.value && lines.length < total)) await loadAll();
      if (state.all || (search && search.value)) show();
      if (kept) [pre.scrollTop, pre.scrollLeft] = kept;
      else if (scrolled === "end" || !state.seen) pre.scrollTop = pre.scrollHeight; // a tail: its end
      state.seen = true;
      viewer.dataset.ready = "true";
    })();
  }

  const setUpAll = () => document.querySelectorAll(".log-viewer").forEach(setUp);
  setUpAll();
  document.addEventListener("ledgerflow:updated", setUpAll);
})();
