// flamefit's page: upload a photo, pick a face, follow the fit, show and offer the results.
//
// Talks only to this server (api/...). A job's id is in the page's address (#job=ID), so the
// page can be reloaded or the link shared while the job is kept.

import { HeadViewer } from "./viewer.js";

const $ = (id) => document.getElementById(id);
const STAGES = {
  waiting: "Waiting for a free worker",
  preparing: "Finding the face's landmarks and cropping",
  rigid: "Placing the head (pose and camera)",
  full: "Fitting shape, expression, texture and light",
  writing: "Writing the results",
  done: "Done",
};

let config = { max_upload_bytes: 20 * 2 ** 20, keep_hours: 24 };
let events = null;
let viewer = null;
let current = null; // the job shown
let viewerData = null;

function show(section, visible = true) {
  $(section).hidden = !visible;
}

function say(text, { state = null, error = false, detail = "" } = {}) {
  show("status");
  $("message").textContent = text;
  $("detail").textContent = detail;
  $("status").classList.toggle("error", error);
  if (state) $("status").dataset.state = state;
}

function progress(fraction) {
  show("bar", fraction !== null);
  if (fraction !== null) $("bar-fill").style.width = `${Math.round(100 * fraction)}%`;
}

async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, options);
  } catch (failure) {
    throw new Error("The server could not be reached. Is `flamefit serve` still running?");
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || `The server answered ${response.status}.`);
  return body;
}

// -- upload --------------------------------------------------------------------------------

async function upload(file) {
  closeEvents();
  show("result", false);
  show("choose", false);
  progress(null);
  if (file.size > config.max_upload_bytes) {
    say(`The file is larger than ${Math.round(config.max_upload_bytes / 2 ** 20)} MB, the most this ` +
        "server accepts. Use a smaller photo.", { state: "failed", error: true });
    return;
  }
  say(`Uploading ${file.name} and looking for faces...`, { state: "uploading" });
  try {
    const job = await api("api/jobs", {
      method: "POST",
      body: file,
      headers: { "Content-Type": "application/octet-stream", "X-Filename": encodeURIComponent(file.name) },
    });
    follow(job, URL.createObjectURL(file));
  } catch (failure) {
    say(failure.message, { state: "failed", error: true });
  }
}

// -- following a job -----------------------------------------------------------------------

function follow(job, photoUrl = null) {
  current = job;
  history.replaceState(null, "", `#job=${job.id}`);
  if (job.state === "choose") {
    chooseFace(job, photoUrl || `api/jobs/${job.id}/photo`);
  }
  update(job);
  if (job.state !== "done" && job.state !== "failed") listen(job.id);
}

function listen(id) {
  closeEvents();
  events = new EventSource(`api/jobs/${id}/events`);
  events.onmessage = (message) => update(JSON.parse(message.data));
  events.addEventListener("gone", (message) => {
    closeEvents();
    say(JSON.parse(message.data).error, { state: "failed", error: true });
  });
  events.onerror = () => {
    if (events && events.readyState === EventSource.CLOSED) {
      say("The connection to the server was lost. Reload the page to see the job again.",
          { state: "failed", error: true });
    }
  };
}

function closeEvents() {
  if (events) events.close();
  events = null;
}

function update(job) {
  current = job;
  const p = job.progress || {};
  if (job.state === "choose") {
    say(`${job.faces.length} faces found in ${job.filename}.`, { state: "choose" });
    progress(null);
  } else if (job.state === "queued") {
    say(`${job.filename}: waiting in the queue...`, { state: "queued" });
    progress(0);
  } else if (job.state === "running") {
    const stage = STAGES[p.stage] || p.stage;
    const steps = p.steps ? ` · step ${p.step} of ${p.steps}` : "";
    const error = p.landmark_error_percent_iod != null
      ? `landmark error ${p.landmark_error_percent_iod.toFixed(2)} % of the distance between the eyes` : "";
    say(`${stage}${steps}`, { state: "running", detail: error });
    progress(stageFraction(p));
  } else if (job.state === "done") {
    closeEvents();
    const r = job.result || {};
    say(`Done: ${job.filename} fitted in ${r.seconds} s.`, {
      state: "done",
      detail: `Landmark error ${Number(r.landmark_error_percent_iod).toFixed(2)} % of the distance ` +
              `between the eyes. Model: ${r.model}.`,
    });
    progress(1);
    show("choose", false);
    showResult(job);
  } else if (job.state === "failed") {
    closeEvents();
    progress(null);
    show("choose", false);
    say(job.error || "The fit failed.", { state: "failed", error: true });
  }
}

function stageFraction(p) {
  if (!p.steps) return p.stage === "writing" ? 0.98 : 0.02;
  const within = p.step / p.steps;
  return p.stage === "rigid" ? 0.2 * within : 0.2 + 0.78 * within;
}

// -- several faces -------------------------------------------------------------------------

function chooseFace(job, photoUrl) {
  show("choose");
  const frame = $("choose-frame");
  frame.querySelectorAll(".face-box").forEach((box) => box.remove());
  const img = $("choose-photo");
  img.onload = () => {
    const [width, height] = job.image_size;
    job.faces.forEach((face, index) => {
      const [x0, y0, x1, y1] = face.box;
      const box = document.createElement("button");
      box.className = "face-box";
      box.type = "button";
      box.title = `Fit face ${index + 1}`;
      box.setAttribute("aria-label", `Fit face ${index + 1}`);
      box.style.left = `${(100 * x0) / width}%`;
      box.style.top = `${(100 * y0) / height}%`;
      box.style.width = `${(100 * (x1 - x0)) / width}%`;
      box.style.height = `${(100 * (y1 - y0)) / height}%`;
      box.onclick = () => pick(job.id, index);
      frame.appendChild(box);
    });
  };
  img.src = photoUrl;
}

async function pick(id, index) {
  try {
    const job = await api(`api/jobs/${id}/face`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ face: index }),
    });
    show("choose", false);
    follow(job);
  } catch (failure) {
    say(failure.message, { state: "failed", error: true });
  }
}

// -- results -------------------------------------------------------------------------------

async function showResult(job) {
  const base = `api/jobs/${job.id}`;
  show("result");
  $("dl-glb").href = `${base}/files/mesh.glb`;
  $("dl-zip").href = `${base}/mesh.zip`;
  $("dl-params").href = `${base}/files/params.npz`;
  $("dl-camera").href = `${base}/files/camera.npz`;
  $("share").href = `#job=${job.id}`;
  $("keep").textContent = String(config.keep_hours);
  $("overlay").onload = drawPhotoLandmarks;
  $("overlay").src = `${base}/files/overlay.png`;
  try {
    viewerData = await api(`${base}/files/viewer.json`);
    if (!viewer) viewer = new HeadViewer($("viewer"));
    await viewer.load(`${base}/files/mesh.glb`, viewerData.model);
    applyLook();
  } catch (failure) {
    say(`The 3D head could not be shown: ${failure.message}`, { state: "done", error: true });
  }
}

function drawPhotoLandmarks() {
  const canvas = $("photo-landmarks");
  const img = $("overlay");
  canvas.width = img.naturalWidth;
  canvas.height = img.naturalHeight;
  const context = canvas.getContext("2d");
  context.clearRect(0, 0, canvas.width, canvas.height);
  if (!viewerData || !$("landmarks").checked) return;
  const scale = img.naturalWidth / viewerData.image_size[0];
  const radius = Math.max(1.5, canvas.width / 250);
  for (const [points, colour] of [[viewerData.detected, "#00c800"], [viewerData.fitted, "#ff2020"]]) {
    context.fillStyle = colour;
    for (const [x, y] of points) {
      context.beginPath();
      context.arc((x + 0.5) * scale, (y + 0.5) * scale, radius, 0, 2 * Math.PI);
      context.fill();
    }
  }
}

function applyLook() {
  const look = document.querySelector('input[name="look"]:checked').value;
  if (viewer) {
    viewer.setLook(look);
    viewer.showLandmarks($("landmarks").checked);
  }
  drawPhotoLandmarks();
}

// -- wiring --------------------------------------------------------------------------------

function wire() {
  const drop = $("drop");
  $("file").addEventListener("change", (event) => {
    if (event.target.files.length) upload(event.target.files[0]);
    event.target.value = "";
  });
  drop.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") $("file").click();
  });
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (event) => { event.preventDefault(); drop.classList.add("over"); });
  }
  for (const name of ["dragleave", "drop"]) {
    drop.addEventListener(name, () => drop.classList.remove("over"));
  }
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    const file = event.dataTransfer.files[0];
    if (file) upload(file);
  });
  document.querySelectorAll('input[name="look"]').forEach((input) => input.addEventListener("change", applyLook));
  $("landmarks").addEventListener("change", applyLook);
  $("reset").addEventListener("click", () => viewer && viewer.resetView());
}

async function start() {
  wire();
  try {
    config = await api("api/config");
  } catch (failure) {
    say(failure.message, { error: true });
  }
  const match = location.hash.match(/job=([A-Za-z0-9_-]+)/);
  if (match) {
    try {
      follow(await api(`api/jobs/${match[1]}`));
    } catch (failure) {
      say(failure.message, { state: "failed", error: true });
    }
  }
}

start();
