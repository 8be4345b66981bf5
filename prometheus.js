// The gauges and counters of `retry.metrics()` in a prom-client registry, so a service that
// already serves prom-client's /metrics exposes kafka-redis-retry's on the same endpoint.
//
//   const client = require('prom-client')
//   const { registerMetrics } = require('kafka-redis-retry/prometheus')
//   registerMetrics(client.register, retry)                                   // one instance
//   registerMetrics(client.register, [{ retry: orders, dlqName: 'DEAD_LETTER_QUEUE' }, payments])
//
// prom-client is an optional peer dependency: it is required from the service's node_modules.
// Each scrape asks every registered instance for `metrics(dlqName)` once and sets the same names,
// `prefix` labels and values; a closed instance is dropped, one whose Redis fails is left out of
// that scrape (and its error passed to `onError`, default: ignored), so the endpoint keeps working;
// `kafka_retry_redis_up` then says 0 for its prefix (1 when metrics() answered), so an alert can
// tell "Redis is down" from "nothing scraped".
//
// `scrapeText(sources)` gives the same samples as Prometheus text without prom-client: the
// dashboard's GET /prometheus serves it.
'use strict'

/** name -> [prom-client type, help]; the same as crates/engine/src/observe/stats.rs writes (a test holds them equal). */
const METRICS = {
  kafka_retry_scheduled: ['gauge', 'Messages waiting in the schedule.'],
  kafka_retry_due: ['gauge', 'Scheduled messages already due.'],
  kafka_retry_inflight: ['gauge', 'Messages claimed by a listener and not yet acknowledged.'],
  kafka_retry_dead_letters: ['gauge', 'Messages in the dead letter hash.'],
  kafka_retry_published_total: ['counter', 'Messages re-published since the process started.'],
  kafka_retry_publish_failures_total: ['counter', 'Failed publish attempts since the process started.'],
  kafka_retry_dead_lettered_total: ['counter', 'Messages dead-lettered since the process started.'],
  kafka_retry_dead_letter_cap_exceeded: ['gauge', '1 when the dead letters exceed maxDeadLetters.'],
  kafka_retry_blocked_keys: ['gauge', 'Ordered retries: keys held back behind a message of theirs.'],
  kafka_retry_parked_messages: ['gauge', "Ordered retries: messages parked behind their key's head."],
  kafka_retry_events_dropped_total: ['counter', 'Listener events onEvent was too far behind to be given, since the instance was made.'],
  kafka_retry_topic_scheduled: ['gauge', 'Messages of the topic waiting in the schedule.'],
  kafka_retry_topic_due: ['gauge', 'Scheduled messages of the topic due (from the start of their due minute).'],
  kafka_retry_topic_leased: ['gauge', 'Messages of the topic claimed by a listener and not yet acknowledged.'],
  kafka_retry_topic_dead_letters: ['gauge', 'Dead letters of the topic in the dead letter hash.'],
  kafka_retry_topic_breaker_open: ['gauge', "1 while the topic's breaker is open or half-open (its retries held), 0 when closed."],
}

/**
 * Set here, not by metrics(): 1 when the instance's metrics() answered on this scrape, 0 when it
 * failed with ERR_REDIS_UNAVAILABLE (other errors leave it out: they say nothing about Redis).
 */
const REDIS_UP = 'kafka_retry_redis_up'
const REDIS_UP_HELP = '1 when metrics() read the schedule from Redis on this scrape, 0 when Redis did not answer.'

/** Every metric written, as `[name, [type, help]]`: those of metrics() and `kafka_retry_redis_up`. */
const EXPORTED = [...Object.entries(METRICS), [REDIS_UP, ['gauge', REDIS_UP_HELP]]]

/** The metrics labelled with a topic as well as the prefix. */
const PER_TOPIC = new Set(Object.keys(METRICS).filter((name) => name.startsWith('kafka_retry_topic_')))

/** One line of the text exposition: `name{prefix="..."} value` or `name{prefix="...",topic="..."} value`. */
const SAMPLE = /^([a-z_]+)\{prefix="((?:[^"\\]|\\.)*)"(?:,topic="((?:[^"\\]|\\.)*)")?\} (\S+)$/

const unescapeLabel = (text) => text.replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c))

/** Reads `metrics()` text into [{ name, prefix, value }] (and `topic` for the per topic gauges). */
function parseMetrics(text) {
  const samples = []
  for (const line of text.split('\n')) {
    const m = SAMPLE.exec(line)
    if (!m) continue
    const sample = { name: m[1], prefix: unescapeLabel(m[2]), value: Number(m[4]) }
    if (m[3] !== undefined) sample.topic = unescapeLabel(m[3])
    samples.push(sample)
  }
  return samples
}

/** Per registry: the sources read on a scrape, so a second call adds to the same metrics. */
const collectors = new WeakMap()

/**
 * Registers kafka-redis-retry's metrics in a prom-client registry (once per registry) and adds the
 * given instances to what they report. Returns a function that removes these instances again.
 *
 * @param {import('prom-client').Registry} registry e.g. `require('prom-client').register`
 * @param {object | object[]} sources a KafkaRetry, `{ retry, dlqName }`, or an array of them
 * @param {{ onError?: (err: Error) => void }} [options]
 */
function registerMetrics(registry, sources, options = {}) {
  if (!registry || typeof registry.registerMetric !== 'function') {
    throw Object.assign(new TypeError('registerMetrics: the first argument must be a prom-client Registry'), {
      code: 'ERR_INVALID_ARG',
    })
  }
  const list = (Array.isArray(sources) ? sources : [sources]).map((s) => (s && s.retry ? s : { retry: s }))
  for (const { retry } of list) {
    if (!retry || typeof retry.metrics !== 'function') {
      throw Object.assign(new TypeError('registerMetrics: each source must be a KafkaRetry or { retry, dlqName }'), {
        code: 'ERR_INVALID_ARG',
      })
    }
  }
  let collector = collectors.get(registry)
  if (!collector) {
    collector = create(registry)
    collectors.set(registry, collector)
  }
  const added = list.map((s) => ({ ...s, onError: options.onError }))
  collector.sources.push(...added)
  return () => {
    collector.sources = collector.sources.filter((s) => !added.includes(s))
  }
}

function create(registry) {
  const client = require('prom-client')
  const collector = { sources: [], pending: null }

  /** One read of every source per scrape: the collect() calls of a scrape start together. */
  const snapshot = () => {
    if (!collector.pending) {
      collector.pending = read(collector).finally(() => {
        collector.pending = null
      })
    }
    return collector.pending
  }

  for (const [name, [type, help]] of EXPORTED) {
    const Metric = type === 'counter' ? client.Counter : client.Gauge
    const metric = new Metric({
      name,
      help,
      labelNames: PER_TOPIC.has(name) ? ['prefix', 'topic'] : ['prefix'],
      registers: [],
      async collect() {
        const samples = await snapshot()
        this.reset()
        for (const s of samples) {
          if (s.name !== name) continue
          const labels = s.topic === undefined ? { prefix: s.prefix } : { prefix: s.prefix, topic: s.topic }
          if (type === 'counter') this.inc(labels, s.value)
          else this.set(labels, s.value)
        }
      },
    })
    registry.registerMetric(metric)
  }
  return collector
}

/** Prometheus's text exposition format (0.0.4), as prom-client writes it. */
const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'

const escapeLabel = (text) => String(text).replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')
const formatValue = (v) => (Number.isNaN(v) ? 'NaN' : v === Infinity ? '+Inf' : v === -Infinity ? '-Inf' : String(v))

/**
 * Merged samples as Prometheus text: every metric's HELP and TYPE (as prom-client writes them for a
 * registered metric with no samples too), then its samples.
 */
function exposition(samples) {
  const blocks = []
  for (const [name, [type, help]] of EXPORTED) {
    const lines = [`# HELP ${name} ${help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`, `# TYPE ${name} ${type}`]
    for (const s of samples) {
      if (s.name !== name) continue
      const topic = s.topic === undefined ? '' : `,topic="${escapeLabel(s.topic)}"`
      lines.push(`${name}{prefix="${escapeLabel(s.prefix)}"${topic}} ${formatValue(s.value)}`)
    }
    blocks.push(lines.join('\n'))
  }
  return `${blocks.join('\n\n')}\n`
}

/**
 * One scrape of the given sources (a KafkaRetry, `{ retry, dlqName }`, or an array of them) as
 * Prometheus text, read and merged as registerMetrics does, without prom-client. A source whose
 * Redis does not answer reports `kafka_retry_redis_up` 0 and nothing else; `onError` is given
 * its error.
 */
async function scrapeText(sources, options = {}) {
  const list = (Array.isArray(sources) ? sources : [sources]).map((s) => ({ ...(s && s.retry ? s : { retry: s }), onError: options.onError }))
  return exposition(await read({ sources: list }))
}

async function read(collector) {
  const results = await Promise.all(
    collector.sources.map(async (source) => {
      try {
        // Without a dlqName, metrics() counts the instance's own (its listener's, else
        // <keyPrefix>:dead-letters): named here, so a source naming the same hash is not added again.
        const dlqName = source.dlqName === undefined ? source.retry.dlqName : source.dlqName
        const samples = parseMetrics(await source.retry.metrics(dlqName))
        const up = { name: REDIS_UP, prefix: source.retry.keyPrefix, value: 1 }
        return [...samples.map((s) => ({ ...s, dlqName })), up]
      } catch (err) {
        if (err && err.code === 'ERR_CLOSED') {
          collector.sources = collector.sources.filter((s) => s !== source)
          return []
        }
        const down = err && err.code === 'ERR_REDIS_UNAVAILABLE' ? [{ name: REDIS_UP, prefix: source.retry.keyPrefix, value: 0 }] : []
        if (source.onError) {
          try {
            source.onError(err)
          } catch {
            // A throwing onError must not fail the scrape.
          }
        }
        return down
      }
    }),
  )
  return merge(results.flat())
}

/**
 * One sample per metric and schedule (`prefix`, and `topic` for the per topic gauges), however
 * many sources report it: two instances on one keyPrefix (say with different dlqNames) see the
 * same schedule, and the *_total counters are per schedule in the process, so each is counted
 * once (the highest value read, as they are read at slightly different moments; for
 * kafka_retry_redis_up the lowest). Dead letters
 * (of the schedule, and of each topic) are per dead letter hash: summed over the distinct
 * dlqNames of the schedule's sources.
 */
function merge(samples) {
  const out = new Map()
  const deadLetters = new Map() // name \n prefix \n topic -> { sample, byDlq: Map(dlqName -> value) }
  for (const s of samples) {
    const key = `${s.name}\n${s.prefix}\n${s.topic === undefined ? '' : s.topic}`
    if (s.name === 'kafka_retry_dead_letters' || s.name === 'kafka_retry_topic_dead_letters') {
      if (!deadLetters.has(key)) deadLetters.set(key, { sample: s, byDlq: new Map() })
      deadLetters.get(key).byDlq.set(s.dlqName === undefined ? '' : String(s.dlqName), s.value)
      continue
    }
    const seen = out.get(key)
    // Redis up: down when any instance of the schedule could not reach it.
    const wins = !seen || (s.name === REDIS_UP ? s.value < seen.value : s.value > seen.value)
    if (wins) out.set(key, { name: s.name, prefix: s.prefix, topic: s.topic, value: s.value })
  }
  for (const [key, { sample, byDlq }] of deadLetters) {
    let value = 0
    for (const v of byDlq.values()) value += v
    out.set(key, { name: sample.name, prefix: sample.prefix, topic: sample.topic, value })
  }
  return [...out.values()]
}

module.exports = { registerMetrics, scrapeText, exposition, parseMetrics, METRICS, REDIS_UP, CONTENT_TYPE }
