'use strict'
// The Audit page: a schedule's log of operator actions (the addon's auditLog()), newest first, a
// page at a time with its cursor. Who acted is the name of the token the action was made with
// (`--token name=secret`), or the CLI's user@host, or what a service passed as `actor`.

const { html, query, time, count } = require('./html')
const { layout, describeFilter } = require('./pages')
const op = require('./operator')

const PAGE_SIZE = 50

/** What an action was done to, in words. */
function describeTarget(target) {
  if (!target || typeof target !== 'object') return ''
  const parts = []
  if (target.dlq !== undefined) parts.push(html`dead letter queue <code>${target.dlq}</code>`)
  if (target.id !== undefined) parts.push(html`dead letter <code>${target.id}</code>`)
  if (target.filter && typeof target.filter === 'object') {
    parts.push(Object.keys(target.filter).length ? html`matching ${describeFilter(target.filter)}` : 'every dead letter')
  }
  if ('topic' in target) parts.push(target.topic === null ? 'the whole schedule' : html`topic <code>${target.topic}</code>`)
  if (target.job !== undefined) parts.push(html`bulk job ${target.job}`)
  return parts.reduce((all, part, i) => html`${all}${i ? ', ' : ''}${part}`, '')
}

function auditPage(ctx, { schedules, schedule, page, cursor, since }) {
  const params = { schedule: schedules.length > 1 ? schedule.index : undefined, since: since !== null ? op.timeField(since) : undefined }
  const rows = page.entries.map(
    (e) => html`<tr data-audit-id="${e.id}" class="${e.outcome === 'ok' ? '' : 'failed'}">
<td class="when">${time(e.at)}</td><td class="actor">${e.actor}</td><td class="action">${e.action}</td><td>${describeTarget(e.target)}</td><td class="count">${count(e.count)}</td><td class="outcome">${e.outcome}${e.error ? html` <span class="error">${e.error}</span>` : ''}</td>
</tr>
`,
  )
  const picker = schedules.length > 1
    ? html`<p class="ranges">Schedule: ${schedules.map((s) => (s === schedule ? html`<strong>${s.name}</strong> ` : html`<a href="${ctx.base}/audit${query({ schedule: s.index })}">${s.name}</a> `))}</p>`
    : ''
  const next = page.cursor !== null && page.cursor !== undefined
  return layout(ctx, {
    title: 'Audit log',
    body: html`<h1>Audit log of ${schedule.name}</h1>
${picker}
<form method="get" action="${ctx.base}/audit" class="filters">${schedules.length > 1 ? html`<input type="hidden" name="schedule" value="${schedule.index}">` : ''}<label>since (UTC) <input type="datetime-local" name="since" value="${params.since || ''}"></label> <button type="submit">Show</button></form>
<p class="matched">Every requeue, removal, pause and resume, newest first; kept 30 days, at most 10,000 actions.${cursor ? html` · <a href="${ctx.base}/audit${query(params)}">newest</a>` : ''}</p>
${
  page.entries.length
    ? html`<table class="audit"><thead><tr><th>when</th><th>actor</th><th>action</th><th>target</th><th>count</th><th>outcome</th></tr></thead><tbody>
${rows}</tbody></table>`
    : html`<p class="muted">No operator actions recorded${cursor ? ' before these' : ''}.</p>`
}
${next ? html`<p><a rel="next" href="${ctx.base}/audit${query({ ...params, cursor: page.cursor })}">older →</a></p>` : ''}`,
  })
}

/** GET /audit[?schedule=N&since=...&cursor=...]. */
async function audit(state, ctx, url) {
  const params = url.searchParams
  const index = params.get('schedule') || '0'
  const schedule = /^[0-9]{1,4}$/.test(index) ? state.schedules[Number(index)] : undefined
  if (!schedule) throw Object.assign(new Error('no such schedule'), { status: 404 })
  const since = op.parseTime(params.get('since'))
  if (Number.isNaN(since)) throw Object.assign(new Error(`since must be a date and time (2026-12-03T08:30, UTC) or ms since the epoch, got '${params.get('since')}'`), { status: 400 })
  const cursor = params.get('cursor') || null
  const options = { limit: PAGE_SIZE }
  if (since !== null) options.since = since
  if (cursor) options.cursor = cursor
  const page = await op.need(schedule.retry, 'auditLog').auditLog(options)
  return auditPage(ctx, { schedules: state.schedules, schedule, page, cursor, since })
}

module.exports = { audit, auditPage, describeTarget }
