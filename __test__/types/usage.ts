// Type-checked by `npm run typecheck` (tsc --noEmit): the public API as a TypeScript service uses it.
import { KafkaRetry, KafkaRetryConfig, RetryHeadersObject, RetryProducer, RetryEvent, RetryStats, DeadLetterPage, DeadLetterFilter, RetryPause, PushItem, RetryHistory, RetryTopicStats, OperatorJob, DeadLetterReasons, RequeueOutcome, AuditPage, AuditEntry } from '../..'

const config: KafkaRetryConfig = {
  redisUrl: 'redis://127.0.0.1:6379',
  brokers: ['127.0.0.1:9092'],
  kafka: { 'client.id': 'svc', 'linger.ms': 5, 'enable.idempotence': false },
  keyPrefix: 'svc',
  pollIntervalMs: 500,
  leaseMs: 30000,
  batchSize: 100,
  backoff: { type: 'exponential', multiplier: 2, maxDelayMs: 60000, jitter: 'equal' },
  deadLetterTopic: 'orders.DLT',
  maxDeadLetters: 1000,
  migrateLegacy: true,
  onEvent: (event: RetryEvent) => {
    if (event.type === 'retry') console.log(event.retryCount, event.lateMs)
    if (event.type === 'deadLetterCap') console.log(event.count, event.max)
  },
  logger: console,
}

const listPolicy: KafkaRetryConfig = { backoff: { type: 'list', delaysMs: [1000, 5000, 30000] }, cluster: true, shards: 6 }
void listPolicy

const wrapper: RetryProducer = {
  async produce(topic: string, key: string, value: string, headers: Record<string, string>) {
    void topic, key, value, headers
  },
}

async function main(): Promise<void> {
  const retry = new KafkaRetry(config)
  const defaults = new KafkaRetry()
  const headers: RetryHeadersObject = KafkaRetry.headers({ retryCount: Buffer.from('1'), delay: '0.5' })
  const count: number = Number(headers.retryCount)
  void count
  await retry.pushToQueue('orders', { event: 'OrderCreated', value: JSON.stringify({ msgId: 'x' }) }, headers)
  await retry.pushToQueue('orders', { event: 'OrderCreated', value: { id: 1 } }, { delay: 0.01, maxRetry: 5, retryCount: 0 })
  await retry.queueListener(wrapper, 'DEAD_LETTER_QUEUE')
  await defaults.queueListener(null)
  const field: string = await retry.pushToDlq('DEAD_LETTER_QUEUE', { reason: 'manual' })
  void field
  await retry.pushToQueue('orders', { event: 'E', value: '{}' }, { ...headers, error: new Error('boom') })
  // The caller's own headers travel with the retry; KafkaRetry.headers keeps the W3C trace context.
  const kept = KafkaRetry.headers({ traceparent: Buffer.from('00-x'), 'x-tenant': 'acme' }, ['x-tenant'])
  const traceparent: Buffer | string | (Buffer | string)[] | undefined = kept.traceparent
  void traceparent
  await retry.pushToQueue('orders', { event: 'E', value: '{}' }, kept)
  const items: PushItem[] = [
    { topic: 'orders', message: { event: 'E', value: '{}' }, options: { ...KafkaRetry.headers({}), error: new Error('boom') } },
    { topic: 'payments', message: { event: 'E', value: { id: 1 } } },
  ]
  const stored: number = await retry.pushMany(items)
  void stored
  await retry.pushToQueue('orders', { event: 'E', value: '{}' }, { ...KafkaRetry.headers({}, true), tenant: 'acme', bin: Buffer.from([0]), list: ['a', Buffer.from('b')] })
  const page: DeadLetterPage = await retry.deadLetters('DEAD_LETTER_QUEUE', { limit: 10 })
  for (const item of page.items) {
    const when: number = item.diedAt
    void when
    const requeued: boolean = await retry.requeueDeadLetter('DEAD_LETTER_QUEUE', item.id)
    void requeued
  }
  const next = page.cursor ? await retry.deadLetters('DEAD_LETTER_QUEUE', { cursor: page.cursor }) : null
  void next
  const all: number = await retry.requeueAllDeadLetters('DEAD_LETTER_QUEUE')
  const removed: boolean = await retry.removeDeadLetter('DEAD_LETTER_QUEUE', 'id')
  const migrated: number = await retry.migrateLegacy()
  const stats: RetryStats = await retry.stats()
  const text: string = await retry.metrics()
  void all, removed, migrated, stats.deadLetterCapExceeded, text
  // Read-only: the schedule and the dead letter queue stats() counts by default.
  const schedule: string = retry.keyPrefix
  const defaultDlq: string = retry.dlqName
  // @ts-expect-error keyPrefix is read-only
  retry.keyPrefix = 'other'
  void schedule, defaultDlq
  // Operator controls: filtered search, requeue and removal, pauses.
  const filter: DeadLetterFilter = { topic: 'orders', errorContains: 'timeout', search: 'acme', since: 0, until: Date.now() }
  const found: DeadLetterPage = await retry.deadLetters('DEAD_LETTER_QUEUE', { ...filter, limit: 50, cursor: null })
  const scanned: number = found.scanned
  const matched: number = await retry.requeueDeadLetters('DEAD_LETTER_QUEUE', filter, { dryRun: true, ratePerSec: 100, delayMs: 0 })
  const stopper = new AbortController()
  const moved: number = await retry.requeueDeadLetters('DEAD_LETTER_QUEUE', filter, {
    ratePerSec: 100, signal: stopper.signal, onProgress: (requeued: number) => { void requeued.toFixed() },
  })
  // @ts-expect-error onProgress is told a number
  void retry.requeueDeadLetters('DEAD_LETTER_QUEUE', filter, { onProgress: (requeued: string) => requeued })
  void moved
  const dropped: number = await retry.removeDeadLetters('DEAD_LETTER_QUEUE', { errorContains: 'schema' }, { dryRun: false })
  void retry.removeDeadLetters('DEAD_LETTER_QUEUE', {}, { signal: stopper.signal, onProgress: (removedSoFar: number) => removedSoFar })
  // Failure reasons, the cap and the replay guard (issue 30).
  const why: DeadLetterReasons = await retry.deadLetterReasons('DEAD_LETTER_QUEUE', { topic: 'orders' })
  const top: string = why.reasons[0].reason
  const reasonOfOrders: number | undefined = why.reasons[0].topics.orders
  void why.truncated, reasonOfOrders
  const capped: number = await retry.requeueDeadLetters('DEAD_LETTER_QUEUE', { reason: top }, { maxCount: 1000, force: true })
  const outcome: RequeueOutcome = await retry.requeueDeadLettersDetailed('DEAD_LETTER_QUEUE', { reason: top }, { dryRun: true })
  void capped, outcome.requeued, outcome.skipped
  void retry.removeDeadLetters('DEAD_LETTER_QUEUE', { reason: top }, { maxCount: 10 })
  const replays: number = found.items[0].replays
  void replays
  // @ts-expect-error force is a boolean
  void retry.requeueDeadLetters('DEAD_LETTER_QUEUE', {}, { force: 'yes' })
  void new KafkaRetry({ maxReplays: 5 })
  // Operator jobs: records of long bulk operations, kept in Redis beside the schedule.
  const job: OperatorJob = await retry.startJob({ kind: 'requeue', dlq: 'DEAD_LETTER_QUEUE' }, { leaseMs: 15000 })
  const answer: 'running' | 'stop' | 'lost' = await retry.reportJob(job.id, job.run, { done: 10, leaseMs: 15000 })
  await retry.reportJob(job.id, job.run, { done: 12, state: 'stopped' })
  // @ts-expect-error a running job is not a final state
  void retry.reportJob(job.id, job.run, { done: 12, state: 'running' })
  const asked: boolean = await retry.stopJob(job.id)
  const continued: OperatorJob | null = await retry.continueJob(job.id)
  const keptJobs: OperatorJob[] = await retry.jobs()
  const one: OperatorJob | null = await retry.job(job.id)
  void answer, asked, continued?.run, keptJobs[0]?.state, one?.interruptions, job.spec['kind']
  const pausedNow: boolean = await retry.pause('orders', { untilMs: Date.now() + 60000 })
  await retry.pause()
  const pauses: RetryPause[] = await retry.paused()
  const resumed: boolean = await retry.resume('orders')
  await retry.resume()
  void scanned, matched, dropped, pausedNow, pauses[0]?.topic, pauses[0]?.untilMs, resumed, stats.paused
  void new KafkaRetry({ maxPublishRate: 200 })
  // Who acted, and the audit log.
  await retry.requeueDeadLetters('DLQ', { topic: 'orders' }, { actor: 'alice', dryRun: false })
  await retry.removeDeadLetter('DLQ', 'id-1', { actor: 'alice' })
  await retry.resume('orders', { actor: 'alice' })
  await retry.stopJob(1, { actor: 'alice' })
  const log: AuditPage = await retry.auditLog({ limit: 50, since: Date.now() - 3600e3 })
  const entry: AuditEntry | undefined = log.entries[0]
  const nextAudit: string | null = log.cursor
  const outcomeOk: boolean = entry?.outcome === 'ok' || entry?.outcome === 'ERR_REDIS_UNAVAILABLE'
  void nextAudit, outcomeOk, entry?.at, entry?.actor, entry?.action, entry?.target.dlq, entry?.target.filter?.topic, entry?.count, entry?.error
  // @ts-expect-error actor is a string
  void retry.pause('orders', { actor: 42 })
  // Per topic and over time.
  const orders: RetryTopicStats | undefined = stats.topics['orders']
  const late: number = stats.lateMs
  const history: RetryHistory = await retry.history({ minutes: 60 })
  const pushedLastMinute: number = history.pushed[history.minutes - 1]
  const perTopic: number[] = history.topics['orders']?.deadLettered ?? []
  await retry.history()
  void orders?.scheduled, orders?.due, orders?.leased, orders?.deadLetters, late, history.from, pushedLastMinute, perTopic
  try {
    await retry.pushToQueue('', { event: 'e', value: '{}' })
  } catch (err) {
    if ((err as { code?: string }).code === 'ERR_INVALID_ARG') console.log('bad input')
  }
  await retry.close()
  await defaults.close()
}

void main
