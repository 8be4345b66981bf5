'use strict'
// Line charts drawn on the server as SVG: no chart library, no script, nothing inline that the
// Content-Security-Policy would have to allow (colours come from classes in dashboard.css).

const { html, count, time } = require('./html')

const WIDTH = 720
const HEIGHT = 180
const PAD = { left: 48, right: 8, top: 8, bottom: 22 }

/**
 * `series`: [{ label, className, values }] where `values[i]` is the count of minute
 * `from + i * 60 000`. Returns an <svg> with one polyline per series, y axis from 0 to the
 * largest value, the time range at the bottom and a legend.
 */
function lineChart(series, { from, minutes, title }) {
  const max = Math.max(1, ...series.flatMap((s) => s.values))
  const plotW = WIDTH - PAD.left - PAD.right
  const plotH = HEIGHT - PAD.top - PAD.bottom
  const x = (i) => PAD.left + (minutes <= 1 ? 0 : (i / (minutes - 1)) * plotW)
  const y = (v) => PAD.top + plotH - (v / max) * plotH
  const lines = series.map((s) => {
    const points = s.values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' ')
    return html`<polyline class="${`line ${s.className}`}" fill="none" points="${points}"><title>${s.label}</title></polyline>`
  })
  const totals = series.map((s) => s.values.reduce((a, b) => a + b, 0))
  return html`<figure class="chart">
<svg viewBox="0 0 ${WIDTH} ${HEIGHT}" role="img" aria-label="${title}" xmlns="http://www.w3.org/2000/svg">
<line class="axis" x1="${PAD.left}" y1="${PAD.top + plotH}" x2="${WIDTH - PAD.right}" y2="${PAD.top + plotH}"/>
<line class="axis" x1="${PAD.left}" y1="${PAD.top}" x2="${PAD.left}" y2="${PAD.top + plotH}"/>
<text class="tick" x="${PAD.left - 4}" y="${PAD.top + 10}" text-anchor="end">${count(max)}</text>
<text class="tick" x="${PAD.left - 4}" y="${PAD.top + plotH}" text-anchor="end">0</text>
<text class="tick" x="${PAD.left}" y="${HEIGHT - 6}">${time(from)}</text>
<text class="tick" x="${WIDTH - PAD.right}" y="${HEIGHT - 6}" text-anchor="end">${time(from + (minutes - 1) * 60_000)}</text>
${lines}
</svg>
<figcaption>${series.map((s, i) => html`<span class="${`key ${s.className}`}">${s.label}: ${count(totals[i])}</span> `)} (per minute; largest ${count(max)})</figcaption>
</figure>`
}

module.exports = { lineChart }
