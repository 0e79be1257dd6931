// tcp-proxy dashboard: reads /stats and /backends every second and draws them
// with uPlot (loaded before this script). Everything comes from this admin
// endpoint; the admin token lives in this page's memory only.
"use strict";
(() => {
  const refreshMs = 1000;
  const colours = { connections: "#1f5fbf", errors: "#c0282d", active: "#2b8a3e", bytesIn: "#7b3fb3", bytesOut: "#c2610c" };

  /** The server's clock minus ours, from the last /stats. */
  let offset = 0;
  let writeApi = false;
  /** The last feed, for the rows' figures and sparklines. */
  let feed;

  const $ = (id) => document.getElementById(id);
  const el = (tag, props = {}, children = []) => {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) node.append(child);
    return node;
  };

  // ---- formatting -------------------------------------------------------
  const units = ["", "k", "M", "G", "T"];
  const scaled = (value, base, suffixes) => {
    if (value === null || value === undefined || !Number.isFinite(value)) return "–";
    let i = 0;
    let v = Math.abs(value);
    while (v >= base && i < suffixes.length - 1) {
      v /= base;
      i++;
    }
    const digits = v >= 100 || i === 0 && Number.isInteger(v) ? 0 : 1;
    return `${value < 0 ? "-" : ""}${v.toFixed(digits)}${suffixes[i]}`;
  };
  const count = (value) => scaled(value, 1000, units);
  const bytes = (value) => scaled(value, 1024, [" B", " KiB", " MiB", " GiB", " TiB"]);
  const duration = (ms) => {
    const s = Math.max(0, Math.floor(ms / 1000));
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor(s % 3600 / 60)} min`;
    return `${Math.floor(s / 86400)} d ${Math.floor(s % 86400 / 3600)} h`;
  };
  const last = (values) => {
    for (let i = values.length - 1; i >= 0; i--) if (values[i] !== null) return values[i];
    return null;
  };

  // ---- charts -----------------------------------------------------------
  /** Marks a chart with how many points it shows and its largest value (read by tests and screen readers' labels). */
  const mark = (node, data) => {
    let points = 0;
    let max = 0;
    for (const series of data.slice(1)) {
      for (const value of series) {
        if (value !== null) {
          points++;
          max = Math.max(max, value);
        }
      }
    }
    node.dataset.points = String(points);
    node.dataset.max = String(max);
  };

  const bigChart = (node, series, format, axisWidth = 64) => {
    const chart = new uPlot({
      width: Math.max(node.clientWidth, 200),
      height: 180,
      scales: { x: { time: true } },
      series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.colour, width: 2, value: (u, v) => format(v) }))],
      axes: [{}, { size: axisWidth, values: (u, values) => values.map(format) }]
    }, [[]].concat(series.map(() => [])), node);
    new ResizeObserver(() => chart.setSize({ width: Math.max(node.clientWidth, 200), height: 180 })).observe(node);
    return chart;
  };

  const sparkChart = (node, series) =>
    new uPlot({
      width: 140,
      height: 36,
      legend: { show: false },
      cursor: { show: false },
      scales: { x: { time: true } },
      axes: [{ show: false }, { show: false }],
      series: [{}, ...series.map((colour) => ({ stroke: colour, width: 1.5 }))]
    }, [[]].concat(series.map(() => [])), node);

  let totals;
  const drawTotals = (stats) => {
    const x = stats.time.map((t) => t / 1000);
    if (totals === undefined) {
      totals = {
        connections: bigChart($("chart-connections"), [
          { label: "connections/s", colour: colours.connections },
          { label: "errors/s", colour: colours.errors }
        ], count),
        active: bigChart($("chart-active"), [{ label: "active", colour: colours.active }], count),
        bytes: bigChart($("chart-bytes"), [
          { label: "from clients", colour: colours.bytesIn },
          { label: "to clients", colour: colours.bytesOut }
        ], (v) => `${bytes(v)}/s`, 88)
      };
    }
    const t = stats.totals;
    const sets = [
      [totals.connections, [x, t.connections, t.errors]],
      [totals.active, [x, t.active]],
      [totals.bytes, [x, t.bytesIn, t.bytesOut]]
    ];
    for (const [chart, data] of sets) {
      chart.setData(data);
      mark(chart.root.parentElement, data);
    }
    const now = $("now");
    now.replaceChildren(...[
      ["Connections/s", count(last(t.connections))],
      ["Active", count(last(t.active))],
      ["Errors/s", count(last(t.errors))],
      ["From clients", `${bytes(last(t.bytesIn))}/s`],
      ["To clients", `${bytes(last(t.bytesOut))}/s`]
    ].map(([label, value]) => el("div", {}, [el("dt", { text: label }), el("dd", { text: value })])));
  };

  // ---- pools and backends ----------------------------------------------
  /** Rows by pool and address, kept across refreshes so charts and focus stay. */
  const rows = new Map();
  const sections = new Map();

  const token = () => $("token").value.trim();

  const act = async (row, action) => {
    const answer = row.answer;
    answer.className = "answer";
    answer.textContent = `${action}…`;
    try {
      const response = await fetch(`backends/${encodeURIComponent(row.address)}/${action}`, {
        method: "POST",
        headers: { authorization: `Bearer ${token()}` }
      });
      const body = await response.json().catch(() => ({}));
      const what = response.ok ? `admin ${body.admin}` : body.error ?? response.statusText;
      answer.textContent = `${response.status} ${what}`;
      answer.classList.toggle("failed", !response.ok);
    } catch (error) {
      answer.textContent = `failed: ${error instanceof Error ? error.message : String(error)}`;
      answer.classList.add("failed");
    }
    refresh();
  };

  const makeRow = (address) => {
    const row = { address, tr: el("tr", { "data-address": address }) };
    row.backend = el("th", { scope: "row" });
    row.state = el("td");
    row.admin = el("td");
    row.weight = el("td", { class: "num" });
    row.active = el("td", { class: "num" });
    row.rate = el("span");
    row.rateChart = el("div", { class: "spark", role: "img", "aria-label": `connections per second to ${address}` });
    row.bytes = el("span");
    row.bytesChart = el("div", { class: "spark", role: "img", "aria-label": `bytes per second to and from ${address}` });
    row.tr.append(row.backend, row.state, row.admin, row.weight, row.active,
      el("td", {}, [row.rate, row.rateChart]), el("td", {}, [row.bytes, row.bytesChart]));
    row.actions = el("td", { class: "actions" });
    row.buttons = ["drain", "maintenance", "ready"].map((action) => {
      const button = el("button", { type: "button", "data-action": action, "aria-label": `${action} ${address}`, text: action });
      button.addEventListener("click", () => act(row, action));
      return button;
    });
    row.answer = el("span", { class: "answer", role: "status", "aria-live": "polite" });
    row.actions.append(...row.buttons, row.answer);
    row.rateSpark = sparkChart(row.rateChart, [colours.connections]);
    row.bytesSpark = sparkChart(row.bytesChart, [colours.bytesIn, colours.bytesOut]);
    return row;
  };

  const fillRow = (row, entry, now) => {
    row.backend.replaceChildren(entry.address, ...entry.name === undefined ? [] : [el("span", { class: "name", text: entry.name })]);
    row.tr.dataset.state = entry.state;
    row.tr.dataset.admin = entry.admin;
    row.state.replaceChildren(
      el("span", { class: `badge ${entry.state}`, text: entry.state }),
      el("span", { class: "since", text: `for ${duration(now - Date.parse(entry.since))}` })
    );
    row.admin.replaceChildren(el("span", { class: `badge admin-${entry.admin}`, text: entry.admin }),
      ...entry.backup ? [el("span", { class: "since", text: "backup" })] : []);
    row.weight.textContent = Number.isInteger(entry.weight) ? String(entry.weight) : entry.weight.toFixed(2);
    row.active.textContent = String(entry.activeConnections);
    const series = feed?.backends.find((b) => b.address === entry.address);
    const x = feed === undefined ? [] : feed.time.map((t) => t / 1000);
    const rate = series?.connections ?? x.map(() => null);
    const bytesIn = series?.bytesIn ?? x.map(() => null);
    const bytesOut = series?.bytesOut ?? x.map(() => null);
    row.rate.textContent = `${count(last(rate))}/s`;
    row.bytes.textContent = `↓${bytes(last(bytesIn))}/s ↑${bytes(last(bytesOut))}/s`;
    row.bytes.title = "from the backend / to the backend";
    row.rateSpark.setData([x, rate]);
    mark(row.rateChart, [x, rate]);
    row.bytesSpark.setData([x, bytesIn, bytesOut]);
    mark(row.bytesChart, [x, bytesIn, bytesOut]);
    const armed = token() !== "";
    for (const button of row.buttons) button.disabled = !armed;
    if (writeApi && row.actions.parentElement === null) row.tr.append(row.actions);
    if (!writeApi) row.actions.remove();
  };

  const headings = () => {
    const names = ["Backend", "State", "Admin", "Weight", "Active", "Connections/s", "Bytes/s"];
    if (writeApi) names.push("Actions");
    return el("tr", {}, names.map((name) => el("th", { scope: "col", text: name })));
  };

  const drawPools = (view, now) => {
    const pools = [{ key: "default", title: "Default pool", backends: view.backends }].concat(
      view.routes.map((route) => ({ key: `sni:${route.sni.join(",")}`, title: `Route ${route.sni.join(", ")}`, backends: route.backends }))
    );
    const seenSections = new Set();
    const seenRows = new Set();
    const container = $("pools");
    for (const pool of pools) {
      seenSections.add(pool.key);
      let section = sections.get(pool.key);
      if (section === undefined) {
        const table = el("table", { "data-pool": pool.key });
        section = { node: el("section", { class: "pool" }), table, head: el("thead"), body: el("tbody") };
        table.append(el("caption", { text: pool.title }), section.head, section.body);
        section.node.append(el("div", { class: "scroll" }, [table]));
        sections.set(pool.key, section);
      }
      container.append(section.node);
      section.head.replaceChildren(headings());
      if (pool.backends.length === 0) {
        section.body.replaceChildren(el("tr", {}, [el("td", { colspan: "8", text: "no backends" })]));
      } else if (section.body.querySelector("td[colspan]") !== null) {
        section.body.replaceChildren();
      }
      for (const entry of pool.backends) {
        const key = `${pool.key}\u0000${entry.address}`;
        seenRows.add(key);
        let row = rows.get(key);
        if (row === undefined) {
          row = makeRow(entry.address);
          rows.set(key, row);
        }
        fillRow(row, entry, now);
        section.body.append(row.tr);
      }
    }
    for (const [key, row] of rows) {
      if (seenRows.has(key)) continue;
      row.rateSpark.destroy();
      row.bytesSpark.destroy();
      row.tr.remove();
      rows.delete(key);
    }
    for (const [key, section] of sections) {
      if (seenSections.has(key)) continue;
      section.node.remove();
      sections.delete(key);
    }
  };

  // ---- the loop ---------------------------------------------------------
  const status = (text, kind = "") => {
    const node = $("status");
    node.textContent = text;
    node.className = kind;
  };

  const getJson = async (path) => {
    const response = await fetch(path, { cache: "no-store" });
    if (!response.ok) throw new Error(`${path}: ${response.status}`);
    return response.json();
  };

  let timer;
  let running = false;
  async function refresh() {
    if (running) return;
    running = true;
    clearTimeout(timer);
    try {
      const [stats, view] = await Promise.all([getJson("stats"), getJson("backends")]);
      offset = stats.now - Date.now();
      writeApi = stats.writeApi;
      feed = stats;
      $("write-api").hidden = !writeApi;
      drawTotals(stats);
      drawPools(view, Date.now() + offset);
      const at = new Date(stats.now).toLocaleTimeString();
      if (view.draining) status(`draining · updated ${at}`, "draining");
      else status(`updated ${at}`);
    } catch (error) {
      status(`cannot reach the proxy (${error instanceof Error ? error.message : String(error)}); retrying`, "error");
    } finally {
      running = false;
      timer = setTimeout(refresh, refreshMs);
    }
  }

  $("token").addEventListener("input", () => {
    const armed = token() !== "";
    for (const row of rows.values()) for (const button of row.buttons) button.disabled = !armed;
  });
  refresh();
})();
