/**
 * The dashboard's script, shipped inside the router as a string. It keeps the admin key in sessionStorage, polls
 * `GET /api/status` with one request every few seconds (paused while the tab is hidden), keeps a few minutes of
 * history in memory to draw throughput and time to first token, and builds every element with DOM calls and
 * `textContent` (worker names and error messages are never parsed as HTML). Plain browser JavaScript: no
 * template literals inside, since this file is itself one.
 */
export const DASHBOARD_JS = String.raw`"use strict";
(function () {
  var KEY_STORAGE = "auxot.adminKey";
  var POLL_MS = 2500;
  /* On Upstash every refresh costs billed store commands (about three): refresh less often there. */
  var POLL_UPSTASH_MS = 15000;
  var pollMs = POLL_MS;
  var MAX_BACKOFF_MS = 30000;
  var HISTORY_POINTS = 120; /* about five minutes at POLL_MS */

  var timer = null;
  var failures = 0;
  var history = [];

  function $(id) { return document.getElementById(id); }
  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
  function num(n) {
    if (n === undefined || n === null || isNaN(n)) return "–";
    if (n >= 1e9) return (n / 1e9).toFixed(1) + "G";
    if (n >= 1e6) return (n / 1e6).toFixed(1) + "M";
    if (n >= 1e4) return (n / 1e3).toFixed(1) + "k";
    return String(Math.round(n * 10) / 10);
  }
  function ms(n) {
    if (n === undefined || n === null || isNaN(n)) return "–";
    return n < 1000 ? Math.round(n) + " ms" : (n / 1000).toFixed(n < 10000 ? 2 : 1) + " s";
  }
  function bytes(n) {
    if (!n) return "";
    return (n / 1073741824).toFixed(1) + " GB";
  }
  function ago(then, now) {
    var s = Math.max(0, Math.round((now - then) / 1000));
    if (s < 60) return s + " s ago";
    if (s < 3600) return Math.round(s / 60) + " min ago";
    return Math.round(s / 3600) + " h ago";
  }
  function clock(t) {
    var d = new Date(t);
    function two(n) { return (n < 10 ? "0" : "") + n; }
    return two(d.getHours()) + ":" + two(d.getMinutes()) + ":" + two(d.getSeconds());
  }

  function key() { return sessionStorage.getItem(KEY_STORAGE); }

  function showLogin(message) {
    stop();
    sessionStorage.removeItem(KEY_STORAGE);
    history = [];
    $("app").hidden = true;
    $("logout").hidden = true;
    $("pill").hidden = true;
    $("summary").textContent = "";
    $("login").hidden = false;
    $("login-error").textContent = message || "";
    $("key").focus();
  }

  function showApp() {
    $("login").hidden = true;
    $("app").hidden = false;
    $("logout").hidden = false;
  }

  function stop() {
    if (timer) clearTimeout(timer);
    timer = null;
  }

  function schedule(delay) {
    stop();
    if (document.hidden) return; /* resumed by visibilitychange */
    timer = setTimeout(poll, delay);
  }

  function banner(text) {
    var node = $("banner");
    node.textContent = text || "";
    node.hidden = !text;
  }

  function poll() {
    var k = key();
    if (!k) return showLogin();
    fetch("/api/status", { headers: { authorization: "Bearer " + k }, cache: "no-store" })
      .then(function (response) {
        if (response.status === 401 || response.status === 403) {
          showLogin("The router rejected this key: use the admin key (adm_…).");
          return null;
        }
        if (response.status === 429) throw new Error("Too many attempts; retrying shortly.");
        if (!response.ok) throw new Error("The router answered " + response.status + ".");
        return response.json();
      })
      .then(function (report) {
        if (!report) return;
        failures = 0;
        banner("");
        showApp();
        render(report);
        schedule(pollMs);
      })
      .catch(function (err) {
        failures++;
        banner("Cannot reach the router: " + (err && err.message ? err.message : err) + " Retrying…");
        schedule(Math.min(MAX_BACKOFF_MS, POLL_MS * Math.pow(2, failures)));
      });
  }

  function remember(report) {
    var c = report.counters;
    var point = {
      t: report.time,
      instance: report.instance.id,
      completion: c.tokens.completion,
      ttftSum: report.latency.ttft.sum,
      ttftCount: report.latency.ttft.count,
      tps: null,
      ttft: null,
    };
    var prev = history.length ? history[history.length - 1] : null;
    if (prev && point.t > prev.t) {
      var seconds = (point.t - prev.t) / 1000;
      point.tps = Math.max(0, point.completion - prev.completion) / seconds;
      /* Histograms are per instance: compare only readings from the same one. */
      var count = point.ttftCount - prev.ttftCount;
      if (prev.instance === point.instance && count > 0) point.ttft = (point.ttftSum - prev.ttftSum) / count * 1000;
    }
    history.push(point);
    if (history.length > HISTORY_POINTS) history.shift();
    return point;
  }

  function render(report) {
    var point = remember(report);
    var c = report.counters;
    var pill = $("pill");
    pill.hidden = false;
    pill.textContent = report.health.status;
    pill.className = "pill " + report.health.status;
    pill.title = report.health.reason || "";
    $("summary").textContent = report.policy.model + " · " + report.policy.quantization + " · " +
      report.instance.store + " store";

    var ready = report.workers.filter(function (w) { return w.ready; }).length;
    tile("workers", ready + " / " + report.workers.length);
    tile("slots", (report.slots.total - report.slots.free) + " / " + report.slots.total);
    tile("queue", report.queue.depth);
    tile("throughput", point.tps === null ? "–" : num(point.tps));
    tile("ttft", ms(report.latency.ttft.p50 === undefined ? undefined : report.latency.ttft.p50 * 1000));
    tile("requests", num(c.requests.total));
    tile("tokens", num(c.tokens.completion));
    tile("errors", num((c.jobs.failed || 0) + (c.jobs.timed_out || 0) + (c.jobs.queue_timeout || 0)));
    pollMs = report.instance.store === "upstash" ? POLL_UPSTASH_MS : POLL_MS;
    var cost = report.storeCost;
    $("tile-store").hidden = !cost;
    if (cost) {
      tile("store", num(cost.commandsLastHour));
      $("store-month").textContent = "≈ " + num(cost.projectedPerMonth) + " / month · " +
        Math.round(cost.shareOfFreeTier * 100) + "% of the free tier (" + num(cost.freeTierPerMonth) + ")";
    }

    chart("chart-throughput", history.map(function (p) { return p.tps; }));
    chart("chart-ttft", history.map(function (p) { return p.ttft; }));
    $("chart-throughput-now").textContent = point.tps === null ? "" : num(point.tps) + " tok/s";
    var lastTtft = null;
    for (var i = history.length - 1; i >= 0 && lastTtft === null; i--) lastTtft = history[i].ttft;
    $("chart-ttft-now").textContent = lastTtft === null ? "" : ms(lastTtft);

    renderWorkers(report);
    renderQueue(report);
    renderJobs(report);
    renderErrors(report);
    renderRecipe(report);
    renderConfig(report);
  }

  function tile(name, value) {
    $("tile-" + name).querySelector(".value").textContent = String(value);
  }

  /* One bar per poll, newest on the right; a gap where nothing could be measured. */
  function chart(id, values) {
    var svg = $(id);
    clear(svg);
    var ns = "http://www.w3.org/2000/svg";
    var base = document.createElementNS(ns, "line");
    base.setAttribute("x1", "0");
    base.setAttribute("x2", "300");
    base.setAttribute("y1", "59.5");
    base.setAttribute("y2", "59.5");
    svg.appendChild(base);
    var max = 0;
    values.forEach(function (v) { if (v !== null && v > max) max = v; });
    if (max <= 0) max = 1;
    var step = 300 / HISTORY_POINTS;
    var offset = HISTORY_POINTS - values.length;
    values.forEach(function (v, i) {
      if (v === null) return;
      var height = Math.max(1, (v / max) * 56);
      var bar = document.createElementNS(ns, "rect");
      bar.setAttribute("x", ((offset + i) * step).toFixed(2));
      bar.setAttribute("y", (59 - height).toFixed(2));
      bar.setAttribute("width", (step * 0.8).toFixed(2));
      bar.setAttribute("height", height.toFixed(2));
      svg.appendChild(bar);
    });
  }

  function renderWorkers(report) {
    var box = $("workers");
    clear(box);
    var none = $("no-workers");
    none.hidden = report.workers.length > 0;
    if (!report.workers.length) {
      none.textContent = "No worker is connected. Start one with the command under Connect below.";
    }
    report.workers.forEach(function (w) {
      var card = el("div", "worker");
      card.setAttribute("data-worker-id", w.id);
      var head = el("div", "head");
      head.appendChild(el("span", "name", w.name || w.id));
      head.appendChild(el("span", "badge", w.kind));
      head.appendChild(el("span", "badge " + (w.ready ? "ready" : "loading"), w.ready ? "ready" : "loading"));
      if (w.version) head.appendChild(el("span", "muted", "v" + w.version));
      card.appendChild(head);

      var model = [w.model, w.quantization, w.ctxSize ? "ctx " + num(w.ctxSize) : ""].filter(Boolean).join(" · ");
      // A worker serving several models lists them all.
      if (w.models && w.models.length > 1) model = w.models.map(function (m) { return m.model; }).join(", ");
      if (model) card.appendChild(el("div", "detail", model));
      var hw = [w.backend, w.gpu, bytes(w.vramBytes)].filter(Boolean).join(" · ");
      if (hw) card.appendChild(el("div", "detail", hw));
      if (w.tools && w.tools.length) card.appendChild(el("div", "detail", "tools: " + w.tools.join(", ")));
      if (w.note) card.appendChild(el("div", "detail", w.note));

      var busy = Math.min(w.slots, Math.max(w.slots - w.free, w.activeJobs));
      var slots = el("div", "slots");
      slots.setAttribute("aria-label", busy + " of " + w.slots + " slots busy");
      for (var i = 0; i < w.slots; i++) slots.appendChild(el("span", "slot " + (i < busy ? "busy" : "free")));
      slots.appendChild(el("span", "count", busy + "/" + w.slots + " busy"));
      card.appendChild(slots);

      var speed = w.tokensPerSecond ? num(w.tokensPerSecond) + " tok/s · " : "";
      card.appendChild(el("div", "detail", speed + "seen " + ago(w.lastSeenAt, report.time)));
      box.appendChild(card);
    });
  }

  function kv(box, pairs) {
    clear(box);
    pairs.forEach(function (pair) {
      box.appendChild(el("span", "k", pair[0]));
      box.appendChild(el("span", "v", pair[1]));
    });
  }

  function renderQueue(report) {
    var pairs = [["waiting", String(report.queue.depth)], ["running", String(report.running)]];
    // One line per model of the policy (its lane's depth, ready workers serving it, their free slots); tool lanes after.
    (report.models || []).forEach(function (m) {
      pairs.push([
        m.name + (m.kind === "embedding" ? " (embeddings)" : ""),
        m.queued + " queued · " + m.workers + " workers · " + m.free + "/" + m.slots + " free",
      ]);
    });
    Object.keys(report.queue.byLane).forEach(function (lane) {
      if (report.models && /^(chat|embed):/.test(lane)) return;
      pairs.push(["lane " + lane, String(report.queue.byLane[lane])]);
    });
    var jobs = report.counters.jobs;
    Object.keys(jobs).sort().forEach(function (outcome) { pairs.push(["jobs " + outcome, num(jobs[outcome])]); });
    kv($("queue"), pairs);
  }

  function renderJobs(report) {
    var body = $("jobs").querySelector("tbody");
    clear(body);
    report.recentJobs.slice(0, 20).forEach(function (j) {
      var row = el("tr");
      row.appendChild(el("td", "", clock(j.queuedAt)));
      row.appendChild(el("td", "state-" + j.state, j.state));
      row.appendChild(el("td", "wide", j.model || ""));
      row.appendChild(el("td", "", ms(j.queueMs)));
      row.appendChild(el("td", "", ms(j.ttftMs)));
      row.appendChild(el("td", "", num(j.promptTokens) + " / " + num(j.completionTokens)));
      row.appendChild(el("td", "", j.tokensPerSecond ? num(j.tokensPerSecond) : "–"));
      row.appendChild(el("td", "wide", j.id.slice(0, 12)));
      body.appendChild(row);
    });
    if (!report.recentJobs.length) {
      var empty = el("tr");
      var cell = el("td", "muted", "No jobs yet on this instance.");
      cell.colSpan = 8;
      empty.appendChild(cell);
      body.appendChild(empty);
    }
  }

  function renderErrors(report) {
    var list = $("errors");
    clear(list);
    var failed = report.recentJobs.filter(function (j) { return j.error; });
    failed.slice(0, 10).forEach(function (j) {
      var text = clock(j.queuedAt) + " " + j.state + " · " + j.error.code + (j.error.message ? ": " + j.error.message : "");
      list.appendChild(el("li", "", text));
    });
    var auth = report.counters.authFailures;
    if (auth) list.appendChild(el("li", "", num(auth) + " rejected authentication attempts in total"));
    if (!list.firstChild) list.appendChild(el("li", "muted", "None."));
  }

  function renderRecipe(report) {
    var box = $("recipe");
    if (box.getAttribute("data-engine") === report.policy.engine) return; /* static: keep selection and focus */
    box.setAttribute("data-engine", report.policy.engine);
    clear(box);
    var origin = location.origin;
    var kind = report.policy.engine === "cli" ? "cli" : "gpu";
    /* Keys never go on a command line (ps, shell history): workers read them from a file only their owner reads. */
    var rows = [
      ["Save the worker key (adm_…) in a file only you can read: paste it, then Enter and Ctrl-D",
        "mkdir -p ~/.auxot && (umask 077; cat > ~/.auxot/worker.key)"],
      ["Start a " + kind + " worker",
        "deno task worker:" + kind + " --router-url " + origin + " --gpu-key-file ~/.auxot/worker.key"],
      ["…or install it as a systemd service (key read from AUXOT_" + kind.toUpperCase() + "_KEY)",
        "sudo -E deno task worker:service install --kind " + kind + " --router-url " + origin],
    ];
    if (report.config.toolsEnabled) {
      rows.push(["Start a tools worker (tools key tls_… saved the same way in ~/.auxot/tools.key)",
        "deno task worker:tools --router-url " + origin + " --tools-key-file ~/.auxot/tools.key"]);
    }
    rows.push(
      ["OpenAI API base URL (API key rtr_…)", origin + "/api/openai/v1"],
      ["Anthropic API base URL", origin + "/api/anthropic"],
      ["Put the API key (rtr_…) in your environment without typing it on a command line: paste it, then Enter",
        "read -rs AUXOT_API_KEY && export AUXOT_API_KEY"],
      ["Claude Code", "ANTHROPIC_BASE_URL=" + origin + "/api/anthropic ANTHROPIC_AUTH_TOKEN=\"$AUXOT_API_KEY\" claude"],
      ["Check it end to end", "deno task verify --router-url " + origin]
    );
    rows.forEach(function (row) {
      box.appendChild(el("dt", "", row[0]));
      var dd = el("dd");
      dd.appendChild(el("code", "", row[1]));
      if (navigator.clipboard) {
        var copy = el("button", "copy", "Copy");
        copy.type = "button";
        copy.addEventListener("click", function () { navigator.clipboard.writeText(row[1]); });
        dd.appendChild(copy);
      }
      box.appendChild(dd);
    });
  }

  function renderConfig(report) {
    var pairs = Object.keys(report.config).map(function (k) {
      var v = report.config[k];
      return [k, typeof v === "object" ? JSON.stringify(v) : String(v)];
    });
    pairs.push(["instance", report.instance.id + (report.instance.countersShared ? " (counters shared)" : "")]);
    kv($("config"), pairs);
  }

  document.addEventListener("DOMContentLoaded", function () {
    $("login-form").addEventListener("submit", function (event) {
      event.preventDefault();
      var value = $("key").value.trim();
      if (!value) return;
      sessionStorage.setItem(KEY_STORAGE, value);
      $("key").value = "";
      $("login-error").textContent = "";
      poll();
    });
    $("logout").addEventListener("click", function () { showLogin(); });
    document.addEventListener("visibilitychange", function () {
      if (document.hidden) stop();
      else if (key()) poll();
    });
    if (key()) poll();
    else showLogin();
  });
})();
`;
