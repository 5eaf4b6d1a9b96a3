// Time-series charts on uPlot (vendored; loaded as a classic script, so it
// is the global uPlot). A chart keeps the latest values it drew on its
// figure's data-latest, for people with screen readers (the table under
// the charts) and for the browser tests.

import {h} from './dom.js';

const palette = ['#0b5cad', '#d1495b', '#2a9d8f', '#e9a23b', '#6a4c93', '#57606a', '#8ab17d', '#c2185b'];

// A Chart owns one figure: a caption, the uPlot canvas and its legend.
export class Chart {
  // options: {title, format (value -> text), yMin, yMax, stacked}
  constructor(title, options = {}) {
    this.options = options;
    this.area = h('div', {class: 'chart-area'});
    this.figure = h('figure', {class: 'chart'}, h('figcaption', {}, title), this.area);
    this.plot = null;
    this.labels = '';
    this.resize = new ResizeObserver(() => this.plot?.setSize(this.size()));
    this.resize.observe(this.area);
  }

  size() {
    return {width: Math.max(200, this.area.clientWidth), height: 180};
  }

  // update draws times (unix ms) against series [{label, values, dash}].
  update(times, series) {
    const labels = series.map((s) => s.label).join('\n');
    if (labels !== this.labels) this.rebuild(series, labels);
    const xs = times.map((t) => t / 1000);
    let ys = series.map((s) => s.values);
    if (this.options.stacked) ys = stack(ys);
    this.raw = series.map((s) => s.values);
    this.plot?.setData([xs, ...ys]);
    const latest = {};
    for (const s of series) latest[s.label] = s.values.at(-1) ?? null;
    this.figure.dataset.latest = JSON.stringify(latest);
  }

  rebuild(series, labels) {
    this.plot?.destroy();
    this.labels = labels;
    this.area.replaceChildren();
    if (!series.length) {
      this.plot = null;
      this.area.append(h('p', {class: 'chart-empty'}, 'No data yet.'));
      return;
    }
    const given = this.options.format || String;
    const format = (v) => (v === null || v === undefined ? '–' : given(v)); // gaps and the idle legend
    const {yMin, yMax, stacked} = this.options;
    this.plot = new uPlot({
      ...this.size(),
      cursor: {drag: {x: false, y: false}},
      scales: {y: {range: (u, lo, hi) => [yMin ?? Math.min(0, lo), Math.max(yMax ?? 0, hi * 1.1 || 1)]}},
      axes: [{}, {values: (u, ticks) => ticks.map(format), size: 90}],
      series: [{}, ...series.map((s, i) => ({
        label: s.label,
        stroke: s.color || palette[i % palette.length],
        fill: stacked ? `${palette[i % palette.length]}55` : undefined,
        dash: s.dash,
        width: 1.5,
        points: {show: false},
        // In a stacked chart the legend shows each series' own value.
        value: (u, v, si, idx) => format(stacked && idx !== null ? this.raw[si - 1][idx] : v),
      }))],
      // Stacked areas fill down to the series below, not to zero.
      bands: stacked ? series.slice(1).map((s, i) => ({series: [i + 2, i + 1]})) : [],
    }, [[], ...series.map(() => [])], this.area);
  }

  destroy() {
    this.resize.disconnect();
    this.plot?.destroy();
  }
}

// stack turns series into running sums, the tops of stacked areas.
function stack(ys) {
  const sums = [];
  ys.forEach((values, i) => {
    sums.push(values.map((v, j) => (v ?? 0) + (i ? sums[i - 1][j] : 0)));
  });
  return sums;
}
