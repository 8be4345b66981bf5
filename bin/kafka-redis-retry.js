#!/usr/bin/env node
// kafka-redis-retry: inspect and manage a kafka-redis-retry schedule and its dead letter queues in Redis.
// Plain Node, no dependencies. Exit status: 0 success, 1 operational failure, 2 usage error.
'use strict'

const os = require('os')
const util = require('util')

const USAGE = `Usage: kafka-redis-retry [options] <command> [arguments]

Inspect and manage a kafka-redis-retry schedule and its dead letter queues in Redis.

Commands:
  stats [--dlq NAME] [--metrics]
      Sizes of the schedule (scheduled, due, in flight) and the number of dead
      letters in the hash NAME (default: <prefix>:dead-letters), then per
      topic: scheduled, due, leased, dead letters.
      --metrics prints them as Prometheus text instead.
  history [--minutes N] [--topic T]
      Per minute of the last N minutes (default 60, at most 2880 = 48 h):
      pushed, published, failed publishes and dead-lettered, for the schedule
      (or topic T); minutes with nothing are left out.
  dlq list <name> [--limit N] [--cursor C] [--all] [FILTER]
      Dead letters of the hash <name>, newest first: id, topic, event, diedAt,
      retryCount, error and value. --limit N per page (default 100), --cursor C
      continues where the previous page ended, --all lists every page.
  dlq reasons <name> [FILTER]
      Failure reasons of the newest 10,000 dead letters of <name>, largest
      count first: the error with numbers, ids, UUIDs, addresses, e-mails and
      quoted values masked, its count per topic and an example. Pass a reason
      back as --reason to list, requeue or remove exactly those.
  dlq requeue <name> <id>
  dlq requeue <name> --all [--force] [--max-count N] [--confirm N]
  dlq requeue <name> FILTER [--dry-run] [--rate N] [--delay D] [--force]
                            [--max-count N] [--confirm N]
      Moves dead letter <id> (or every dead letter, or those FILTER matches) of
      <name> back onto the schedule selected by --prefix, due now, with
      retryCount reset to 0. --dry-run only counts them; --rate N moves at most
      N per second (0.001 to 1000000); --delay D makes them due D later (30s,
      10m, 2h; at most 365d). Ctrl-C
      stops a filtered requeue before its next move (exit code 130): the rest
      stay dead letters, and the same command goes on with them.
      Dead letters requeued maxReplays (3) times that died again each time
      are passed over (and counted) unless --force. --max-count N requeues
      at most N.
  dlq remove <name> <id>
  dlq remove <name> FILTER [--dry-run] [--max-count N] [--confirm N]
      Deletes dead letter <id> (or those FILTER matches) from <name>.

  Above 1,000 dead letters, requeue and remove act only with --confirm N,
  where N is the count a first run (or --dry-run) printed; they then act on
  at most N, however many match by then.
  pause [--topic T] [--for D]
      Stops every listener of the schedule publishing topic T (without --topic:
      every topic) within a second; its messages wait. --for D ends the pause
      by itself after D (30s, 10m, 2h).
  resume [--topic T]
      Ends the pause of topic T (without --topic: every pause).
  audit [--limit N] [--since TIME] [--cursor C]
      The audit log of the schedule, newest first: every operator action
      (requeue, remove, pause, resume, jobs stopped or continued) with its
      time, actor, target, count and outcome. --limit N entries (default 100,
      at most 1000), --since TIME only those recorded since TIME, --cursor C
      continues where the previous page ended. This tool's own actions are
      recorded with the actor user@host (the user and machine running it).
  dashboard [--host 127.0.0.1] [--port 3000] [--token [NAME=]T] [--read-only]
      Serves the dashboard in the browser (overview, dead letters, bulk
      actions, pause) until interrupted. --prefix and --dlq may list several,
      comma separated (with several prefixes, one dlq per prefix). Listens on
      127.0.0.1 unless --host; another address needs --token (or $DASHBOARD_TOKEN),
      or --read-only with --data-visible-without-token.
      GET /prometheus serves the schedules' metrics for a Prometheus scrape, with
      the token as Authorization: Bearer (--metrics-without-token: open).
      --token NAME=T names the token: its actions are recorded in the audit
      log as NAME (a plain token as 'token'); repeat --token for several.

FILTER (all given must hold):
  --topic T      the topic, exactly
  --error TEXT   a substring of the error's name or message, any case
  --search TEXT  a substring of the key, the payload or a header value
  --reason TEXT  a failure reason as dlq reasons prints it
  --since TIME, --until TIME
                 time of death: an ISO date, ms since the epoch, or a
                 duration ago (30m, 2h, 1d)

Options:
  --redis URL    Redis URL (default: $REDIS_URL, then redis://127.0.0.1:6379)
  --prefix P     key prefix of the schedule (default: kafka-retry); must match
                 the keyPrefix of the service's listener
  --cluster      --redis lists the seed nodes of a Redis Cluster, comma separated
  --shards N     the schedule's shards setting (default 1)
  --tls-ca FILE  TLS: trust the CA certificates in FILE (PEM) instead of the
                 public CAs; turns TLS on (as does a rediss:// URL)
  --tls-cert FILE, --tls-key FILE
                 TLS client certificate and key (PEM), for servers that
                 require one
  --tls-insecure TLS without checking the server's certificate
  --sentinel HOST:PORT[,HOST:PORT...]
                 find the master through these Redis Sentinels (instead of
                 --redis); user and password of the master from
                 $REDIS_USERNAME / $REDIS_PASSWORD
  --sentinel-name NAME
                 the master's name in the sentinels (default mymaster)
  --json         machine-readable output on stdout
  -h, --help     show this help
  --version      show the version

Exit status: 0 success, 1 failure (Redis unreachable, no such dead letter),
2 usage error.
`

const HINT = "Run 'kafka-redis-retry --help' for usage."
const REDIS_TIMEOUT_MS = 3000
const VALUE_WIDTH = 120

const UNITS = { ms: 1, s: 1000, m: 60000, h: 3600000, d: 86400000 }
const YEAR_MS = 365 * UNITS.d
/** The latest time a JavaScript Date holds, ms since the epoch. */
const LATEST_MS = 8.64e15
/** Bulk actions on more dead letters than this need --confirm with the dry-run count. */
const CONFIRM_ABOVE = 1000
/** requeueDeadLetters' bounds of ratePerSec. */
const RATE = { min: 0.001, max: 1000000 }

/**
 * Every option, for util.parseArgs: one line each. `commands`: where it is allowed (absent:
 * everywhere); `check`: what its value must be. `--help` and `--version` work anywhere.
 */
const OPTIONS = {
  redis: { type: 'string' },
  prefix: { type: 'string' },
  cluster: { type: 'boolean' },
  shards: { type: 'string', check: wholeIn(1, 1024) },
  json: { type: 'boolean' },
  'tls-ca': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'tls-insecure': { type: 'boolean' },
  sentinel: { type: 'string' },
  'sentinel-name': { type: 'string' },
  dlq: { type: 'string', commands: ['stats', 'dashboard'] },
  host: { type: 'string', commands: ['dashboard'] },
  port: { type: 'string', commands: ['dashboard'], check: portNumber },
  token: { type: 'string', commands: ['dashboard'], multipleAllowed: true },
  'read-only': { type: 'boolean', commands: ['dashboard'] },
  'data-visible-without-token': { type: 'boolean', commands: ['dashboard'] },
  'metrics-without-token': { type: 'boolean', commands: ['dashboard'] },
  metrics: { type: 'boolean', commands: ['stats'] },
  minutes: { type: 'string', commands: ['history'], check: wholeIn(1, 2880) },
  limit: { type: 'string', commands: ['dlq list', 'audit'], check: wholeIn(1, 10000) },
  cursor: { type: 'string', commands: ['dlq list', 'audit'] },
  all: { type: 'boolean', commands: ['dlq list', 'dlq requeue'] },
  topic: { type: 'string', commands: ['dlq list', 'dlq requeue', 'dlq remove', 'dlq reasons', 'pause', 'resume', 'history'] },
  error: { type: 'string', commands: ['dlq list', 'dlq requeue', 'dlq remove', 'dlq reasons'] },
  search: { type: 'string', commands: ['dlq list', 'dlq requeue', 'dlq remove', 'dlq reasons'] },
  since: { type: 'string', commands: ['dlq list', 'dlq requeue', 'dlq remove', 'dlq reasons', 'audit'], check: timeArg },
  until: { type: 'string', commands: ['dlq list', 'dlq requeue', 'dlq remove', 'dlq reasons'], check: timeArg },
  reason: { type: 'string', commands: ['dlq list', 'dlq requeue', 'dlq remove', 'dlq reasons'] },
  'dry-run': { type: 'boolean', commands: ['dlq requeue', 'dlq remove'] },
  // The cap, the confirmation and the replay guard (issue 30).
  'max-count': { type: 'string', commands: ['dlq requeue', 'dlq remove'], check: wholeIn(0, Number.MAX_SAFE_INTEGER) },
  confirm: { type: 'string', commands: ['dlq requeue', 'dlq remove'], check: wholeIn(0, Number.MAX_SAFE_INTEGER) },
  force: { type: 'boolean', commands: ['dlq requeue'] },
  rate: { type: 'string', commands: ['dlq requeue'], check: rateArg },
  delay: { type: 'string', commands: ['dlq requeue'], check: durationIn(0, YEAR_MS) },
  for: { type: 'string', commands: ['pause'], check: durationIn(1, YEAR_MS) },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean' },
}

// Every option `multiple`, so a repeated one is seen (and refused) rather than the last kept.
const PARSE_OPTIONS = Object.fromEntries(
  Object.entries(OPTIONS).map(([name, { type, short }]) => [name, { type, multiple: true, ...(short && { short }) }]),
)

class UsageError extends Error {}

function portNumber(name, value) {
  if (!/^[0-9]+$/.test(value) || Number(value) > 65535) throw new UsageError(`--${name} must be a port number (0 to 65535), got '${value}'`)
}

// Every number of the command line is checked here, against the bounds the addon holds it to, so
// a bad one is a usage error naming its option (exit 2), never a failure deep in a command.

/** A check that the value is a whole number from `min` to `max`. */
function wholeIn(min, max) {
  return (name, value) => {
    if (!/^[0-9]+$/.test(value) || Number(value) < min || Number(value) > max) {
      throw new UsageError(`--${name} must be a whole number from ${min} to ${max}, got '${value}'`)
    }
  }
}

/** A duration such as 500ms, 30s, 10m, 2h, 1d, in ms; `undefined` when it is not one. */
function duration(value) {
  const match = /^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)$/.exec(value)
  return match ? Math.round(Number(match[1]) * UNITS[match[2]]) : undefined
}

/** A check that the value is a duration from `min` to `max` ms (rounded to the ms). */
function durationIn(min, max) {
  const shown = (ms) => (ms === YEAR_MS ? '365d' : `${ms}ms`)
  return (name, value) => {
    const ms = duration(value)
    if (ms === undefined || ms < min || ms > max) {
      throw new UsageError(`--${name} must be a duration from ${shown(min)} to ${shown(max)} such as 30s, 10m or 2h, got '${value}'`)
    }
  }
}

/** A time: ms since the epoch, an ISO date (2024-05-01, 2024-05-01T10:00:00Z), or a duration ago. */
function time(value) {
  if (/^[0-9]+$/.test(value)) return Number(value)
  const ago = duration(value)
  if (ago !== undefined) return Date.now() - ago
  // Only ISO dates: Date.parse also takes '1.5' or '-1' as dates of its own.
  if (!/^[0-9]{4}-[0-9]{2}-[0-9]{2}/.test(value)) return undefined
  const parsed = Date.parse(value)
  return Number.isNaN(parsed) ? undefined : parsed
}

function timeArg(name, value) {
  const ms = time(value)
  if (ms === undefined || !(ms >= 0 && ms <= LATEST_MS)) {
    throw new UsageError(`--${name} must be an ISO date, ms since the epoch or a duration ago (30m), from 1970 to the year 275760, got '${value}'`)
  }
}

function rateArg(name, value) {
  if (!/^[0-9]+(\.[0-9]+)?$/.test(value) || !(Number(value) >= RATE.min && Number(value) <= RATE.max)) {
    throw new UsageError(`--${name} must be a number of dead letters per second from ${RATE.min} to ${RATE.max}, got '${value}'`)
  }
}

/** The dead letter filter the FILTER options give, and whether any was given. */
function filterOf(options) {
  const filter = {}
  if (options.topic !== undefined) filter.topic = options.topic
  if (options.error !== undefined) filter.errorContains = options.error
  if (options.search !== undefined) filter.search = options.search
  if (options.since !== undefined) filter.since = time(options.since)
  if (options.until !== undefined) filter.until = time(options.until)
  if (options.reason !== undefined) filter.reason = options.reason
  return filter
}

/**
 * Splits argv into options and positionals (options may come before or after the command) with
 * util.parseArgs; its errors, a repeated option and an empty value become usage errors.
 */
function parseArgs(argv) {
  let parsed
  try {
    parsed = util.parseArgs({ args: argv, options: PARSE_OPTIONS, allowPositionals: true, strict: true })
  } catch (err) {
    if (!String(err.code).startsWith('ERR_PARSE_ARGS_')) throw err
    throw new UsageError(parseError(err))
  }
  const options = {}
  for (const [name, values] of Object.entries(parsed.values)) {
    if (values.length > 1 && !OPTIONS[name].multipleAllowed) throw new UsageError(`option --${name} was given more than once`)
    if (values.includes('')) throw new UsageError(`option --${name} needs a non-empty value`)
    options[name] = OPTIONS[name].multipleAllowed ? values : values[0]
  }
  return { options, positionals: parsed.positionals }
}

/** util.parseArgs's error as this tool's usage message. */
function parseError(err) {
  const quoted = /'(-[^']*)'/.exec(err.message)
  const option = (quoted && quoted[1].split(/[ ,]/).pop()) || ''
  const long = (/(--[a-z][\w-]*)/.exec(err.message) || [option])[0]
  switch (err.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `unknown option ${option}`
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      // A boolean given a value (--json=1), or a string option without one (--limit at the end,
      // or followed by another option: --prefix --json).
      return OPTIONS[long.slice(2)] && OPTIONS[long.slice(2)].type === 'boolean'
        ? `option ${long} takes no value`
        : `option ${long} needs a value`
    default:
      return err.message
  }
}

/** What to run: { command: 'stats' | 'dlq list' | ..., args } after checking arguments and options. */
function resolveCommand(options, positionals) {
  const [first, second, ...rest] = positionals
  let command
  let args
  if (first === undefined) throw new UsageError('missing command')
  if (first === 'stats') {
    command = 'stats'
    args = positionals.slice(1)
    if (args.length) throw new UsageError(`unexpected argument '${args[0]}' for stats`)
  } else if (first === 'dashboard') {
    command = 'dashboard'
    args = positionals.slice(1)
    if (args.length) throw new UsageError(`unexpected argument '${args[0]}' for dashboard`)
  } else if (first === 'history') {
    command = 'history'
    args = positionals.slice(1)
    if (args.length) throw new UsageError(`unexpected argument '${args[0]}' for history`)
  } else if (first === 'pause' || first === 'resume' || first === 'audit') {
    command = first
    args = positionals.slice(1)
    if (args.length) throw new UsageError(`unexpected argument '${args[0]}' for ${first}`)
  } else if (first === 'dlq') {
    if (second === undefined) throw new UsageError('dlq needs a subcommand: list, reasons, requeue or remove')
    if (!['list', 'reasons', 'requeue', 'remove'].includes(second)) throw new UsageError(`unknown dlq subcommand '${second}'`)
    command = `dlq ${second}`
    args = rest
  } else {
    throw new UsageError(`unknown command '${first}'`)
  }

  for (const [name, value] of Object.entries(options)) {
    const spec = OPTIONS[name]
    if (spec.commands && !spec.commands.includes(command)) throw new UsageError(`option --${name} is not valid for ${command}`)
    if (spec.check) spec.check(name, value)
  }

  const name = args[0]
  if (command.startsWith('dlq ')) {
    if (name === undefined || name === '') throw new UsageError(`${command} needs the name of the dead letter queue`)
  }
  if (command === 'dlq list' || command === 'dlq reasons') {
    if (args.length > 1) throw new UsageError(`unexpected argument '${args[1]}' for ${command}`)
  } else if (command === 'dlq requeue' || command === 'dlq remove') {
    const filtered = Object.keys(filterOf(options)).length > 0
    const byId = args[1] !== undefined && args[1] !== ''
    const kinds = [byId, filtered, Boolean(options.all)].filter(Boolean).length
    if (kinds > 1) {
      throw new UsageError(command === 'dlq requeue' ? 'dlq requeue takes either an id or --all or filter options, one of them' : 'dlq remove takes either an id or filter options, not both')
    }
    if (kinds === 0) {
      throw new UsageError(`${command} needs the id of a dead letter${command === 'dlq requeue' ? ', --all' : ''} or filter options (--topic, --error, --search, --reason, --since, --until)`)
    }
    if (byId && (options['dry-run'] || options.rate || options.delay || options.force || options['max-count'] || options.confirm)) {
      throw new UsageError('--dry-run, --rate, --delay, --force, --max-count and --confirm go with filter options, not an id')
    }
    if (args.length > 2) throw new UsageError(`unexpected argument '${args[2]}' for ${command}`)
  }
  if (options.metrics && options.json) throw new UsageError('--metrics and --json cannot be combined')
  return { command, args }
}

// ---- output helpers ----

const out = (text) => process.stdout.write(text.endsWith('\n') ? text : `${text}\n`)
const json = (value) => out(JSON.stringify(value, null, 2))

/** Escapes control characters so stored text cannot break lines or drive the terminal. */
function clean(text) {
  // eslint-disable-next-line no-control-regex -- matching control characters is the point
  return String(text).replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => {
    const named = { '\n': '\\n', '\r': '\\r', '\t': '\\t' }[c]
    return named || `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`
  })
}

function truncate(text, width) {
  const chars = Array.from(text)
  return chars.length <= width ? text : `${chars.slice(0, width - 1).join('')}… (${chars.length} chars)`
}

/**
 * The Redis URL (or comma-separated seeds) with any password hidden, for display: everything up
 * to the last '@' (a password may hold '@', '/' or '?'; hiding too much is safe) and a `pass` or
 * `password` query parameter (`redis+unix:///run/redis.sock?pass=...`). As crates/engine/src/config.rs
 * `redacted_url` does for the addon's messages.
 */
function redactUrl(url) {
  return String(url).split(',').map((one) => {
    const scheme = one.indexOf('://')
    if (scheme < 0) return one
    let rest = one.slice(scheme + 3)
    const at = rest.lastIndexOf('@')
    const hidden = at >= 0 ? '***@' : ''
    if (at >= 0) rest = rest.slice(at + 1)
    const q = rest.indexOf('?')
    if (q >= 0) {
      const query = rest.slice(q + 1).split('&').map((pair) => {
        const eq = pair.indexOf('=')
        const name = eq >= 0 ? pair.slice(0, eq) : pair
        return eq >= 0 && /^pass(word)?$/i.test(name) ? `${name}=***` : pair
      })
      rest = `${rest.slice(0, q)}?${query.join('&')}`
    }
    return `${one.slice(0, scheme + 3)}${hidden}${rest}`
  }).join(',')
}

function isoTime(ms) {
  if (!ms) return 'unknown'
  const date = new Date(ms)
  return Number.isNaN(date.getTime()) ? String(ms) : date.toISOString()
}

function formatDeadLetter(item) {
  const options = item.options && typeof item.options === 'object' ? item.options : {}
  const retryCount = options.retryCount !== undefined ? String(options.retryCount) : '-'
  const maxRetry = options.maxRetry !== undefined ? ` (maxRetry ${options.maxRetry})` : ''
  const error = item.error ? `${item.error.name ? `${item.error.name}: ` : ''}${item.error.message}` : '-'
  return [
    clean(item.id),
    `  topic:      ${clean(item.topic) || '-'}`,
    `  event:      ${clean(item.event) || '-'}`,
    `  diedAt:     ${isoTime(item.diedAt)}`,
    `  retryCount: ${clean(retryCount)}${clean(maxRetry)}`,
    `  error:      ${truncate(clean(error), VALUE_WIDTH)}`,
    `  value:      ${truncate(clean(typeof item.value === 'string' ? item.value : JSON.stringify(item.value)), VALUE_WIDTH)}`,
  ].join('\n')
}

// ---- commands ----

async function stats(retry, ctx) {
  const dlq = ctx.options.dlq || `${ctx.prefix}:dead-letters`
  if (ctx.options.metrics) {
    out(await retry.metrics(dlq))
    return 0
  }
  const s = await retry.stats(dlq)
  if (ctx.options.json) {
    json(s)
    return 0
  }
  const rows = [
    ['scheduled', s.scheduled, 'waiting in the schedule'],
    ['due', s.due, 'of those, already due'],
    ['inflight', s.inflight, 'claimed by a listener, not yet acknowledged'],
    ['deadLettered', s.deadLettered, `in ${clean(dlq)}`],
  ]
  if (s.blockedKeys || s.parkedMessages) {
    rows.push(['blockedKeys', s.blockedKeys, 'ordered retries: keys held back behind a message of theirs'])
    rows.push(['parkedMessages', s.parkedMessages, "ordered retries: parked behind their key's head"])
  }
  const width = Math.max(...rows.map(([, n]) => String(n).length))
  out(`schedule ${clean(ctx.prefix)} at ${clean(redactUrl(ctx.redisUrl))}`)
  for (const [label, n, note] of rows) out(`  ${label.padEnd(13)} ${String(n).padStart(width)}  ${note}`)
  for (const p of s.paused || []) out(`  paused        ${describePause(p)}`)
  const topics = Object.entries(s.topics || {})
  if (topics.length) {
    const name = Math.max(5, ...topics.map(([t]) => clean(t).length))
    // The breaker column only when the breaker is on (config `breaker`): some topic has a state.
    const breaker = topics.some(([, c]) => c.breaker !== undefined)
    out(`  ${'topic'.padEnd(name)}  scheduled        due     leased  deadLetters${breaker ? '  breaker' : ''}`)
    for (const [t, c] of topics) {
      const state = breaker ? `  ${c.breaker || '-'}` : ''
      out(`  ${clean(t).padEnd(name)}  ${[c.scheduled, c.due, c.leased].map((n) => String(n).padStart(9)).join('  ')}  ${String(c.deadLetters).padStart(11)}${state}`)
    }
  }
  return 0
}

async function history(retry, ctx) {
  const minutes = ctx.options.minutes !== undefined ? Number(ctx.options.minutes) : undefined
  const h = await retry.history({ minutes })
  const topic = ctx.options.topic
  const series = topic === undefined ? h : h.topics[topic] || { pushed: [], published: [], failed: [], deadLettered: [] }
  const rows = []
  for (let i = 0; i < h.minutes; i++) {
    const counts = ['pushed', 'published', 'failed', 'deadLettered'].map((k) => series[k][i] || 0)
    if (counts.some((n) => n > 0)) rows.push({ minute: new Date(h.from + i * 60_000).toISOString(), pushed: counts[0], published: counts[1], failed: counts[2], deadLettered: counts[3] })
  }
  if (ctx.options.json) {
    json(topic === undefined ? h : { from: h.from, minutes: h.minutes, topic, ...series })
    return 0
  }
  out(`history of ${topic === undefined ? `schedule ${clean(ctx.prefix)}` : `topic ${clean(topic)}`}, last ${h.minutes} min (UTC)`)
  out('  minute               pushed  published  failed  deadLettered')
  for (const r of rows) out(`  ${r.minute.slice(0, 16).replace('T', ' ')}  ${String(r.pushed).padStart(8)}  ${String(r.published).padStart(9)}  ${String(r.failed).padStart(6)}  ${String(r.deadLettered).padStart(12)}`)
  if (!rows.length) out('  (nothing in this range)')
  return 0
}

async function list(retry, ctx, [name]) {
  const limit = ctx.options.limit !== undefined ? Number(ctx.options.limit) : undefined
  let cursor = ctx.options.cursor
  const filter = filterOf(ctx.options)
  if (!ctx.options.all) {
    const page = await retry.deadLetters(name, { ...filter, limit, cursor })
    if (ctx.options.json) {
      json({ items: page.items, cursor: page.cursor })
      return 0
    }
    printItems(page.items)
    const more = page.cursor !== null && page.cursor !== undefined
    if (!page.items.length && more) out('(no dead letters on this page)')
    else if (!page.items.length) out(`no dead letters in ${clean(name)}${cursor ? ' after this cursor' : ''}`)
    if (more) {
      const filterFlags = ['topic', 'error', 'search', 'since', 'until']
        .filter((f) => ctx.options[f] !== undefined)
        .map((f) => ` --${f} ${JSON.stringify(clean(ctx.options[f]))}`)
        .join('')
      out(`more: kafka-redis-retry dlq list ${clean(name)} --cursor ${clean(page.cursor)}${limit ? ` --limit ${limit}` : ''}${filterFlags}`)
    }
    return 0
  }
  // Every page. The cursor is a position, so a dead letter added between pages can shift one
  // into the next page again: ids already listed are skipped.
  const seen = new Set()
  const items = []
  let count = 0
  do {
    const page = await retry.deadLetters(name, { ...filter, limit, cursor })
    const fresh = page.items.filter((item) => !seen.has(item.id))
    for (const item of fresh) seen.add(item.id)
    count += fresh.length
    if (ctx.options.json) items.push(...fresh)
    else printItems(fresh, count - fresh.length)
    cursor = page.cursor
  } while (cursor !== null && cursor !== undefined)
  if (ctx.options.json) json({ items, cursor: null })
  else out(count ? `${count} dead letter${count === 1 ? '' : 's'} in ${clean(name)}` : `no dead letters in ${clean(name)}`)
  return 0
}

function printItems(items, before = 0) {
  items.forEach((item, n) => {
    if (before + n > 0) out('')
    out(formatDeadLetter(item))
  })
}

/**
 * The guard of a bulk action: `options` with --max-count, and unless it is a dry run, its
 * dry-run count (`count(options)`) first; above CONFIRM_ABOVE it acts only with --confirm N (N:
 * that count, as printed), and never on more than N (nor --max-count). Returns an exit status
 * when it must not act, else nothing (`options.maxCount` set to act with).
 */
async function guard(ctx, name, options, verb, count) {
  const cap = ctx.options['max-count'] !== undefined ? Number(ctx.options['max-count']) : undefined
  if (cap !== undefined) options.maxCount = cap
  if (options.dryRun) return undefined
  const counted = await count({ ...options, dryRun: true })
  const { confirm } = ctx.options
  const acting = cap === undefined ? counted : Math.min(counted, cap)
  if (confirm === undefined) {
    if (acting <= CONFIRM_ABOVE) return undefined
    if (ctx.options.json) json({ matched: acting, confirm: acting, acted: 0 })
    process.stderr.write(
      `${acting} dead letters in ${clean(name)} would be ${verb}: more than ${CONFIRM_ABOVE}, so nothing was done.\n` +
        `Run the same command with --confirm ${acting} to ${verb === 'requeued' ? 'requeue' : 'remove'} at most ${acting}.\n`,
    )
    return 1
  }
  const confirmed = Number(confirm)
  options.maxCount = cap === undefined ? confirmed : Math.min(cap, confirmed)
  return undefined
}

/** Says how many dead letters a requeue passed over for their replays. */
function skippedNote(skipped) {
  return skipped ? ` (${skipped} passed over: replayed maxReplays times already; --force requeues them)` : ''
}

async function requeue(retry, ctx, [name, id]) {
  const filter = filterOf(ctx.options)
  if (Object.keys(filter).length || ctx.options.all) {
    const dryRun = Boolean(ctx.options['dry-run'])
    const options = { dryRun }
    if (ctx.options.force) options.force = true
    const refused = await guard(ctx, name, options, 'requeued', async (o) => (await retry.requeueDeadLettersDetailed(name, filter, o)).requeued)
    if (refused !== undefined) return refused
    if (ctx.options.rate !== undefined) options.ratePerSec = Number(ctx.options.rate)
    if (ctx.options.delay !== undefined) options.delayMs = duration(ctx.options.delay)
    // Ctrl-C (or SIGTERM) stops the requeue before its next move: what moved stays moved, the
    // rest stay dead letters, and the same command goes on with them.
    const controller = new AbortController()
    const stop = () => controller.abort()
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
    options.signal = controller.signal
    if (!dryRun && process.stderr.isTTY && !ctx.options.json) {
      options.onProgress = (moved) => process.stderr.write(`\rrequeued ${moved} so far (Ctrl-C stops)`)
    }
    let n
    let skipped
    try {
      ;({ requeued: n, skipped } = await retry.requeueDeadLettersDetailed(name, filter, { ...options, actor: ctx.actor }))
    } finally {
      process.off('SIGINT', stop)
      process.off('SIGTERM', stop)
      if (options.onProgress) process.stderr.write('\n')
    }
    const stopped = controller.signal.aborted
    // `skipped` only when some were passed over: the JSON of earlier versions stays as it was.
    const passed = skipped ? { skipped } : {}
    if (ctx.options.json) json(dryRun ? { matched: n, ...passed } : { requeued: n, ...passed, ...(stopped ? { stopped: true } : {}) })
    else if (dryRun) out(`${n} dead letter${n === 1 ? '' : 's'} in ${clean(name)} match (dry run: nothing moved)${skippedNote(skipped)}`)
    else out(`requeued ${n} dead letter${n === 1 ? '' : 's'} from ${clean(name)} onto schedule ${clean(ctx.prefix)}${skippedNote(skipped)}${stopped ? ' (stopped: the rest are still dead letters; the same command goes on with them)' : ''}`)
    return stopped ? 130 : 0
  }
  const moved = await retry.requeueDeadLetter(name, id, { actor: ctx.actor })
  if (ctx.options.json) json({ requeued: moved, id })
  if (!moved) {
    process.stderr.write(`error: no dead letter ${clean(id)} in ${clean(name)}\n`)
    return 1
  }
  if (!ctx.options.json) out(`requeued dead letter ${clean(id)} from ${clean(name)} onto schedule ${clean(ctx.prefix)}`)
  return 0
}

async function remove(retry, ctx, [name, id]) {
  const filter = filterOf(ctx.options)
  if (Object.keys(filter).length) {
    const dryRun = Boolean(ctx.options['dry-run'])
    const options = { dryRun, actor: ctx.actor }
    const refused = await guard(ctx, name, options, 'removed', (o) => retry.removeDeadLetters(name, filter, o))
    if (refused !== undefined) return refused
    const n = await retry.removeDeadLetters(name, filter, options)
    if (ctx.options.json) json(dryRun ? { matched: n } : { removed: n })
    else if (dryRun) out(`${n} dead letter${n === 1 ? '' : 's'} in ${clean(name)} match (dry run: nothing removed)`)
    else out(`removed ${n} dead letter${n === 1 ? '' : 's'} from ${clean(name)}`)
    return 0
  }
  const removed = await retry.removeDeadLetter(name, id, { actor: ctx.actor })
  if (ctx.options.json) json({ removed, id })
  if (!removed) {
    process.stderr.write(`error: no dead letter ${clean(id)} in ${clean(name)}\n`)
    return 1
  }
  if (!ctx.options.json) out(`removed dead letter ${clean(id)} from ${clean(name)}`)
  return 0
}

/** Serves the dashboard (dashboard/index.js) until SIGINT or SIGTERM. */
async function dashboard(retry, ctx) {
  const prefixes = ctx.prefix.split(',')
  const dlqs = ctx.options.dlq ? ctx.options.dlq.split(',') : null
  if (prefixes.length > 1 && dlqs && dlqs.length !== prefixes.length) {
    throw new UsageError(`with ${prefixes.length} prefixes, --dlq lists one dead letter queue per prefix`)
  }
  const extra = prefixes.slice(1).map((prefix) => ctx.newRetry(prefix))
  const schedules = prefixes.map((prefix, i) => ({
    name: prefix,
    retry: i ? extra[i - 1] : retry,
    dlqName: dlqs ? (prefixes.length > 1 ? dlqs[i] : dlqs) : `${prefix}:dead-letters`,
  }))
  // --token NAME=SECRET (repeatable) names each token: its actions are audited as NAME.
  const given = ctx.options.token || (process.env.DASHBOARD_TOKEN ? [process.env.DASHBOARD_TOKEN] : [])
  const { parseTokenArg } = require('../dashboard/security')
  const tokens = {}
  for (const { name, secret } of given.map(parseTokenArg)) {
    if (Object.hasOwn(tokens, name)) throw new UsageError(`two --token options are named '${name}'`)
    tokens[name] = secret
  }
  const token = given.length ? Object.values(tokens)[0] : undefined
  let running
  try {
    running = await require('../dashboard').serve({
      schedules,
      host: ctx.options.host,
      port: ctx.options.port !== undefined ? Number(ctx.options.port) : 3000,
      ...(given.length && { tokens }),
      readOnly: Boolean(ctx.options['read-only']),
      dataVisible: Boolean(ctx.options['data-visible-without-token']),
      metricsWithoutToken: Boolean(ctx.options['metrics-without-token']),
    })
  } catch (err) {
    await Promise.all(extra.map((r) => r.close().catch(() => {})))
    if (err.code === 'ERR_INVALID_ARG') throw new UsageError(err.message)
    throw err
  }
  const address = token ? `${running.url}?token=${encodeURIComponent(token)}` : running.url
  out(`dashboard of ${prefixes.map(clean).join(', ')} at ${clean(redactUrl(ctx.redisUrl))}${ctx.options['read-only'] ? ' (read-only)' : ''}: ${address}`)
  await new Promise((resolve) => {
    process.once('SIGINT', resolve)
    process.once('SIGTERM', resolve)
  })
  await new Promise((resolve) => running.server.close(resolve))
  running.server.closeAllConnections()
  await Promise.all(extra.map((r) => r.close().catch(() => {})))
  return 0
}


function describePause(p) {
  return `${p.topic === null ? 'the whole schedule' : `topic ${clean(p.topic)}`}${p.untilMs ? ` until ${isoTime(p.untilMs)}` : ' until resumed'}`
}

async function pause(retry, ctx) {
  const forMs = ctx.options.for !== undefined ? duration(ctx.options.for) : undefined
  // The end is a time; Redis's clock decides when it has come.
  const options = forMs !== undefined ? { untilMs: Date.now() + forMs } : {}
  await retry.pause(ctx.options.topic ?? null, { ...options, actor: ctx.actor })
  const pauses = await retry.paused()
  if (ctx.options.json) json({ paused: pauses })
  else for (const p of pauses) out(`paused: ${describePause(p)}`)
  return 0
}

async function resume(retry, ctx) {
  const ended = await retry.resume(ctx.options.topic ?? null, { actor: ctx.actor })
  const pauses = await retry.paused()
  if (ctx.options.json) {
    json({ resumed: ended, paused: pauses })
    return 0
  }
  out(ended ? `resumed ${ctx.options.topic === undefined ? 'everything' : `topic ${clean(ctx.options.topic)}`}` : 'nothing was paused')
  for (const p of pauses) out(`still paused: ${describePause(p)}`)
  return 0
}

/** dlq reasons: the failure reasons, largest count first. */
async function reasons(retry, ctx, [name]) {
  const found = await retry.deadLetterReasons(name, filterOf(ctx.options))
  if (ctx.options.json) {
    json(found)
    return 0
  }
  if (!found.reasons.length) out(`no dead letters in ${clean(name)}${Object.keys(filterOf(ctx.options)).length ? ' match' : ''}`)
  for (const r of found.reasons) {
    const topics = Object.entries(r.topics)
      .map(([topic, n]) => `${clean(topic)} ${n}`)
      .join(', ')
    out(`${String(r.count).padStart(7)}  ${truncate(clean(r.reason), VALUE_WIDTH)}`)
    out(`         topics: ${topics}; last ${new Date(r.lastAt).toISOString()}`)
    out(`         e.g. ${truncate(clean(r.example), VALUE_WIDTH)}`)
  }
  const read = found.truncated
    ? `read the newest ${found.scanned} of ${found.total} dead letters (counts are of those)`
    : `read ${found.scanned} dead letter${found.scanned === 1 ? '' : 's'}`
  out(`${found.reasons.length} reason${found.reasons.length === 1 ? '' : 's'}; ${read}; filter one with --reason '<reason>'`)
  return 0
}


/** One line of the audit log: when, who, what, on what, how many, how it ended. */
function formatAudit(e) {
  const t = e.target || {}
  const on = [
    t.dlq !== undefined && `dlq ${clean(t.dlq)}`,
    t.id !== undefined && `id ${clean(t.id)}`,
    t.filter && Object.keys(t.filter).length > 0 && `filter ${clean(JSON.stringify(t.filter))}`,
    t.filter && Object.keys(t.filter).length === 0 && 'every dead letter',
    'topic' in t && (t.topic === null ? 'whole schedule' : `topic ${clean(t.topic)}`),
    t.job !== undefined && `job ${t.job}`,
  ].filter(Boolean)
  const outcome = e.outcome === 'ok' ? 'ok' : `${clean(e.outcome)}${e.error ? `: ${truncate(clean(e.error), VALUE_WIDTH)}` : ''}`
  return `${isoTime(e.at)}  ${clean(e.actor)}  ${clean(e.action)}  ${on.join(', ')}  count ${e.count}  ${outcome}`
}

async function audit(retry, ctx) {
  const options = {}
  if (ctx.options.limit !== undefined) options.limit = Number(ctx.options.limit)
  if (ctx.options.since !== undefined) options.since = time(ctx.options.since)
  if (ctx.options.cursor !== undefined) options.cursor = ctx.options.cursor
  let page
  try {
    page = await retry.auditLog(options)
  } catch (err) {
    // Everything auditLog is given comes from the command line.
    if (err && err.code === 'ERR_INVALID_ARG') throw new UsageError(errorText(err).replace('options.', '--'))
    throw err
  }
  if (ctx.options.json) {
    json(page)
    return 0
  }
  for (const e of page.entries) out(formatAudit(e))
  if (!page.entries.length) out(`no operator actions recorded for schedule ${clean(ctx.prefix)}${options.cursor ? ' after this cursor' : ''}`)
  if (page.cursor) out(`more: kafka-redis-retry audit --cursor ${clean(page.cursor)}${options.limit ? ` --limit ${options.limit}` : ''}${ctx.options.since ? ` --since ${JSON.stringify(clean(ctx.options.since))}` : ''}`)
  return 0
}

/**
 * Who this tool acts as in the audit log: user@host of the process running it (a user the
 * system cannot name is 'unknown'), bounded as `actor` must be.
 */
function cliActor() {
  let user
  try {
    user = os.userInfo().username
  } catch {
    user = process.env.USER || 'unknown'
  }
  return `${user || 'unknown'}@${os.hostname()}`.replace(/\p{Cc}/gu, '?').slice(0, 200)
}

const COMMANDS = { stats, history, 'dlq list': list, 'dlq reasons': reasons, 'dlq requeue': requeue, 'dlq remove': remove, pause, resume, audit, dashboard }

// ---- main ----

/** Where Redis is: --redis, or --sentinel; TLS from the --tls-* options. */
function redisConfig(options, ctx) {
  const readPem = (option) => {
    try {
      return require('fs').readFileSync(options[option])
    } catch (err) {
      throw new UsageError(`--${option} ${options[option]}: ${err.message}`)
    }
  }
  let tls
  if (options['tls-ca'] || options['tls-cert'] || options['tls-key'] || options['tls-insecure']) {
    tls = {}
    if (options['tls-ca']) tls.ca = readPem('tls-ca')
    if (options['tls-cert']) tls.cert = readPem('tls-cert')
    if (options['tls-key']) tls.key = readPem('tls-key')
    if (options['tls-insecure']) tls.rejectUnauthorized = false
  }
  if (!options.sentinel) return { redisUrl: ctx.redisUrl, tls }
  if (options.redis) throw new UsageError('--redis and --sentinel exclude each other')
  const sentinels = options.sentinel.split(',').map((address) => {
    const match = /^\s*\[?([^\]]*?)\]?:([0-9]+)\s*$/.exec(address)
    if (!match) throw new UsageError(`--sentinel takes HOST:PORT[,HOST:PORT...], got '${address}'`)
    return { host: match[1], port: Number(match[2]) }
  })
  ctx.redisUrl = `sentinel ${options['sentinel-name'] || 'mymaster'} via ${options.sentinel}`
  return {
    sentinel: { sentinels, name: options['sentinel-name'] || 'mymaster' },
    username: process.env.REDIS_USERNAME || undefined,
    password: process.env.REDIS_PASSWORD || undefined,
    tls,
  }
}

function usageError(message) {
  process.stderr.write(`error: ${message}\n${HINT}\n`)
  return 2
}

function errorText(err) {
  return err && err.code ? `${err.code}: ${err.message}` : String((err && err.message) || err)
}

async function main(argv) {
  let parsed
  try {
    const { options, positionals } = parseArgs(argv)
    if (options.help) {
      process.stdout.write(USAGE)
      return 0
    }
    if (options.version) {
      out(require('../package.json').version)
      return 0
    }
    parsed = { options, ...resolveCommand(options, positionals) }
  } catch (err) {
    if (err instanceof UsageError) return usageError(err.message)
    throw err
  }
  const { options, command, args } = parsed
  const ctx = {
    options,
    redisUrl: options.redis || process.env.REDIS_URL || 'redis://127.0.0.1:6379',
    prefix: options.prefix || 'kafka-retry',
    actor: cliActor(),
  }
  // The dashboard may show several schedules (--prefix a,b): the first gets `retry`.
  const firstPrefix = command === 'dashboard' ? ctx.prefix.split(',')[0] : ctx.prefix

  let KafkaRetry
  try {
    ;({ KafkaRetry } = require('..'))
  } catch (err) {
    process.stderr.write(`error: cannot load the kafka-redis-retry addon: ${err.message}\n`)
    return 1
  }
  let retry
  try {
    const config = {
      ...redisConfig(options, ctx),
      cluster: Boolean(options.cluster),
      shards: options.shards !== undefined ? Number(options.shards) : undefined,
      redisTimeoutMs: REDIS_TIMEOUT_MS,
    }
    ctx.newRetry = (keyPrefix) => new KafkaRetry({ ...config, keyPrefix })
    retry = ctx.newRetry(firstPrefix)
  } catch (err) {
    if (err instanceof UsageError) return usageError(err.message)
    // A bad --redis, --prefix or --shards value.
    if (err && err.code === 'ERR_INVALID_ARG') return usageError(errorText(err))
    process.stderr.write(`error: ${errorText(err)}\n`)
    return 1
  }
  try {
    return await COMMANDS[command](retry, ctx, args)
  } catch (err) {
    if (err instanceof UsageError) return usageError(err.message)
    // Everything `dlq list` passes comes from the command line (name, limit, cursor).
    if (command === 'dlq list' && err && err.code === 'ERR_INVALID_ARG') return usageError(errorText(err))
    // The schedule records its shard count: a different --shards is a usage error.
    if (err && err.code === 'ERR_INVALID_ARG' && /^config\.shards /.test(err.message)) {
      return usageError(`${errorText(err).replace('config.shards is', '--shards is')}`)
    }
    process.stderr.write(`error: ${errorText(err)}\n`)
    return 1
  } finally {
    await retry.close().catch(() => {})
  }
}

// `kafka-redis-retry dlq list x --all | head` closes stdout early: stop quietly.
process.stdout.on('error', (err) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode || 0)
  throw err
})

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (err) => {
    process.stderr.write(`error: ${(err && err.stack) || err}\n`)
    process.exitCode = 1
  },
)
