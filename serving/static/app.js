// Draw-a-digit page: sends the canvas (or an uploaded file) to the service's /predict
// as a PNG in a multipart form, so drawings and uploads share one preprocessing path
// (mnist_mlops.imaging crops, scales and centres the ink as MNIST did).
//
// Each request asks for return_input: the answer then carries model_input, a base64
// 28x28 grayscale PNG of exactly what the model was given, shown enlarged beside the bars
// so a user can see why a digit was misread (cropping, a shadow taken for ink...).
// The field is sent only if the service's OpenAPI document names it: an older service
// refuses unknown form fields, and the page must keep working against it.
//
// After each answer the page offers "Wrong? It was a ..." with ten buttons: a click sends
// {request_id, digit} to ../feedback and says whether the correction was received
// (#feedback's data-state: idle | sending | sent | error). Requests carry the header
// X-Mnist-Source: ui, so the service's inference log can tell the page from other clients.
//
// State for tests and assistive tech lives on #result: data-state is
// empty | done | no-ink | error, and data-busy is "true" while a request is in flight
// or queued.
"use strict";

(() => {
  // Relative to the page (/ui/), so it also works behind a path prefix.
  const PREDICT_URL = new URL("../predict", document.baseURI).href;
  const FEEDBACK_URL = new URL("../feedback", document.baseURI).href;
  const DOCS_URL = new URL("../docs.json", document.baseURI).href;
  const docsText = fetch(DOCS_URL)
    .then((response) => (response.ok ? response.text() : ""))
    .catch(() => "");
  const canReturnInput = docsText.then((text) => text.includes("return_input"));
  const canCorrect = docsText.then((text) => text.includes('"/feedback"'));
  const THROTTLE_MS = 250; // at most one request this often while the pen moves
  const INK = "#fff"; // white on black, like MNIST itself
  const PAPER = "#000";

  const canvas = document.getElementById("canvas");
  const ctx = canvas.getContext("2d");
  const clearButton = document.getElementById("clear");
  const fileInput = document.getElementById("file");
  const result = document.getElementById("result");
  const digitOut = document.getElementById("digit");
  const statusOut = document.getElementById("status");
  const barsList = document.getElementById("bars");
  const versionOut = document.getElementById("model-version");
  const preview = document.getElementById("preview");
  const previewImg = document.getElementById("preview-img");
  const previewName = document.getElementById("preview-name");
  const penInput = document.getElementById("pen");
  const seen = document.getElementById("seen");
  const seenImg = document.getElementById("seen-img");
  const feedback = document.getElementById("feedback");
  const feedbackDigits = document.getElementById("feedback-digits");
  const feedbackStatus = document.getElementById("feedback-status");

  // ---- the bar chart: ten rows, each with a visible text value -------------------------
  const bars = [];
  for (let d = 0; d < 10; d++) {
    const li = document.createElement("li");
    li.className = "bar";
    li.dataset.digit = String(d);
    li.innerHTML =
      `<span class="bar-label">${d}</span>` +
      `<span class="bar-track" aria-hidden="true"><span class="bar-fill"></span></span>` +
      `<span class="bar-value">0.0%</span>`;
    barsList.appendChild(li);
    bars.push({
      li,
      fill: li.querySelector(".bar-fill"),
      value: li.querySelector(".bar-value"),
    });
  }

  function showProbabilities(probs, best) {
    bars.forEach((bar, d) => {
      const p = probs ? probs[d] : 0;
      const pct = (100 * p).toFixed(1) + "%";
      bar.li.dataset.probability = String(p);
      bar.li.classList.toggle("best", d === best);
      bar.li.setAttribute("aria-label", `digit ${d}: ${pct}`);
      bar.fill.style.width = (100 * p).toFixed(2) + "%";
      bar.value.textContent = pct;
    });
  }

  function showState(state, message, digit) {
    result.dataset.state = state;
    statusOut.textContent = message;
    statusOut.classList.toggle("error", state === "error");
    digitOut.textContent = digit === undefined ? "\u2013" : String(digit);
  }

  function showModelInput(base64Png) {
    if (typeof base64Png === "string" && base64Png.length > 0) {
      seenImg.src = `data:image/png;base64,${base64Png}`;
      seen.hidden = false;
    } else {
      seenImg.removeAttribute("src");
      seen.hidden = true;
    }
  }

  // ---- "Wrong? It was a ...": one button per digit ------------------------------------
  let answeredId = null; // request_id of the answer on screen
  const aDigit = (d) => `${d === 8 ? "an" : "a"} ${d}`; // "a 7", "an 8"
  const digitButtons = [];
  for (let d = 0; d < 10; d++) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = String(d);
    button.dataset.digit = String(d);
    button.setAttribute("aria-label", `It was ${aDigit(d)}`);
    button.setAttribute("aria-pressed", "false");
    button.addEventListener("click", () => void sendCorrection(d));
    feedbackDigits.appendChild(button);
    digitButtons.push(button);
  }

  function showFeedback(requestId) {
    answeredId = typeof requestId === "string" ? requestId : null;
    feedback.dataset.state = "idle";
    feedbackStatus.textContent = "";
    digitButtons.forEach((b) => b.setAttribute("aria-pressed", "false"));
    if (answeredId === null) {
      feedback.hidden = true;
      return;
    }
    void canCorrect.then((ok) => {
      if (answeredId === requestId) feedback.hidden = !ok;
    });
  }

  async function sendCorrection(digit) {
    const requestId = answeredId;
    if (requestId === null) return;
    feedback.dataset.state = "sending";
    feedbackStatus.textContent = `Sending: it was ${aDigit(digit)}\u2026`;
    let state = "error";
    let message;
    try {
      const response = await fetch(FEEDBACK_URL, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ request_id: requestId, digit }),
      });
      const body = await response.json().catch(() => null);
      if (response.ok) {
        state = "sent";
        message = `Thanks! Correction received: it was ${aDigit(digit)}.`;
      } else if (response.status === 429) {
        message = "Too many corrections right now: try again in a moment.";
      } else {
        const detail = body && typeof body.error === "string" ? body.error : response.statusText;
        message = `Correction not received (${response.status}): ${detail}`;
      }
    } catch (err) {
      message = `Correction not received: ${err.message}`;
    }
    if (requestId !== answeredId) return; // a newer answer replaced this one
    feedback.dataset.state = state;
    feedbackStatus.textContent = message;
    digitButtons.forEach((b, d) =>
      b.setAttribute("aria-pressed", String(state === "sent" && d === digit)),
    );
  }

  function reset() {
    showProbabilities(null, -1);
    showModelInput(null);
    showFeedback(null);
    showState("empty", "Draw a digit");
  }

  // ---- talking to the service -----------------------------------------------------------
  // One request at a time; a request asked for while one is in flight is queued (only the
  // latest), and answers that a Clear made stale are dropped (generation counter).
  let generation = 0;
  let inFlight = false;
  let queued = null; // () => Promise<Blob>, the newest pending source
  let lastSent = 0;

  function setBusy() {
    result.dataset.busy = String(inFlight || queued !== null);
  }

  function requestPrediction(source) {
    queued = source;
    setBusy();
    if (!inFlight) void sendQueued();
  }

  async function sendQueued() {
    while (queued !== null) {
      const source = queued;
      const gen = generation;
      queued = null;
      inFlight = true;
      lastSent = performance.now();
      setBusy();
      try {
        const { blob, name } = await source();
        const form = new FormData();
        form.append("image", blob, name);
        if (await canReturnInput) form.append("return_input", "true");
        const response = await fetch(PREDICT_URL, {
          method: "POST",
          body: form,
          headers: { "X-Mnist-Source": "ui" },
        });
        const body = await response.json().catch(() => null);
        if (gen === generation) render(response, body);
      } catch (err) {
        if (gen === generation) showState("error", `Could not reach the model: ${err.message}`);
      } finally {
        inFlight = false;
        setBusy();
      }
    }
  }

  function render(response, body) {
    if (response.ok && body && Array.isArray(body.probabilities)) {
      showProbabilities(body.probabilities, body.digit);
      const confidence = (100 * body.probabilities[body.digit]).toFixed(1);
      showState("done", `Looks like a ${body.digit} (${confidence}% sure)`, body.digit);
      versionOut.textContent = body.model_version;
      showModelInput(body.model_input);
      showFeedback(body.request_id);
      return;
    }
    showProbabilities(null, -1);
    showModelInput(null);
    showFeedback(null);
    if (response.status === 422) {
      // The service found no ink: a blank canvas or an empty picture.
      showState("no-ink", "No digit found: draw a digit");
      return;
    }
    const detail = body && typeof body.error === "string" ? body.error : response.statusText;
    showState("error", `Error ${response.status}: ${detail}`);
  }

  function canvasSource() {
    return new Promise((resolve, reject) => {
      canvas.toBlob((blob) => {
        if (blob) resolve({ blob, name: "drawing.png" });
        else reject(new Error("the drawing could not be encoded as PNG"));
      }, "image/png");
    });
  }

  // ---- drawing with pointer events (mouse, pen and touch alike) -------------------------
  let drawing = false;
  let hasInk = false;
  let last = null;
  let throttleTimer = null;

  function paintBackground() {
    ctx.fillStyle = PAPER;
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    hasInk = false;
  }

  function toCanvas(event) {
    const rect = canvas.getBoundingClientRect();
    return {
      x: ((event.clientX - rect.left) * canvas.width) / rect.width,
      y: ((event.clientY - rect.top) * canvas.height) / rect.height,
    };
  }

  function strokeTo(point) {
    ctx.strokeStyle = INK;
    // Any width: the service normalises the stroke to MNIST's (20 px is about MNIST's own).
    ctx.lineWidth = Number(penInput.value) || canvas.width / 14;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.beginPath();
    ctx.moveTo(last.x, last.y);
    ctx.lineTo(point.x, point.y);
    ctx.stroke();
    last = point;
    hasInk = true;
  }

  function predictSoon() {
    // Throttled live prediction while drawing: now if the last request is old enough,
    // else once the throttle window ends.
    if (throttleTimer !== null) return;
    const wait = Math.max(0, THROTTLE_MS - (performance.now() - lastSent));
    throttleTimer = setTimeout(() => {
      throttleTimer = null;
      if (drawing) requestPrediction(canvasSource);
    }, wait);
  }

  canvas.addEventListener("pointerdown", (event) => {
    if (event.button !== 0) return;
    event.preventDefault();
    canvas.setPointerCapture(event.pointerId);
    drawing = true;
    clearUpload();
    last = toCanvas(event);
    strokeTo(last); // a tap leaves a dot
  });

  canvas.addEventListener("pointermove", (event) => {
    if (!drawing) return;
    const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
    for (const e of events.length ? events : [event]) strokeTo(toCanvas(e));
    predictSoon();
  });

  function endStroke() {
    if (!drawing) return;
    drawing = false;
    last = null;
    if (throttleTimer !== null) {
      clearTimeout(throttleTimer);
      throttleTimer = null;
    }
    if (hasInk) requestPrediction(canvasSource);
  }
  canvas.addEventListener("pointerup", endStroke);
  canvas.addEventListener("pointercancel", endStroke);

  // ---- clear and upload -----------------------------------------------------------------
  function clearUpload() {
    fileInput.value = "";
    if (previewImg.src) URL.revokeObjectURL(previewImg.src);
    previewImg.removeAttribute("src");
    preview.hidden = true;
  }

  function clearAll() {
    generation++; // answers still on their way are now stale
    queued = null;
    setBusy();
    paintBackground();
    clearUpload();
    reset();
  }

  clearButton.addEventListener("click", clearAll);
  canvas.addEventListener("keydown", (event) => {
    if (event.key === "Escape" || event.key === "Delete" || event.key === "Backspace") {
      event.preventDefault();
      clearAll();
    }
  });

  fileInput.addEventListener("change", () => {
    const file = fileInput.files && fileInput.files[0];
    if (!file) return;
    paintBackground(); // the prediction is now the upload's, not the drawing's
    generation++;
    if (previewImg.src) URL.revokeObjectURL(previewImg.src);
    previewImg.src = URL.createObjectURL(file);
    previewName.textContent = file.name;
    preview.hidden = false;
    showState("empty", `Reading ${file.name}\u2026`);
    requestPrediction(() => Promise.resolve({ blob: file, name: file.name }));
  });

  paintBackground();
  reset();
})();
