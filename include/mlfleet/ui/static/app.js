// mlfleet results pages: sort and filter tables, live refresh of a running sweep, plotly plots.
// Only textContent and server-escaped fragments go into the page; nothing is built from raw strings.
"use strict";
const mlfleet = (() => {
  const sortState = {};

  function cellValue(row, index) {
    const cell = row.children[index];
    const raw = cell ? (cell.dataset.value ?? cell.textContent) : "";
    const number = raw === "" ? NaN : Number(raw);
    return Number.isNaN(number) ? raw.toLowerCase() : number;
  }

  function sortTable(table, index, descending) {
    const body = table.tBodies[0];
    const rows = Array.from(body.rows);
    rows.sort((a, b) => {
      const x = cellValue(a, index), y = cellValue(b, index);
      const xe = x === "", ye = y === "";
      if (xe || ye) return xe - ye; // empty cells last either way
      if (typeof x === typeof y) return (x < y ? -1 : x > y ? 1 : 0) * (descending ? -1 : 1);
      return typeof x === "number" ? -1 : 1;
    });
    rows.forEach((row) => body.appendChild(row));
    table.querySelectorAll("th").forEach((th) => th.removeAttribute("aria-sort"));
    table.tHead.rows[0].children[index].setAttribute("aria-sort", descending ? "descending" : "ascending");
  }

  function bindSorting(root) {
    root.querySelectorAll("table.sortable").forEach((table) => {
      Array.from(table.tHead.rows[0].children).forEach((th, index) => {
        if (!th.dataset.sort) return;
        th.addEventListener("click", () => {
          const key = table.id + ":" + th.dataset.sort;
          const descending = sortState.key === key ? !sortState.descending : th.dataset.sort === "score";
          sortState.key = key; sortState.descending = descending; sortState.table = table.id; sortState.index = index;
          sortTable(table, index, descending);
        });
      });
    });
  }

  function applyFilter() {
    const input = document.getElementById("filter");
    if (!input) return;
    const query = input.value.trim().toLowerCase();
    document.querySelectorAll("table.sortable tbody tr").forEach((row) => {
      row.hidden = query !== "" && !row.textContent.toLowerCase().includes(query);
    });
  }

  function reapply() {
    if (sortState.table) {
      const table = document.getElementById(sortState.table);
      if (table) sortTable(table, sortState.index, sortState.descending);
    }
    applyFilter();
  }

  function draw(element, figure) {
    element.textContent = "";
    if (!figure) return false;
    Plotly.newPlot(element, figure.data, figure.layout, {responsive: true, displaylogo: false});
    return true;
  }

  async function loadPlots() {
    const holder = document.getElementById("plots");
    if (!holder) return;
    const response = await fetch(holder.dataset.src, {credentials: "same-origin"});
    if (!response.ok) return;
    const plots = await response.json();
    const drawn = draw(document.getElementById("plot-parallel"), plots.parallel);
    draw(document.getElementById("plot-history"), plots.history);
    if (plots.importance) draw(document.getElementById("plot-importance"), plots.importance);
    const grid = document.getElementById("plot-params");
    grid.textContent = "";
    for (const item of plots.by_param) {
      const div = document.createElement("div");
      div.className = "plot";
      grid.appendChild(div);
      draw(div, item.figure);
    }
    document.getElementById("plots-empty").hidden = drawn;
  }

  async function poll() {
    const body = document.body;
    if (body.dataset.live !== "1") return;
    let last = null;
    const tick = async () => {
      try {
        const state = await (await fetch(body.dataset.progress, {credentials: "same-origin"})).json();
        if (state.state === "finished") { window.location.reload(); return; }
        if (last !== null && state.trials_done !== last) {
          const page = await fetch(window.location.pathname + "?fragment=live", {credentials: "same-origin"});
          const fresh = new DOMParser().parseFromString(await page.text(), "text/html").getElementById("live");
          if (fresh) {
            document.getElementById("live").replaceWith(fresh);
            bindSorting(fresh.parentElement);
            reapply();
            loadPlots();
          }
        }
        last = state.trials_done;
      } catch (err) { /* the next tick tries again */ }
      window.setTimeout(tick, 5000);
    };
    tick();
  }

  function bindFilter() {
    const input = document.getElementById("filter");
    if (input) input.addEventListener("input", applyFilter);
  }

  function runPage() { loadPlots(); poll(); }

  function drawEmbedded() {
    document.querySelectorAll("div.plot[data-figure]").forEach((div) => draw(div, JSON.parse(div.dataset.figure)));
  }

  // Airflow shows the app in an iframe sandboxed without allow-top-navigation, so a target=_top
  // link does nothing there. The frame is same-origin, so it moves Airflow's own router instead
  // (pushState + popstate, what a click inside Airflow does); standalone, links work as they are.
  function bindAirflowLinks() {
    document.addEventListener("click", (event) => {
      const link = event.target.closest && event.target.closest("a[target=_top]");
      if (!link || window.top === window || event.defaultPrevented || event.button !== 0 ||
          event.metaKey || event.ctrlKey || event.shiftKey) return;
      try {
        const url = new URL(link.href, window.location.href);
        if (url.origin !== window.top.location.origin) return;
        event.preventDefault();
        window.top.history.pushState({}, "", url.pathname + url.search + url.hash);
        window.top.dispatchEvent(new PopStateEvent("popstate", {state: {}}));
      } catch (err) { window.open(link.href, "_blank", "noopener"); }
    });
  }

  document.addEventListener("DOMContentLoaded", () => { bindSorting(document); bindFilter(); bindAirflowLinks(); });
  return {runPage, drawEmbedded};
})();
