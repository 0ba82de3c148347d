/* Earshot console: a static page over the public API (no build step, no CDN; Chart.js is vendored). */
"use strict";

const $ = (id) => document.getElementById(id);
const state = { file: null, objectUrl: null, charts: {}, segments: [], recorder: null };

function baseUrl() {
  return ($("base-url").value || "").trim().replace(/\/+$/, "");
}

function key() {
  return $("key").value.trim();
}

async function api(path, options = {}) {
  const headers = Object.assign({ Authorization: `Bearer ${key()}` }, options.headers || {});
  const response = await fetch(baseUrl() + path, Object.assign({}, options, { headers }));
  const type = response.headers.get("content-type") || "";
  const body = type.includes("json") ? await response.json() : await response.text();
  if (!response.ok) {
    const message = body && body.error ? body.error.message : `HTTP ${response.status}`;
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return { body, headers: response.headers };
}

function usd(micro) {
  const text = `$${(Math.abs(micro) / 1e6).toFixed(6).replace(/0{1,3}$/, "")}`;
  return micro < 0 ? `-${text}` : text;
}

function clock(seconds) {
  const s = Math.max(0, seconds);
  const m = Math.floor(s / 60);
  return `${m}:${(s - m * 60).toFixed(1).padStart(4, "0")}`;
}

function setStatus(text) {
  $("status").textContent = text;
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

// ---- account -----------------------------------------------------------------------------------------
async function connect() {
  localStorage.setItem("earshot.key", key());
  localStorage.setItem("earshot.base", baseUrl());
  showError("");
  try {
    await Promise.all([refreshBalance(), loadModels(), refreshUsage()]);
    setStatus("connected");
  } catch (error) {
    showError(`Could not connect: ${error.message}`);
  }
}

async function refreshBalance() {
  const { body } = await api("/v1/credits/balance");
  $("balance").textContent = `balance: ${usd(body.balance_micro_usd)}`;
}

async function loadModels() {
  const { body } = await api("/v1/models");
  state.models = body.data || [];
  fillModels();
}

const ROUTE_KINDS = { transcribe: "transcription", translate: "transcription", understand: "understand", extract: "extract" };

function fillModels() {
  const select = $("model");
  const route = $("route").value;
  select.replaceChildren(new Option("(route default)", ""));
  for (const model of state.models || []) {
    const kind = model.kind || model.type || "";
    if (!kind || kind.includes(ROUTE_KINDS[route]) || (route === "extract" && kind.includes("understand"))) {
      select.add(new Option(model.id, model.id));
    }
  }
}

async function refreshUsage() {
  const { body } = await api("/v1/usage?limit=50");
  const entries = (body.data || []).slice().reverse();
  const tbody = $("usage-table").querySelector("tbody");
  tbody.replaceChildren();
  for (const entry of entries.slice().reverse().slice(0, 12)) {
    const row = tbody.insertRow();
    const when = new Date(entry.created_at * 1000).toLocaleString();
    for (const cell of [when, entry.kind, entry.model || "", entry.duration_sec ?? "", usd(entry.amount_micro_usd), usd(entry.balance_after_micro_usd)]) {
      row.insertCell().textContent = cell;
    }
  }
  drawUsage(entries);
}

function drawUsage(entries) {
  if (typeof Chart === "undefined") return;
  const labels = entries.map((e) => new Date(e.created_at * 1000).toLocaleTimeString());
  const data = {
    labels,
    datasets: [
      { type: "bar", label: "charged (USD)", data: entries.map((e) => Math.max(0, -e.amount_micro_usd) / 1e6), backgroundColor: "#f59e0b", yAxisID: "cost" },
      { type: "bar", label: "refunded (USD)", data: entries.map((e) => (e.kind === "refund" ? e.amount_micro_usd / 1e6 : 0)), backgroundColor: "#10b981", yAxisID: "cost" },
      { type: "line", label: "balance (USD)", data: entries.map((e) => e.balance_after_micro_usd / 1e6), borderColor: "#2563eb", yAxisID: "balance", tension: 0.2 },
    ],
  };
  const options = {
    maintainAspectRatio: false,
    animation: false,
    scales: { cost: { position: "left", beginAtZero: true }, balance: { position: "right", grid: { drawOnChartArea: false } } },
  };
  replaceChart("usage", $("usage-chart"), { data, options });
}

function replaceChart(name, canvas, config) {
  if (state.charts[name]) state.charts[name].destroy();
  state.charts[name] = new Chart(canvas, config);
}

// ---- audio in ----------------------------------------------------------------------------------------
function useFile(file) {
  state.file = file;
  if (state.objectUrl) URL.revokeObjectURL(state.objectUrl);
  state.objectUrl = URL.createObjectURL(file);
  $("player").src = state.objectUrl;
  $("file-name").textContent = `${file.name} (${(file.size / 1024).toFixed(0)} KB)`;
}

function wireDrop() {
  const drop = $("drop");
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    if (event.dataTransfer.files.length) useFile(event.dataTransfer.files[0]);
  });
  drop.addEventListener("click", (event) => { if (event.target === drop) $("file").click(); });
  $("file").addEventListener("change", () => { if ($("file").files.length) useFile($("file").files[0]); });
}

async function toggleRecording() {
  if (state.recorder) {
    state.recorder.stop();
    return;
  }
  if (!navigator.mediaDevices || !window.MediaRecorder) {
    $("record-state").textContent = "recording needs a browser with MediaRecorder (and https or localhost)";
    return;
  }
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const chunks = [];
    const recorder = new MediaRecorder(stream);
    recorder.ondataavailable = (event) => chunks.push(event.data);
    recorder.onstop = () => {
      stream.getTracks().forEach((track) => track.stop());
      state.recorder = null;
      $("record").textContent = "● Record";
      $("record-state").textContent = "";
      const type = recorder.mimeType || "audio/webm";
      useFile(new File(chunks, `recording.${type.includes("ogg") ? "ogg" : "webm"}`, { type }));
    };
    recorder.start();
    state.recorder = recorder;
    $("record").textContent = "■ Stop";
    $("record-state").textContent = "recording…";
  } catch (error) {
    $("record-state").textContent = `microphone unavailable: ${error.message}`;
  }
}

// ---- run ---------------------------------------------------------------------------------------------
function routeChanged() {
  const route = $("route").value;
  $("question-row").hidden = !(route === "understand" || route === "extract");
  $("speakers-row").hidden = route !== "transcribe";
  fillModels();
}

function fileAsDataUrl(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

async function run() {
  showError("");
  if (!key()) return showError("Paste an API key first (make serve prints one).");
  if (!state.file) return showError("Drop, choose or record an audio file first.");
  const route = $("route").value;
  const model = $("model").value;
  $("run").disabled = true;
  setStatus("working…");
  const started = performance.now();
  try {
    let result;
    if (route === "transcribe" || route === "translate") {
      const form = new FormData();
      form.append("file", state.file, state.file.name);
      if (model) form.append("model", model);
      const speakers = route === "transcribe" && $("speakers").checked;
      form.append("response_format", speakers ? "diarized_json" : "verbose_json");
      if (!speakers) form.append("timestamp_granularities[]", "segment");
      const path = route === "transcribe" ? "/v1/audio/transcriptions" : "/v1/audio/translations";
      result = await api(path, { method: "POST", body: form });
    } else if (route === "understand") {
      const form = new FormData();
      form.append("file", state.file, state.file.name);
      form.append("question", $("question").value);
      if (model) form.append("model", model);
      result = await api("/v1/audio/understand", { method: "POST", body: form });
    } else {
      const body = { inputMethod: "base64", audio: await fileAsDataUrl(state.file), prompt: $("question").value };
      if (model) body.model = model;
      result = await api("/api/v1/extract-audio", {
        method: "POST",
        body: JSON.stringify(body),
        headers: { "Content-Type": "application/json" },
      });
    }
    render(result.body, result.headers);
    setStatus(`done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  } catch (error) {
    showError(error.message);
    setStatus("failed");
  } finally {
    $("run").disabled = false;
    refreshBalance().catch(() => {});
    refreshUsage().catch(() => {});
  }
}

// ---- render ------------------------------------------------------------------------------------------
function render(body, headers) {
  $("raw").textContent = typeof body === "string" ? body : JSON.stringify(body, null, 2);
  $("raw-box").hidden = false;
  renderBill(body, headers);
  const answer = typeof body === "object" ? body.answer ?? (typeof body.results === "string" ? body.results : null) : body;
  $("answer").textContent = answer || "";
  $("answer").hidden = !answer;
  state.segments = typeof body === "object" && Array.isArray(body.segments) ? body.segments : [];
  renderTranscript(state.segments);
  renderTimeline(state.segments, findEvents(body));
}

function renderBill(body, headers) {
  const bill = typeof body === "object" ? body.billing : null;
  const parts = [];
  if (bill) {
    parts.push(`${bill.duration_sec} s measured`, `${bill.billable_minutes} billable min`, `cost ${usd(bill.cost_micro_usd)}`, `balance ${usd(bill.balance_micro_usd)}`);
  } else if (headers && headers.get("x-earshot-cost-usd")) {
    parts.push(`${headers.get("x-earshot-duration-sec")} s measured`, `cost $${headers.get("x-earshot-cost-usd")}`, `balance $${headers.get("x-earshot-balance-usd")}`);
  } else if (typeof body === "object" && body.creditUsage !== undefined) {
    parts.push(`${body.audioDuration} s`, `${body.creditUsage} credits`);
  }
  $("bill").textContent = parts.length ? `Bill: ${parts.join(" · ")}` : "";
  $("bill").hidden = !parts.length;
}

function renderTranscript(segments) {
  const list = $("transcript");
  list.replaceChildren();
  segments.forEach((segment, index) => {
    const item = document.createElement("li");
    item.dataset.index = index;
    const stamp = document.createElement("button");
    stamp.className = "ts";
    stamp.type = "button";
    stamp.textContent = clock(segment.start);
    stamp.title = `play from ${segment.start.toFixed(2)} s`;
    stamp.addEventListener("click", () => seek(segment.start));
    item.append(stamp);
    if (segment.speaker !== undefined && segment.speaker !== null) {
      const who = document.createElement("span");
      who.className = "speaker";
      who.textContent = String(segment.speaker);
      item.append(who);
    }
    const text = document.createElement("span");
    text.textContent = segment.text;
    item.append(text);
    list.append(item);
  });
}

function seek(seconds) {
  const player = $("player");
  player.currentTime = seconds;
  player.play().catch(() => {});
}

function highlight() {
  const now = $("player").currentTime;
  for (const item of $("transcript").children) {
    const segment = state.segments[Number(item.dataset.index)];
    item.classList.toggle("playing", segment && now >= segment.start && now < segment.end);
  }
}

/* Sound events wherever the answer carries them: arrays of objects with start/end and a label-like field. */
function findEvents(value, found = [], depth = 0) {
  if (!value || typeof value !== "object" || depth > 6) return found;
  if (Array.isArray(value)) {
    for (const item of value) {
      const label = item && typeof item === "object" ? item.label ?? item.event ?? item.class ?? item.name ?? item.type : undefined;
      if (label !== undefined && typeof item.start === "number" && typeof item.end === "number") {
        found.push({ label: String(label), start: item.start, end: item.end });
      } else {
        findEvents(item, found, depth + 1);
      }
    }
    return found;
  }
  for (const [name, child] of Object.entries(value)) {
    if (name !== "segments" && name !== "words") findEvents(child, found, depth + 1);
  }
  return found;
}

function renderTimeline(segments, events) {
  const rows = [];
  for (const segment of segments) {
    const lane = segment.speaker !== undefined && segment.speaker !== null ? `speaker ${segment.speaker}` : "speech";
    rows.push({ lane, start: segment.start, end: segment.end, text: segment.text });
  }
  for (const event of events) rows.push({ lane: event.label, start: event.start, end: event.end, text: event.label });
  const show = rows.length > 0 && typeof Chart !== "undefined";
  $("timeline-box").hidden = !show;
  $("timeline-title").hidden = !show;
  if (!show) return;
  const lanes = [...new Set(rows.map((row) => row.lane))];
  const palette = ["#2563eb", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#0ea5e9", "#84cc16", "#ec4899"];
  const data = {
    labels: lanes,
    datasets: [{
      label: "timeline",
      data: rows.map((row) => ({ x: [row.start, row.end], y: row.lane, text: row.text })),
      backgroundColor: rows.map((row) => palette[lanes.indexOf(row.lane) % palette.length]),
      borderSkipped: false,
      barPercentage: 0.7,
    }],
  };
  const options = {
    indexAxis: "y",
    maintainAspectRatio: false,
    animation: false,
    parsing: { xAxisKey: "x", yAxisKey: "y" },
    scales: { x: { type: "linear", min: 0, title: { display: true, text: "seconds" } }, y: { type: "category" } },
    plugins: {
      legend: { display: false },
      tooltip: { callbacks: { label: (ctx) => `${clock(ctx.raw.x[0])}–${clock(ctx.raw.x[1])} ${ctx.raw.text || ""}` } },
    },
    onClick: (_event, elements) => { if (elements.length) seek(rows[elements[0].index].start); },
  };
  replaceChart("timeline", $("timeline"), { type: "bar", data, options });
}

// ---- start -------------------------------------------------------------------------------------------
function start() {
  $("key").value = localStorage.getItem("earshot.key") || "";
  $("base-url").value = localStorage.getItem("earshot.base") || "";
  $("docs-link").href = `${baseUrl() || ""}/docs`;
  $("connect").addEventListener("click", connect);
  $("run").addEventListener("click", run);
  $("record").addEventListener("click", toggleRecording);
  $("route").addEventListener("change", routeChanged);
  $("player").addEventListener("timeupdate", highlight);
  wireDrop();
  routeChanged();
  if (key()) connect();
}

document.addEventListener("DOMContentLoaded", start);
