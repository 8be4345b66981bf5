'use strict'
// kafka-redis-retry's dashboard: `require('kafka-redis-retry/dashboard').handler(options)` is a
// Node `(req, res)` handler (http.createServer, Express, Fastify); `serve(options)` is what the
// CLI's `dashboard` command runs. Plain Node, no dependencies: nothing of it is loaded by a
// service that does not require it.

const fs = require('fs')
const http = require('http')
const path = require('path')
const pages = require('./pages')
const { Guard, baseHeaders, readForm, tokensOf } = require('./security')
const op = require('./operator')
const { query } = require('./html')
const bulk = require('./bulk')
const auditLog = require('./audit')
const bulkPages = require('./bulk-pages')
const { Jobs } = require('./jobs')
const { delayField, pauseMinutesField, limitField, numberField } = require('./fields')
const { serveMetrics } = require('./metrics-route')

const ASSETS = {
  'dashboard.css': 'text/css; charset=utf-8',
  'dashboard.js': 'text/javascript; charset=utf-8',
}
const PAGE_SIZE = 50
const MAX_PAGE_SIZE = 500

class HttpError extends Error {
  constructor(status, message) {
    super(message)
    this.status = status
  }
}

/** The schedules and dead letter queues to show, from handler()'s options, checked. */
function schedulesOf(options) {
  const list = options.schedules || [{ retry: options.retry, dlqName: options.dlqName, name: options.name }]
  if (!Array.isArray(list) || list.length === 0) throw invalid('schedules must be a non-empty array')
  const dlqs = new Map()
  const schedules = list.map((s, index) => {
    if (!s || !s.retry || typeof s.retry.stats !== 'function') {
      throw invalid(`${options.schedules ? `schedules[${index}].retry` : 'retry'} must be a KafkaRetry instance`)
    }
    const names = [].concat(s.dlqName === undefined ? defaultDlqName(s.retry) : s.dlqName)
    for (const name of names) {
      if (typeof name !== 'string' || name === '') throw invalid(`dlqName must be a non-empty string or an array of them, got ${JSON.stringify(name)}`)
    }
    const schedule = { index, name: s.name || (list.length === 1 ? 'schedule' : `schedule ${index + 1}`), retry: s.retry, dlqNames: names }
    for (const name of names) if (!dlqs.has(name)) dlqs.set(name, { name, schedule })
    return schedule
  })
  return { schedules, dlqs }
}

/**
 * The dead letter queue of an instance given without dlqName: where its listener writes (its
 * `dlqName`: the listener's, else `<keyPrefix>:dead-letters`), not a fixed name, which is
 * another schedule's queue for any other keyPrefix.
 */
function defaultDlqName(retry) {
  if (typeof retry.dlqName === 'string' && retry.dlqName) return retry.dlqName
  if (typeof retry.keyPrefix === 'string' && retry.keyPrefix) return `${retry.keyPrefix}:dead-letters`
  throw invalid('dlqName is needed: this instance tells neither its dlqName nor its keyPrefix')
}

function invalid(message) {
  return Object.assign(new TypeError(`kafka-redis-retry dashboard: ${message}`), { code: 'ERR_INVALID_ARG' })
}

function normalBase(basePath) {
  if (basePath === undefined || basePath === null || basePath === '' || basePath === '/') return ''
  if (typeof basePath !== 'string' || !basePath.startsWith('/')) throw invalid(`basePath must start with '/', got ${JSON.stringify(basePath)}`)
  return basePath.replace(/\/+$/, '')
}

/**
 * A Node request handler serving the dashboard. See dashboard/index.d.ts for the options.
 * Under Express it may be given a `next`: requests outside its base path go on to it.
 */
function handler(options = {}) {
  const { schedules, dlqs } = schedulesOf(options)
  const readOnly = Boolean(options.readOnly)
  const fixedBase = options.basePath === undefined ? null : normalBase(options.basePath)
  const refreshSeconds = options.refreshSeconds === undefined ? 5 : Number(options.refreshSeconds)
  let tokens
  try {
    tokens = tokensOf(options)
  } catch (err) {
    throw invalid(err.message)
  }
  const guards = new Map()
  const guardFor = (base) => {
    if (!guards.has(base)) guards.set(base, new Guard({ tokens, basePath: base || '/' }))
    return guards.get(base)
  }
  const assets = Object.fromEntries(
    Object.keys(ASSETS).map((file) => [file, fs.readFileSync(path.join(__dirname, 'assets', file))]),
  )
  let jobLeaseMs
  if (options.jobLeaseMs !== undefined) {
    const form = new URLSearchParams({ jobLeaseMs: String(options.jobLeaseMs) })
    try {
      jobLeaseMs = numberField(form, 'jobLeaseMs', { min: 1000, max: 600_000, whole: true, unit: 'ms' })
    } catch (err) {
      throw invalid(err.message)
    }
  }
  const jobs = new Jobs({ leaseMs: jobLeaseMs })
  const metricsWithoutToken = Boolean(options.metricsWithoutToken)
  const state = { schedules, dlqs, readOnly, refreshSeconds, assets, jobs, counts: new op.Counts(), metricsWithoutToken }

  return function dashboard(req, res, next) {
    serveRequest(state, req, res, next, fixedBase, guardFor).catch((err) => {
      // Never let a request take the process down; whatever went wrong is answered (or the
      // connection closed when the answer had begun).
      if (res.headersSent) res.destroy(err)
      else send(res, 500, 'text/plain; charset=utf-8', 'internal error')
    })
  }
}

function send(res, status, type, body, headers = {}) {
  res.writeHead(status, { ...baseHeaders(type), ...headers })
  res.end(body)
}

async function serveRequest(state, req, res, next, fixedBase, guardFor) {
  // Express strips its mount path from req.url and keeps it in req.baseUrl and req.originalUrl.
  const base = fixedBase !== null ? fixedBase : normalBase(req.baseUrl || '')
  const url = new URL(req.originalUrl || req.url, 'http://dashboard.invalid')
  if (base && url.pathname !== base && !url.pathname.startsWith(`${base}/`)) {
    if (typeof next === 'function') return next()
    return send(res, 404, 'text/plain; charset=utf-8', 'not found')
  }
  const route = url.pathname.slice(base.length) || '/'
  const guard = guardFor(base)

  if (req.method === 'GET' && route.startsWith('/assets/')) {
    const file = route.slice('/assets/'.length)
    if (!Object.hasOwn(ASSETS, file)) return send(res, 404, 'text/plain; charset=utf-8', 'not found')
    return send(res, 200, ASSETS[file], state.assets[file])
  }

  // A scrape: a bearer token only (no login redirect, cookie or CSRF token).
  if (await serveMetrics(state, req, res, route, guard)) return

  const { status: access, actor } = guard.access(req, url)
  if (access === 'login') {
    url.searchParams.delete('token')
    return send(res, 303, 'text/plain; charset=utf-8', 'see other', {
      Location: `${url.pathname}${url.search}`,
      'Set-Cookie': guard.authCookie(req, actor),
    })
  }
  const csrf = guard.csrf(req)
  const ctx = {
    base,
    // Opened from another site without the CSRF cookie (a link in a chat): the page shows, its
    // forms do not (they would be refused); a link to the same address opens them.
    readOnly: state.readOnly || csrf.token === null,
    linked: !state.readOnly && csrf.token === null,
    // This page's own address (a link to it from here is same-origin).
    address: `${url.pathname}${url.search}`,
    // Whether the request came from the dashboard's pages or the address bar: only those start
    // a count of matches (another site's <img> or link must not make Redis read the queue).
    fromHere: guard.fromHere(req),
    csrf: csrf.token,
    dlqs: [...state.dlqs.values()],
    refreshSeconds: state.refreshSeconds > 0 ? state.refreshSeconds : null,
    pageSize: PAGE_SIZE,
    notice: url.searchParams.get('notice'),
    // Who acts, for the audit log: the name of the token the request showed.
    actor,
  }
  const extraHeaders = csrf.setCookie ? { 'Set-Cookie': csrf.setCookie } : {}
  const page = (status, markup) => send(res, status, 'text/html; charset=utf-8', String(markup), extraHeaders)
  if (access !== 'ok') {
    res.setHeader('WWW-Authenticate', 'Bearer realm="kafka-redis-retry dashboard"')
    return page(401, pages.message({ ...ctx, dlqs: [], notice: null }, { status: 401, title: 'Token needed', text: 'This dashboard needs its token: open the address it printed at start (…?token=…), or send Authorization: Bearer <token>.' }))
  }

  // A filter form leaves its empty fields in the address: drop them, so the link an operator
  // shares says only what the filter is.
  if (req.method === 'GET' && [...url.searchParams.values()].some((value) => value === '')) {
    const clean = new URLSearchParams([...url.searchParams].filter(([, value]) => value !== ''))
    const search = clean.toString()
    return send(res, 303, 'text/plain; charset=utf-8', 'see other', { ...extraHeaders, Location: `${url.pathname}${search ? `?${search}` : ''}` })
  }
  try {
    if (req.method === 'GET' || req.method === 'HEAD') {
      const location = /^\/dlq\/[^/]+$/.test(route) ? bulk.listWithoutBulkFields(url) : null
      if (location) return send(res, 303, 'text/plain; charset=utf-8', 'see other', { ...extraHeaders, Location: location })
      const answer = await get(state, ctx, route, url, req)
      if (answer instanceof Download) return sendDownload(res, answer, extraHeaders)
      return page(200, answer)
    }
    if (req.method !== 'POST') throw new HttpError(405, `${req.method} is not allowed`)
    if (state.readOnly) throw new HttpError(403, 'This dashboard is read-only: it changes nothing.')
    const form = await readForm(req)
    if (!guard.postAllowed(req, form)) throw new HttpError(403, 'The form’s CSRF token is missing or wrong (or it came from another site): reload the page and try again.')
    const outcome = await post(state, ctx, route, form, req)
    if (outcome.redirect) {
      return send(res, 303, 'text/plain; charset=utf-8', 'see other', { ...extraHeaders, Location: outcome.redirect })
    }
    return page(200, outcome.page)
  } catch (err) {
    const status = err.status || (err.code === 'ERR_INVALID_ARG' ? 400 : err.code === 'ERR_UNSUPPORTED' ? 501 : 500)
    const title = { 400: 'Bad request', 403: 'Refused', 404: 'Not found', 405: 'Not allowed', 409: 'Conflict', 413: 'Too large', 501: 'Not available' }[status] || 'Error'
    const text = err.code ? `${err.code}: ${err.message}` : err.message
    if (status === 405) res.setHeader('Allow', 'GET, HEAD, POST')
    return page(status, pages.message(ctx, { status, title, text }))
  }
}

function dlqOf(state, encoded) {
  let name
  try {
    name = decodeURIComponent(encoded)
  } catch {
    throw new HttpError(400, 'malformed dead letter queue name in the address')
  }
  const dlq = state.dlqs.get(name)
  if (!dlq) throw new HttpError(404, `no dead letter queue named '${name}' in this dashboard`)
  return dlq
}

function decode(part) {
  try {
    return decodeURIComponent(part)
  } catch {
    throw new HttpError(400, 'malformed address')
  }
}

// ---- pages (GET) ----

async function get(state, ctx, route, url, req) {
  if (route === '/') return overview(state, ctx, url)
  let m = /^\/dlq\/([^/]+)$/.exec(route)
  if (m) return deadLetterList(state, ctx, dlqOf(state, m[1]), url)
  m = /^\/dlq\/([^/]+)\/item\/([^/]+)\/(payload|remove)$/.exec(route)
  if (m) {
    const dlq = dlqOf(state, m[1])
    const id = decode(m[2])
    const item = await dlq.schedule.retry.deadLetter(dlq.name, id)
    if (!item) throw new HttpError(404, `no dead letter '${id}' in ${dlq.name} (requeued or removed meanwhile?)`)
    if (m[3] === 'payload') return payloadDownload(item)
    return pages.removeConfirm(ctx, { dlq, item, filter: op.filterOf(url.searchParams) })
  }
  m = /^\/dlq\/([^/]+)\/item\/([^/]+)$/.exec(route)
  if (m) {
    const dlq = dlqOf(state, m[1])
    const id = decode(m[2])
    const item = await dlq.schedule.retry.deadLetter(dlq.name, id)
    if (!item) throw new HttpError(404, `no dead letter '${id}' in ${dlq.name} (requeued or removed meanwhile?)`)
    return pages.deadLetter(ctx, { dlq, item, filter: op.filterOf(url.searchParams) })
  }
  m = /^\/dlq\/([^/]+)\/bulk$/.exec(route)
  if (m) return bulk.preview(state, ctx, req, dlqOf(state, m[1]), url)
  m = /^\/jobs\/([^/]+)\/([^/]+)$/.exec(route)
  if (m) return bulk.jobPage(state, ctx, m[1], m[2])
  if (route === '/audit') return auditLog.audit(state, ctx, url)
  throw new HttpError(404, `nothing at ${route}`)
}

/** A whole payload to save, rather than a page. */
class Download {
  constructor(body, filename) {
    this.body = body
    this.filename = filename
  }
}

/**
 * A dead letter's whole payload, byte for byte as stored (a string as UTF-8, anything else as
 * JSON): its page shows only the first part of a large one.
 */
function payloadDownload(item) {
  const value = item.value
  const body = Buffer.from(typeof value === 'string' ? value : value === undefined ? '' : JSON.stringify(value), 'utf8')
  // The id is the client's to choose only as far as the queue holds it; the name keeps only safe characters.
  return new Download(body, `dead-letter-${String(item.id).replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 100)}.payload`)
}

function sendDownload(res, download, headers) {
  send(res, 200, 'application/octet-stream', download.body, {
    ...headers,
    'Content-Length': String(download.body.length),
    'Content-Disposition': `attachment; filename="${download.filename}"`,
  })
}

async function overview(state, ctx, url) {
  const range = Object.hasOwn(pages.RANGES, url.searchParams.get('range') || '') ? url.searchParams.get('range') : '1h'
  const minutes = pages.RANGES[range]
  const schedules = await Promise.all(
    state.schedules.map(async (s) => {
      const view = { index: s.index, name: s.name }
      try {
        const [stats, ...others] = await Promise.all(s.dlqNames.map((d) => s.retry.stats(d)))
        view.stats = stats
        view.dlqs = s.dlqNames.map((name, i) => ({ name, count: (i ? others[i - 1] : stats).deadLettered }))
        view.paused = pausesOf(stats.paused || (typeof s.retry.paused === 'function' ? await s.retry.paused() : null))
      } catch (err) {
        view.error = err.code ? `${err.code}: ${err.message}` : err.message
        return view
      }
      try {
        const history = op.historySeries(await op.need(s.retry, 'history').history({ minutes }))
        if (history) {
          view.history = history
          // The last whole minute (the current one is still counting).
          view.rates = { published: history.published[minutes - 2] ?? history.published[minutes - 1] }
        } else {
          view.historyError = 'history() answered in a shape this dashboard does not read.'
        }
      } catch (err) {
        view.historyError = err.code === 'ERR_UNSUPPORTED' ? 'History needs an addon with history().' : `history: ${err.message}`
      }
      return view
    }),
  )
  const jobs = bulkPages.jobsSection(ctx, await state.jobs.list(state.schedules))
  return pages.overview(ctx, { schedules, range, jobs })
}

/**
 * paused()'s list ([{ topic, untilMs }], topic null for the whole schedule) as the pages read it:
 * { schedule, topics: { [topic]: untilMs } }, where undefined is "not paused" and null "until
 * resumed". null when the addon has no pauses.
 */
function pausesOf(list) {
  if (!Array.isArray(list)) return null
  const pauses = { schedule: undefined, topics: {} }
  for (const { topic, untilMs } of list) {
    if (topic === null || topic === undefined) pauses.schedule = untilMs
    else pauses.topics[topic] = untilMs
  }
  return pauses
}

async function deadLetterList(state, ctx, dlq, url) {
  const params = url.searchParams
  const filter = op.filterOf(params)
  const limit = limitField(params, PAGE_SIZE, MAX_PAGE_SIZE)
  const cursor = params.get('cursor') || null
  const retry = dlq.schedule.retry
  const others = { ...filter }
  delete others.reason
  const [page, matched, reasons] = await Promise.all([
    op.deadLetterPage(retry, dlq.name, filter, { limit, cursor }),
    op.matchedSoon(state.counts, retry, dlq.name, filter, { start: ctx.fromHere }).catch((err) => {
      // The list is still worth showing when only its count cannot be had.
      if (err.code === 'ERR_UNSUPPORTED') return null
      throw err
    }),
    // Every reason under the other conditions, the chosen one marked: a click goes to another.
    op.reasons(retry, dlq.name, others),
  ])
  return pages.deadLetterList(ctx, { dlq, filter, page, matched, cursor, limit, reasons, bulk: bulkPages.bulkSection(ctx, dlq, matched) })
}

// ---- actions (POST) ----

function listAddress(ctx, dlq, filter, notice) {
  return `${pages.dlqPath(ctx.base, dlq.name)}${query({ ...op.filterParams(filter), notice })}`
}

async function post(state, ctx, route, form, req) {
  let m = /^\/dlq\/([^/]+)\/item\/([^/]+)\/(requeue|remove)$/.exec(route)
  if (m) {
    const dlq = dlqOf(state, m[1])
    const id = decode(m[2])
    const retry = dlq.schedule.retry
    let done
    if (m[3] === 'remove') {
      const confirm = await removeUnconfirmed(ctx, dlq, id, form)
      if (confirm) return confirm
      done = await retry.removeDeadLetter(dlq.name, id, { actor: ctx.actor })
    } else {
      const delayMs = delayField(form)
      done = await retry.requeueDeadLetter(dlq.name, id, { ...(delayMs && { delayMs }), actor: ctx.actor })
    }
    const verb = m[3] === 'remove' ? 'removed' : 'requeued'
    const notice = done ? `${verb} dead letter ${id}` : `dead letter ${id} was no longer there (requeued or removed meanwhile)`
    return { redirect: listAddress(ctx, dlq, {}, notice) }
  }
  m = /^\/dlq\/([^/]+)\/bulk$/.exec(route)
  if (m) return bulk.start(state, ctx, req, dlqOf(state, m[1]), form)
  m = /^\/jobs\/([^/]+)\/([^/]+)\/(stop|continue)$/.exec(route)
  if (m) return bulk.jobAction(state, ctx, m[1], m[2], m[3])
  m = /^\/schedules\/([0-9]+)\/(pause|resume)$/.exec(route)
  if (m) {
    const schedule = state.schedules[Number(m[1])]
    if (!schedule) throw new HttpError(404, 'no such schedule')
    const topic = form.get('topic') || undefined
    const what = topic ? `topic ${topic}` : `schedule ${schedule.name}`
    if (m[2] === 'pause') {
      const minutes = pauseMinutesField(form)
      const warning = await bulk.pauseCheck(ctx, schedule, topic, form)
      if (warning) return { page: warning }
      const options = minutes ? { untilMs: Date.now() + minutes * 60_000 } : {}
      options.actor = ctx.actor
      await op.need(schedule.retry, 'pause').pause(topic, options)
      return { redirect: `${ctx.base}/${query({ notice: `paused ${what}${minutes ? ` for ${minutes} min` : ''}` })}` }
    }
    await op.need(schedule.retry, 'resume').resume(topic, { actor: ctx.actor })
    const closed = topic && form.get('breaker') === '1'
    return { redirect: `${ctx.base}/${query({ notice: closed ? `closed the breaker of ${what}` : `resumed ${what}` })}` }
  }
  throw new HttpError(404, `nothing to post at ${route}`)
}

/**
 * A removal is for good: one click on Remove shows what it would delete and asks (a form posted
 * with confirm=yes removes). The confirmation page, or null when confirmed.
 */
async function removeUnconfirmed(ctx, dlq, id, form) {
  if (form.get('confirm') === 'yes') return null
  const item = await dlq.schedule.retry.deadLetter(dlq.name, id)
  if (!item) return { redirect: listAddress(ctx, dlq, {}, `dead letter ${id} was no longer there (requeued or removed meanwhile)`) }
  return { page: pages.removeConfirm(ctx, { dlq, item, filter: {} }) }
}

/**
 * Starts the dashboard's own HTTP server (the CLI's `dashboard` command). Refuses an address
 * other than loopback without a token, unless read-only with `dataVisible` (anyone reaching
 * the address then reads every payload). Resolves to { server, url } once listening.
 */
async function serve(options) {
  const host = options.host || '127.0.0.1'
  const port = options.port === undefined ? 3000 : options.port
  const loopback = isLoopback(host)
  const hasToken = options.token !== undefined || Boolean(options.tokens && Object.keys(options.tokens).length)
  if (!loopback && !hasToken && !(options.readOnly && options.dataVisible)) {
    throw invalid(`refusing to listen on ${host} without a token: anyone who reaches it could read and change every dead letter. Give --token, or --read-only with --data-visible-without-token`)
  }
  const handle = handler({ ...options, basePath: options.basePath || '' })
  const server = http.createServer((req, res) => {
    // Without a token, a page on another site could reach a loopback server through a DNS name
    // it controls (DNS rebinding): only requests addressed to this host by name are answered.
    if (!hasToken && loopback && !loopbackHost(req.headers.host)) {
      return send(res, 421, 'text/plain; charset=utf-8', 'this dashboard answers only requests to 127.0.0.1, ::1 or localhost')
    }
    handle(req, res)
  })
  await new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const address = server.address()
  const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address
  const url = `http://${shown}:${address.port}${options.basePath || ''}/`
  return { server, url }
}

function isLoopback(host) {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host)
}

function loopbackHost(header) {
  if (!header) return false
  const hostname = header.startsWith('[') ? header.slice(1, header.indexOf(']')) : header.replace(/:\d+$/, '')
  return isLoopback(hostname)
}

module.exports = { handler, serve }
