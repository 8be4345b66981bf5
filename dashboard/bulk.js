'use strict'
// The bulk actions' routes: the dry run (a GET of the filter form, so it counts exactly the
// filter in the fields), the confirmed start of a job, a job's page, its Stop and its Continue;
// and the check before pausing a topic that has no retries.

const op = require('./operator')
const pages = require('./bulk-pages')
const { rateField, delayField, numberField, pauseMinutesField, idPart, CONFIRM_ABOVE } = require('./fields')
const { startedBy } = require('./jobs')

function httpError(status, message) {
  return Object.assign(new Error(message), { status })
}

// The bulk controls' fields travel with the filter form; the list's address keeps the filter only.
const BULK_FIELDS = ['action', 'rate', 'delayMinutes']

/** The list's address without the bulk controls' fields (when the filter form's Filter sent them), or null. */
function listWithoutBulkFields(url) {
  if (!BULK_FIELDS.some((name) => url.searchParams.has(name))) return null
  const clean = new URLSearchParams([...url.searchParams].filter(([name]) => !BULK_FIELDS.includes(name)))
  const search = clean.toString()
  return `${url.pathname}${search ? `?${search}` : ''}`
}

function actionOf(params) {
  const action = params.get('action')
  if (action !== 'requeue' && action !== 'remove') throw httpError(400, `action must be requeue or remove, got '${action}'`)
  return action
}

/**
 * The dry run: how many dead letters the filter of the fields matches, and the confirmation.
 * A count reads every dead letter: only the dashboard's own pages may start one.
 */
async function preview(state, ctx, req, dlq, url) {
  if (state.readOnly) throw httpError(403, 'This dashboard is read-only: it changes nothing.')
  const site = req.headers['sec-fetch-site']
  if (site && site !== 'same-origin' && site !== 'none') {
    throw httpError(403, 'A dry run reads every dead letter: start it from the dashboard’s own page.')
  }
  const params = url.searchParams
  const filter = op.filterOf(params)
  const action = actionOf(params)
  const rateDefaulted = !params.get('rate')
  const rate = rateField(params)
  const delayMs = delayField(params)
  const retry = op.need(dlq.schedule.retry, 'removeDeadLetters')
  let matched
  let skipped = 0
  if (action === 'requeue' && typeof retry.requeueDeadLettersDetailed === 'function') {
    // What a requeue would move: without the dead letters it passes over for their replays.
    ;({ requeued: matched, skipped } = await retry.requeueDeadLettersDetailed(dlq.name, filter, { dryRun: true }))
  } else {
    matched = await retry.removeDeadLetters(dlq.name, filter, { dryRun: true })
  }
  return pages.bulkConfirm(ctx, { dlq, filter, action, matched, skipped, rate, rateDefaulted, delayMs })
}

/** The confirmed bulk action: started as a job, and its page. */
async function start(state, ctx, req, dlq, form) {
  if (form.get('step') !== 'confirm') throw httpError(400, 'a bulk action starts only from its confirmation, after its dry run')
  const filter = op.filterOf(form)
  const action = actionOf(form)
  const spec = {
    kind: action,
    dlq: dlq.name,
    filter,
    matched: numberField(form, 'matched', { label: 'matched', min: 1, max: Number.MAX_SAFE_INTEGER, whole: true }) || 0,
    startedBy: startedBy(req),
    actor: ctx.actor,
  }
  // Never more than the dry run showed; above CONFIRM_ABOVE, only with that count typed back.
  if (spec.matched > CONFIRM_ABOVE && form.get('confirmCount') !== String(spec.matched)) {
    throw httpError(400, `${spec.matched} dead letters: more than ${CONFIRM_ABOVE} act only when the confirmation field holds that count, got '${form.get('confirmCount') || ''}'`)
  }
  spec.maxCount = spec.matched
  if (action === 'requeue') {
    spec.ratePerSec = rateField(form)
    spec.delayMs = delayField(form)
  }
  const job = await state.jobs.start(dlq.schedule, spec)
  return { redirect: pages.jobPath(ctx.base, { ...job, schedule: dlq.schedule }) }
}

function scheduleOf(state, text) {
  const schedule = /^[0-9]{1,4}$/.test(text) ? state.schedules[Number(text)] : undefined
  if (!schedule) throw httpError(404, 'no such schedule')
  return schedule
}

async function jobOf(state, scheduleText, idText) {
  const schedule = scheduleOf(state, scheduleText)
  const id = idPart(idText)
  const job = id && (await op.need(schedule.retry, 'job').job(id))
  if (!job) throw httpError(404, 'no such bulk job (only the newest 50 are kept)')
  return { ...job, schedule }
}

/** GET /jobs/<schedule>/<id>. */
async function jobPage(state, ctx, scheduleText, idText) {
  return pages.jobPage(ctx, await jobOf(state, scheduleText, idText))
}

/** POST /jobs/<schedule>/<id>/(stop|continue). */
async function jobAction(state, ctx, scheduleText, idText, verb) {
  const job = await jobOf(state, scheduleText, idText)
  if (verb === 'stop') {
    await state.jobs.stop(job.schedule, job.id, ctx.actor)
  } else if (!(await state.jobs.continue(job.schedule, job.id, ctx.actor))) {
    throw httpError(409, `bulk job ${job.id} cannot be continued: it is ${job.state === 'done' ? 'done' : 'running'}`)
  }
  return { redirect: pages.jobPath(ctx.base, job) }
}

/** Whether the topic has anything on the schedule or in the dead letter queue. */
function hasRetries(t) {
  return Boolean(t && (t.scheduled || t.due || t.leased || t.deadLetters))
}

/**
 * Before pausing `topic`: when nothing of it is on the schedule nor dead-lettered (a typo?), the
 * page that says so and asks; null when the pause may go on (it has retries, the form says
 * "anyway", or the addon has no per topic counts to tell).
 */
async function pauseCheck(ctx, schedule, topic, form) {
  if (!topic || form.get('unknownTopic') === 'yes') return null
  const stats = await schedule.retry.stats(schedule.dlqNames[0])
  if (!stats.topics) return null
  if (hasRetries(stats.topics[topic])) return null
  const known = Object.keys(stats.topics).filter((t) => hasRetries(stats.topics[t])).sort()
  return pages.pauseUnknownTopic(ctx, { schedule, topic, minutes: pauseMinutesField(form), known })
}

module.exports = { listWithoutBulkFields, preview, start, jobPage, jobAction, pauseCheck }
