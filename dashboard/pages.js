'use strict'
// The pages, as functions of what was read from Redis. Every value from a dead letter or a
// schedule goes through html`` (escaped); forms carry the CSRF token and are left out read-only.

const { html, query, time, duration, count } = require('./html')
const { lineChart } = require('./chart')
const { filterParams, timeField } = require('./operator')

const RANGES = { '1h': 60, '24h': 1440, '48h': 2880 }

function layout(ctx, { title, body, refresh }) {
  const base = ctx.base
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · kafka-redis-retry</title>
<link rel="stylesheet" href="${base}/assets/dashboard.css">
<script src="${base}/assets/dashboard.js" defer></script>
</head>
<body${refresh ? html` data-refresh="${refresh}"` : ''}>
<header>
<a class="brand" href="${base}/">kafka-redis-retry</a>
<nav><a href="${base}/">Overview</a>${ctx.dlqs.map((d) => html` <a href="${dlqPath(base, d.name)}">${d.name}</a>`)} <a href="${base}/audit">Audit</a></nav>
${ctx.readOnly && !ctx.linked ? html`<span class="badge">read-only</span>` : ''}
</header>
<main>
${ctx.notice ? html`<p class="notice" role="status">${ctx.notice}</p>` : ''}
${linkedNote(ctx)}
${body}
</main>
</body>
</html>
`
}

/**
 * A page opened from another site (a link in a chat or a ticket) has no actions: the browser did
 * not send its Strict CSRF cookie. The same address opened from here has them.
 */
function linkedNote(ctx) {
  if (!ctx.linked) return ''
  return html`<p class="linked" data-linked>Opened from a link on another site: actions hidden. <a href="${ctx.address}">Show them</a></p>`
}

const dlqPath = (base, name) => `${base}/dlq/${encodeURIComponent(name)}`
const itemPath = (base, dlq, id) => `${dlqPath(base, dlq)}/item/${encodeURIComponent(id)}`

function csrfField(ctx) {
  return html`<input type="hidden" name="csrf" value="${ctx.csrf}">`
}

/** A form that changes state: nothing at all when read-only. */
function action(ctx, path, label, fields, { className = '', extra = '' } = {}) {
  if (ctx.readOnly) return ''
  return html`<form method="post" action="${path}" class="${`inline ${className}`}">${csrfField(ctx)}${Object.entries(fields).map(
    ([name, value]) => html`<input type="hidden" name="${name}" value="${value}">`,
  )}${extra}<button type="submit">${label}</button></form>`
}

function pauseControls(ctx, schedule, topic, pausedUntil) {
  const path = `${ctx.base}/schedules/${schedule.index}`
  const fields = topic === null ? {} : { topic }
  // resume() without a topic ends every pause, the schedule's and each topic's: say so.
  if (pausedUntil !== undefined) return action(ctx, `${path}/resume`, topic === null ? 'Resume all (schedule and topics)' : 'Resume', fields)
  return action(ctx, `${path}/pause`, topic === null ? 'Pause schedule' : 'Pause', fields, {
    extra: html`<label>for <input type="number" name="minutes" min="1" step="1" placeholder="∞" class="minutes"> min</label> `,
  })
}

/**
 * A topic whose breaker is open or half-open gets a button that closes it (resume(topic), which
 * also ends a pause of the topic: a paused topic's Resume does both already).
 */
function breakerControls(ctx, schedule, topic, state, pausedUntil) {
  if ((state !== 'open' && state !== 'halfOpen') || pausedUntil !== undefined) return ''
  return action(ctx, `${ctx.base}/schedules/${schedule.index}/resume`, 'Close breaker', { topic, breaker: '1' })
}

function pausedText(until) {
  if (until === undefined) return ''
  return until ? html`<span class="paused">paused until ${time(until)}</span>` : html`<span class="paused">paused</span>`
}

function overview(ctx, { schedules, range, jobs = '' }) {
  const body = schedules.map((s) => scheduleSection(ctx, s, range))
  const ranges = Object.keys(RANGES).map((r) =>
    r === range ? html`<strong>${r}</strong> ` : html`<a href="${ctx.base}/${query({ range: r })}">${r}</a> `,
  )
  return layout(ctx, {
    title: 'Overview',
    refresh: ctx.refreshSeconds,
    body: html`<h1>Overview</h1><p class="ranges">History: ${ranges}</p>${jobs}${body}`,
  })
}

function scheduleSection(ctx, s, range) {
  if (s.error) {
    return html`<section class="schedule"><h2>${s.name}</h2><p class="error">${s.error}</p></section>`
  }
  const { stats, paused, history, rates } = s
  // Every topic with messages, and every paused topic (it may have none waiting yet).
  const byTopic = { ...(stats.topics || {}) }
  for (const topic of Object.keys((paused && paused.topics) || {})) byTopic[topic] = byTopic[topic] || {}
  const topics = Object.entries(byTopic).sort(([a], [b]) => a.localeCompare(b))
  const topicPaused = (topic) => (paused && paused.topics ? paused.topics[topic] : undefined)
  return html`<section class="schedule">
<h2>${s.name} ${pausedText(paused ? paused.schedule : undefined)}</h2>
<div class="controls">${paused ? pauseControls(ctx, s, null, paused.schedule) : ''}</div>
<dl class="counts">
<div><dt>scheduled</dt><dd data-count="scheduled">${count(stats.scheduled)}</dd></div>
<div><dt>due now</dt><dd data-count="due">${count(stats.due)}</dd></div>
<div><dt>leased</dt><dd data-count="leased">${count(stats.inflight)}</dd></div>
${stats.blockedKeys || stats.parkedMessages ? html`<div><dt>keys blocked (ordered)</dt><dd data-count="blockedKeys">${count(stats.blockedKeys)}</dd></div><div><dt>parked behind them</dt><dd data-count="parkedMessages">${count(stats.parkedMessages)}</dd></div>` : ''}
${s.dlqs.map((d) => html`<div><dt>dead letters in <a href="${dlqPath(ctx.base, d.name)}">${d.name}</a></dt><dd data-count="deadLetters">${count(d.count)}</dd></div>`)}
${rates ? html`<div><dt>published in the last minute</dt><dd data-count="published">${count(rates.published)}</dd></div>` : ''}
${stats.lateMs !== undefined ? html`<div><dt>oldest due waits</dt><dd data-count="late">${duration(stats.lateMs)}</dd></div>` : ''}
</dl>
${
  topics.length
    ? html`<table class="topics"><thead><tr><th>topic</th><th>scheduled</th><th>due</th><th>leased</th><th>dead letters</th><th>breaker</th><th>paused</th><th></th></tr></thead><tbody>
${topics.map(
  ([topic, t]) => html`<tr data-topic="${topic}"><td><a href="${dlqPath(ctx.base, s.dlqs[0].name)}${query({ topic })}">${topic}</a></td><td>${count(t.scheduled)}</td><td>${count(t.due)}</td><td>${count(t.leased)}</td><td>${count(t.deadLetters)}</td><td data-breaker="${t.breaker || ''}">${t.breaker || '-'}</td><td>${pausedText(topicPaused(topic))}</td><td>${breakerControls(ctx, s, topic, t.breaker, topicPaused(topic))}${paused ? pauseControls(ctx, s, topic, topicPaused(topic)) : ''}</td></tr>
`,
)}</tbody></table>`
    : html`<p class="muted">${stats.topics ? 'No topic has messages on the schedule.' : 'Per topic counts need an addon with stats().topics.'}</p>`
}
${
  !paused
    ? html`<p class="muted">Pausing needs an addon with pause().</p>`
    : ''
}
${history ? historyChart(history, range) : html`<p class="muted">${s.historyError || 'No history.'}</p>`}
${paused ? topicPauseForm(ctx, s) : ''}
</section>`
}

function topicPauseForm(ctx, s) {
  if (ctx.readOnly) return ''
  return html`<form method="post" action="${ctx.base}/schedules/${s.index}/pause" class="inline pause-topic">${csrfField(ctx)}
<label>Pause topic <input name="topic" required></label> <label>for <input type="number" name="minutes" min="1" step="1" placeholder="∞" class="minutes"> min</label> <button type="submit">Pause</button></form>`
}

function historyChart(history, range) {
  const minutes = RANGES[range]
  return lineChart(
    [
      { label: 'pushed', className: 'pushed', values: history.pushed },
      { label: 'published', className: 'published', values: history.published },
      { label: 'failed publishes', className: 'failed', values: history.failed },
      { label: 'dead-lettered', className: 'dead', values: history.deadLettered },
    ],
    { from: history.from, minutes, title: `last ${range}` },
  )
}

function filterForm(ctx, dlq, filter) {
  const p = filterParams(filter)
  return html`<form method="get" action="${dlqPath(ctx.base, dlq.name)}" class="filters" id="filters">
<label>topic <input name="topic" value="${p.topic || ''}"></label>
<label>error contains <input name="error" value="${p.error || ''}"></label>
<label>text (key, payload, header) <input name="search" value="${p.search || ''}"></label>
<label>reason <input name="reason" value="${p.reason || ''}" class="reason"></label>
<label>died since (UTC) <input type="datetime-local" name="since" value="${p.since || ''}"></label>
<label>until (UTC) <input type="datetime-local" name="until" value="${p.until || ''}"></label>
<button type="submit">Filter</button> <a href="${dlqPath(ctx.base, dlq.name)}">clear</a>
</form>`
}

function preview(value, width = 120) {
  const text = typeof value === 'string' ? value : JSON.stringify(value)
  // Only the start is shown: a multi-megabyte payload is not split into characters whole.
  const chars = Array.from(text === undefined ? '' : text.slice(0, width * 2 + 2))
  return chars.length <= width ? chars.join('') : `${chars.slice(0, width - 1).join('')}…`
}

function attempts(item) {
  const o = item.options && typeof item.options === 'object' ? item.options : {}
  if (o.retryCount === undefined) return '-'
  return o.maxRetry !== undefined ? `retryCount ${o.retryCount} (maxRetry ${o.maxRetry})` : `retryCount ${o.retryCount}`
}

function errorText(error) {
  if (!error) return '-'
  return error.name ? `${error.name}: ${error.message}` : error.message
}

/**
 * The failure reasons leading the dead letter page: each with its count, topics and an example,
 * one click (a link, no script) to the list filtered by it; the chosen one marked.
 */
function reasonsSection(ctx, dlq, filter, found) {
  if (!found) return ''
  const { reason: chosen, ...rest } = filter
  const link = (reason) => `${dlqPath(ctx.base, dlq.name)}${query({ ...filterParams(rest), reason })}`
  const read = found.truncated
    ? html`counts of the newest <span data-reasons-scanned>${count(found.scanned)}</span> of ${count(found.total)} dead letters`
    : html`<span data-reasons-scanned>${count(found.scanned)}</span> dead letters read`
  return html`<section class="reasons"><h2>Failure reasons</h2>
${
  found.reasons.length
    ? html`<table class="reasons"><thead><tr><th>count</th><th>reason</th><th>topics</th><th>last</th></tr></thead><tbody>
${found.reasons.map(
  (r) => html`<tr data-reason="${r.reason}"${r.reason === chosen ? html` class="chosen"` : ''}><td class="count" data-count>${count(r.count)}</td>
<td><a href="${link(r.reason)}">${preview(r.reason, 160)}</a><div class="example muted" title="${preview(r.example, 1000)}">e.g. ${preview(r.example, 160)}</div></td>
<td>${Object.entries(r.topics).map(([t, n], i) => html`${i ? ', ' : ''}${t} ${count(n)}`)}</td><td class="when">${time(r.lastAt)}</td></tr>
`,
)}</tbody></table>`
    : html`<p class="muted">No dead letters${Object.keys(rest).length ? ' match the filter' : ''}.</p>`
}
<p class="muted">${read}${chosen !== undefined ? html` · <a href="${link(undefined)}">every reason</a>` : ''}</p>
</section>`
}

function deadLetterList(ctx, { dlq, filter, page, matched, cursor, limit, bulk = '', reasons = null }) {
  const params = { ...filterParams(filter), limit: limit !== ctx.pageSize ? limit : undefined }
  const rows = page.items.map(
    (item) => html`<tr data-id="${item.id}">
<td class="when"><a href="${itemPath(ctx.base, dlq.name, item.id)}${query(filterParams(filter))}">${time(item.diedAt)}</a></td>
<td>${item.topic}</td><td>${item.event}</td><td class="error">${preview(errorText(item.error), 80)}</td><td>${attempts(item)}</td><td data-replays>${item.replays === undefined ? '-' : item.replays}</td><td class="payload"><code>${preview(item.value)}</code></td>
</tr>
`,
  )
  const next = page.cursor !== null && page.cursor !== undefined
  return layout(ctx, {
    title: `Dead letters: ${dlq.name}`,
    refresh: matched && (matched.pending || matched.notStarted === 'busy') ? 2 : null,
    body: html`<h1>Dead letters in ${dlq.name}</h1>
${reasonsSection(ctx, dlq, filter, reasons)}
${filterForm(ctx, dlq, filter)}
<p class="matched">${matchedText(matched, ctx.address)}${page.scanned !== undefined ? html` · this page read ${count(page.scanned)} records` : ''} · newest first${cursor ? html` · <a href="${dlqPath(ctx.base, dlq.name)}${query(params)}">first page</a>` : ''}</p>
${
  page.items.length
    ? html`<table class="dead-letters"><thead><tr><th>died</th><th>topic</th><th>key (event)</th><th>error</th><th>attempts</th><th>replays</th><th>payload</th></tr></thead><tbody>
${rows}</tbody></table>`
    : html`<p class="muted">No dead letters${cursor ? ' on this page' : ''}.</p>`
}
${next ? html`<p><a rel="next" href="${dlqPath(ctx.base, dlq.name)}${query({ ...params, cursor: page.cursor })}">next page →</a></p>` : ''}
${bulk}`,
  })
}

function matchedText(matched, address) {
  if (matched === null) return 'count of matches unknown (needs an addon with removeDeadLetters)'
  if (matched.pending) return html`<span data-counting>counting the matches…</span>`
  if (matched.notStarted === 'elsewhere') {
    return html`<span data-not-counted>matches not counted (opened from another site): <a href="${address}">count them</a></span>`
  }
  if (matched.notStarted === 'busy') return html`<span data-counting>waiting to count the matches (other counts are running)…</span>`
  return html`<span data-matched>${count(matched)}</span> matched`
}

function filterHidden(filter) {
  return Object.entries(filterParams(filter))
    .filter(([, v]) => v !== undefined && v !== '')
    .map(([k, v]) => html`<input type="hidden" name="${k}" value="${v}">`)
}

function describeFilter(filter) {
  const parts = []
  if (filter.topic !== undefined) parts.push(html`topic <code>${filter.topic}</code>`)
  if (filter.errorContains !== undefined) parts.push(html`error containing <code>${filter.errorContains}</code>`)
  if (filter.search !== undefined) parts.push(html`text <code>${filter.search}</code>`)
  if (filter.reason !== undefined) parts.push(html`reason <code>${filter.reason}</code>`)
  if (filter.since !== undefined) parts.push(html`died since ${time(filter.since)}`)
  if (filter.until !== undefined) parts.push(html`died until ${time(filter.until)}`)
  if (!parts.length) return 'no filter (all of them)'
  return parts.map((p, i) => html`${i ? ' and ' : ''}${p}`)
}

/** A header value as text: strings as they are, Buffers (as JSON.stringify wrote them) in hex. */
function headerValue(value) {
  if (Array.isArray(value)) return value.map(headerValue)
  if (value && typeof value === 'object' && value.type === 'Buffer' && Array.isArray(value.data)) {
    const hex = Buffer.from(value.data).toString('hex').replace(/(..)(?!$)/g, '$1 ')
    return [html`<span class="binary">binary, ${value.data.length} bytes: <code>${hex}</code></span>`]
  }
  return [html`<code>${typeof value === 'string' ? value : JSON.stringify(value)}</code>`]
}

// A payload's page shows at most this many characters of it (then a download of the whole):
// a multi-megabyte payload drawn whole made a page of tens of MB that took the browser most of a
// minute. Formatting (indenting JSON) is done only below FORMAT_MAX characters.
const PAYLOAD_SHOWN = 64 * 1024
const FORMAT_MAX = 1024 * 1024

/** The payload, whole when small, else its first PAYLOAD_SHOWN characters and a download link. */
function payloadView(path, value) {
  const raw = typeof value === 'string' ? value : value === undefined ? '' : JSON.stringify(value)
  const text = raw.length <= FORMAT_MAX ? formatted(value) : raw
  if (text.length <= PAYLOAD_SHOWN) return html`<pre class="payload" data-field="payload">${text}</pre>`
  // Not cut between the two halves of a surrogate pair.
  let end = PAYLOAD_SHOWN
  const last = text.charCodeAt(end - 1)
  if (last >= 0xd800 && last <= 0xdbff) end--
  const bytes = Buffer.byteLength(raw, 'utf8')
  return html`<p class="payload-cut" data-payload-cut>Large payload (${count(bytes)} bytes): the first ${count(end)} of ${count(text.length)} characters shown. <a href="${path}/payload" download data-download>Download the whole payload</a></p>
<pre class="payload" data-field="payload">${text.slice(0, end)}</pre>
<p><a href="${path}/payload" download>Download the whole payload</a> (${count(bytes)} bytes)</p>`
}

/** Remove asks first (removeConfirm): a GET form to the confirmation, never a removal. */
function removeButton(ctx, path, filter) {
  if (ctx.readOnly) return ''
  return html`<form method="get" action="${path}/remove" class="inline remove">${filterHidden(filter)}<button type="submit">Remove…</button></form>`
}

/** Remove one dead letter? What it is, and a confirm button (a POST with confirm=yes). */
function removeConfirm(ctx, { dlq, item, filter }) {
  const path = itemPath(ctx.base, dlq.name, item.id)
  const back = `${path}${query(filterParams(filter))}`
  return layout(ctx, {
    title: `Remove dead letter ${item.id}`,
    body: html`<h1>Remove dead letter <code>${item.id}</code>?</h1>
<p>From ${dlq.name}: topic <code>${item.topic || '-'}</code>, key <code>${item.event || '-'}</code>, died ${time(item.diedAt)}, error <span class="error">${preview(errorText(item.error), 200)}</span>.</p>
<p>It is deleted, with its payload (${count(Buffer.byteLength(typeof item.value === 'string' ? item.value : JSON.stringify(item.value) || '', 'utf8'))} bytes): there is no undo. To send it again instead, requeue it.</p>
${
  ctx.readOnly
    ? html`<p><a href="${back}">back</a></p>`
    : html`<form method="post" action="${path}/remove">${csrfField(ctx)}<input type="hidden" name="confirm" value="yes">
<button type="submit" class="danger">Yes, remove it</button> <a href="${back}">cancel</a></form>`
}`,
  })
}

function formatted(value) {
  if (typeof value === 'string') {
    try {
      return JSON.stringify(JSON.parse(value), null, 2)
    } catch {
      return value
    }
  }
  return JSON.stringify(value, null, 2)
}

function deadLetter(ctx, { dlq, item, filter }) {
  const path = itemPath(ctx.base, dlq.name, item.id)
  const back = `${dlqPath(ctx.base, dlq.name)}${query(filterParams(filter))}`
  const options = item.options && typeof item.options === 'object' ? Object.entries(item.options) : []
  return layout(ctx, {
    title: `Dead letter ${item.id}`,
    body: html`<p><a href="${back}">← dead letters in ${dlq.name}</a></p>
<h1>Dead letter <code>${item.id}</code></h1>
<dl class="facts">
<dt>topic</dt><dd data-field="topic">${item.topic || '-'}</dd>
<dt>key (event)</dt><dd data-field="event">${item.event || '-'}</dd>
<dt>error</dt><dd data-field="error" class="error">${errorText(item.error)}</dd>
<dt>attempts</dt><dd data-field="attempts">${attempts(item)}</dd>
<dt>replays</dt><dd data-field="replays">${item.replays === undefined ? '-' : item.replays} (requeued and died again)</dd>
<dt>first failure</dt><dd>${time(item.firstFailedAt)}</dd>
<dt>time of death</dt><dd>${time(item.diedAt)}</dd>
<dt>schedule</dt><dd>${item.keyPrefix || 'unknown (requeued onto this dashboard’s schedule)'}</dd>
</dl>
${
  ctx.readOnly
    ? ''
    : html`<div class="actions">
${action(ctx, `${path}/requeue`, 'Requeue now', {})}
${action(ctx, `${path}/requeue`, 'Requeue later', {}, { extra: html`<label>in <input type="number" name="delayMinutes" min="0" step="any" value="10" class="minutes"> min</label> ` })}
${removeButton(ctx, path, filter)}
</div>`
}
<h2>Payload</h2>
${payloadView(path, item.value)}
<h2>Headers</h2>
${
  options.length
    ? html`<table class="headers"><tbody>${options.map(([name, value]) => html`<tr><th>${name}</th><td>${headerValue(value)}</td></tr>`)}</tbody></table>`
    : html`<p class="muted">none</p>`
}`,
  })
}

function message(ctx, { status, title, text }) {
  return layout(ctx, { title, body: html`<h1>${title}</h1><p class="${status >= 400 ? 'error' : ''}">${text}</p>` })
}

module.exports = {
  overview, deadLetterList, deadLetter, removeConfirm, message, RANGES, dlqPath, itemPath, timeField,
  // for bulk-pages.js
  layout, csrfField, action, describeFilter, filterHidden,
}
