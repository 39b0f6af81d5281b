// The run page's script (and its tag history, at the end). A run's timeline on a canvas: every task one bar from its start to its end, in its
// step's band (tasks that do not overlap share a lane), colored by status, with a time
// axis. Hovering a bar says which task it is and how long it took; clicking opens it.
// The data comes as compact JSON from data-src (ledgerflow/ui/timeline.py); while the run
// goes on it is fetched again when the page's live part changes (ui.js says so).
(() => {
  const STATUS = ["unknown", "running", "succeeded", "failed", "lost"];
  const COLORS = {
    unknown: "#4d5561", running: "#0b57d0", succeeded: "#146c2e", failed: "#b3261e",
    lost: "#7a4a00", cloned: "#8fb89a",
  };
  const LABEL = 150; // the step names' column
  const AXIS = 26;

  const seconds = (ms) => ms / 1000;
  const formatDuration = (ms) => {
    const s = seconds(ms);
    if (s < 60) return `${s < 10 ? s.toFixed(2) : s.toFixed(1)} s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m} min ${Math.floor(s % 60)} s`;
    return `${Math.floor(m / 60)} h ${m % 60} min`;
  };
  const formatTick = (s) => {
    if (s < 60) return `${Number(s.toFixed(2))} s`;
    const m = Math.floor(s / 60), rest = Math.round(s % 60);
    if (m < 60) return rest ? `${m} min ${rest} s` : `${m} min`;
    return `${Math.floor(m / 60)} h${m % 60 ? ` ${m % 60} min` : ""}`;
  };
  const STEPS = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900,
    1800, 3600, 7200, 10800, 21600, 43200, 86400];

  // A band's lanes take at most this height: past it, lanes share pixel rows.
  const BAND_MOST = 240;

  function layout(data, width) {
    // Lanes: within a step, a task takes a lane that is free when it begins (the one
    // that freed first: a heap of [end, lane]), so tasks that do not overlap share one.
    const bands = data.steps.map((name) => ({ name, count: 0, heap: [], tasks: [] }));
    const now = data.end ? data.end - data.start : data.now - data.start;
    let span = Math.max(now, 1);
    data.tasks.forEach((task, index) => { // sorted by start
      const band = bands[task[0]];
      const start = task[2], end = task[3] < 0 ? Math.max(now, start) : task[3];
      span = Math.max(span, end);
      let lane;
      if (band.heap.length && band.heap[0][0] <= start) lane = pop(band.heap)[1];
      else lane = band.count++;
      push(band.heap, [Math.max(end, start + 1), lane]);
      band.tasks.push([index, lane, start, end]);
    });
    let y = AXIS;
    bands.forEach((band) => {
      const lanes = Math.max(band.count, 1);
      band.laneHeight = Math.min(16, BAND_MOST / lanes);
      band.barHeight = Math.max(2, band.laneHeight - 2);
      band.y = y;
      band.height = Math.max(22, lanes * band.laneHeight + 6);
      y += band.height;
    });
    return { bands, span, height: y + 4, scale: (width - LABEL - 12) / span };
  }

  function push(heap, item) {
    heap.push(item);
    for (let i = heap.length - 1; i > 0;) {
      const up = (i - 1) >> 1;
      if (heap[up][0] <= heap[i][0]) break;
      [heap[up], heap[i]] = [heap[i], heap[up]];
      i = up;
    }
  }

  function pop(heap) {
    const top = heap[0], last = heap.pop();
    if (heap.length) {
      heap[0] = last;
      for (let i = 0; ;) {
        const l = 2 * i + 1, r = l + 1;
        let m = i;
        if (l < heap.length && heap[l][0] < heap[m][0]) m = l;
        if (r < heap.length && heap[r][0] < heap[m][0]) m = r;
        if (m === i) break;
        [heap[m], heap[i]] = [heap[i], heap[m]];
        i = m;
      }
    }
    return top;
  }

  function draw(canvas, data) {
    const width = Math.max(canvas.parentElement.clientWidth, 320);
    const plan = layout(data, width);
    const ratio = window.devicePixelRatio || 1;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(plan.height * ratio);
    canvas.style.width = `${width}px`;
    canvas.style.height = `${plan.height}px`;
    const g = canvas.getContext("2d");
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, width, plan.height);
    g.font = "12px system-ui, sans-serif";
    g.textBaseline = "middle";
    // The axis: ticks a readable distance apart, times since the run began.
    const most = Math.max(1, Math.floor((width - LABEL) / 90));
    const step = STEPS.find((s) => seconds(plan.span) / s <= most) || 86400 * 7;
    const ticks = [];
    g.strokeStyle = "#d8dee4";
    g.fillStyle = "#4d5561";
    for (let t = 0; t * 1000 <= plan.span; t += step) {
      const x = LABEL + t * 1000 * plan.scale;
      g.beginPath(); g.moveTo(x + 0.5, AXIS - 6); g.lineTo(x + 0.5, plan.height); g.stroke();
      if (x + 3 + g.measureText(formatTick(t)).width <= width) g.fillText(formatTick(t), x + 3, AXIS / 2 - 2);
      ticks.push(formatTick(t));
    }
    const bars = [];
    plan.bands.forEach((band, row) => {
      if (row % 2) { g.fillStyle = "#f6f8fa"; g.fillRect(0, band.y, width, band.height); }
      g.fillStyle = "#1b1f24";
      const name = band.name.length > 20 ? `${band.name.slice(0, 19)}…` : band.name;
      g.fillText(`${name} (${band.tasks.length})`, 4, band.y + Math.min(band.height / 2, 10));
      band.tasks.forEach(([index, lane, start, end]) => {
        const task = data.tasks[index];
        const x = LABEL + start * plan.scale;
        const w = Math.max(2, (end - start) * plan.scale);
        const y = band.y + 3 + lane * band.laneHeight;
        const h = band.barHeight;
        const status = STATUS[task[4]] || "unknown";
        g.fillStyle = task[6] ? COLORS.cloned : COLORS[status];
        g.fillRect(x, y, w, h);
        bars.push([x, y, w, h, index]);
      });
    });
    // The failed on top, so that no bar of a busy lane hides them.
    bars.forEach(([x, y, w, h, index]) => {
      if (data.tasks[index][4] === 3) { g.fillStyle = COLORS.failed; g.fillRect(x, y, w, h); }
    });
    canvas.timeline = { data, bars };
    canvas.dataset.bars = String(bars.length);
    canvas.dataset.ticks = ticks.join("|");
    canvas.setAttribute("aria-label",
      `Timeline of ${data.tasks.length} tasks over ${formatDuration(plan.span)}; ` +
      `${data.tasks.filter((t) => t[4] === 3).length} failed`);
  }

  function describe(data, index) {
    const task = data.tasks[index];
    const status = STATUS[task[4]] || "unknown";
    const ended = task[3] < 0 ? (data.end || data.now) - data.start : task[3];
    const parts = [`${data.steps[task[0]]}/${task[1]}`, task[3] < 0 ? `${status} for` : status,
      formatDuration(Math.max(0, ended - task[2])),
      `started at +${formatDuration(task[2])}`];
    if (task[5] > 1) parts.push(`${task[5]} attempts`);
    if (task[6]) parts.push("cloned by resume");
    return parts.join(" · ");
  }

  function barAt(canvas, event) {
    const found = canvas.timeline;
    if (!found) return -1;
    const box = canvas.getBoundingClientRect();
    const x = event.clientX - box.left, y = event.clientY - box.top;
    let hit = -1;
    for (const [bx, by, bw, bh, index] of found.bars) {
      if (x >= bx - 1 && x <= bx + bw + 1 && y >= by && y <= by + bh) {
        hit = index;
        if (found.data.tasks[index][4] === 3) break; // drawn on top
      }
    }
    return hit;
  }

  function setUp(holder) {
    const canvas = holder.querySelector("canvas");
    const tip = holder.querySelector(".timeline-tip");
    const base = holder.dataset.link;
    let fetched = Date.now(), took = 0, pending = false;
    const show = (data) => {
      holder.data = data;
      draw(canvas, data);
      holder.dataset.status = data.status;
      const failed = holder.querySelector(".timeline-failed");
      failed.replaceChildren();
      data.tasks.filter((t) => t[4] === 3).slice(0, 50).forEach((t) => {
        const link = document.createElement("a");
        link.href = `${base}/${encodeURIComponent(data.steps[t[0]])}/${encodeURIComponent(t[1])}`;
        link.textContent = `${data.steps[t[0]]}/${t[1]}`;
        failed.append(link, " ");
      });
      failed.hidden = !failed.childElementCount;
    };
    const load = async () => {
      if (pending) return;
      pending = true;
      const began = performance.now();
      try {
        const answer = await fetch(holder.dataset.src, { headers: { Accept: "application/json" } });
        if (!answer.ok) return;
        show(await answer.json());
      } finally {
        took = performance.now() - began;
        fetched = Date.now();
        pending = false;
      }
    };
    const embedded = holder.querySelector(".timeline-data");
    if (embedded) show(JSON.parse(embedded.textContent));
    else load();
    // While the run goes on: again when the live part changed, at most every second
    // (and no more often than five times the last read took, for a very large run).
    let waiting = null;
    document.addEventListener("ledgerflow:updated", () => {
      if (!holder.data || holder.data.end || waiting) return;
      const wait = Math.max(0, fetched + Math.max(1000, 5 * took) - Date.now());
      waiting = setTimeout(() => { waiting = null; load(); }, wait);
    });
    window.addEventListener("resize", () => { if (holder.data) draw(canvas, holder.data); });
    canvas.addEventListener("mousemove", (event) => {
      const index = barAt(canvas, event);
      if (index < 0) { tip.hidden = true; canvas.style.cursor = ""; return; }
      tip.textContent = describe(holder.data, index);
      tip.hidden = false;
      const box = holder.getBoundingClientRect();
      tip.style.left = `${Math.min(event.clientX - box.left + 12, box.width - 260)}px`;
      tip.style.top = `${event.clientY - box.top + 14}px`;
      canvas.style.cursor = "pointer";
    });
    canvas.addEventListener("mouseleave", () => { tip.hidden = true; });
    canvas.addEventListener("click", (event) => {
      const index = barAt(canvas, event);
      if (index < 0) return;
      const task = holder.data.tasks[index];
      window.location.href = `${base}/${encodeURIComponent(holder.data.steps[task[0]])}/${encodeURIComponent(task[1])}`;
    });
  }

  document.querySelectorAll("[data-timeline]").forEach(setUp);
})();

// A run's tag history (reading it means reading all of the run's events): loaded when
// its <details> is first opened.
document.querySelectorAll("details[data-src]").forEach((details) => {
  details.addEventListener("toggle", async () => {
    if (!details.open || details.dataset.loaded) return;
    details.dataset.loaded = "true";
    const answer = await fetch(details.dataset.src, { headers: { Accept: "text/html" } });
    if (answer.ok) details.insertAdjacentHTML("beforeend", await answer.text());
  });
});
