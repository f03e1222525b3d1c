// pixdex gallery: vanilla JS against the JSON API, no build step, nothing loaded from elsewhere.
// All user data goes into the page through textContent / attributes, never innerHTML.
"use strict";

(() => {
  const PAGE = 24;
  const FACETS = 24;
  const THUMB = 256;
  const LABELS_ON_CARD = 3;

  const $ = (id) => document.getElementById(id);
  const els = {
    form: $("search-form"),
    q: $("q"),
    slider: $("min-confidence"),
    sliderValue: $("min-confidence-value"),
    active: $("active-filters"),
    facets: $("facets"),
    status: $("status"),
    results: $("results"),
    more: $("load-more"),
    footer: $("footer"),
    dialog: $("detail"),
    title: $("detail-title"),
    frame: $("detail-frame"),
    image: $("detail-image"),
    info: $("detail-info"),
    boxes: $("show-boxes"),
    original: $("detail-original"),
    prev: $("detail-prev"),
    next: $("detail-next"),
    close: $("detail-close"),
    byPhoto: $("by-photo"),
    duplicatesLink: $("duplicates-link"),
    mode: $("mode"),
    modeText: $("mode-text"),
    back: $("back"),
    groups: $("groups"),
    moreLike: $("more-like-this"),
    drop: $("drop"),
  };

  // min: the confidence floor the user chose (null: the server's default, the min_confidence
  // setting, which each answer reports as min_confidence); floor: the one the last answer applied
  // view: "search", "similar" (photos like one: ``like`` its id, or an uploaded photo) or
  // "duplicates" (groups of copies)
  const state = { q: "", labels: [], min: null, floor: null, offset: 0, total: 0, hits: [], current: -1,
                  view: "search", like: null };
  let searchSeq = 0;
  let controller = null;
  let opener = null;

  // --- small DOM helpers ----------------------------------------------------------------------
  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key === "style") Object.assign(node.style, value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const pct = (value) => `${Math.round(value)}%`;
  const imageUrl = (id, part) => `api/images/${encodeURIComponent(id)}${part ? `/${part}` : ""}`;
  const basename = (key) => key.split("/").pop() || key;

  function bytes(n) {
    if (n === null || n === undefined) return "";
    const units = ["B", "KB", "MB", "GB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
  }

  async function getJSON(url, signal) {
    const response = await fetch(url, { signal, headers: { Accept: "application/json" } });
    let body = null;
    try { body = await response.json(); } catch { /* not JSON */ }
    if (!response.ok) {
      const message = body && body.message ? body.message : `${response.status} ${response.statusText}`;
      throw new Error(message);
    }
    return body;
  }

  // --- URL state: a search is a link you can share and reload ---------------------------------
  function readUrl() {
    const params = new URLSearchParams(location.search);
    if (params.has("token")) {
      // ?token= was for the server (it set a cookie); keep it out of history and bookmarks
      params.delete("token");
      const rest = params.toString();
      history.replaceState(null, "", rest ? `?${rest}` : location.pathname);
    }
    state.q = params.get("q") || "";
    state.like = params.get("like");
    state.view = state.like ? "similar" : params.get("view") === "duplicates" ? "duplicates" : "search";
    state.labels = params.getAll("label").filter(Boolean);
    const raw = params.get("min_confidence");
    const min = raw === null || raw === "" ? NaN : Number(raw);
    state.min = Number.isFinite(min) ? Math.min(100, Math.max(0, min)) : null;
    els.q.value = state.q;
    if (state.min !== null) showFloor(state.min);
  }

  function showFloor(value) {
    els.slider.value = String(value);
    els.sliderValue.textContent = pct(value);
  }

  function queryParams() {
    const params = new URLSearchParams();
    if (state.q) params.set("q", state.q);
    for (const label of state.labels) params.append("label", label);
    if (state.min !== null) params.set("min_confidence", String(state.min));
    return params;
  }

  function writeUrl() {
    if (state.view === "similar" && state.like) {
      history.replaceState(null, "", `?like=${encodeURIComponent(state.like)}`);
      return;
    }
    if (state.view === "duplicates") {
      history.replaceState(null, "", "?view=duplicates");
      return;
    }
    const params = queryParams().toString();
    history.replaceState(null, "", params ? `?${params}` : location.pathname);
  }

  // --- search --------------------------------------------------------------------------------
  async function search({ append = false } = {}) {
    const seq = ++searchSeq;
    if (controller) controller.abort();
    controller = new AbortController();
    if (!append) state.offset = 0;
    const params = queryParams();
    params.set("limit", String(PAGE));
    params.set("offset", String(state.offset));
    params.set("facets", append ? "0" : String(FACETS));
    document.body.setAttribute("aria-busy", "true");
    els.more.disabled = true;
    if (!append) els.status.textContent = "Searching…";
    try {
      const result = await getJSON(`api/search?${params}`, controller.signal);
      if (seq !== searchSeq) return; // a newer search has started
      state.total = result.total;
      state.floor = result.min_confidence;
      if (state.min === null && typeof state.floor === "number") showFloor(state.floor);
      if (append) {
        state.hits.push(...result.hits);
      } else {
        state.hits = result.hits.slice();
        els.results.replaceChildren();
        renderFacets(result.facets);
      }
      renderHits(result.hits, state.hits.length - result.hits.length);
      state.offset += result.hits.length;
      renderStatus();
      writeUrl();
    } catch (error) {
      if (error.name === "AbortError") return;
      els.status.textContent = `Search failed: ${error.message}`;
      els.status.classList.add("error");
      els.more.hidden = true;
    } finally {
      if (seq === searchSeq) {
        document.body.removeAttribute("aria-busy");
        els.more.disabled = false;
      }
    }
  }

  function renderStatus() {
    els.status.classList.remove("error");
    const shown = state.hits.length;
    if (state.total === 0) {
      const what = state.q || state.labels.length ? "No photos match" : "No photos indexed yet";
      els.status.textContent = `${what}.`;
    } else {
      const noun = state.total === 1 ? "photo" : "photos";
      els.status.textContent = `${state.total} ${noun}` + (shown < state.total ? ` · showing ${shown}` : "");
    }
    els.more.hidden = shown >= state.total;
  }

  function cardAlt(hit) {
    const labels = (hit.Labels || []).slice(0, LABELS_ON_CARD).map((l) => `${l.Name} ${pct(l.Confidence)}`);
    return labels.length ? `${basename(hit.key)}: ${labels.join(", ")}` : basename(hit.key);
  }

  function card(hit, index) {
    const labels = (hit.Labels || []).slice(0, LABELS_ON_CARD);
    const similar = typeof hit.Similarity === "number";
    const badge = similar
      ? el("span", { class: "score similarity", title: "Similarity", text: pct(hit.Similarity) })
      : hit.score > 0 ? el("span", { class: "score", title: "Best matching label confidence", text: pct(hit.score) }) : null;
    return el("button", {
      type: "button",
      class: "card",
      "data-id": hit.id,
      "aria-label": `Open ${cardAlt(hit)}`,
      onclick: (event) => openDetail(index, event.currentTarget),
    },
    el("span", { class: "thumb" },
      el("img", {
        src: `${imageUrl(hit.id, "thumb")}?size=${THUMB}`,
        alt: cardAlt(hit),
        loading: "lazy",
        decoding: "async",
        width: THUMB,
        height: THUMB,
      }),
      badge,
    ),
    el("span", { class: "caption" },
      el("span", { class: "name", text: basename(hit.key), title: hit.key }),
      el("span", { class: "labels" },
        labels.length
          ? labels.map((l) => el("span", { class: "label" }, l.Name, " ", el("b", { text: pct(l.Confidence) })))
          : hit.width ? el("span", { class: "label muted", text: `${hit.width} × ${hit.height} · ${bytes(hit.size)}` })
            : el("span", { class: "label muted", text: "no labels" }),
      ),
    ));
  }

  function renderHits(hits, start) {
    els.results.append(...hits.map((hit, i) => el("li", { class: "cell" }, card(hit, start + i))));
  }

  // --- more like this, search by photo, duplicates ---------------------------------------------
  function showMode(text) {
    els.modeText.textContent = text;
    els.mode.hidden = state.view === "search";
    els.results.hidden = state.view === "duplicates";
    els.groups.hidden = state.view !== "duplicates";
    document.querySelector(".filters").hidden = state.view !== "search";
    els.more.hidden = state.view !== "search" || state.hits.length >= state.total;
  }

  async function showSimilar(url, options, what) {
    const seq = ++searchSeq;
    if (controller) controller.abort();
    controller = new AbortController();
    state.view = "similar";
    els.status.textContent = "Looking for similar photos…";
    document.body.setAttribute("aria-busy", "true");
    try {
      const response = await fetch(url, { ...options, signal: controller.signal, headers: { Accept: "application/json", ...(options.headers || {}) } });
      const body = await response.json().catch(() => null);
      if (!response.ok) throw new Error(body && body.message ? body.message : `${response.status} ${response.statusText}`);
      if (seq !== searchSeq) return;
      state.hits = body.hits.slice();
      state.total = state.hits.length;
      els.results.replaceChildren();
      renderHits(state.hits, 0);
      els.status.classList.remove("error");
      els.status.textContent = `${state.total} ${state.total === 1 ? "photo" : "photos"} like ${what}`;
      showMode(`Photos like ${what}, most similar first.`);
      writeUrl();
    } catch (error) {
      if (error.name === "AbortError") return;
      els.status.textContent = `Similar photos failed: ${error.message}`;
      els.status.classList.add("error");
    } finally {
      if (seq === searchSeq) document.body.removeAttribute("aria-busy");
    }
  }

  function moreLike(id, key) {
    state.like = id;
    showSimilar(`api/similar?id=${encodeURIComponent(id)}&limit=${PAGE}`, {}, basename(key || id));
  }

  function likeFile(file) {
    if (!file) return;
    state.like = null;
    showSimilar(`api/similar?limit=${PAGE}`, {
      method: "POST",
      body: file,
      headers: { "Content-Type": file.type || "application/octet-stream" },
    }, file.name || "your photo");
  }

  async function showDuplicates() {
    const seq = ++searchSeq;
    state.view = "duplicates";
    els.status.textContent = "Looking for duplicates…";
    document.body.setAttribute("aria-busy", "true");
    showMode("Copies of the same photo, side by side: the one to keep first. Nothing is deleted.");
    try {
      const body = await getJSON("api/duplicates");
      if (seq !== searchSeq) return;
      state.hits = [];
      const rows = body.groups.map((group, g) => {
        const start = state.hits.length;
        state.hits.push(...group.photos);
        return el("li", { class: "group", "aria-label": `Group ${g + 1}: ${group.photos.length} copies` },
          el("p", { class: "group-head" }, el("b", { text: `${group.photos.length} copies` }), ` — keep the first: ${group.reason}`),
          el("ul", { class: "group-photos" }, group.photos.map((photo, i) =>
            el("li", { class: i === 0 ? "cell keep" : "cell" }, card(photo, start + i)))));
      });
      state.total = state.hits.length;
      els.groups.replaceChildren(...rows);
      els.status.classList.remove("error");
      els.status.textContent = rows.length ? `${rows.length} group(s) of duplicates` : "No duplicates found.";
      writeUrl();
    } catch (error) {
      els.status.textContent = `Duplicates failed: ${error.message}`;
      els.status.classList.add("error");
    } finally {
      if (seq === searchSeq) document.body.removeAttribute("aria-busy");
    }
  }

  function backToSearch() {
    state.view = "search";
    state.like = null;
    showMode("");
    search();
  }

  function start() {
    if (state.view === "similar" && state.like) moreLike(state.like);
    else if (state.view === "duplicates") showDuplicates();
    else search();
    showMode("");
  }

  // --- facets and filters ---------------------------------------------------------------------
  function hasLabel(name) {
    return state.labels.some((l) => l.toLowerCase() === name.toLowerCase());
  }

  function addLabel(name) {
    if (!hasLabel(name)) state.labels.push(name);
    renderActive();
    search();
  }

  function removeLabel(name) {
    state.labels = state.labels.filter((l) => l.toLowerCase() !== name.toLowerCase());
    renderActive();
    search();
  }

  function renderActive() {
    const chips = state.labels.map((name) =>
      el("button", {
        type: "button",
        class: "chip active",
        "aria-label": `Remove label filter ${name}`,
        onclick: () => removeLabel(name),
      }, el("span", { class: "chip-text", text: name }), el("span", { class: "x", "aria-hidden": "true", text: "×" })));
    if (chips.length > 1) {
      chips.push(el("button", {
        type: "button",
        class: "chip clear",
        onclick: () => { state.labels = []; renderActive(); search(); },
        text: "Clear all",
      }));
    }
    els.active.replaceChildren(...chips);
    els.active.hidden = chips.length === 0;
  }

  function renderFacets(facets) {
    const chips = facets
      .filter((f) => !hasLabel(f.name))
      .map((f) => el("button", {
        type: "button",
        class: "chip",
        "data-label": f.name,
        "aria-label": `Filter by ${f.name} (${f.count} photos)`,
        onclick: () => addLabel(f.name),
      }, el("span", { class: "chip-text", text: f.name }), el("span", { class: "count", text: String(f.count) })));
    els.facets.replaceChildren(...chips);
    els.facets.hidden = chips.length === 0;
  }

  // --- detail view ----------------------------------------------------------------------------
  async function openDetail(index, from) {
    const hit = state.hits[index];
    if (!hit) return;
    state.current = index;
    if (from) opener = from;
    els.title.textContent = hit.key;
    els.moreLike.dataset.id = hit.id;
    els.moreLike.dataset.key = hit.key;
    els.prev.disabled = index === 0;
    els.next.disabled = index >= state.hits.length - 1 && state.hits.length >= state.total;
    els.info.replaceChildren(el("p", { class: "muted", text: "Loading…" }));
    for (const box of els.frame.querySelectorAll(".box")) box.remove();
    els.image.alt = cardAlt(hit);
    els.image.dataset.fallback = "";
    els.image.src = imageUrl(hit.id, "file");
    els.original.href = imageUrl(hit.id, "file");
    if (!els.dialog.open) els.dialog.showModal();
    try {
      const record = await getJSON(imageUrl(hit.id));
      if (state.current !== index) return;
      renderBoxes(record);
      renderTextBoxes(record);
      renderInfo(record);
    } catch (error) {
      els.info.replaceChildren(el("p", { class: "error", text: `Could not load details: ${error.message}` }));
    }
  }

  async function step(delta) {
    const next = state.current + delta;
    if (next < 0) return;
    if (next >= state.hits.length && state.hits.length < state.total) await search({ append: true });
    if (next < state.hits.length) openDetail(next);
  }

  function closeDetail() {
    els.dialog.close();
  }

  function renderBoxes(record) {
    const boxes = [];
    for (const label of record.Labels || []) {
      for (const inst of label.Instances || []) {
        const b = inst.BoundingBox;
        // boxes under the search's floor are stored, not drawn (they would bury the real ones)
        if (!b || (state.floor !== null && inst.Confidence < state.floor)) continue;
        boxes.push(el("div", {
          class: b.Top < 0.06 ? "box label-inside" : "box",
          role: "img",
          "aria-label": `${label.Name} ${pct(inst.Confidence)}`,
          style: {
            left: `${b.Left * 100}%`,
            top: `${b.Top * 100}%`,
            width: `${b.Width * 100}%`,
            height: `${b.Height * 100}%`,
          },
        }, el("span", { class: "box-label", text: `${label.Name} ${pct(inst.Confidence)}` })));
      }
    }
    els.frame.append(...boxes);
    els.frame.classList.toggle("hide-boxes", !els.boxes.checked);
    els.boxes.closest("label").hidden = boxes.length === 0;
  }

  // Text read in the photo (TextDetections, docs/text.md): the words the search matched are boxed
  // where they are. Matching is by word, case-insensitive, and lenient on endings the way the
  // index's stemming is ("stops" finds "STOP"). The confidence floor is about labels (their boxes
  // under it are not drawn): a matched word is what found the photo, so it is boxed at any floor
  // (the text analyzer keeps words read with confidence ≥ 80).
  function queryWords() {
    return (state.q || "").toLowerCase().match(/[\p{L}\p{N}]+/gu) || [];
  }

  function wordMatches(word, wanted) {
    const w = word.toLowerCase().replace(/^[^\p{L}\p{N}]+|[^\p{L}\p{N}]+$/gu, "");
    if (!w) return false;
    return wanted.some((q) => w === q || (q.length >= 3 && (w.startsWith(q) || q.startsWith(w)) && Math.abs(w.length - q.length) <= 3));
  }

  function textOf(record) {
    const found = record.TextDetections || [];
    return { lines: found.filter((d) => d.Type === "LINE"), words: found.filter((d) => d.Type === "WORD") };
  }

  function renderTextBoxes(record) {
    const wanted = queryWords();
    const boxes = [];
    for (const word of textOf(record).words) {
      if (!wanted.length || !wordMatches(word.DetectedText, wanted)) continue;
      const b = word.Geometry && word.Geometry.BoundingBox;
      if (!b) continue;
      boxes.push(el("div", {
        class: b.Top < 0.06 ? "box text-box match label-inside" : "box text-box match",
        role: "img",
        "aria-label": `Text “${word.DetectedText}” ${pct(word.Confidence)}`,
        style: {
          left: `${b.Left * 100}%`,
          top: `${b.Top * 100}%`,
          width: `${b.Width * 100}%`,
          height: `${b.Height * 100}%`,
        },
      }, el("span", { class: "box-label", text: word.DetectedText })));
    }
    els.frame.append(...boxes);
    if (boxes.length) els.boxes.closest("label").hidden = false;
  }

  function textSection(record) {
    const { lines, words } = textOf(record);
    if (!record.TextDetections) return null;
    if (!lines.length) return section("Text", el("p", { class: "muted", text: "No text read in this photo." }));
    const wanted = queryWords();
    const items = lines.map((line) => {
      const parts = words.filter((w) => w.ParentId === line.Id);
      const shown = parts.length ? parts : [line];
      const children = [];
      shown.forEach((w, i) => {
        if (i) children.push(" ");
        children.push(wanted.length && wordMatches(w.DetectedText, wanted)
          ? el("mark", { text: w.DetectedText })
          : w.DetectedText);
      });
      return el("li", {}, el("span", { class: "text-line" }, ...children),
        el("span", { class: "muted", text: ` ${pct(line.Confidence)}` }));
    });
    return section("Text", el("ul", { class: "text-lines" }, ...items));
  }

  function names(list) {
    return (list || []).map((n) => n.Name).join(", ");
  }

  function labelTable(record) {
    const labels = record.Labels || [];
    if (!labels.length) return el("p", { class: "muted", text: "No labels." });
    return el("table", { class: "labels-table" },
      el("caption", { class: "visually-hidden", text: "Labels with confidence, parents and aliases" }),
      el("thead", {}, el("tr", {},
        el("th", { scope: "col", text: "Label" }),
        el("th", { scope: "col", text: "Confidence" }),
        el("th", { scope: "col", text: "Parents" }),
        el("th", { scope: "col", text: "Aliases" }))),
      el("tbody", {}, labels.map((label) => el("tr", {
        // stored, but under the search's floor: shown dimmed
        class: state.floor !== null && label.Confidence < state.floor ? "below-floor" : null,
        title: state.floor !== null && label.Confidence < state.floor ? `below ${pct(state.floor)}` : null,
      },
        el("th", { scope: "row" },
          el("button", {
            type: "button",
            class: "link",
            title: `Show photos labelled ${label.Name}`,
            onclick: () => { closeDetail(); addLabel(label.Name); },
          }, label.Name),
          (label.Instances || []).length ? el("span", { class: "muted", text: ` ×${label.Instances.length}` }) : null,
          (label.Categories || []).length ? el("div", { class: "muted small", text: names(label.Categories) }) : null),
        el("td", {},
          el("span", { class: "meter", "aria-hidden": "true" },
            el("span", { style: { width: `${Math.max(0, Math.min(100, label.Confidence))}%` } })),
          ` ${label.Confidence.toFixed(1)}%`),
        el("td", { text: names(label.Parents) }),
        el("td", { text: names(label.Aliases) })))));
  }

  function display(value) {
    if (value === null || value === undefined) return "";
    if (Array.isArray(value)) return value.map(display).join(", ");
    if (typeof value === "object") return JSON.stringify(value);
    if (typeof value === "number" && !Number.isInteger(value)) return String(Math.round(value * 1000) / 1000);
    return String(value);
  }

  function dl(entries) {
    const rows = entries.filter(([, v]) => v !== null && v !== undefined && v !== "");
    if (!rows.length) return null;
    return el("dl", { class: "props" }, rows.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: display(v) })]));
  }

  function colors(list) {
    return el("ul", { class: "swatches", "aria-label": "Dominant colours" }, list.map((c) => {
      const hex = c.HexCode || (c.Red !== undefined ? `#${[c.Red, c.Green, c.Blue].map((x) => Number(x).toString(16).padStart(2, "0")).join("")}` : null);
      const label = [hex, c.SimplifiedColor, c.PixelPercent !== undefined ? `${Number(c.PixelPercent).toFixed(1)}%` : null].filter(Boolean).join(" · ");
      return el("li", {}, el("span", { class: "swatch", style: { background: /^#[0-9a-f]{6}$/i.test(hex || "") ? hex : "transparent" } }), label);
    }));
  }

  function propertiesSection(props) {
    if (!props || typeof props !== "object") return null;
    const parts = [];
    const simple = [];
    for (const [key, value] of Object.entries(props)) {
      if (Array.isArray(value) && value.length && typeof value[0] === "object" && ("HexCode" in value[0] || "Red" in value[0])) {
        parts.push(el("h4", { text: key }), colors(value));
      } else if (value && typeof value === "object" && !Array.isArray(value)) {
        parts.push(el("h4", { text: key }), dl(Object.entries(value)));
      } else {
        simple.push([key, value]);
      }
    }
    return section("Image properties", dl(simple), ...parts);
  }

  function section(title, ...content) {
    const body = content.filter(Boolean);
    if (!body.length) return null;
    return el("section", { class: "info-section" }, el("h3", { text: title }), ...body);
  }

  function renderInfo(record) {
    const dims = record.width && record.height ? `${record.width} × ${record.height}` : "";
    const analyzers = Object.entries(record.analyzers || {}).map(([k, v]) => `${k} ${v}`).join(", ");
    els.info.replaceChildren(...[
      section("Labels", labelTable(record)),
      textSection(record),
      section("File", dl([
        ["Key", record.key],
        ["Bucket / folder", record.bucket],
        ["URI", record.uri],
        ["Dimensions", dims],
        ["Format", record.format],
        ["Size", bytes(record.size)],
        ["Indexed", record.timestamp],
        ["Last modified", record.last_modified],
        ["Label model", record.LabelModelVersion],
        ["Analyzers", analyzers],
        ["Imported by", record["imported-by"]],
        ["SHA-256", record.content_sha256],
        ["Id", record.id],
      ])),
      propertiesSection(record.ImageProperties),
      section("EXIF", record.exif ? dl(Object.entries(record.exif)) : el("p", { class: "muted", text: "No EXIF data." })),
    ].filter(Boolean));
  }

  // --- wiring ---------------------------------------------------------------------------------
  let typingTimer = null;
  els.form.addEventListener("submit", (event) => {
    event.preventDefault();
    clearTimeout(typingTimer);
    state.q = els.q.value.trim();
    if (state.view !== "search") backToSearch();
    else search();
  });
  els.q.addEventListener("input", () => {
    clearTimeout(typingTimer);
    typingTimer = setTimeout(() => {
      const q = els.q.value.trim();
      if (q !== state.q) { state.q = q; if (state.view === "search") search(); }
    }, 350);
  });

  let sliderTimer = null;
  els.slider.addEventListener("input", () => {
    els.sliderValue.textContent = pct(Number(els.slider.value));
    clearTimeout(sliderTimer);
    sliderTimer = setTimeout(() => {
      state.min = Number(els.slider.value);
      if (state.view === "search") search();
    }, 250);
  });

  els.more.addEventListener("click", () => search({ append: true }));
  els.moreLike.addEventListener("click", () => {
    const { id, key } = els.moreLike.dataset;
    closeDetail();
    moreLike(id, key);
  });
  els.back.addEventListener("click", backToSearch);
  els.byPhoto.addEventListener("change", () => { likeFile(els.byPhoto.files[0]); els.byPhoto.value = ""; });
  els.duplicatesLink.addEventListener("click", (event) => { event.preventDefault(); showDuplicates(); });
  // a photo dragged onto the page: the photos like it
  let dragDepth = 0;
  const carriesFile = (event) => Array.from(event.dataTransfer?.types || []).includes("Files");
  document.addEventListener("dragenter", (event) => {
    if (!carriesFile(event)) return;
    dragDepth += 1;
    els.drop.hidden = false;
  });
  document.addEventListener("dragleave", () => { dragDepth = Math.max(0, dragDepth - 1); if (!dragDepth) els.drop.hidden = true; });
  document.addEventListener("dragover", (event) => { if (carriesFile(event)) event.preventDefault(); });
  document.addEventListener("drop", (event) => {
    if (!carriesFile(event)) return;
    event.preventDefault();
    dragDepth = 0;
    els.drop.hidden = true;
    likeFile(event.dataTransfer.files[0]);
  });
  els.boxes.addEventListener("change", () => els.frame.classList.toggle("hide-boxes", !els.boxes.checked));
  els.close.addEventListener("click", closeDetail);
  els.prev.addEventListener("click", () => step(-1));
  els.next.addEventListener("click", () => step(1));
  els.dialog.addEventListener("click", (event) => { if (event.target === els.dialog) closeDetail(); });
  els.dialog.addEventListener("keydown", (event) => {
    if (event.target instanceof HTMLInputElement) return;
    if (event.key === "ArrowLeft") { event.preventDefault(); step(-1); }
    if (event.key === "ArrowRight") { event.preventDefault(); step(1); }
  });
  els.dialog.addEventListener("close", () => {
    els.image.removeAttribute("src");
    const card = state.hits[state.current] && els.results.querySelector(`[data-id="${CSS.escape(state.hits[state.current].id)}"]`);
    (card || opener || els.q).focus();
  });
  // Formats browsers cannot show (TIFF…) fall back to a large JPEG rendition.
  els.image.addEventListener("error", () => {
    const hit = state.hits[state.current];
    if (hit && !els.image.dataset.fallback) {
      els.image.dataset.fallback = "1";
      els.image.src = `${imageUrl(hit.id, "thumb")}?size=1024`;
    }
  });

  async function loadStats() {
    try {
      const stats = await getJSON("api/stats");
      const failed = stats.failures ? ` · ${stats.failures} failed` : "";
      els.footer.textContent = `${stats.records} photos indexed · ${stats.labels} distinct labels${failed} · pixdex ${stats.version}`;
    } catch (error) {
      els.footer.textContent = `Index unavailable: ${error.message}`;
    }
  }

  readUrl();
  renderActive();
  start();
  loadStats();
})();
