// Errors that retrying cannot fix, against Apache Kafka: a message larger than the topic's
// max.message.bytes, a topic that does not exist (auto-creation off), a topic the producer may not
// write (ACLs). Each is dead-lettered after maxPublishFailures refusals with the broker's error;
// a broker that cannot be reached never is.
//
// They need auto-creation off and an authorizer with SASL principals, whatever broker
// KAFKA_BROKERS names, so this file starts an Apache Kafka of its own from the jars
// `scripts/services.sh apache-kafka-jars` fetches: a PLAINTEXT listener whose anonymous clients
// are super users (the test's admin), and a SASL_PLAINTEXT listener where the package's producer
// logs in as `alice`. The transient case needs no broker at all.
const fs = require('fs')
const os = require('os')
const path = require('path')
const crypto = require('crypto')
const { spawn, execFileSync } = require('child_process')
const { Kafka, logLevel, AclResourceTypes, AclOperationTypes, AclPermissionTypes, ResourcePatternTypes } = require('kafkajs')
const { KafkaRetry } = require('../..')
const h = require('../helpers')

const ROOT = path.join(__dirname, '..', '..')
const opts = { delay: '0', maxRetry: '3', retryCount: '0' }

/** Apache Kafka's jars: KAFKA_RETRY_APACHE_JARS (scripts/test.sh), else fetched by the script. */
function apacheJars() {
  if (process.env.KAFKA_RETRY_APACHE_JARS) return process.env.KAFKA_RETRY_APACHE_JARS
  const out = execFileSync('bash', [path.join(ROOT, 'scripts', 'services.sh'), 'apache-kafka-jars'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
  return out.trim().split('\n').pop()
}

/** Starts one Apache Kafka node (KRaft combined) with auto-creation off and ACLs on. */
async function startLockedBroker() {
  const jars = apacheJars()
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kafka-redis-retry-locked-'))
  const [plain, sasl, controller] = await h.freePorts(3)
  const props = path.join(dir, 'server.properties')
  fs.writeFileSync(props, [
    'process.roles=broker,controller',
    'node.id=1',
    `controller.quorum.voters=1@127.0.0.1:${controller}`,
    `listeners=PLAINTEXT://127.0.0.1:${plain},SASL_PLAINTEXT://127.0.0.1:${sasl},CONTROLLER://127.0.0.1:${controller}`,
    `advertised.listeners=PLAINTEXT://127.0.0.1:${plain},SASL_PLAINTEXT://127.0.0.1:${sasl}`,
    'controller.listener.names=CONTROLLER',
    'inter.broker.listener.name=PLAINTEXT',
    'listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT',
    'sasl.enabled.mechanisms=PLAIN',
    'listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_alice="alice-secret";',
    'authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer',
    // PLAINTEXT and controller clients are ANONYMOUS: the admin; a topic without ACLs is open.
    'super.users=User:ANONYMOUS',
    'allow.everyone.if.no.acl.found=true',
    'auto.create.topics.enable=false',
    `log.dirs=${path.join(dir, 'data')}`,
    'num.partitions=1',
    'offsets.topic.replication.factor=1',
    'transaction.state.log.replication.factor=1',
    'transaction.state.log.min.isr=1',
    'share.coordinator.state.topic.replication.factor=1',
    'share.coordinator.state.topic.min.isr=1',
    'group.initial.rebalance.delay.ms=0',
    '',
  ].join('\n'))
  const java = ['-Xms128m', '-Xmx512m', '-cp', `${jars}/*`]
  // A cluster id starting with '-' would be read as an option by StorageTool.
  let id
  do id = crypto.randomBytes(16).toString('base64url')
  while (id.startsWith('-'))
  // Its output is kept so a refused config says why in the test's failure.
  execFileSync('java', [...java, 'kafka.tools.StorageTool', 'format', '-t', id, '-c', props], { stdio: ['ignore', 'pipe', 'pipe'] })
  const log = fs.openSync(path.join(dir, 'kafka.log'), 'a')
  const child = spawn('java', [...java, 'kafka.Kafka', props], { stdio: ['ignore', log, log] })
  const admin = new Kafka({ clientId: h.unique('admin'), brokers: [`127.0.0.1:${plain}`], logLevel: logLevel.NOTHING, retry: { retries: 30, initialRetryTime: 200, maxRetryTime: 1000 } }).admin()
  await admin.connect()
  await admin.describeCluster()
  const stop = async () => {
    await admin.disconnect().catch(() => {})
    child.kill('SIGKILL')
    await h.exited(child, 10000).catch(() => {})
    fs.rmSync(dir, { recursive: true, force: true })
  }
  return { plain: `127.0.0.1:${plain}`, sasl: `127.0.0.1:${sasl}`, admin, stop, log: path.join(dir, 'kafka.log') }
}

/** Pushes one message, waits for it to be dead-lettered; returns the dead letter and the events. */
async function refusedUntilDeadLettered(config, topic, value, maxPublishFailures = 3) {
  const prefix = h.unique('perm')
  const dlq = h.unique('dlq')
  const events = []
  const retry = new KafkaRetry({ keyPrefix: prefix, pollIntervalMs: 100, maxPublishFailures, onEvent: (e) => events.push(e), ...config })
  const redis = h.redisClient()
  try {
    await retry.queueListener(null, dlq)
    await retry.pushToQueue(topic, { event: 'Big', value }, opts)
    await h.waitFor(() => events.some((e) => e.type === 'deadLetter'), 60000, 100)
    const page = await retry.deadLetters(dlq)
    const stats = await retry.stats(dlq)
    const keys = h.scheduleKeys(prefix)
    const left = {
      due: await redis.zcard(keys.due),
      lease: await redis.zcard(keys.lease),
      entries: await redis.hlen(keys.entries),
      failures: await redis.exists(`{${prefix}}:failures`),
    }
    return { page, events, stats, left }
  } finally {
    await retry.close()
    redis.disconnect()
  }
}

function expectDeadLettered({ page, events, stats, left }, topic, maxPublishFailures, brokerText) {
  expect(page.items).toHaveLength(1)
  const [dead] = page.items
  expect(dead.topic).toBe(topic)
  expect(dead.error.name).toBe('KafkaPublishError')
  expect(dead.error.message).toMatch(brokerText)
  // Every refusal was one publish failure; the listener dead-lettered at the limit, not before.
  const refusals = events.filter((e) => e.type === 'error' && e.message.startsWith(`publishing to topic ${JSON.stringify(topic)} failed`))
  expect(refusals).toHaveLength(maxPublishFailures)
  expect(stats.publishFailures).toBe(maxPublishFailures)
  expect(stats.deadLetteredTotal).toBe(1)
  const why = events.find((e) => e.type === 'error' && /retrying cannot fix/.test(e.message))
  expect(why).toMatchObject({ code: 'ERR_KAFKA_PUBLISH' })
  expect(why.message).toMatch(brokerText)
  expect(events.filter((e) => e.type === 'deadLetter')).toEqual([expect.objectContaining({ topic, event: 'Big' })])
  expect(left).toEqual({ due: 0, lease: 0, entries: 0, failures: 0 })
}

beforeAll(h.requireServers)

test('a broker that cannot be reached is never a reason to dead-letter: retry count unchanged', async () => {
  const prefix = h.unique('down')
  const dlq = h.unique('dlq')
  const errors = []
  const port = await h.freePort()
  const retry = new KafkaRetry({
    keyPrefix: prefix,
    pollIntervalMs: 100,
    maxPublishFailures: 1,
    brokers: `127.0.0.1:${port}`,
    kafka: { 'message.timeout.ms': 500 },
    onEvent: (e) => { if (e.type === 'error') errors.push(e.message) },
  })
  const redis = h.redisClient()
  try {
    await retry.queueListener(null, dlq)
    await retry.pushToQueue('anywhere', { event: 'e', value: '{}' }, opts)
    await h.waitFor(async () => (await retry.stats(dlq)).publishFailures >= 4, 30000, 100)
    const stats = await retry.stats(dlq)
    expect(stats.publishFailures).toBeGreaterThanOrEqual(4)
    expect(stats.deadLettered).toBe(0)
    expect(stats.deadLetteredTotal).toBe(0)
    expect(errors.some((m) => /MessageTimedOut|timed out/i.test(m))).toBe(true)
    const keys = h.scheduleKeys(prefix)
    const [id] = await redis.hkeys(keys.entries)
    expect(h.decodeEntry(await redis.hget(keys.entries, id)).retryCount).toBe(1)
    expect(await redis.exists(`{${prefix}}:failures`)).toBe(0)
  } finally {
    await retry.close()
    redis.disconnect()
  }
})

describe('on a broker with auto-creation off and ACLs', () => {
  let broker
  beforeAll(async () => {
    broker = await startLockedBroker()
  }, 120000)
  afterAll(async () => {
    if (broker) await broker.stop()
  })

  const alice = () => ({
    'security.protocol': 'SASL_PLAINTEXT',
    'sasl.mechanisms': 'PLAIN',
    'sasl.username': 'alice',
    'sasl.password': 'alice-secret',
  })

  test('a message larger than the topic\'s max.message.bytes is dead-lettered after maxPublishFailures refusals', async () => {
    const topic = h.unique('small')
    await broker.admin.createTopics({
      topics: [{ topic, numPartitions: 1, replicationFactor: 1, configEntries: [{ name: 'max.message.bytes', value: '1024' }] }],
      waitForLeaders: true,
    })
    const value = JSON.stringify({ blob: 'x'.repeat(5 * 1024) })
    const outcome = await refusedUntilDeadLettered({ brokers: broker.sasl, kafka: alice() }, topic, value, 3)
    expectDeadLettered(outcome, topic, 3, /MessageSizeTooLarge/)
    expect(outcome.page.items[0].value).toEqual(JSON.parse(value))
  })

  test('a dead letter topic that refuses the dead letter too (as large): the dead letter is kept in the hash only', async () => {
    const [topic, deadLetterTopic] = [h.unique('small'), h.unique('small-dlt')]
    await broker.admin.createTopics({
      topics: [topic, deadLetterTopic].map((name) => ({ topic: name, numPartitions: 1, replicationFactor: 1, configEntries: [{ name: 'max.message.bytes', value: '1024' }] })),
      waitForLeaders: true,
    })
    const value = JSON.stringify({ blob: 'x'.repeat(5 * 1024) })
    const outcome = await refusedUntilDeadLettered({ brokers: broker.sasl, kafka: alice(), deadLetterTopic }, topic, value, 2)
    expectDeadLettered(outcome, topic, 2, /MessageSizeTooLarge/)
    const refusedByDlt = outcome.events.filter((e) => e.type === 'error' && e.message.startsWith(`the dead letter topic ${JSON.stringify(deadLetterTopic)} refused`))
    expect(refusedByDlt).toHaveLength(1)
    expect(refusedByDlt[0].message).toMatch(/MessageSizeTooLarge/)
    const offsets = await broker.admin.fetchTopicOffsets(deadLetterTopic)
    expect(offsets.map((o) => o.high)).toEqual(['0'])
  })

  test('a kafkajs producer: a MESSAGE_TOO_LARGE rejection is dead-lettered after maxPublishFailures too', async () => {
    const topic = h.unique('small-js')
    await broker.admin.createTopics({
      topics: [{ topic, numPartitions: 1, replicationFactor: 1, configEntries: [{ name: 'max.message.bytes', value: '1024' }] }],
      waitForLeaders: true,
    })
    const producer = new Kafka({ clientId: h.unique('js'), brokers: [broker.plain], logLevel: logLevel.NOTHING }).producer()
    await producer.connect()
    const prefix = h.unique('perm-js')
    const dlq = h.unique('dlq')
    const events = []
    const retry = new KafkaRetry({ keyPrefix: prefix, pollIntervalMs: 100, maxPublishFailures: 2, onEvent: (e) => events.push(e) })
    try {
      await retry.queueListener(producer, dlq)
      await retry.pushToQueue(topic, { event: 'Big', value: JSON.stringify({ blob: 'x'.repeat(5 * 1024) }) }, opts)
      await h.waitFor(() => events.some((e) => e.type === 'deadLetter'), 30000, 100)
      const { items } = await retry.deadLetters(dlq)
      expect(items).toHaveLength(1)
      expect(items[0].error.name).toBe('KafkaPublishError')
      expect(items[0].error.message).toMatch(/MESSAGE_TOO_LARGE/)
      expect((await retry.stats(dlq)).publishFailures).toBe(2)
    } finally {
      await retry.close()
      await producer.disconnect()
    }
  })

  // With the internal producer's own settings: librdkafka holds a message for a topic it has not
  // seen for topic.metadata.propagation.max.ms (10 s), then fails it with the broker's
  // UnknownTopicOrPartition, before message.timeout.ms (30 s) could call it a timeout.
  test('a topic that does not exist is dead-lettered after maxPublishFailures refusals', async () => {
    const topic = h.unique('missing')
    const outcome = await refusedUntilDeadLettered({ brokers: broker.sasl, kafka: alice() }, topic, '{"id":1}', 2)
    expectDeadLettered(outcome, topic, 2, /UnknownTopic/)
    expect((await broker.admin.listTopics()).includes(topic)).toBe(false)
  })

  test('a topic the producer may not write is dead-lettered after maxPublishFailures refusals', async () => {
    const topic = h.unique('forbidden')
    await broker.admin.createTopics({ topics: [{ topic, numPartitions: 1, replicationFactor: 1 }], waitForLeaders: true })
    await broker.admin.createAcls({
      acl: [{
        resourceType: AclResourceTypes.TOPIC,
        resourceName: topic,
        resourcePatternType: ResourcePatternTypes.LITERAL,
        principal: 'User:alice',
        host: '*',
        operation: AclOperationTypes.WRITE,
        permissionType: AclPermissionTypes.DENY,
      }],
    })
    const outcome = await refusedUntilDeadLettered({ brokers: broker.sasl, kafka: alice() }, topic, '{"id":2}', 2)
    expectDeadLettered(outcome, topic, 2, /TopicAuthorizationFailed/)
  })

  test('alice can write a topic without ACLs there (the listener and login work)', async () => {
    const topic = h.unique('open')
    await broker.admin.createTopics({ topics: [{ topic, numPartitions: 1, replicationFactor: 1 }], waitForLeaders: true })
    const events = []
    const retry = new KafkaRetry({ keyPrefix: h.unique('open'), pollIntervalMs: 100, brokers: broker.sasl, kafka: alice(), onEvent: (e) => events.push(e) })
    try {
      await retry.queueListener(null, h.unique('dlq'))
      await retry.pushToQueue(topic, { event: 'e', value: '{}' }, opts)
      await h.waitFor(() => events.some((e) => e.type === 'retry'), 30000, 100)
      expect(events.filter((e) => e.type === 'retry')).toHaveLength(1)
    } finally {
      await retry.close()
    }
  })
})
