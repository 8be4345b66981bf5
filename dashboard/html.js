'use strict'
// HTML built from tagged templates: every interpolated value is escaped unless it is markup this
// module made (`Markup`). Dead letters are untrusted (payloads, headers, errors, topic names), so
// escaping is the default and there is no way to interpolate a plain string unescaped.

class Markup {
  constructor(text) {
    this.text = text
  }
  toString() {
    return this.text
  }
}

const ESCAPES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }

/** Text made safe for an element's content or a quoted attribute value. */
function escape(value) {
  return String(value).replace(/[&<>"']/g, (c) => ESCAPES[c])
}

function render(value) {
  if (value === null || value === undefined || value === false) return ''
  if (value instanceof Markup) return value.text
  if (Array.isArray(value)) return value.map(render).join('')
  return escape(value)
}

/** html`<p>${text}</p>`: markup with every value escaped (arrays joined, null/false/undefined empty). */
function html(strings, ...values) {
  let text = strings[0]
  for (let i = 0; i < values.length; i++) text += render(values[i]) + strings[i + 1]
  return new Markup(text)
}

/** A query string from an object, skipping empty values. */
function query(params) {
  const search = new URLSearchParams()
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '') search.set(key, String(value))
  }
  const text = search.toString()
  return text ? `?${text}` : ''
}

/** 2026-12-03 08:32:41 UTC, or '-' when unknown. */
function time(ms) {
  if (!ms) return '-'
  const date = new Date(Number(ms))
  if (Number.isNaN(date.getTime())) return String(ms)
  return `${date.toISOString().slice(0, 19).replace('T', ' ')} UTC`
}

/** A duration in words: 950 ms, 12 s, 3 min, 2 h 5 min. */
function duration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(Number(ms))) return '-'
  const n = Math.max(0, Number(ms))
  if (n < 1000) return `${Math.round(n)} ms`
  if (n < 60_000) return `${Math.round(n / 100) / 10} s`
  if (n < 3_600_000) return `${Math.round(n / 60_000)} min`
  const hours = Math.floor(n / 3_600_000)
  const minutes = Math.round((n % 3_600_000) / 60_000)
  return minutes ? `${hours} h ${minutes} min` : `${hours} h`
}

function count(n) {
  return n === null || n === undefined ? '-' : Number(n).toLocaleString('en-US')
}

module.exports = { html, escape, query, time, duration, count, Markup }
