// Draw each dashboard chart with Chart.js (installed from npm at set-up time) from the figures
// the page embeds as JSON. The same figures are always in a table next to the chart, so the
// page works without JavaScript and for screen readers; the canvas is an image with a label.
(function () {
  "use strict";
  if (!window.Chart) {
    return;
  }
  // NHS identity colours, with a dashed dark line for targets.
  var palette = ["#005eb8", "#ffb81c", "#007f3b", "#d5281b", "#330072", "#4c6272", "#ae2573"];
  var reduceMotion = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
  var bodyStyle = window.getComputedStyle(document.body);
  window.Chart.defaults.font.family = bodyStyle.fontFamily;
  window.Chart.defaults.font.size = 14;
  window.Chart.defaults.color = "#212b32";

  function suffix(unit) {
    return unit === "percent" ? "%" : "";
  }

  document.querySelectorAll("[data-chart]").forEach(function (figure) {
    var canvas = figure.querySelector("canvas");
    var source = figure.querySelector("script[type='application/json']");
    if (!canvas || !source) {
      return;
    }
    var spec = JSON.parse(source.textContent);
    spec.datasets.forEach(function (dataset, index) {
      if (dataset.target) {
        dataset.borderColor = "#212b32";
        dataset.borderDash = [6, 4];
        dataset.borderWidth = 2;
        dataset.pointRadius = 0;
        dataset.fill = false;
      } else {
        dataset.backgroundColor = palette[index % palette.length];
        dataset.borderColor = dataset.backgroundColor;
      }
    });
    var valueAxis = spec.horizontal ? "x" : "y";
    var scales = { x: { stacked: spec.stacked }, y: { stacked: spec.stacked } };
    scales[valueAxis].beginAtZero = true;
    scales[valueAxis].ticks = {
      callback: function (value) {
        return value + suffix(spec.unit);
      },
    };
    if (spec.unit === "percent") {
      scales[valueAxis].max = 100;
    }
    new window.Chart(canvas, {
      type: "bar",
      data: { labels: spec.labels, datasets: spec.datasets },
      options: {
        indexAxis: spec.horizontal ? "y" : "x",
        animation: reduceMotion ? false : { duration: 400 },
        responsive: true,
        maintainAspectRatio: false,
        scales: scales,
        plugins: { legend: { position: "bottom" } },
      },
    });
  });
})();
