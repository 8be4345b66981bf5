'use strict'
// The dashboard's view of a schedule: the KafkaRetry calls it makes, in one place. Filters come
// from the address bar and go to the search API (deadLetters, requeueDeadLetters,
// removeDeadLetters) under the same names.

/** An operator API this version of the addon lacks: said on the page, never faked. */
class Unsupported extends Error {
  constructor(method) {
    super(`this kafka-redis-retry addon has no ${method}(): upgrade the package to use this page`)
    this.code = 'ERR_UNSUPPORTED'
  }
}

function need(retry, method) {
  if (typeof retry[method] !== 'function') throw new Unsupported(method)
  return retry
}

/**
 * A time filter from the address bar: milliseconds since the epoch, or a date and time in UTC
 * as a datetime-local field sends it (2026-12-03T08:30, seconds optional). null when empty;
 * NaN when unreadable (refused by the caller).
 */
function parseTime(text) {
  if (text === null || text === undefined || text === '') return null
  // Within the dates JavaScript has (±8.64e15 ms); beyond it a number is a mistake.
  if (/^[0-9]+$/.test(text)) return text.length <= 16 && Number(text) <= 8.64e15 ? Number(text) : NaN
  const match = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2}))?(?:Z| ?UTC)?$/.exec(text)
  if (!match) return NaN
  const [, y, mo, d, h, mi, s] = match.map(Number)
  const ms = Date.UTC(y, mo - 1, d, h, mi, s || 0)
  // Date.UTC rolls a 13th month or a 61st minute over: only a date that reads back is one.
  const back = new Date(ms)
  const same = back.getUTCFullYear() === y && back.getUTCMonth() === mo - 1 && back.getUTCDate() === d && back.getUTCHours() === h && back.getUTCMinutes() === mi
  return same ? ms : NaN
}

/** The value a datetime-local input shows for ms since the epoch (UTC). */
function timeField(ms) {
  return ms === null || ms === undefined ? '' : new Date(ms).toISOString().slice(0, 16)
}

/**
 * The filter of the address bar (`topic`, `error`, `search`, `reason`, `since`, `until`) as the
 * search API's filter (`topic`, `errorContains`, `search`, `reason`, `since`, `until`); empty keys
 * left out.
 * Throws a 400 for an unreadable time.
 */
function filterOf(params) {
  const filter = {}
  const topic = params.get('topic')
  const error = params.get('error')
  const search = params.get('search')
  const reason = params.get('reason')
  if (topic) filter.topic = topic
  if (error) filter.errorContains = error
  if (search) filter.search = search
  if (reason) filter.reason = reason
  for (const key of ['since', 'until']) {
    const ms = parseTime(params.get(key))
    if (Number.isNaN(ms)) {
      throw Object.assign(new Error(`${key} must be a date and time (2026-12-03T08:30, UTC) or ms since the epoch, got '${params.get(key)}'`), { status: 400 })
    }
    if (ms !== null) filter[key] = ms
  }
  return filter
}

/** The address bar's form of a filter (the inverse of filterOf). */
function filterParams(filter) {
  return {
    topic: filter.topic,
    error: filter.errorContains,
    search: filter.search,
    reason: filter.reason,
    since: filter.since !== undefined ? timeField(filter.since) : undefined,
    until: filter.until !== undefined ? timeField(filter.until) : undefined,
  }
}

const isEmpty = (filter) => Object.keys(filter).length === 0

// A filtered page of the search API reads a bounded number of records, so it may hold fewer
// items than asked: a page of the dashboard asks again for what is missing, at most this often
// and while under this time (then it shows what it has, and the link to the next page).
const SEARCH_CALLS_PER_PAGE = 8
const SEARCH_TIME_MS = 400

async function deadLetterPage(retry, dlq, filter, { limit, cursor }) {
  if (isEmpty(filter)) return retry.deadLetters(dlq, { limit, cursor: cursor || undefined })
  const page = { items: [], cursor: cursor || null, scanned: 0 }
  const started = Date.now()
  for (let call = 0; call < SEARCH_CALLS_PER_PAGE && (call === 0 || Date.now() - started < SEARCH_TIME_MS); call++) {
    const result = await retry.deadLetters(dlq, { ...filter, limit: limit - page.items.length, cursor: page.cursor || undefined })
    // Older addons have no search: they would list everything, unfiltered.
    if (result.scanned === undefined) throw new Unsupported('deadLetters with filters (search)')
    page.items.push(...result.items)
    page.cursor = result.cursor
    page.scanned += result.scanned
    if (page.cursor === null || page.cursor === undefined || page.items.length >= limit) break
  }
  return page
}

/** The failure reasons of the dead letters the filter matches, or null from an addon without them. */
async function reasons(retry, dlq, filter) {
  if (typeof retry.deadLetterReasons !== 'function') return null
  return retry.deadLetterReasons(dlq, filter)
}

/** How many dead letters a filter matches: the hash's size, or a dry run of a removal. */
async function matched(retry, dlq, filter) {
  if (isEmpty(filter)) return (await retry.stats(dlq)).deadLettered
  return need(retry, 'removeDeadLetters').removeDeadLetters(dlq, filter, { dryRun: true })
}

// A dry run reads every dead letter: on a large queue it takes longer than a page should. A page
// waits for it this long, then shows "counting" and reloads until the count (kept a while per
// queue and filter, one count at a time each) is there.
const COUNT_WAIT_MS = 100
const COUNT_KEEP_MS = 15_000
// Each whole count reads the whole queue: however many filters are asked for, at most this many
// run at once (a page asking for another meanwhile waits and reloads), and at most this many
// results are kept.
const MAX_COUNTS_RUNNING = 2
const MAX_COUNTS_KEPT = 1000

/** The counts of matches of one dashboard: those running and those kept for a while. */
class Counts {
  constructor() {
    this.entries = new Map()
    this.running = 0
  }

  /** Drops the results older than COUNT_KEEP_MS, then the oldest beyond MAX_COUNTS_KEPT. */
  prune() {
    const now = Date.now()
    for (const [key, e] of this.entries) if (e.done && now - e.done > COUNT_KEEP_MS) this.entries.delete(key)
    for (const [key, e] of this.entries) {
      if (this.entries.size <= MAX_COUNTS_KEPT) break
      if (e.done) this.entries.delete(key)
    }
  }
}

/**
 * matched(), or { pending: true } while a long count goes on; { notStarted: 'elsewhere' } when
 * there is no count of this filter and `start` is false (a request from another site), and
 * { notStarted: 'busy' } while MAX_COUNTS_RUNNING other counts run.
 */
async function matchedSoon(counts, retry, dlq, filter, { start = true } = {}) {
  if (isEmpty(filter)) return matched(retry, dlq, filter)
  const key = JSON.stringify([dlq, filter])
  let entry = counts.entries.get(key)
  if (entry && entry.done && Date.now() - entry.done > COUNT_KEEP_MS) entry = null
  if (!entry) {
    if (!start) return { notStarted: 'elsewhere' }
    counts.prune()
    if (counts.running >= MAX_COUNTS_RUNNING) return { notStarted: 'busy' }
    counts.running++
    entry = { done: 0, value: null, error: null }
    entry.promise = matched(retry, dlq, filter)
      .then(
        (value) => Object.assign(entry, { value, done: Date.now() }),
        (error) => Object.assign(entry, { error, done: Date.now() }),
      )
      .finally(() => {
        counts.running--
      })
    counts.entries.set(key, entry)
  }
  if (!entry.done) await Promise.race([entry.promise, new Promise((resolve) => setTimeout(resolve, COUNT_WAIT_MS))])
  if (!entry.done) return { pending: true }
  if (entry.error) {
    counts.entries.delete(key)
    throw entry.error
  }
  return entry.value
}

const SERIES = ['pushed', 'published', 'failed', 'deadLettered']

/**
 * history()'s answer ({ from, minutes, pushed, published, failed, deadLettered, topics }: one
 * count per minute from `from`) as the chart draws it: the schedule's four series. null for an
 * answer without them (an addon older than history()'s shape).
 */
function historySeries(history) {
  if (!history || !Number.isFinite(history.from) || !SERIES.every((name) => Array.isArray(history[name]))) return null
  const series = { from: history.from, minutes: history[SERIES[0]].length }
  for (const name of SERIES) series[name] = history[name].map((n) => Number(n) || 0)
  return series
}

module.exports = {
  historySeries, Unsupported, need, filterOf, reasons, filterParams, parseTime, timeField, isEmpty, deadLetterPage, matched, matchedSoon, Counts, MAX_COUNTS_RUNNING }
