// The imgan serve page: plain JavaScript, no build step, no dependency, nothing loaded from elsewhere.
// It talks to the JSON API in imgan/serve/app.py (contract: GET /api/commands, /api/models, POST /api/jobs ...).

const POLL_MS = 300;
const UNDO_LIMIT = 30;
const ZOOM_STEP = 1.25;
const MAX_ZOOM = 32;

const byId = (id) => document.getElementById(id);

const state = {
  info: null,
  commands: [],
  command: null,
  models: new Map(), // name -> GET /api/models record
  downloads: new Map(), // name -> GET /api/models/{name}/download record
  optionForms: new Map(), // command name -> its generated fields (kept, so values survive a switch)
  modelChoice: new Map(), // command name -> the model picked for it
  inputs: [], // {file, url, width, height, mask: canvas|null, undo: [ImageData], brushSet}
  current: 0,
  maskFile: null, // {file, url}
  sketchMode: "draw",
  jobs: [], // newest first: GET /api/jobs/{id} records plus {title, runId}
  run: null, // {id, command, jobIds}
  selected: "", // the result shown, "jobId/index"; "" until one is picked: the first in input order
  resultKey: "",
};

// ---------------------------------------------------------------- API

class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, { credentials: "same-origin", ...options });
  } catch {
    throw new ApiError("Cannot reach the imgan server: is imgan serve still running?", 0);
  }
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!response.ok) {
    throw new ApiError(errorText(body, response), response.status);
  }
  return body;
}

function errorText(body, response) {
  if (response.status === 401) {
    const detail = body && typeof body.error === "string" ? `${body.error} ` : "";
    return `${detail}Open the address imgan serve printed (the one with ?token=…) to sign in.`;
  }
  if (body && typeof body.error === "string") return body.error;
  if (body && body.detail) {
    return typeof body.detail === "string" ? body.detail : body.detail.map((item) => item.msg).join("; ");
  }
  return `The server answered ${response.status} ${response.statusText}`.trim();
}

const enc = encodeURIComponent;

// ---------------------------------------------------------------- messages

function showError(message) {
  byId("message").classList.remove("notice");
  byId("message-text").textContent = message;
  byId("message").hidden = false;
}

function showNotice(message) {
  showError(message);
  byId("message").classList.add("notice");
}

function clearMessage() {
  byId("message").hidden = true;
}

window.addEventListener("error", (event) => {
  // A layout that settles over two frames makes Chromium report a ResizeObserver loop: harmless.
  if (!event.error && /ResizeObserver/.test(event.message)) return;
  showError(`Something went wrong on this page: ${event.message}`);
});
window.addEventListener("unhandledrejection", (event) => {
  const reason = event.reason;
  showError(reason && reason.message ? reason.message : String(reason));
});

// ---------------------------------------------------------------- small helpers

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

function formatBytes(bytes) {
  if (bytes === null || bytes === undefined) return "";
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KB", "MB", "GB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

function plural(count, word) {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}

function loadImage(url) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error("the browser cannot show this image"));
    image.src = url;
  });
}

function canvasBlob(canvas) {
  return new Promise((resolve, reject) => {
    canvas.toBlob((blob) => (blob ? resolve(blob) : reject(new Error("could not encode the drawing"))), "image/png");
  });
}

function makeCanvas(width, height) {
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  return canvas;
}

function withDownload(url) {
  const target = new URL(url, window.location.href);
  target.searchParams.set("download", "1");
  return target.pathname + target.search;
}

// ---------------------------------------------------------------- tabs

const TABS = ["input", "result", "models"];

function showTab(name) {
  for (const tab of TABS) {
    const selected = tab === name;
    const button = byId(`tab-${tab}`);
    button.setAttribute("aria-selected", String(selected));
    button.tabIndex = selected ? 0 : -1;
    byId(`panel-${tab}`).hidden = !selected;
  }
  if (name === "result") requestAnimationFrame(() => viewer.refit());
  if (name === "input") requestAnimationFrame(layoutStage);
}

function bindTabs() {
  TABS.forEach((tab, index) => {
    const button = byId(`tab-${tab}`);
    button.addEventListener("click", () => showTab(tab));
    button.addEventListener("keydown", (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (!step) return;
      const next = TABS[(index + step + TABS.length) % TABS.length];
      showTab(next);
      byId(`tab-${next}`).focus();
    });
  });
}

// ---------------------------------------------------------------- commands and options

function renderCommands() {
  const list = byId("command-list");
  list.replaceChildren(
    ...state.commands.map((command) =>
      element(
        "label",
        { class: "command" },
        element("input", {
          type: "radio",
          name: "command",
          value: command.name,
          onchange: () => {
            selectCommand(command.name);
            showTab("input");
          },
        }),
        element("span", { text: command.title }),
      ),
    ),
  );
}

function selectCommand(name) {
  const command = state.commands.find((item) => item.name === name) || state.commands[0];
  if (!command) return;
  state.command = command;
  for (const radio of document.querySelectorAll('input[name="command"]')) radio.checked = radio.value === command.name;
  if (window.location.hash !== `#${command.name}`) history.replaceState(null, "", `#${command.name}`);
  renderModelSelect();
  renderOptions();
  renderInputKind();
  updateRunHint();
}

function optionId(command, option) {
  return `option-${command.name}-${option.name}`;
}

function choiceValue(choice) {
  return typeof choice === "object" && choice !== null ? String(choice.value) : String(choice);
}

function choiceLabel(choice) {
  return typeof choice === "object" && choice !== null ? String(choice.label ?? choice.value) : String(choice);
}

function optionField(command, option) {
  const id = optionId(command, option);
  const field = element("div", { class: `field field-${option.type}` });
  const label = element("label", { for: id, text: option.label || option.name });
  const help = option.help ? element("p", { class: "help", id: `${id}-help`, text: option.help }) : null;
  let input;
  if (option.type === "checkbox") {
    input = element("input", { type: "checkbox", id, name: option.name });
    input.checked = Boolean(option.default);
    field.append(element("div", { class: "check-row" }, input, label));
  } else if (option.type === "select") {
    input = element("select", { id, name: option.name });
    for (const choice of option.choices || []) input.append(new Option(choiceLabel(choice), choiceValue(choice)));
    if (option.default !== null && option.default !== undefined) input.value = String(option.default);
    field.append(label, input);
  } else if (option.type === "number") {
    input = element("input", {
      type: "number",
      id,
      name: option.name,
      min: option.min,
      max: option.max,
      step: option.step ?? "any",
      placeholder: option.default === null || option.default === undefined ? "auto" : null,
      inputmode: "decimal",
    });
    if (option.default !== null && option.default !== undefined) input.value = String(option.default);
    const row = element("div", { class: "number-row" });
    const span = option.max - option.min;
    if (Number.isFinite(span) && span > 0 && span <= 4096 && span / (option.step || span / 100) <= 2048) {
      const range = element("input", {
        type: "range",
        min: option.min,
        max: option.max,
        step: option.step ?? "any",
        "aria-label": `${option.label || option.name} slider`,
        tabindex: "-1",
      });
      range.value = input.value === "" ? String(option.min) : input.value;
      range.addEventListener("input", () => {
        input.value = range.value;
      });
      input.addEventListener("input", () => {
        if (input.value !== "") range.value = input.value;
      });
      row.append(range);
    }
    row.append(input);
    field.append(label, row);
  } else {
    input = element("input", { type: "text", id, name: option.name });
    if (option.default !== null && option.default !== undefined) input.value = String(option.default);
    field.append(label, input);
  }
  if (help) {
    input.setAttribute("aria-describedby", help.id);
    field.append(help);
  }
  return field;
}

function renderOptions() {
  const command = state.command;
  let fields = state.optionForms.get(command.name);
  if (!fields) {
    fields = command.options.map((option) => optionField(command, option));
    state.optionForms.set(command.name, fields);
  }
  const form = byId("options");
  form.replaceChildren(...fields);
  bindStyleModel(command);
  if (!fields.length) form.append(element("p", { class: "muted small", text: "This command has no options." }));
  syncMaskOptions();
}

// Stylize runs the model of its style: keep the style select and the model select telling the same story.
function styleModel(command, style) {
  return command.models.find((name) => name === style || name.endsWith(`-${style}`));
}

function bindStyleModel(command) {
  const option = command.options.find((item) => item.name === "style" && item.type === "select");
  if (!option) return;
  const select = byId(optionId(command, option));
  if (!select.dataset.bound) {
    select.dataset.bound = "1";
    select.addEventListener("change", () => {
      const model = styleModel(command, select.value);
      if (!model || state.command !== command) return;
      byId("model").value = model;
      state.modelChoice.set(command.name, model);
      renderModelState();
    });
  }
  const model = styleModel(command, select.value);
  if (model) {
    byId("model").value = model;
    state.modelChoice.set(command.name, model);
    renderModelState();
  }
}

function followModel(command, model) {
  const option = command.options.find((item) => item.name === "style" && item.type === "select");
  if (!option) return;
  const style = (option.choices || []).map(choiceValue).find((choice) => styleModel(command, choice) === model);
  if (style) byId(optionId(command, option)).value = style;
}

function collectOptions(command) {
  const values = {};
  for (const option of command.options) {
    const input = byId(optionId(command, option));
    const name = option.label || option.name;
    if (option.type === "checkbox") {
      values[option.name] = input.checked;
    } else if (option.type === "number") {
      if (input.value.trim() === "") {
        if (!input.validity.badInput) continue;
      }
      if (!input.checkValidity()) {
        input.focus();
        throw new Error(`${name}: ${input.validationMessage}`);
      }
      values[option.name] = Number(input.value);
    } else if (input.value !== "" || option.type === "select") {
      values[option.name] = input.value;
    }
  }
  return values;
}

// The painted mask is always white = fill; invert_mask is for an uploaded mask file only.
function syncMaskOptions() {
  const command = state.command;
  if (!command || !command.mask) return;
  const invert = command.options.find((option) => option.name === "invert_mask");
  if (!invert) return;
  const input = byId(optionId(command, invert));
  if (!input) return;
  input.disabled = !state.maskFile;
  input.title = state.maskFile ? "" : "Applies to an uploaded mask file";
}

// ---------------------------------------------------------------- models

function modelStateText(model) {
  if (!model) return "";
  if (model.embedded) return "built in";
  if (model.installed) return "installed";
  return model.size_bytes ? `not installed, ${formatBytes(model.size_bytes)}` : "not installed";
}

function renderModelSelect() {
  const command = state.command;
  const select = byId("model");
  select.replaceChildren(
    ...command.models.map((name) => {
      const model = state.models.get(name);
      const text = model ? `${name} (${modelStateText(model)})` : name;
      return new Option(text, name);
    }),
  );
  select.value = state.modelChoice.get(command.name) || command.default_model || command.models[0] || "";
  select.disabled = command.models.length <= 1;
  renderModelState();
}

function renderModelState() {
  const name = byId("model").value;
  const box = byId("model-state");
  const model = state.models.get(name);
  box.replaceChildren();
  if (!model) return;
  if (model.description) box.append(element("p", { class: "muted small", text: model.description }));
  if (!model.installed && !model.embedded) box.append(downloadControl(model));
  updateRunHint();
}

function downloadControl(model) {
  const progress = state.downloads.get(model.name);
  const wrap = element("div", { class: "download" });
  if (progress && progress.state === "running") {
    const total = progress.total || 0;
    const bar = element("progress", { max: total || null, "aria-label": `Downloading ${model.name}` });
    if (total) bar.value = progress.done;
    const text = total
      ? `${formatBytes(progress.done)} of ${formatBytes(total)}`
      : `${formatBytes(progress.done) || "starting"}…`;
    wrap.append(bar, element("span", { class: "small", text }));
  } else if (!model.downloadable) {
    wrap.append(element("span", { class: "muted small", text: "Not installed and not downloadable here." }));
  } else {
    const label = progress && progress.state === "failed" ? "Retry download" : "Download";
    wrap.append(
      element("button", {
        class: "button",
        type: "button",
        text: `${label}${model.size_bytes ? ` (${formatBytes(model.size_bytes)})` : ""}`,
        "aria-label": `${label} ${model.name}`,
        onclick: () => startDownload(model.name),
      }),
    );
    if (progress && progress.state === "failed" && progress.error) {
      wrap.append(element("span", { class: "inline-error small", text: progress.error }));
    }
  }
  return wrap;
}

function renderModelsTable() {
  const body = byId("models-body");
  body.replaceChildren(
    ...[...state.models.values()].map((model) => {
      const stateCell = element("td", { class: "state" });
      if (model.installed || model.embedded) {
        stateCell.append(element("span", { class: "badge ok", text: model.embedded ? "Built in" : "Installed" }));
      } else {
        stateCell.append(downloadControl(model));
      }
      return element(
        "tr",
        {},
        element("th", { scope: "row", text: model.name }),
        element("td", { text: model.task }),
        element("td", { class: "description", text: model.description || "" }),
        element("td", { class: "size", text: formatBytes(model.size_bytes) || "–" }),
        stateCell,
      );
    }),
  );
}

async function refreshModels() {
  const models = await api("/api/models");
  state.models = new Map(models.map((model) => [model.name, model]));
  renderModelsTable();
  if (state.command) {
    const chosen = byId("model").value;
    renderModelSelect();
    if (chosen) byId("model").value = chosen;
    renderModelState();
  }
}

async function startDownload(name) {
  clearMessage();
  try {
    const started = await api(`/api/models/${enc(name)}/download`, { method: "POST" });
    state.downloads.set(name, { name, state: "running", done: 0, total: null, error: null, ...started });
    if (state.downloads.get(name).state === "idle") state.downloads.get(name).state = "running";
  } catch (error) {
    showError(`Download of ${name} failed: ${error.message}`);
    return;
  }
  renderDownloads();
  pollDownload(name, 0);
}

async function pollDownload(name, idlePolls) {
  let progress;
  try {
    progress = await api(`/api/models/${enc(name)}/download`);
  } catch (error) {
    state.downloads.set(name, { name, state: "failed", done: 0, total: null, error: error.message });
    renderDownloads();
    showError(`Download of ${name} failed: ${error.message}`);
    return;
  }
  // "idle" right after the POST: the thread has not started yet; keep asking a little while.
  const waiting = progress.state === "idle" && idlePolls < 20;
  state.downloads.set(name, waiting ? { ...progress, state: "running" } : progress);
  renderDownloads();
  if (progress.state === "running" || waiting) {
    setTimeout(() => pollDownload(name, idlePolls + (waiting ? 1 : 0)), 500);
  } else if (progress.state === "done") {
    state.downloads.delete(name);
    await refreshModels();
    showNotice(`${name} is installed.`);
  } else if (progress.state === "failed") {
    showError(`Download of ${name} failed: ${progress.error || "unknown error"}`);
  }
}

function renderDownloads() {
  renderModelsTable();
  if (state.command) renderModelState();
}

// ---------------------------------------------------------------- inputs

function isImageFile(file) {
  return file.type.startsWith("image/") || /\.(png|jpe?g|webp|bmp|tiff?|gif)$/i.test(file.name);
}

// Files are added one batch at a time, in the order they came (picked, dropped, pasted).
let adding = Promise.resolve();

function addFiles(fileList) {
  const files = [...fileList];
  adding = adding.then(() => addFilesNow(files)).catch((error) => showError(error.message));
  return adding;
}

async function addFilesNow(fileList) {
  const files = fileList.filter(isImageFile);
  const skipped = fileList.length - files.length;
  if (!files.length) {
    if (skipped) showError("Those files are not images.");
    return;
  }
  const limit = state.info ? state.info.max_upload_bytes : 0;
  for (const file of files) {
    if (limit && file.size > limit) {
      showError(`${file.name} is ${formatBytes(file.size)}; the server takes up to ${formatBytes(limit)}.`);
      continue;
    }
    const url = URL.createObjectURL(file);
    let width = null;
    let height = null;
    try {
      const image = await loadImage(url);
      width = image.naturalWidth;
      height = image.naturalHeight;
    } catch {
      // The server may still read it (TIFF, 16-bit ...): it is sent, just not previewed.
    }
    const maxPixels = state.info ? state.info.max_pixels : 0;
    if (maxPixels && width * height > maxPixels) {
      URL.revokeObjectURL(url);
      showError(`${file.name} is ${width} × ${height}; the server takes up to ${maxPixels.toLocaleString()} pixels.`);
      continue;
    }
    state.inputs.push({ file, url, width, height, mask: null, undo: [], brushSet: false });
  }
  if (skipped) showNotice(`Skipped ${plural(skipped, "file")} that ${skipped === 1 ? "is" : "are"} not an image.`);
  state.current = state.inputs.length - 1;
  if (state.command && state.command.input === "sketch") setSketchMode("files");
  renderInputs();
  updateRunHint();
  showTab("input");
}

function removeInput(index) {
  const [removed] = state.inputs.splice(index, 1);
  if (removed) URL.revokeObjectURL(removed.url);
  state.current = Math.min(state.current, state.inputs.length - 1);
  renderInputs();
  updateRunHint();
}

function renderInputKind() {
  const command = state.command;
  const captions = command.input === "captions";
  const sketch = command.input === "sketch";
  byId("captions-input").hidden = !captions;
  byId("image-input").hidden = captions;
  byId("sketch-mode").hidden = !sketch;
  byId("sketch-view").hidden = !(sketch && state.sketchMode === "draw");
  byId("files-view").hidden = sketch && state.sketchMode === "draw";
  renderInputs();
  requestAnimationFrame(layoutSketch);
}

function setSketchMode(mode) {
  state.sketchMode = mode;
  for (const radio of document.querySelectorAll('input[name="sketch-mode"]')) radio.checked = radio.value === mode;
  if (state.command) renderInputKind();
  updateRunHint();
}

function renderInputs() {
  const has = state.inputs.length > 0;
  byId("drop-zone").hidden = has;
  byId("preview").hidden = !has;
  const masking = Boolean(state.command && state.command.mask);
  byId("mask-tools").hidden = !masking;
  byId("mask-help").hidden = !masking;
  byId("stage").classList.toggle("painting", masking && !state.maskFile);
  const strip = byId("input-strip");
  strip.replaceChildren(
    ...state.inputs.map((input, index) =>
      element(
        "li",
        { class: `thumb${index === state.current ? " selected" : ""}` },
        element(
          "button",
          {
            class: "thumb-pick",
            type: "button",
            "aria-pressed": String(index === state.current),
            "aria-label": `Show ${input.file.name}`,
            onclick: () => {
              state.current = index;
              renderInputs();
            },
          },
          input.width ? element("img", { src: input.url, alt: "" }) : element("span", { text: "?" }),
          element("span", { class: "thumb-name", text: input.file.name }),
        ),
        element("button", {
          class: "thumb-remove icon-button",
          type: "button",
          "aria-label": `Remove ${input.file.name}`,
          text: "×",
          onclick: () => removeInput(index),
        }),
      ),
    ),
    element(
      "li",
      { class: "thumb add" },
      element("button", {
        class: "thumb-pick",
        type: "button",
        text: "+ Add",
        "aria-label": "Add images",
        onclick: () => byId("file-input").click(),
      }),
    ),
  );
  renderPreview();
}

function renderPreview() {
  const input = state.inputs[state.current];
  const stack = byId("paint-stack");
  const image = byId("preview-image");
  for (const canvas of stack.querySelectorAll("canvas")) canvas.remove();
  if (!input) return;
  image.src = input.url;
  image.alt = input.file.name;
  const overlay = byId("mask-file-overlay");
  overlay.hidden = !(state.command && state.command.mask && state.maskFile);
  if (state.maskFile) overlay.src = state.maskFile.url;
  byId("mask-file-remove").hidden = !state.maskFile;
  byId("mask-file-label").hidden = Boolean(state.maskFile);
  for (const id of ["brush-size", "mask-eraser", "mask-undo", "mask-clear"]) byId(id).disabled = Boolean(state.maskFile);
  if (state.command && state.command.mask && !state.maskFile && input.width) {
    stack.insertBefore(maskCanvas(input), byId("brush-cursor"));
    const brush = byId("brush-size");
    const longest = Math.max(input.width, input.height);
    brush.max = String(Math.max(8, Math.round(longest / 3)));
    if (!input.brushSet) {
      brush.value = String(Math.max(2, Math.round(longest / 12)));
      input.brushSet = true;
    }
    byId("brush-size-value").textContent = `${brush.value} px`;
  }
  layoutStage();
}

// Size the preview so it fills the stage; tiny images are enlarged (pixelated) so they can be painted on.
function layoutStage() {
  const input = state.inputs[state.current];
  const stage = byId("stage");
  const stack = byId("paint-stack");
  if (!input || !input.width || stage.offsetParent === null) return;
  const room = stage.getBoundingClientRect();
  const scale = Math.min((room.width - 16) / input.width, (room.height - 16) / input.height, 12);
  stack.style.width = `${Math.max(1, Math.floor(input.width * scale))}px`;
  stack.style.height = `${Math.max(1, Math.floor(input.height * scale))}px`;
  stack.classList.toggle("pixelated", scale >= 2);
}

// ---------------------------------------------------------------- the mask painter (inpaint)

function maskCanvas(input) {
  if (!input.mask) {
    input.mask = makeCanvas(input.width, input.height);
    input.mask.className = "mask-canvas";
    input.mask.setAttribute("aria-label", `Mask for ${input.file.name}: paint what to fill`);
    bindPainter(input.mask, {
      size: () => Number(byId("brush-size").value),
      erasing: () => byId("mask-eraser").getAttribute("aria-pressed") === "true",
      color: "#ff2d55",
      undo: () => input.undo,
      cursor: byId("brush-cursor"),
    });
  }
  return input.mask;
}

function pushUndo(stack, canvas) {
  stack.push(canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height));
  if (stack.length > UNDO_LIMIT) stack.shift();
}

function undo(stack, canvas) {
  const snapshot = stack.pop();
  if (snapshot) canvas.getContext("2d").putImageData(snapshot, 0, 0);
}

// Free-hand strokes with the pointer (mouse, pen, touch) on a canvas shown at any CSS size.
function bindPainter(canvas, tool) {
  let last = null;
  const context = canvas.getContext("2d");
  const point = (event) => {
    const box = canvas.getBoundingClientRect();
    return {
      x: ((event.clientX - box.left) * canvas.width) / box.width,
      y: ((event.clientY - box.top) * canvas.height) / box.height,
    };
  };
  const stroke = (from, to) => {
    const erasing = tool.erasing();
    context.save();
    context.globalCompositeOperation = erasing && !tool.eraseColor ? "destination-out" : "source-over";
    context.strokeStyle = erasing && tool.eraseColor ? tool.eraseColor : tool.color;
    context.fillStyle = context.strokeStyle;
    context.lineWidth = tool.size();
    context.lineCap = "round";
    context.lineJoin = "round";
    context.beginPath();
    if (from.x === to.x && from.y === to.y) {
      context.arc(to.x, to.y, tool.size() / 2, 0, Math.PI * 2);
      context.fill();
    } else {
      context.moveTo(from.x, from.y);
      context.lineTo(to.x, to.y);
      context.stroke();
    }
    context.restore();
  };
  const moveCursor = (event) => {
    if (!tool.cursor) return;
    const box = canvas.getBoundingClientRect();
    const parent = canvas.parentElement.getBoundingClientRect();
    const diameter = (tool.size() * box.width) / canvas.width;
    Object.assign(tool.cursor.style, {
      width: `${diameter}px`,
      height: `${diameter}px`,
      left: `${event.clientX - parent.left - diameter / 2}px`,
      top: `${event.clientY - parent.top - diameter / 2}px`,
    });
    tool.cursor.hidden = false;
  };
  canvas.addEventListener("pointerdown", (event) => {
    if (event.button !== 0) return;
    event.preventDefault();
    canvas.setPointerCapture(event.pointerId);
    pushUndo(tool.undo(), canvas);
    last = point(event);
    stroke(last, last);
  });
  canvas.addEventListener("pointermove", (event) => {
    moveCursor(event);
    if (!last) return;
    const next = point(event);
    stroke(last, next);
    last = next;
  });
  const end = () => {
    last = null;
  };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  canvas.addEventListener("pointerleave", () => {
    if (tool.cursor) tool.cursor.hidden = true;
  });
}

function maskIsEmpty(canvas) {
  const { data } = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
  for (let i = 3; i < data.length; i += 4) if (data[i] >= 128) return false;
  return true;
}

// The painted strokes as the API wants a mask: a PNG of the image's size, white = fill, black = keep.
function maskBlob(canvas) {
  const out = makeCanvas(canvas.width, canvas.height);
  const context = out.getContext("2d");
  const painted = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
  const mask = context.createImageData(canvas.width, canvas.height);
  for (let i = 0; i < painted.data.length; i += 4) {
    const value = painted.data[i + 3] >= 128 ? 255 : 0;
    mask.data[i] = value;
    mask.data[i + 1] = value;
    mask.data[i + 2] = value;
    mask.data[i + 3] = 255;
  }
  context.putImageData(mask, 0, 0);
  return canvasBlob(out);
}

function bindMaskTools() {
  const brush = byId("brush-size");
  brush.addEventListener("input", () => {
    byId("brush-size-value").textContent = `${brush.value} px`;
  });
  const eraser = byId("mask-eraser");
  eraser.addEventListener("click", () => {
    eraser.setAttribute("aria-pressed", String(eraser.getAttribute("aria-pressed") !== "true"));
  });
  byId("mask-undo").addEventListener("click", () => {
    const input = state.inputs[state.current];
    if (input && input.mask) undo(input.undo, input.mask);
  });
  byId("mask-clear").addEventListener("click", () => {
    const input = state.inputs[state.current];
    if (!input || !input.mask) return;
    pushUndo(input.undo, input.mask);
    input.mask.getContext("2d").clearRect(0, 0, input.mask.width, input.mask.height);
  });
  byId("mask-file").addEventListener("change", (event) => {
    const [file] = event.target.files;
    event.target.value = "";
    if (!file) return;
    if (state.maskFile) URL.revokeObjectURL(state.maskFile.url);
    state.maskFile = { file, url: URL.createObjectURL(file) };
    renderInputs();
    syncMaskOptions();
  });
  byId("mask-file-remove").addEventListener("click", () => {
    if (state.maskFile) URL.revokeObjectURL(state.maskFile.url);
    state.maskFile = null;
    renderInputs();
    syncMaskOptions();
  });
}

// ---------------------------------------------------------------- the sketch canvas (sketch2photo)

const sketch = { undo: [] };

function clearSketch(canvas) {
  const context = canvas.getContext("2d");
  context.fillStyle = "#ffffff";
  context.fillRect(0, 0, canvas.width, canvas.height);
}

function sketchIsBlank(canvas) {
  const { data } = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
  for (let i = 0; i < data.length; i += 4) if (data[i] < 250 || data[i + 1] < 250 || data[i + 2] < 250) return false;
  return true;
}

function layoutSketch() {
  const canvas = byId("sketch");
  const stage = canvas.parentElement;
  if (stage.offsetParent === null) return;
  const room = stage.getBoundingClientRect();
  const scale = Math.min((room.width - 16) / canvas.width, (room.height - 16) / canvas.height, 2);
  canvas.style.width = `${Math.floor(canvas.width * scale)}px`;
  canvas.style.height = `${Math.floor(canvas.height * scale)}px`;
}

function bindSketch() {
  const canvas = byId("sketch");
  clearSketch(canvas);
  const eraser = byId("sketch-eraser");
  bindPainter(canvas, {
    size: () => Number(byId("pen-size").value),
    erasing: () => eraser.getAttribute("aria-pressed") === "true",
    color: "#000000",
    eraseColor: "#ffffff",
    undo: () => sketch.undo,
  });
  byId("pen-size").addEventListener("input", (event) => {
    byId("pen-size-value").textContent = `${event.target.value} px`;
  });
  eraser.addEventListener("click", () => {
    eraser.setAttribute("aria-pressed", String(eraser.getAttribute("aria-pressed") !== "true"));
  });
  byId("sketch-undo").addEventListener("click", () => undo(sketch.undo, canvas));
  byId("sketch-clear").addEventListener("click", () => {
    pushUndo(sketch.undo, canvas);
    clearSketch(canvas);
  });
  byId("canvas-size").addEventListener("change", (event) => {
    const [width, height] = event.target.value.split("x").map(Number);
    const old = makeCanvas(canvas.width, canvas.height);
    old.getContext("2d").drawImage(canvas, 0, 0);
    canvas.width = width;
    canvas.height = height;
    clearSketch(canvas);
    const fit = Math.min(width / old.width, height / old.height);
    const drawn = { w: old.width * fit, h: old.height * fit };
    canvas.getContext("2d").drawImage(old, (width - drawn.w) / 2, (height - drawn.h) / 2, drawn.w, drawn.h);
    sketch.undo = [];
    layoutSketch();
  });
  for (const radio of document.querySelectorAll('input[name="sketch-mode"]')) {
    radio.addEventListener("change", () => {
      setSketchMode(radio.value);
      requestAnimationFrame(layoutSketch);
    });
  }
}

// ---------------------------------------------------------------- running jobs

function updateRunHint() {
  const command = state.command;
  const hint = byId("run-hint");
  if (!command) return;
  if (command.input === "captions") hint.textContent = "One picture set per caption line.";
  else if (command.input === "sketch" && state.sketchMode === "draw") hint.textContent = "Runs on the drawing.";
  else if (!state.inputs.length) hint.textContent = "Add an image first.";
  else hint.textContent = `Runs on ${plural(state.inputs.length, "image")}.`;
  const model = state.models.get(byId("model").value);
  if (model && !model.installed && !model.embedded) hint.textContent = `Download ${model.name} first.`;
}

function baseForm(command, model, options) {
  const form = new FormData();
  form.append("command", command.name);
  if (model) form.append("model", model);
  form.append("options", JSON.stringify(options));
  return form;
}

// One FormData per job: inpaint with painted masks sends one job per image (each has its own mask).
async function buildForms(command, model, options) {
  if (command.input === "captions") {
    const captions = byId("captions")
      .value.split("\n")
      .map((line) => line.trim())
      .filter(Boolean);
    if (!captions.length) throw new Error("Type a caption first, one per line.");
    const form = baseForm(command, model, options);
    form.append("captions", captions.join("\n"));
    return [{ form, title: `${command.title} · ${plural(captions.length, "caption")}` }];
  }
  if (command.input === "sketch" && state.sketchMode === "draw") {
    const canvas = byId("sketch");
    if (sketchIsBlank(canvas)) throw new Error("Draw a sketch first (or switch to Images to upload one).");
    const form = baseForm(command, model, options);
    form.append("images", await canvasBlob(canvas), "sketch.png");
    return [{ form, title: `${command.title} · drawing` }];
  }
  if (!state.inputs.length) throw new Error("Add an image first: drop it on the page or choose files.");
  const maxFiles = state.info && state.info.max_files;
  const sent = state.inputs.length + (command.mask && state.maskFile ? 1 : 0);
  if (maxFiles && sent > maxFiles) {
    throw new Error(`One run takes up to ${maxFiles} files; remove ${sent - maxFiles} of the ${sent}.`);
  }
  if (!command.mask) {
    const form = baseForm(command, model, options);
    for (const input of state.inputs) form.append("images", input.file, input.file.name);
    return [{ form, title: `${command.title} · ${plural(state.inputs.length, "image")}` }];
  }
  if (state.maskFile) {
    const form = baseForm(command, model, options);
    for (const input of state.inputs) form.append("images", input.file, input.file.name);
    form.append("mask", state.maskFile.file, state.maskFile.file.name);
    return [{ form, title: `${command.title} · ${plural(state.inputs.length, "image")}` }];
  }
  const painted = state.inputs.filter((input) => input.mask && !maskIsEmpty(input.mask));
  if (!painted.length) throw new Error("Paint over the area to fill first (or upload a mask file).");
  const painting = { ...options };
  if ("invert_mask" in painting) painting.invert_mask = false;
  const forms = [];
  for (const input of painted) {
    const form = baseForm(command, model, painting);
    form.append("images", input.file, input.file.name);
    form.append("mask", await maskBlob(input.mask), "mask.png");
    forms.push({ form, title: `${command.title} · ${input.file.name}` });
  }
  const unpainted = state.inputs.length - painted.length;
  if (unpainted) showNotice(`${plural(unpainted, "image")} without a painted mask ${unpainted === 1 ? "was" : "were"} left out.`);
  return forms;
}

let runCounter = 0;

async function run() {
  const command = state.command;
  if (!command) return;
  clearMessage();
  const button = byId("run");
  button.disabled = true;
  try {
    const options = collectOptions(command);
    const model = byId("model").value;
    const forms = await buildForms(command, model, options);
    runCounter += 1;
    const current = { id: runCounter, command, jobIds: [] };
    for (const { form, title } of forms) {
      const created = await api("/api/jobs", { method: "POST", body: form });
      const job = {
        id: created.id,
        command: command.name,
        model,
        state: "queued",
        position: created.position ?? 0,
        progress: { done: 0, total: 0 },
        results: [],
        error: null,
        title,
        runId: current.id,
      };
      state.jobs.unshift(job);
      current.jobIds.push(job.id);
      if (!state.run || state.run.id !== current.id) showRun(current);
      renderJobs();
      pollJob(job);
    }
  } catch (error) {
    showError(error.message);
  } finally {
    button.disabled = false;
  }
}

async function pollJob(job) {
  try {
    const record = await api(`/api/jobs/${enc(job.id)}`);
    Object.assign(job, record);
  } catch (error) {
    job.state = "failed";
    job.error = error.message;
  }
  renderJobs();
  if (state.run && state.run.jobIds.includes(job.id)) renderRun();
  if (job.state === "queued" || job.state === "running") {
    setTimeout(() => pollJob(job), POLL_MS);
    return;
  }
  const failed = (job.results || []).filter((result) => result.state === "failed");
  if (job.state === "failed") showError(`${job.title} failed: ${job.error || "unknown error"}`);
  else if (failed.length) {
    showError(`${plural(failed.length, "result")} of ${job.title} failed: ${failed[0].error || "unknown error"}`);
  }
}

function jobStatusText(job) {
  if (job.state === "queued") return job.position > 0 ? `Queued, ${job.position} ahead` : "Queued, next";
  if (job.state === "running") {
    const { done, total, tiles } = job.progress || {};
    if (total === 1 && tiles && tiles.total > 1) return `Running, tile ${tiles.done} / ${tiles.total}`;
    return total ? `Running ${done} / ${total}` : "Running…";
  }
  if (job.state === "failed") return `Failed: ${job.error || "unknown error"}`;
  const failed = (job.results || []).filter((result) => result.state === "failed").length;
  return failed ? `Done, ${failed} failed` : "Done";
}

// How far a job is, 0..1; null while that is unknown (an indeterminate bar). One picture: its tiles.
function jobFraction(job) {
  if (job.state === "done" || job.state === "failed") return 1;
  if (job.state === "queued") return 0;
  const { done = 0, total = 0, tiles = null } = job.progress || {};
  if (total === 1 && done === 0 && tiles && tiles.total) return tiles.done / tiles.total;
  return total ? done / total : null;
}

function jobBar(job) {
  const bar = element("progress", { max: 1, "aria-label": `Progress of ${job.title}` });
  const fraction = jobFraction(job);
  if (fraction !== null) bar.value = fraction;
  return bar;
}

function renderJobs() {
  const list = byId("jobs");
  byId("jobs-empty").hidden = state.jobs.length > 0;
  list.replaceChildren(
    ...state.jobs.map((job) => {
      const bar = jobBar(job);
      const active = state.run && state.run.jobIds.includes(job.id);
      return element(
        "li",
        { class: `job job-${job.state}${active ? " active" : ""}`, "data-job": job.id },
        element(
          "button",
          {
            class: "job-button",
            type: "button",
            "aria-label": `Show results of ${job.title}`,
            onclick: () => showRun({ id: job.runId, command: commandByName(job.command), jobIds: runJobIds(job.runId) }),
          },
          element("span", { class: "job-title", text: job.title }),
          element("span", { class: "job-state", text: jobStatusText(job) }),
        ),
        bar,
      );
    }),
  );
}

function commandByName(name) {
  return state.commands.find((command) => command.name === name);
}

function runJobIds(runId) {
  return state.jobs
    .filter((job) => job.runId === runId)
    .map((job) => job.id)
    .reverse();
}

// ---------------------------------------------------------------- results

function showRun(current) {
  state.run = current;
  state.selected = "";
  state.resultKey = "";
  renderJobs();
  renderRun();
  showTab("result");
}

function runResults() {
  const results = [];
  for (const id of state.run.jobIds) {
    const job = state.jobs.find((item) => item.id === id);
    if (!job) continue;
    const ordered = [...(job.results || [])].sort((a, b) => a.index - b.index);
    for (const result of ordered) results.push({ ...result, jobId: id, key: `${id}/${result.index}` });
  }
  return results;
}

function runJobs() {
  return state.run.jobIds.map((id) => state.jobs.find((job) => job.id === id)).filter(Boolean);
}

function renderRun() {
  if (!state.run) return;
  const jobs = runJobs();
  const results = runResults();
  const status = byId("result-status");
  const pending = jobs.filter((job) => job.state === "queued" || job.state === "running");
  status.hidden = pending.length === 0;
  status.replaceChildren(...pending.map(statusLine));
  status.classList.toggle("waiting", pending.length > 0 && !results.length);
  const failures = jobs.filter((job) => job.state === "failed");
  byId("result-empty").hidden = true;
  if (!results.length) {
    byId("viewer").hidden = true;
    byId("gallery").hidden = true;
    if (failures.length) {
      status.hidden = false;
      status.replaceChildren(...failures.map((job) => element("p", { text: `${job.title}: ${jobStatusText(job)}` })));
      status.classList.add("failed");
    } else {
      status.classList.remove("failed");
    }
    return;
  }
  status.classList.remove("failed");
  const key = results.map((result) => `${result.jobId}/${result.index}/${result.state}`).join(",");
  if (key === state.resultKey) return;
  state.resultKey = key;
  const captions = state.run.command && state.run.command.input === "captions";
  byId("viewer").hidden = captions;
  byId("gallery").hidden = !captions;
  if (captions) renderGallery(results);
  else renderStrip(results);
}

function statusLine(job) {
  const bar = jobBar(job);
  return element(
    "div",
    { class: "status-line" },
    element("span", { class: "status-title", text: job.title }),
    element("span", { class: "status-state", text: jobStatusText(job) }),
    bar,
  );
}

function renderStrip(results) {
  const shown = results.find((result) => result.key === state.selected) || results[0];
  const strip = byId("result-strip");
  strip.hidden = results.length < 2;
  strip.replaceChildren(
    ...results.map((result) =>
      element(
        "li",
        { class: `thumb${result === shown ? " selected" : ""}${result.state === "failed" ? " failed" : ""}` },
        element(
          "button",
          {
            class: "thumb-pick",
            type: "button",
            "aria-pressed": String(result === shown),
            "aria-label": `Show result ${result.name}`,
            onclick: () => {
              state.selected = result.key;
              renderStrip(results);
            },
          },
          result.output ? element("img", { src: result.output, alt: "" }) : element("span", { text: "!" }),
          element("span", { class: "thumb-name", text: result.name }),
        ),
      ),
    ),
  );
  if (viewer.result === null || viewer.result.key !== shown.key || viewer.result.state !== shown.state) {
    viewer.show(shown);
  }
}

function renderGallery(results) {
  const gallery = byId("gallery");
  const groups = new Map();
  for (const result of results) {
    const caption = result.caption ?? result.name;
    if (!groups.has(caption)) groups.set(caption, []);
    groups.get(caption).push(result);
  }
  gallery.replaceChildren(
    ...[...groups.entries()].map(([caption, items]) => {
      const oov = [...new Set(items.flatMap((item) => item.oov || []))];
      const header = element(
        "header",
        { class: "caption-head" },
        element("h3", { class: "caption", text: caption }),
        oov.length
          ? element(
              "p",
              { class: "oov" },
              element("span", { text: "Unknown words: " }),
              ...oov.map((word) => element("span", { class: "chip", text: word })),
            )
          : null,
      );
      const figures = items.map((item) => {
        if (item.state === "failed" || !item.output) {
          return element("figure", { class: "card failed" }, element("p", { class: "inline-error", text: item.error || "failed" }));
        }
        const scale = Math.max(1, Math.floor(160 / Math.max(item.width, item.height)));
        return element(
          "figure",
          { class: "card" },
          element("img", {
            src: item.output,
            alt: `${caption} (${item.name})`,
            width: item.width * scale,
            height: item.height * scale,
            class: scale > 1 ? "pixelated" : null,
          }),
          element(
            "figcaption",
            {},
            element("span", {
              class: "muted small",
              text: item.seed === null || item.seed === undefined ? `${item.width} × ${item.height}` : `seed ${item.seed}`,
            }),
            element("a", { href: withDownload(item.output), download: item.download_name, text: "Download" }),
          ),
        );
      });
      return element("section", { class: "caption-group" }, header, element("div", { class: "cards" }, ...figures));
    }),
  );
}

// ---------------------------------------------------------------- the before/after viewer

const viewer = {
  result: null,
  width: 1,
  height: 1,
  zoom: 1,
  x: 0,
  y: 0,
  split: 0.5,

  show(result) {
    this.result = result;
    const after = byId("after-image");
    const before = byId("before-image");
    const error = byId("result-error");
    error.hidden = result.state !== "failed";
    error.textContent = result.state === "failed" ? `${result.name}: ${result.error || "failed"}` : "";
    const download = byId("download");
    const useInput = byId("use-as-input");
    if (!result.output) {
      after.removeAttribute("src");
      before.removeAttribute("src");
      download.hidden = true;
      useInput.hidden = true;
      byId("result-meta").textContent = "";
      return;
    }
    download.hidden = false;
    useInput.hidden = false;
    download.href = withDownload(result.output);
    download.setAttribute("download", result.download_name || "");
    this.width = result.width;
    this.height = result.height;
    after.onerror = () => {
      error.hidden = false;
      error.textContent = `This browser cannot show ${result.download_name || "the result"}; download it to see it.`;
    };
    after.src = result.output;
    after.alt = `Result: ${result.name}`;
    for (const image of [after, before]) {
      image.style.width = `${this.width}px`;
      image.style.height = `${this.height}px`;
    }
    const compare = Boolean(result.input);
    before.hidden = !compare;
    byId("split").hidden = !compare;
    byId("tag-before").hidden = !compare;
    byId("tag-after").hidden = !compare;
    if (compare) {
      before.src = result.input;
      before.alt = `Input: ${result.name}`;
    } else {
      before.removeAttribute("src");
    }
    const inputSize =
      result.input_width && (result.input_width !== result.width || result.input_height !== result.height)
        ? `${result.input_width} × ${result.input_height} → `
        : "";
    byId("result-meta").textContent = `${inputSize}${result.width} × ${result.height}`;
    this.split = 0.5;
    this.refit();
  },

  room() {
    return byId("viewport").getBoundingClientRect();
  },

  fitZoom() {
    const room = this.room();
    if (!room.width || !room.height) return 1;
    return Math.min(room.width / this.width, room.height / this.height);
  },

  refit() {
    if (!this.result || byId("viewer").offsetParent === null) return;
    this.zoomTo(this.fitZoom());
    this.center();
  },

  center() {
    const room = this.room();
    this.x = (room.width - this.width * this.zoom) / 2;
    this.y = (room.height - this.height * this.zoom) / 2;
    this.apply();
  },

  zoomTo(zoom, anchor) {
    const room = this.room();
    const minimum = Math.min(this.fitZoom(), 1) / 4;
    const next = Math.min(MAX_ZOOM, Math.max(minimum, zoom));
    const at = anchor || { x: room.width / 2, y: room.height / 2 };
    this.x = at.x - ((at.x - this.x) * next) / this.zoom;
    this.y = at.y - ((at.y - this.y) * next) / this.zoom;
    this.zoom = next;
    this.apply();
  },

  apply() {
    const room = this.room();
    // Keep some of the picture in view.
    const margin = 48;
    this.x = Math.min(room.width - margin, Math.max(margin - this.width * this.zoom, this.x));
    this.y = Math.min(room.height - margin, Math.max(margin - this.height * this.zoom, this.y));
    byId("layer").style.transform = `translate(${this.x}px, ${this.y}px) scale(${this.zoom})`;
    byId("layer").classList.toggle("pixelated", this.zoom >= 2);
    byId("zoom-level").textContent = `${Math.round(this.zoom * 100)}%`;
    const splitX = this.split * room.width;
    const cut = Math.min(this.width, Math.max(0, (splitX - this.x) / this.zoom));
    byId("before-image").style.clipPath = `inset(0 ${this.width - cut}px 0 0)`;
    const handle = byId("split");
    handle.style.left = `${splitX}px`;
    handle.setAttribute("aria-valuenow", String(Math.round(this.split * 100)));
    handle.setAttribute("aria-valuetext", `${Math.round(this.split * 100)}% before`);
  },

  bind() {
    const viewport = byId("viewport");
    const handle = byId("split");
    let drag = null;
    viewport.addEventListener(
      "wheel",
      (event) => {
        if (!this.result) return;
        event.preventDefault();
        const room = this.room();
        const factor = Math.exp(-event.deltaY * (event.deltaMode === 1 ? 0.05 : 0.0015));
        this.zoomTo(this.zoom * factor, { x: event.clientX - room.left, y: event.clientY - room.top });
      },
      { passive: false },
    );
    viewport.addEventListener("pointerdown", (event) => {
      if (event.button !== 0 || !this.result) return;
      event.preventDefault();
      viewport.focus({ preventScroll: true });
      viewport.setPointerCapture(event.pointerId);
      const onHandle = handle.contains(event.target);
      drag = onHandle ? { split: true } : { x: event.clientX - this.x, y: event.clientY - this.y };
      viewport.classList.add(onHandle ? "splitting" : "panning");
    });
    viewport.addEventListener("pointermove", (event) => {
      if (!drag) return;
      if (drag.split) {
        const room = this.room();
        this.split = Math.min(1, Math.max(0, (event.clientX - room.left) / room.width));
      } else {
        this.x = event.clientX - drag.x;
        this.y = event.clientY - drag.y;
      }
      this.apply();
    });
    const end = () => {
      drag = null;
      viewport.classList.remove("panning", "splitting");
    };
    viewport.addEventListener("pointerup", end);
    viewport.addEventListener("pointercancel", end);
    viewport.addEventListener("keydown", (event) => {
      if (event.target === handle) return;
      const pan = { ArrowLeft: [40, 0], ArrowRight: [-40, 0], ArrowUp: [0, 40], ArrowDown: [0, -40] }[event.key];
      if (event.key === "+" || event.key === "=") this.zoomTo(this.zoom * ZOOM_STEP);
      else if (event.key === "-") this.zoomTo(this.zoom / ZOOM_STEP);
      else if (event.key === "0") this.refit();
      else if (event.key === "1") this.actual();
      else if (pan) {
        this.x += pan[0];
        this.y += pan[1];
        this.apply();
      } else return;
      event.preventDefault();
    });
    handle.addEventListener("keydown", (event) => {
      const step = { ArrowLeft: -0.02, ArrowRight: 0.02, PageDown: -0.1, PageUp: 0.1 }[event.key];
      if (event.key === "Home") this.split = 0;
      else if (event.key === "End") this.split = 1;
      else if (step) this.split = Math.min(1, Math.max(0, this.split + step));
      else return;
      event.preventDefault();
      this.apply();
    });
    byId("zoom-in").addEventListener("click", () => this.zoomTo(this.zoom * ZOOM_STEP));
    byId("zoom-out").addEventListener("click", () => this.zoomTo(this.zoom / ZOOM_STEP));
    byId("zoom-fit").addEventListener("click", () => this.refit());
    byId("zoom-actual").addEventListener("click", () => this.actual());
    byId("use-as-input").addEventListener("click", () => this.useAsInput());
  },

  actual() {
    this.zoomTo(1);
    this.center();
  },

  async useAsInput() {
    if (!this.result || !this.result.output) return;
    const response = await fetch(this.result.output, { credentials: "same-origin" });
    if (!response.ok) {
      showError(`Could not fetch ${this.result.download_name}: ${response.status}`);
      return;
    }
    const blob = await response.blob();
    await addFiles([new File([blob], this.result.download_name || "result.png", { type: blob.type || "image/png" })]);
  },
};

// ---------------------------------------------------------------- drag and drop, paste

function bindDrop() {
  let depth = 0;
  const hasFiles = (event) => event.dataTransfer && [...event.dataTransfer.types].includes("Files");
  window.addEventListener("dragenter", (event) => {
    if (!hasFiles(event)) return;
    depth += 1;
    document.body.classList.add("dragging");
  });
  window.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (!depth) document.body.classList.remove("dragging");
  });
  window.addEventListener("dragover", (event) => {
    if (hasFiles(event)) event.preventDefault();
  });
  window.addEventListener("drop", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    depth = 0;
    document.body.classList.remove("dragging");
    addFiles(event.dataTransfer.files);
  });
  window.addEventListener("paste", (event) => {
    const files = event.clipboardData ? [...event.clipboardData.files] : [];
    if (files.length && !(event.target instanceof HTMLTextAreaElement)) {
      event.preventDefault();
      addFiles(files);
    }
  });
  byId("file-input").addEventListener("change", (event) => {
    const files = [...event.target.files];
    event.target.value = "";
    addFiles(files);
  });
}

// ---------------------------------------------------------------- start

function bindStatic() {
  bindTabs();
  bindDrop();
  bindMaskTools();
  bindSketch();
  viewer.bind();
  byId("run").addEventListener("click", run);
  byId("message-close").addEventListener("click", clearMessage);
  byId("model").addEventListener("change", () => {
    if (state.command) {
      state.modelChoice.set(state.command.name, byId("model").value);
      followModel(state.command, byId("model").value);
    }
    renderModelState();
  });
  byId("options").addEventListener("submit", (event) => {
    event.preventDefault();
    run();
  });
  for (const button of document.querySelectorAll("[data-caption]")) {
    button.addEventListener("click", () => {
      const area = byId("captions");
      area.value = area.value.trim() ? `${area.value.trimEnd()}\n${button.dataset.caption}` : button.dataset.caption;
      area.focus();
    });
  }
  byId("captions").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) run();
  });
  document.addEventListener("keydown", (event) => {
    if ((event.ctrlKey || event.metaKey) && event.key === "z" && !(event.target instanceof HTMLTextAreaElement)) {
      if (byId("panel-input").hidden || !state.command) return;
      if (state.command.input === "sketch" && state.sketchMode === "draw") byId("sketch-undo").click();
      else if (state.command.mask) byId("mask-undo").click();
      else return;
      event.preventDefault();
    }
  });
  let pending = false;
  const relayout = () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      layoutStage();
      layoutSketch();
      if (!byId("panel-result").hidden && viewer.result) viewer.apply();
    });
  };
  window.addEventListener("resize", relayout);
  new ResizeObserver(relayout).observe(byId("panel-input"));
}

async function start() {
  bindStatic();
  try {
    const [info, commands, models] = await Promise.all([api("/api/info"), api("/api/commands"), api("/api/models")]);
    state.info = info;
    state.commands = commands;
    state.models = new Map(models.map((model) => [model.name, model]));
    byId("server-info").textContent = `${info.version} · ${info.device}`;
  } catch (error) {
    byId("server-info").textContent = "not connected";
    showError(error.message);
    return;
  }
  renderCommands();
  renderModelsTable();
  selectCommand(window.location.hash.slice(1) || "upscale");
  renderJobs();
  document.body.classList.add("ready");
  requestAnimationFrame(layoutSketch);
}

start();
