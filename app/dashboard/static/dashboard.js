// The ptychojobs dashboard: three pages over the service's JSON API and its run events.
// Plain browser JavaScript, no build step and nothing loaded from elsewhere.
"use strict";

const VIEW_ORDER = { baseline: 0, dense: 1, sparse: 2 };
const ACTIVE = new Set(["queued", "running"]);
const SHOWN_METRICS = [
  ["phase SSIM", "phase_ssim", 3],
  ["amp MAE", "amplitude_mae", 3],
  ["phase MAE", "phase_mae", 3],
  ["phase corr", "phase_correlation", 2],
];
const FLAT_LABEL = "flat object (no learning)";
const INPUT_ONLY_LABEL = "input only (no network)";
const VERDICT_TITLE = "Judged against a flat object (one amplitude, constant phase), " +
  "what a model that learned nothing scores. Learned: phase MAE at least 20% below the " +
  "flat object's and phase correlation at least 0.5.";

// --- helpers -----------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function getJSON(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.json();
}

function number(value, digits = 3) {
  if (typeof value !== "number" || !Number.isFinite(value)) return "–";
  return Math.abs(value) >= 1000 || (value !== 0 && Math.abs(value) < 0.001)
    ? value.toExponential(2)
    : trimZeros(value.toPrecision(digits));
}

// "0.6000" → "0.6", "120.0" → "120", "1200" stays: only zeros after a decimal point go.
function trimZeros(text) {
  return text.includes(".") ? text.replace(/0+$/, "").replace(/\.$/, "") : text;
}

function dose(value) {
  return value >= 1 && Number.isInteger(value) ? value.toLocaleString("en") : String(value);
}

function duration(seconds) {
  if (typeof seconds !== "number" || !Number.isFinite(seconds)) return "–";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")} min`;
}

function badge(status) {
  return el("span", { class: `badge ${status}`, "data-testid": "status" }, status);
}

// A verdict in words ("no better than flat", "collapsed", "learned"); the colour only repeats it.
function verdictKind(judged) {
  if (judged.collapsed) return "collapsed";
  if (judged.beats_flat === false) return "flat";
  return judged.learned ? "learned" : "weak";
}

function verdictMark(judged, testid = "verdict") {
  if (!judged || !judged.verdict) return null;
  return el("span", { class: `verdict ${verdictKind(judged)}`, "data-testid": testid, title: VERDICT_TITLE },
    judged.verdict);
}

function verdictSummary(jobs) {
  const judged = jobs.filter((job) => job.verdict);
  if (!judged.length) return null;
  const counts = {};
  for (const job of judged) {
    for (const word of job.verdict.split(", ")) counts[word] = (counts[word] || 0) + 1;
  }
  const order = ["learned", "beats flat only", "no better than flat", "collapsed"];
  const words = Object.keys(counts).sort((a, b) => order.indexOf(a) - order.indexOf(b));
  return el("span", { "data-testid": "run-verdicts", title: VERDICT_TITLE },
    `against a ${FLAT_LABEL}: `, words.map((word) => `${counts[word]} ${word}`).join(", "),
    ` (of ${judged.length} trained)`);
}

function bar(done, total) {
  const share = total > 0 ? Math.min(1, Math.max(0, done / total)) : 0;
  return el("div", { class: "bar", title: `${done} of ${total}` },
    el("div", { class: "fill", style: `width: ${(100 * share).toFixed(1)}%` }));
}

function setLive(text, kind) {
  const live = document.getElementById("live");
  live.textContent = text;
  live.className = `live ${kind}`;
}

function fail(error) {
  const app = document.getElementById("app");
  app.replaceChildren(el("p", { class: "error" }, String(error)));
}

function pageId() {
  const id = Number(location.pathname.replace(/\/+$/, "").split("/").pop());
  if (!Number.isInteger(id)) throw new Error(`no id in ${location.pathname}`);
  return id;
}

function sortViews(views) {
  return [...views].sort((a, b) => (VIEW_ORDER[a] ?? 9) - (VIEW_ORDER[b] ?? 9) || a.localeCompare(b));
}

// Follows a run's server-sent events; `handlers` get snapshot, job, run and end data.
function followRun(runId, handlers) {
  const source = new EventSource(`/runs/${runId}/events`);
  for (const kind of ["snapshot", "job", "run", "end"]) {
    source.addEventListener(kind, (event) => {
      const data = JSON.parse(event.data);
      if (kind === "end") {
        source.close();
        setLive("run ended", "ended");
      } else {
        setLive("live", "on");
      }
      if (handlers[kind]) handlers[kind](data);
    });
  }
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) return;
    setLive("reconnecting…", "off");
  };
  return source;
}

// --- runs page ---------------------------------------------------------------------

async function runsPage() {
  const app = document.getElementById("app");
  const render = async () => {
    const runs = await getJSON("/runs?limit=200");
    const table = el("table", { class: "runs", "data-testid": "runs-table" },
      el("thead", {}, el("tr", {},
        ["run", "status", "created", "progress", "jobs", "running", "failed", "skipped", ""]
          .map((h) => el("th", {}, h)))),
      el("tbody", {}, runs.data.map(runRow)));
    app.replaceChildren(
      el("h1", {}, "Runs"),
      el("p", { class: "muted" }, `${runs.count} run(s), newest first; refreshed every 5 s.`),
      runs.count ? table : el("p", {}, "No runs yet. Submit one with `ptychojobs submit` or POST /runs."));
    setLive("polling", "on");
  };
  await render();
  setInterval(() => render().catch(fail), 5000);
}

function runRow(run) {
  const counts = run.counts || {};
  const ended = (counts.succeeded || 0) + (counts.failed || 0) + (counts.cancelled || 0) +
    (counts.dry_run || 0);
  const link = el("a", { href: `/ui/runs/${run.id}` }, `run ${run.id}`);
  return el("tr", { "data-testid": "run-row", "data-run": run.id },
    el("td", {}, link),
    el("td", {}, badge(run.status)),
    el("td", {}, new Date(run.created_at).toLocaleString()),
    el("td", {}, bar(ended, run.job_count), el("small", {}, `${ended}/${run.job_count}`)),
    el("td", { class: "num" }, run.job_count),
    el("td", { class: "num" }, counts.running || 0),
    el("td", { class: "num" }, counts.failed || 0),
    el("td", { class: "num" }, run.skipped_count),
    el("td", {}, el("a", { href: `/runs/${run.id}/report?format=csv` }, "CSV")));
}

// --- run page ----------------------------------------------------------------------

async function runPage() {
  const runId = pageId();
  const app = document.getElementById("app");
  const state = { live: null, jobs: new Map(), figureStamp: 0 };
  const header = el("section", { class: "run-header", "data-testid": "run-header" });
  const matrix = el("section", { class: "matrix-wrap" });
  const figure = el("img", { alt: "metrics against dose", "data-testid": "report-figure", class: "figure" });
  app.replaceChildren(
    el("h1", {}, `Run ${runId}`),
    header,
    el("h2", {}, "Dose × view × gridsize"),
    matrix,
    el("h2", {}, "Quality against dose"),
    el("p", { class: "muted" },
      `Solid: the model; dashed: the ${FLAT_LABEL}; dotted: the ${INPUT_ONLY_LABEL}. ` +
      "The last panel: the model's phase MAE skill against the flat object (0: no better). ",
      el("a", { href: `/runs/${runId}/report` }, "report JSON"), " · ",
      el("a", { href: `/runs/${runId}/report?format=csv` }, "CSV"), " · ",
      el("a", { href: `/manifests/${runId}` }, "manifest")),
    figure);

  // One figure request at a time: a newer src would abort one that is still drawing.
  let figureLoading = false;
  let figurePending = false;
  const refreshFigure = () => {
    if (figureLoading) {
      figurePending = true;
      return;
    }
    figureLoading = true;
    state.figureStamp += 1;
    figure.src = `/runs/${runId}/report/figure.png?v=${state.figureStamp}`;
  };
  const figureDone = () => {
    figureLoading = false;
    if (figurePending) {
      figurePending = false;
      refreshFigure();
    }
  };
  figure.addEventListener("load", figureDone);
  figure.addEventListener("error", figureDone);
  const renderAll = () => {
    renderRunHeader(header, state.live, [...state.jobs.values()]);
    renderMatrix(matrix, state.live, [...state.jobs.values()]);
  };
  followRun(runId, {
    snapshot(live) {
      state.live = live;
      state.jobs = new Map(live.jobs.map((job) => [job.id, job]));
      renderAll();
      refreshFigure();
    },
    job(job) {
      const before = state.jobs.get(job.id);
      state.jobs.set(job.id, job);
      renderAll();
      if (job.status === "succeeded" && before && before.status !== "succeeded") refreshFigure();
    },
    run(summary) {
      Object.assign(state.live, summary);
      renderAll();
    },
    end(summary) {
      Object.assign(state.live, summary);
      renderAll();
      refreshFigure();
    },
  });
}

function renderRunHeader(header, live, jobs) {
  const counts = Object.entries(live.counts).map(([status, n]) => `${n} ${status}`).join(", ");
  const ended = live.job_count - (live.counts.queued || 0) - (live.counts.running || 0);
  header.replaceChildren(
    el("div", { class: "facts" },
      el("span", {}, badge(live.status)),
      el("span", {}, `${live.job_count} jobs: ${counts || "none"}`),
      el("span", {}, `${live.skipped_count} skipped view(s)`),
      el("span", { "data-testid": "run-eta" },
        live.terminal ? "finished" : `ETA ${duration(live.eta_s)}`),
      verdictSummary(jobs)),
    bar(ended, live.job_count));
}

function renderMatrix(container, live, jobs) {
  const doses = [...new Set([...jobs.map((j) => j.dose), ...live.skipped_views.map((s) => s.dose)])]
    .sort((a, b) => a - b);
  const views = sortViews(new Set([...jobs.map((j) => j.view), ...live.skipped_views.map((s) => s.view)]));
  const gridsize = {};
  for (const job of jobs) gridsize[job.view] = job.gridsize;
  const head = el("tr", {}, el("th", {}, "dose"),
    views.map((view) => el("th", {}, view, gridsize[view] ? el("small", {}, ` gs${gridsize[view]}`) : null)));
  const rows = doses.map((d) => el("tr", {}, el("th", { class: "dose" }, dose(d)),
    views.map((view) => {
      const here = jobs.filter((j) => j.dose === d && j.view === view);
      const job = here.find((j) => (j.kind ?? "train") === "train");
      const rebuilt = here.filter((j) => j.kind === "reconstruct");
      const skip = live.skipped_views.find((s) => s.dose === d && s.view === view);
      if (!job && !rebuilt.length) return skipCell(skip);
      const cell = job ? jobCell(job) : el("td", { class: "cell" });
      for (const other of rebuilt) cell.append(reconstructionLine(other));
      return cell;
    })));
  container.replaceChildren(el("table", { class: "matrix", "data-testid": "matrix" },
    el("thead", {}, head), el("tbody", {}, rows)));
}

// A pty-chi reconstruction of the cell's dose and view: engine, split, status, its score.
function reconstructionLine(job) {
  const corr = job.metrics?.phase_correlation;
  return el("div", { class: "ptychi", "data-testid": "ptychi" },
    el("a", { href: `/ui/jobs/${job.id}` }, `pty-chi ${job.engine} ${job.split}`), " ",
    badge(job.status),
    corr === undefined || corr === null ? null : ` phase corr ${number(corr)}`);
}

function jobCell(job) {
  const epoch = job.epoch ?? 0;
  const lines = [
    el("div", { class: "cell-head" }, badge(job.status),
      el("a", { href: `/ui/jobs/${job.id}` }, `job ${job.id}`)),
    el("div", { class: "epoch", "data-testid": "epoch" }, `epoch ${epoch}/${job.epochs_total}`),
    bar(job.status === "succeeded" ? job.epochs_total : Math.max(0, epoch - (job.status === "running" ? 1 : 0)), job.epochs_total),
  ];
  if (job.loss !== null && job.loss !== undefined) lines.push(el("div", {}, `loss ${number(job.loss, 4)}`));
  if (ACTIVE.has(job.status)) lines.push(el("div", { class: "muted", "data-testid": "eta" }, `ETA ${duration(job.eta_s)}`));
  const mark = verdictMark(job);
  if (mark) lines.push(el("div", { class: "cell-verdict" }, mark));
  if (job.metrics) {
    lines.push(el("dl", { class: "metrics" }, SHOWN_METRICS.map(([label, key, digits]) =>
      [el("dt", {}, label), el("dd", {}, number(job.metrics[key], digits))])));
  }
  if (job.error) lines.push(el("div", { class: "error small" }, job.error));
  const judged = job.verdict ? ` judged-${verdictKind(job)}` : "";
  return el("td", { class: `cell ${job.status}${judged}`, "data-testid": "job-cell", "data-job": job.id }, lines);
}

function skipCell(skip) {
  if (!skip) return el("td", { class: "cell empty" }, "–");
  // The reason without the list of paths checked (the tooltip keeps the whole text).
  const head = skip.reason.split(" (layouts checked")[0].split(" (checked ")[0];
  const rejection = skip.reason.split("recorded a rejection: ")[1];
  return el("td", { class: "cell skipped", "data-testid": "skip-cell", title: skip.reason },
    el("div", { class: "cell-head" }, badge("skipped")),
    el("div", { class: "small" }, head),
    rejection ? el("div", { class: "small muted" }, `rejected: ${rejection}`) : null);
}

// --- job page ----------------------------------------------------------------------

async function jobPage() {
  const jobId = pageId();
  const app = document.getElementById("app");
  let job = await getJSON(`/jobs/${jobId}`);
  const header = el("section", { class: "job-header", "data-testid": "job-header" });
  const curves = el("section", { class: "curves", "data-testid": "loss-curves" });
  const images = el("section", { class: "images" });
  const metrics = el("section", { class: "job-metrics" });
  const log = el("pre", { class: "log", "data-testid": "log" });
  app.replaceChildren(
    el("h1", {}, `Job ${jobId}`, " ", el("small", {}, el("a", { href: `/ui/runs/${job.run_id}` }, `run ${job.run_id}`))),
    header,
    el("div", { class: "two" }, el("div", {}, el("h2", {}, "Loss"), curves),
      el("div", {}, el("h2", {}, "Quality"), metrics)),
    el("h2", {}, "Reconstruction vs ground truth"), images,
    el("h2", {}, "Log (tail)"), log);

  let live = null;
  const render = () => renderJobHeader(header, job, live);
  const refreshCurves = async () =>
    drawCurves(curves, await getJSON(`/jobs/${jobId}/history`), live, job.result);
  const refreshResult = async () => {
    const [fresh, report] = await Promise.all([
      getJSON(`/jobs/${jobId}`), getJSON(`/runs/${job.run_id}/report`)]);
    const resultChanged = JSON.stringify(fresh.result) !== JSON.stringify(job.result);
    job = fresh;
    renderMetrics(metrics, job, report.rows.find((row) => row.job_id === jobId));
    if (resultChanged) await refreshCurves();  // its reference losses come with the result
    renderImages(images, job, await getJSON(`/jobs/${jobId}/artifacts`));
  };
  const tail = makeLogTail(log, jobId);
  render();
  await Promise.all([refreshCurves(), refreshResult(), tail.poll()]);

  const update = (next) => {
    const before = live;
    live = next;
    render();
    if (!before || before.epoch !== next.epoch || before.loss !== next.loss) refreshCurves().catch(fail);
    if (!before || before.status !== next.status) refreshResult().catch(fail);
    tail.poll().catch(fail);
  };
  followRun(job.run_id, {
    snapshot(data) { const mine = data.jobs.find((j) => j.id === jobId); if (mine) update(mine); },
    job(data) { if (data.id === jobId) update(data); },
    end() { tail.poll().catch(fail); },
  });
  setInterval(() => { if (!live || ACTIVE.has(live.status)) tail.poll().catch(fail); }, 2000);
}

function renderJobHeader(header, job, live) {
  const status = live ? live.status : job.status;
  const epochs = live ? live.epochs_total : job.progress.epochs;
  const epoch = live ? live.epoch : job.progress.epoch;
  header.replaceChildren(el("div", { class: "facts" },
    badge(status),
    el("span", {}, `dose ${dose(job.dose)}`),
    el("span", {}, `view ${job.view}`),
    el("span", {}, `gridsize ${job.gridsize}`),
    el("span", { "data-testid": "job-epoch" }, `epoch ${epoch ?? 0}/${epochs ?? "?"}`),
    live && ACTIVE.has(status) ? el("span", {}, `ETA ${duration(live.eta_s)}`) : null,
    live && live.worker ? el("span", {}, `worker ${live.worker}`) : null,
    job.executor ? el("span", { "data-testid": "job-executor" }, `on ${job.executor}`) : null,
    el("span", {}, `attempt ${job.attempts}/${job.max_attempts}`)),
    job.error ? el("pre", { class: "error" }, job.error.split("\n").slice(-6).join("\n")) : "");
}

// The job's metrics beside the report's trivial baselines for the same dose and view, the
// skill against the flat object, and the report's verdict in words.
function renderMetrics(container, job, row) {
  const result = job.result || {};
  const ours = result.metrics || {};
  const baselines = (row && row.baselines) || {};
  const flat = baselines.flat || {};
  const inputOnly = baselines.input_only || {};
  const skill = (row && row.skill && row.skill.model) || {};
  const keys = Object.keys(ours);
  if (!keys.length) {
    container.replaceChildren(el("p", { class: "muted" }, "No metrics until the job has trained."));
    return;
  }
  const judged = row && row.verdict
    ? el("p", { class: "job-verdict" }, "Verdict: ", verdictMark(row, "job-verdict"), " ",
      el("span", { class: "muted small" },
        `phase MAE ${number(ours.phase_mae, 3)} against ${number(flat.phase_mae, 3)} for the ${FLAT_LABEL}`,
        row.collapse_reason ? `; collapse: ${row.collapse_reason}` : ""))
    : null;
  container.replaceChildren(judged, el("table", { class: "metrics-table", "data-testid": "metrics-table" },
    el("thead", {}, el("tr", {},
      ["metric", "model", FLAT_LABEL, INPUT_ONLY_LABEL, "skill vs flat"].map((h) => el("th", {}, h)))),
    el("tbody", {}, keys.map((key) => el("tr", {},
      el("td", {}, key.replaceAll("_", " ")),
      el("td", { class: "num" }, number(ours[key], 4)),
      el("td", { class: "num muted" }, number(flat[key], 4)),
      el("td", { class: "num muted" }, number(inputOnly[key], 4)),
      el("td", { class: "num" }, number(skill[key], 2)))))),
    el("p", { class: "muted small" }, `final loss ${number(result.final_loss, 4)}, `,
      `${result.epochs_completed ?? "–"} epochs, ${duration(result.duration_s)}; baselines `,
      row && row.baseline_source === "result" ? "scored by the worker" : "from the test split"));
}

function renderImages(container, job, artifacts) {
  const png = artifacts.data.find((a) => a.name === "reconstruction.png");
  const links = artifacts.data.map((a) => el("a", { href: a.url }, a.name));
  const caption = `job ${job.id}: ${job.view}, dose ${dose(job.dose)}, gridsize ${job.gridsize}`;
  container.replaceChildren(
    png ? el("figure", {},
      el("img", { src: `${png.url}?v=${png.size_bytes}`, alt: caption, "data-testid": "reconstruction", class: "recon" }),
      el("figcaption", {}, caption))
      : el("p", { class: "muted" }, "The reconstruction appears when the job has trained."),
    el("p", { class: "small" }, "Artifacts: ", links.length ? links.flatMap((a, i) => (i ? [" · ", a] : [a])) : "none yet"));
}

function makeLogTail(pre, jobId) {
  let offset = 0;
  let lines = [];
  let busy = false;
  return {
    async poll() {
      if (busy) return;
      busy = true;
      try {
        const response = await fetch(`/jobs/${jobId}/log?offset=${offset}`);
        if (!response.ok) return;
        const text = await response.text();
        offset = Number(response.headers.get("X-Log-Next-Offset") || offset);
        if (text) {
          lines = lines.concat(text.split("\n").filter((line) => line.length));
          lines = lines.slice(-200);
          pre.textContent = lines.join("\n");
          pre.scrollTop = pre.scrollHeight;
        } else if (!lines.length) {
          pre.textContent = "(empty)";
        }
      } finally {
        busy = false;
      }
    },
  };
}

// An SVG line chart of per-epoch losses (and the live loss of the epoch in training), with
// the flat object's and the ground truth's validation losses as labelled horizontal lines:
// a val loss that never leaves the flat object's line is a model that learned nothing.
function drawCurves(container, history, live, result) {
  const series = {};
  for (const point of history.data) {
    for (const [name, value] of Object.entries(point.losses)) {
      if (!name.endsWith("loss")) continue;  // a learning rate on the same line is no loss
      (series[name] = series[name] || []).push([point.epoch, value]);
    }
  }
  const references = [
    ["ref-flat", `${FLAT_LABEL}`, (result || {}).flat_val_loss],
    ["ref-truth", "ground truth", (result || {}).reference_val_loss],
  ].filter(([, , value]) => typeof value === "number" && Number.isFinite(value));
  if (live && live.status === "running" && typeof live.loss === "number" && live.epoch) {
    series["live loss"] = [[live.epoch, live.loss]];
  }
  const names = Object.keys(series);
  if (!names.length) {
    container.replaceChildren(el("p", { class: "muted" }, "No finished epoch yet."));
    return;
  }
  const W = 520, H = 260, L = 64, R = 12, T = 12, B = 36;
  const xs = names.flatMap((n) => series[n].map((p) => p[0]));
  const ys = names.flatMap((n) => series[n].map((p) => p[1])).concat(references.map((r) => r[2]));
  const xMax = Math.max(history.epochs_total || 1, ...xs), xMin = 1;
  let yMin = Math.min(...ys), yMax = Math.max(...ys);
  if (yMin === yMax) { yMin -= 0.5; yMax += 0.5; }
  const pad = 0.05 * (yMax - yMin);
  yMin -= pad; yMax += pad;
  const sx = (x) => L + ((x - xMin) / Math.max(xMax - xMin, 1)) * (W - L - R);
  const sy = (y) => T + (1 - (y - yMin) / (yMax - yMin)) * (H - T - B);
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("class", "chart");
  svg.setAttribute("data-testid", "loss-chart");
  const add = (tag, attrs, text) => {
    const node = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    svg.append(node);
    return node;
  };
  add("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, class: "axis" });
  add("line", { x1: L, y1: T, x2: L, y2: H - B, class: "axis" });
  for (let i = 0; i <= 4; i += 1) {
    const y = yMin + ((yMax - yMin) * i) / 4;
    add("line", { x1: L, y1: sy(y), x2: W - R, y2: sy(y), class: "grid" });
    add("text", { x: L - 6, y: sy(y) + 4, "text-anchor": "end", class: "tick" }, number(y, 3));
  }
  const step = Math.max(1, Math.ceil((xMax - xMin) / 10));
  for (let x = xMin; x <= xMax; x += step) {
    add("text", { x: sx(x), y: H - B + 16, "text-anchor": "middle", class: "tick" }, x);
  }
  add("text", { x: (L + W - R) / 2, y: H - 4, "text-anchor": "middle", class: "tick" }, "epoch");
  for (const [kind, label, value] of references) {
    add("line", { x1: L, y1: sy(value), x2: W - R, y2: sy(value), class: `ref ${kind}`, "data-testid": kind });
    add("text", { x: L + 6, y: sy(value) - 4, class: `ref-label ${kind}`, "data-testid": `${kind}-label` },
      `${label}: val loss ${number(value, 4)}`);
  }
  names.forEach((name, i) => {
    const points = series[name];
    const cls = `series s${i}`;
    if (points.length > 1) {
      add("polyline", { points: points.map(([x, y]) => `${sx(x)},${sy(y)}`).join(" "), class: cls });
    }
    for (const [x, y] of points) add("circle", { cx: sx(x), cy: sy(y), r: 3, class: cls });
    add("text", { x: W - R - 4, y: T + 14 + 14 * i, "text-anchor": "end", class: `legend s${i}` }, name);
  });
  container.replaceChildren(svg);
}

// --- start -------------------------------------------------------------------------

const PAGES = { runs: runsPage, run: runPage, job: jobPage };
document.addEventListener("DOMContentLoaded", () => {
  const page = document.getElementById("app").dataset.page;
  PAGES[page]().catch(fail);
});
