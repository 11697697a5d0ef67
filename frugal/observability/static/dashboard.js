// frugal's live cost dashboard: polls dashboard/stats and draws it. No build step, no framework.
"use strict";
(function () {
  const POLL_MS = 5000;
  const COLORS = ["#2f6fde", "#e08a1e", "#2a9d8f", "#c0392b", "#6b4fbb", "#8d6e63", "#d81b60",
                  "#00838f", "#7cb342", "#5d4037"];
  const REASON_COLORS = { full: "#2a9d8f", max_wait: "#2f6fde", linger: "#e08a1e", drain: "#c0392b" };
  const $ = (sel) => document.querySelector(sel);
  const charts = {};
  let last = null;
  let timer = null;

  // ---- the key: a #key= fragment (never sent to a server) or the login field -------------
  function takeKeyFromFragment() {
    const match = /(?:^#|&)key=([^&]+)/.exec(location.hash);
    if (match) {
      sessionStorage.setItem("frugal-key", decodeURIComponent(match[1]));
      history.replaceState(null, "", location.pathname + location.search);
    }
  }
  function headers() {
    const key = sessionStorage.getItem("frugal-key");
    return key ? { Authorization: "Bearer " + key } : {};
  }

  // ---- formatting ------------------------------------------------------------------------
  function usd(v) {
    if (!v) return "$0";
    const a = Math.abs(v);
    if (a >= 100) return "$" + v.toFixed(0);
    if (a >= 1) return "$" + v.toFixed(2);
    return "$" + v.toPrecision(3);
  }
  // Axis ticks: short enough for the axis's width even at millionths of a dollar.
  function usdTick(v) {
    if (!v) return "$0";
    return Math.abs(v) >= 0.01 ? usd(v) : "$" + v.toExponential(1);
  }
  const pct = (v) => (100 * v).toFixed(1) + "%";
  const ms = (v) => (v >= 100 ? v.toFixed(0) : v.toPrecision(3)) + " ms";
  const int = (v) => Math.round(v).toLocaleString("en-US");

  function show(name, value, format) {
    for (const el of document.querySelectorAll('[data-stat="' + name + '"]')) {
      el.textContent = format(value);
      el.dataset.value = String(value);
    }
  }

  function fillTable(id, rows) {
    const body = $("#" + id + " tbody");
    const columns = $("#" + id + " thead tr").children.length;
    body.replaceChildren(...rows.map((cells) => {
      const tr = document.createElement("tr");
      for (const cell of cells) {
        const td = document.createElement("td");
        td.textContent = cell;
        if (cells.length === 1) td.colSpan = columns;  // a note in place of rows
        tr.appendChild(td);
      }
      return tr;
    }));
  }

  // ---- charts (uPlot) ----------------------------------------------------------------------
  function width(el) {
    return Math.max(240, el.clientWidth);
  }
  function chart(id, series, data, opts) {
    const el = $("#" + id);
    const key = series.map((s) => s.label).join("|");
    if (charts[id] && charts[id].key !== key) {
      charts[id].plot.destroy();
      delete charts[id];
    }
    if (!charts[id]) {
      const plot = new uPlot(Object.assign({
        width: width(el), height: 220, series: [{}].concat(series),
        legend: { live: false },
        axes: [{}, { size: 64, values: (u, vals) => vals.map(usdTick) }],
      }, opts || {}), data, el);
      charts[id] = { plot: plot, key: key };
    } else {
      charts[id].plot.setData(data);
    }
  }
  function line(label, stroke, fill) {
    return { label: label, stroke: stroke, fill: fill, width: 1.5, points: { show: false },
             value: (u, v) => usd(v || 0) };
  }

  function drawSpend(doc) {
    const s = doc.series;
    const t = s.t.map((x) => x + doc.bucket_s / 2);
    // Stacked: idle on top of overhead on top of model, each drawn as its running total.
    const model = s.model_usd;
    const overhead = model.map((v, i) => v + s.overhead_usd[i]);
    const idle = overhead.map((v, i) => v + Math.max(0, s.idle_usd[i]));
    chart("chart-spend", [
      line("idle (stacked)", "#9aa3b2", "rgba(154,163,178,0.25)"),
      line("server overhead (stacked)", "#e08a1e", "rgba(224,138,30,0.35)"),
      line("model", "#2f6fde", "rgba(47,111,222,0.35)"),
    ], [t, idle, overhead, model]);
  }

  function drawGroups(doc) {
    const names = Object.keys(doc.series.by).sort();
    const t = doc.series.t.map((x) => x + doc.bucket_s / 2);
    chart("chart-groups", names.map((n, i) => line(n, COLORS[i % COLORS.length])),
          [t].concat(names.map((n) => doc.series.by[n])));
    fillTable("groups", doc.groups.map((r) => [
      r.key, int(r.requests), usd(r.usd_per_1k), usd(r.model_usd), usd(r.overhead_usd),
      usd(r.cost_usd), pct(r.cache_hit_ratio), ms(r.p50_ms), ms(r.p99_ms), int(r.errors),
    ]));
  }

  function drawBatches(doc) {
    const b = doc.batches;
    const reasons = Object.keys(b.by_reason).filter((r) => b.by_reason[r].some((c) => c > 0));
    const x = b.size_bounds.map((_, i) => i);
    // Stacked bars: each reason drawn as the running total of itself and those after it.
    const stacked = reasons.map((_, i) => x.map((j) =>
      reasons.slice(i).reduce((sum, r) => sum + b.by_reason[r][j], 0)));
    const bars = uPlot.paths.bars({ size: [0.7, 40] });
    chart("chart-batches", reasons.map((r) => ({
      label: r, stroke: REASON_COLORS[r] || "#555", fill: REASON_COLORS[r] || "#555",
      paths: bars, points: { show: false },
    })), [x].concat(stacked), {
      scales: { x: { time: false, range: [-0.5, x.length - 0.5] } },
      axes: [
        { values: (u, vals) => vals.map((v) => (Number.isInteger(v) && b.size_bounds[v] !== undefined ? "≤" + b.size_bounds[v] : "")) },
        { size: 50, values: (u, vals) => vals.map((v) => int(v)) },
      ],
    });
  }

  function drawBill(t) {
    const billed = t.billed_usd || 0;
    const parts = [["model", t.model_usd], ["overhead", t.overhead_usd],
                   ["idle", Math.max(0, t.idle_usd)], ["startup", t.startup_usd]];
    const bar = $("#bill-bar");
    bar.replaceChildren(...parts.map(([name, v]) => {
      const span = document.createElement("span");
      span.className = name;
      span.title = name + " " + usd(v);
      span.style.width = billed > 0 ? (100 * v / billed).toFixed(2) + "%" : "0";
      return span;
    }));
    const share = (v) => usd(v) + (billed > 0 ? " (" + pct(v / billed) + ")" : "");
    show("split_model", t.model_usd, share);
    show("split_overhead", t.overhead_usd, share);
    show("split_idle", t.idle_usd, share);
    show("split_startup", t.startup_usd, share);
    show("split_billed", billed, usd);
  }

  function render(doc) {
    const t = doc.totals;
    show("requests", t.requests, int);
    show("cost_usd", t.cost_usd, usd);
    show("model_usd", t.model_usd, usd);
    show("overhead_usd", t.overhead_usd, usd);
    show("usd_per_1k", t.usd_per_1k, usd);
    show("billed_usd", t.billed_usd, usd);
    show("idle_usd", t.idle_usd, usd);
    show("utilization", t.utilization, pct);
    show("cache_hit_ratio", t.cache_hit_ratio, pct);
    show("saved_usd", t.saved_usd, usd);
    show("escalation_rate", doc.cascade.rate, pct);
    show("p50_ms", t.p50_ms, ms);
    show("p99_ms", t.p99_ms, ms);
    show("error_rate", t.error_rate, pct);
    const depth = Object.values(doc.live.queue_depth).reduce((a, b) => a + b, 0);
    show("queue_depth", depth, int);
    show("today_usd", doc.today.spent_usd, usd);
    show("batches", doc.batches.count, int);
    show("mean_batch_size", doc.batches.mean_size, (v) => v.toFixed(1));
    show("queue_ms_p50", doc.batches.queue_ms_p50, ms);
    show("queue_ms_p99", doc.batches.queue_ms_p99, ms);
    drawBill(t);
    fillTable("budgets", doc.budgets.length
      ? doc.budgets.map((b) => [b.key, usd(b.spent_usd), usd(b.budget_usd_day), pct(b.share)])
      : [["no key has a daily budget (budget_usd_day)"]]);
    fillTable("statuses", Object.entries(doc.status).map(([code, n]) =>
      [code, int(n), t.requests ? pct(n / t.requests) : "–"]));
    const live = Object.entries(doc.live.queue_depth).map(([m, n]) => ["queue " + m, int(n) + " waiting"]);
    for (const [name, c] of Object.entries(doc.live.cache)) {
      live.push(["cache " + name, pct(c.hit_ratio) + " hits, saved " + usd(c.saved_usd)]);
    }
    fillTable("live", live);
    drawSpend(doc);
    drawGroups(doc);
    drawBatches(doc);
  }

  // ---- polling -----------------------------------------------------------------------------
  function status(text, error) {
    const el = $("#status");
    el.textContent = text;
    el.className = error ? "error" : "";
  }

  async function poll() {
    clearTimeout(timer);
    const win = $("#window").value;
    try {
      const by = $("#group-by").value;
      const r = await fetch("dashboard/stats?window=" + encodeURIComponent(win) + "&by=" +
                            encodeURIComponent(by), { headers: headers(), cache: "no-store" });
      if (r.status === 401 || r.status === 403) {
        const body = await r.json().catch(() => ({}));
        $("#login").hidden = false;
        status(body.error || "a viewer or admin key is needed", true);
        return;  // polling starts again when a key is given
      }
      if (!r.ok) throw new Error("stats answered " + r.status);
      last = await r.json();
      $("#login").hidden = true;
      document.body.dataset.window = last.window;
      document.body.dataset.by = last.by;
      render(last);
      status("ledger as of " + new Date(last.until * 1000).toLocaleTimeString() + " · window " +
             last.window, false);
    } catch (err) {
      status("could not read stats: " + err.message + " (retrying)", true);
    }
    timer = setTimeout(poll, POLL_MS);
  }

  function start() {
    takeKeyFromFragment();
    $("#window").addEventListener("change", poll);
    $("#group-by").addEventListener("change", poll);
    $("#login").addEventListener("submit", (ev) => {
      ev.preventDefault();
      sessionStorage.setItem("frugal-key", $("#key").value.trim());
      $("#key").value = "";
      poll();
    });
    let resize = null;
    window.addEventListener("resize", () => {
      clearTimeout(resize);
      resize = setTimeout(() => {
        for (const [id, c] of Object.entries(charts)) c.plot.setSize({ width: width($("#" + id)), height: 220 });
      }, 100);
    });
    poll();
  }
  document.addEventListener("DOMContentLoaded", start);
})();
