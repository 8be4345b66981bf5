'use strict'
// The pages of bulk actions: the bulk controls under a dead letter list, the confirmation after
// a dry run, a job's page and the overview's list of jobs, and the warning before pausing a
// topic that has no retries.

const { html, query, time, duration, count } = require('./html')
const { filterParams } = require('./operator')
const { layout, csrfField, action, describeFilter, filterHidden, dlqPath } = require('./pages')
const { DEFAULT_RATE, CONFIRM_ABOVE } = require('./fields')

/**
 * The bulk controls under a dead letter list. Their fields belong to the filter form above
 * (form="filters"), and their button sends that form to the dry run: the dry run, and the
 * action after it, act on the filter as it stands in the fields, typed but not applied or not.
 */
function bulkSection(ctx, dlq, matched) {
  if (ctx.readOnly || matched === 0) return ''
  return html`<section class="bulk"><h2>Bulk</h2>
<p><label><input type="radio" name="action" value="requeue" form="filters" checked> requeue</label>
<label><input type="radio" name="action" value="remove" form="filters"> remove</label>
every dead letter the filter in the fields above matches (all of them when they are empty).</p>
<p>A requeue: at most <input type="number" name="rate" min="0.1" max="10000" step="any" placeholder="${DEFAULT_RATE}" class="rate" form="filters"> per second
(empty: ${DEFAULT_RATE}, so a downstream that just recovered is not flooded),
due in <input type="number" name="delayMinutes" min="0" step="any" placeholder="0" class="minutes" form="filters"> min.</p>
<button type="submit" form="filters" formaction="${dlqPath(ctx.base, dlq.name)}/bulk">Count first (dry run)</button>
</section>`
}

/** "about 2 min 24 s" for `matched` dead letters at `rate` per second. */
function eta(matched, rate) {
  return duration(Math.ceil((matched / rate) * 1000))
}

function bulkConfirm(ctx, { dlq, filter, action: kind, matched, skipped = 0, rate, rateDefaulted, delayMs }) {
  const maxReplaysText = 'maxReplays'
  const back = `${dlqPath(ctx.base, dlq.name)}${query(filterParams(filter))}`
  const verb = kind === 'remove' ? 'Remove' : 'Requeue'
  const pace = html`<strong data-pace>${count(rate)} per second</strong>${rateDefaulted ? ' (the default pace: no rate was given)' : ''}${matched ? html`, about ${eta(matched, rate)} for all of them` : ''}`
  return layout(ctx, {
    title: `${verb} dead letters`,
    body: html`<h1>${verb} ${count(matched)} dead letter${matched === 1 ? '' : 's'}?</h1>
<p>Dry run: <strong data-dry-run>${count(matched)}</strong> dead letters in ${dlq.name} match <span data-filter>${describeFilter(filter)}</span>.</p>
<p>${kind === 'requeue' ? html`They go back onto their schedule${delayMs ? html`, due in ${duration(delayMs)}` : ', due now'}, ${pace}.` : 'They are deleted, as a job you can follow and stop.'}</p>
${
  matched
    ? html`<form method="post" action="${dlqPath(ctx.base, dlq.name)}/bulk">${csrfField(ctx)}${filterHidden(filter)}
<input type="hidden" name="step" value="confirm"><input type="hidden" name="action" value="${kind}"><input type="hidden" name="matched" value="${matched}">
<input type="hidden" name="rate" value="${kind === 'requeue' ? rate : ''}"><input type="hidden" name="delayMinutes" value="${delayMs ? delayMs / 60_000 : ''}">
${
  matched > CONFIRM_ABOVE
    ? html`<p class="confirm-count"><label>More than ${count(CONFIRM_ABOVE)}: type the count of the dry run, <strong>${matched}</strong>, to confirm <input name="confirmCount" inputmode="numeric" autocomplete="off" required data-confirm-count></label> (it acts on at most that many)</p>
`
    : ''
}${kind === 'requeue' && skipped ? html`<p data-skipped>${count(skipped)} more match but were replayed ${maxReplaysText} times already: they stay (a requeue from the API with <code>force: true</code> takes them).</p>
` : ''}<button type="submit" class="${kind === 'remove' ? 'danger' : ''}">Yes, ${verb.toLowerCase()} them</button> <a href="${back}">cancel</a></form>`
    : html`<p><a href="${back}">back</a></p>`
}`,
  })
}

const jobPath = (base, job) => `${base}/jobs/${job.schedule.index}/${job.id}`

/** The bulk jobs of every schedule (newest first), each linking to its page. */
function jobsSection(ctx, jobs) {
  if (!jobs.length) return ''
  return html`<section class="requeues"><h2>Bulk jobs</h2>
<table class="jobs"><thead><tr><th>started</th><th>what</th><th>from</th><th>filter</th><th>moved</th><th>state</th></tr></thead><tbody>
${jobs.map(
  (j) => html`<tr data-job="${j.id}"><td><a href="${jobPath(ctx.base, j)}">${time(j.startedAt)}</a></td><td>${kindOf(j)}</td><td>${j.spec.dlq}</td><td>${describeFilter(j.spec.filter || {})}</td><td>${count(j.done)} of ${count(j.spec.matched)}</td><td data-state>${j.state}</td></tr>
`,
)}</tbody></table></section>`
}

function kindOf(j) {
  return j.spec.kind === 'remove' ? 'remove' : 'requeue'
}

const RUNNING = new Set(['running', 'stopping'])
const CONTINUABLE = new Set(['stopped', 'failed', 'interrupted'])

function jobPage(ctx, j) {
  const spec = j.spec
  const verb = spec.kind === 'remove' ? 'Removal' : 'Requeue'
  const moved = spec.kind === 'remove' ? 'removed' : 'requeued'
  const back = `${dlqPath(ctx.base, spec.dlq)}${query(filterParams(spec.filter || {}))}`
  const path = jobPath(ctx.base, j)
  const end = j.finishedAt || j.updatedAt
  return layout(ctx, {
    title: verb,
    refresh: RUNNING.has(j.state) ? 1 : null,
    body: html`<h1>${verb} from ${spec.dlq}: <span data-job-state>${j.state}</span></h1>
<p>Filter: ${describeFilter(spec.filter || {})}${spec.kind !== 'remove' ? html`, <span data-pace>${count(spec.ratePerSec)} per second</span>${spec.delayMs ? html`, due in ${duration(spec.delayMs)}` : ''}` : ''}.</p>
<p class="muted">Started ${time(j.startedAt)} by ${spec.startedBy || 'unknown'}${j.run > 1 ? html`; continued ${time(j.continuedAt)} (run ${j.run})` : ''}.</p>
<progress max="${Math.max(1, spec.matched || 0)}" value="${Math.min(j.done, spec.matched || 0)}"></progress>
<p class="progress">${j.interruptions ? 'at least ' : ''}<span data-requeued>${count(j.done)}</span> of ${count(spec.matched)} ${moved} · ${duration(end - j.startedAt)}</p>
${j.interruptions ? html`<p class="muted">It was interrupted: what its dashboard moved after its last report (a second or two) is not in the count; it is not moved twice.</p>` : ''}
${j.state === 'interrupted' ? html`<p class="error">The dashboard process running it stopped reporting (restarted or gone) at ${time(j.updatedAt)}: nothing moves now.</p>` : ''}
${CONTINUABLE.has(j.state) ? html`<p>The dead letters not yet ${moved} are still in ${spec.dlq}. Continue goes on with the same filter and pace over what still matches; what was ${moved} is not ${moved} twice.</p>` : ''}
${RUNNING.has(j.state) ? action(ctx, `${path}/stop`, `Stop the ${verb.toLowerCase()}`, {}, { className: 'stop-job' }) : ''}
${CONTINUABLE.has(j.state) ? action(ctx, `${path}/continue`, `Continue the ${verb.toLowerCase()}`, {}, { className: 'continue-job' }) : ''}
${j.error ? html`<p class="error">${j.error}</p>` : ''}
<p><a href="${back}">back to the dead letters</a></p>`,
  })
}

/** Before pausing a topic that has no retries (a typo?): say so, and ask. */
function pauseUnknownTopic(ctx, { schedule, topic, minutes, known }) {
  const path = `${ctx.base}/schedules/${schedule.index}/pause`
  const lower = topic.toLowerCase()
  const similar = known.filter((t) => t.toLowerCase().includes(lower) || lower.includes(t.toLowerCase()))
  const pauseButton = (name, label, extra = {}) =>
    html`<form method="post" action="${path}" class="inline">${csrfField(ctx)}<input type="hidden" name="topic" value="${name}"><input type="hidden" name="minutes" value="${minutes || ''}">${Object.entries(extra).map(([k, v]) => html`<input type="hidden" name="${k}" value="${v}">`)}<button type="submit">${label}</button></form> `
  return layout(ctx, {
    title: 'Pause a topic with no retries?',
    body: html`<h1>Topic <code>${topic}</code> has no retries</h1>
<p class="warning" data-warning>Nothing of topic <code>${topic}</code> is on the schedule of ${schedule.name}, and it has no dead letters: pausing it holds back nothing now. Is the name right?</p>
${similar.length ? html`<p>Topics with retries that look alike: ${similar.map((t) => pauseButton(t, html`Pause ${t} instead`))}</p>` : ''}
${known.length ? html`<p class="muted">Topics with retries: ${known.map((t, i) => html`${i ? ', ' : ''}<code>${t}</code>`)}.</p>` : ''}
<p>${pauseButton(topic, html`Pause ${topic} anyway`, { unknownTopic: 'yes' })} <a href="${ctx.base}/">cancel</a></p>`,
  })
}

module.exports = { bulkSection, bulkConfirm, jobsSection, jobPage, pauseUnknownTopic, jobPath }
