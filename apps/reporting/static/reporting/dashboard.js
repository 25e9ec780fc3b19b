/* The statistics dashboard: draws each panel's table (embedded as JSON) with Apache ECharts.
   No inline script (the CSP allows scripts from this site only); suppressed cells are null. */
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("rp-data").textContent);
  var threshold = JSON.parse(document.getElementById("rp-threshold").textContent);
  var hidden = "<" + threshold;

  function col(table, key) {
    for (var i = 0; i < table.columns.length; i++) { if (table.columns[i].key === key) return i; }
    return -1;
  }
  function values(table, key) {
    var i = col(table, key);
    return table.rows.map(function (r) { return r[i] === null ? null : Number(r[i]); });
  }
  function labels(table, key) {
    var i = col(table, key);
    return table.rows.map(function (r) { return String(r[i]); });
  }
  function label(table, key) { return table.columns[col(table, key)].label; }
  function chart(key, option) {
    var el = document.getElementById("chart-" + key);
    if (!el || !window.echarts) return;
    var c = window.echarts.init(el);
    option.tooltip = option.tooltip || { trigger: "axis" };
    option.grid = option.grid || { left: 60, right: 20, top: 40, bottom: 40 };
    c.setOption(option);
    window.addEventListener("resize", function () { c.resize(); });
  }
  function bars(key, table, x, series, horizontal) {
    var cats = labels(table, x);
    var s = series.map(function (k) { return { name: label(table, k), type: "bar", data: values(table, k) }; });
    var catAxis = { type: "category", data: cats }, valAxis = { type: "value" };
    chart(key, {
      legend: { top: 0 },
      xAxis: horizontal ? valAxis : catAxis,
      yAxis: horizontal ? catAxis : valAxis,
      series: s,
      grid: horizontal ? { left: 160, right: 20, top: 40, bottom: 30 } : undefined
    });
  }

  // Today's tiles.
  var today = data.today;
  document.querySelectorAll("#rp-today [data-col]").forEach(function (el) {
    var v = today.rows.length ? today.rows[0][Number(el.getAttribute("data-col"))] : 0;
    el.textContent = v === null ? hidden : v;
  });

  var trend = data.trend;
  chart("trend", {
    legend: { top: 0 },
    xAxis: { type: "category", data: labels(trend, "day") },
    yAxis: { type: "value" },
    series: ["submitted", "entered", "rejected", "participants"].map(function (k) {
      return { name: label(trend, k), type: "line", smooth: true, data: values(trend, k) };
    })
  });
  var funnel = data.funnel;
  chart("funnel", {
    tooltip: { trigger: "item" },
    series: [{
      type: "funnel", sort: "none", left: "10%", width: "80%", label: { position: "inside" },
      data: funnel.rows.map(function (r) { return { name: r[0], value: r[1] }; })
    }]
  });
  bars("areas", data.areas, "code", ["submitted", "entered"]);
  bars("industries", data.industries, "code", ["submitted", "entered"]);
  bars("rejections", data.rejections, "label", ["count"], true);
  bars("awards", data.awards, "tier", ["awarded", "paid"]);
  var burn = data.burn;
  chart("burn", {
    legend: { top: 0 },
    xAxis: { type: "category", data: labels(burn, "day") },
    yAxis: { type: "value" },
    series: [
      { name: label(burn, "cumulative"), type: "line", areaStyle: {}, data: values(burn, "cumulative") },
      { name: label(burn, "awarded_amount"), type: "bar", data: values(burn, "awarded_amount") }
    ]
  });
  bars("risk", data.risk, "indicator", ["count"], true);

  // Export links carry the filters of the page (already in their query) plus publish=1.
  document.querySelectorAll("a[data-publish]").forEach(function (a) {
    a.href += (a.href.indexOf("?") >= 0 ? "&" : "?") + "publish=1";
  });
})();
