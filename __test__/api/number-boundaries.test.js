// Every number a caller can give, at its boundary (issue 28, item 14): zero, negative zero, a
// subnormal, a tiny and a huge number, a negative one, a fraction where a whole number is meant,
// NaN and the infinities, thrown at every numeric option of every method and config key, and at
// every numeric flag of the CLI. Each is either a valid value (listed, and then it must work) or
// an ERR_INVALID_ARG naming the option (the CLI: a usage error, exit 2, naming the flag); never a
// panic ("GenericFailure: Panic in async function"), and the messages stored meanwhile are intact.
// A requeue that fails midway says how many it moved.
'use strict'

const path = require('path')
const { execFile } = require('child_process')
const { KafkaRetry } = require('../..')
const h = require('../helpers')

const BIN = path.join(__dirname, '..', '..', 'bin', 'kafka-redis-retry.js')

/** The values thrown at every number, by name. */
const EXTREMES = {
  zero: 0,
  negativeZero: -0,
  subnormal: 5e-324,
  tiny: 1e-300,
  negative: -1,
  fraction: 1.5,
  huge: 1e308,
  beyondSafe: 2 ** 53 + 2,
  NaN: NaN,
  Infinity: Infinity,
  negativeInfinity: -Infinity,
}

/** 'resolve', or the error a call threw or rejected with. */
async function outcome(call) {
  try {
    await call()
    return 'resolve'
  } catch (err) {
    return err
  }
}

const prefix = h.unique('numbers')
const scratchPrefix = h.unique('numbers-scratch')
const dlq = `${prefix}:dead-letters`
const scratchDlq = `${scratchPrefix}:dead-letters`
const topic = h.unique('numbers-topic')
let retry
let scratch
let before

/** Everything stored under the schedule and dead letter queue the calls aim at. */
async function snapshot(redis) {
  const keys = h.scheduleKeys(prefix)
  return {
    due: await redis.zrange(keys.due, 0, -1, 'WITHSCORES'),
    entries: await redis.hgetall(keys.entries),
    lease: await redis.zrange(keys.lease, 0, -1),
    deadLetters: await redis.hgetall(dlq),
    index: await redis.zrange(`${dlq}:index`, 0, -1, 'WITHSCORES'),
    paused: await redis.hgetall(`{${prefix}}:paused`),
  }
}

beforeAll(async () => {
  await h.requireServers()
  retry = new KafkaRetry({ redisUrl: h.REDIS_URL, keyPrefix: prefix })
  scratch = new KafkaRetry({ redisUrl: h.REDIS_URL, keyPrefix: scratchPrefix })
  for (let i = 0; i < 2; i++) {
    await retry.pushToQueue(topic, { event: `e${i}`, value: { i } }, { delay: '60' })
  }
  // Three dead letters of `topic`, so a paced requeue would move (and pace) more than one.
  const now = Date.now()
  for (let i = 0; i < 3; i++) {
    await retry.pushToDlq(dlq, { topic, event: `d${i}`, value: { i }, options: { delay: '2', maxRetry: '3', retryCount: '4' }, diedAt: now - i * 1000, keyPrefix: prefix })
  }
  const redis = h.redisClient()
  try {
    before = await snapshot(redis)
  } finally {
    redis.disconnect()
  }
  expect(Object.keys(before.entries)).toHaveLength(2)
  expect(Object.keys(before.deadLetters)).toHaveLength(3)
})

afterAll(async () => {
  await Promise.all([retry, scratch].map((r) => r && r.close()))
  const redis = h.redisClient()
  try {
    for (const pattern of [`*${prefix}*`, `*${scratchPrefix}*`]) {
      const keys = await redis.keys(pattern)
      if (keys.length) await redis.del(...keys)
    }
  } finally {
    redis.disconnect()
  }
})

const message = (i) => ({ event: `n${i}`, value: { n: i } })
let calls = 0

/**
 * Every numeric argument: `call(value)` passes `value` there (and only there); `valid` is a value
 * that must work; `accepts` are the extremes that are valid values of it; `extra` more values it
 * must refuse; `skip` extremes not thrown at it; `names` what its error must name.
 */
const METHODS = [
  // The constructor: every numeric config key.
  ...[
    ['pollIntervalMs', 500],
    ['leaseMs', 5000],
    ['batchSize', 10],
    ['redisTimeoutMs', 2000],
    ['dedupeWindowMs', 1000, ['zero', 'negativeZero']],
    ['shards', 1],
    ['maxDeadLetters', 10, ['zero', 'negativeZero']],
    ['maxPublishFailures', 3],
    ['maxPublishRate', 100, ['fraction'], [0.0009, 2e9]],
    ['waitReplicas', 0, ['zero', 'negativeZero']],
    ['waitTimeoutMs', 500],
  ].map(([key, valid, accepts = [], extra = []]) => ({
    label: `new KafkaRetry({ ${key} })`,
    names: `config.${key}`,
    valid,
    accepts,
    extra,
    call: async (value) => new KafkaRetry({ redisUrl: h.REDIS_URL, keyPrefix: scratchPrefix, [key]: value }).close(),
  })),
  {
    label: 'new KafkaRetry({ backoff: { multiplier } })',
    names: 'config.backoff.multiplier',
    valid: 2,
    accepts: ['fraction'],
    call: async (value) => new KafkaRetry({ keyPrefix: scratchPrefix, backoff: { type: 'exponential', multiplier: value } }).close(),
  },
  {
    label: 'new KafkaRetry({ backoff: { maxDelayMs } })',
    names: 'config.backoff.maxDelayMs',
    valid: 60000,
    accepts: ['zero', 'negativeZero'],
    call: async (value) => new KafkaRetry({ keyPrefix: scratchPrefix, backoff: { type: 'exponential', maxDelayMs: value } }).close(),
  },
  {
    label: 'new KafkaRetry({ backoff: { delaysMs: [n] } })',
    names: 'config.backoff.delaysMs[0]',
    valid: 1000,
    accepts: ['zero', 'negativeZero'],
    call: async (value) => new KafkaRetry({ keyPrefix: scratchPrefix, backoff: { type: 'list', delaysMs: [value] } }).close(),
  },
  {
    label: 'new KafkaRetry({ sentinel: { sentinels: [{ port }] } })',
    names: 'config.sentinel.sentinels[0].port',
    valid: 26379,
    call: async (value) => new KafkaRetry({ keyPrefix: scratchPrefix, sentinel: { name: 'm', sentinels: [{ host: '127.0.0.1', port: value }] } }).close(),
  },
  // The retry options of a push, as numbers and as the text a header carries.
  ...['pushToQueue', 'pushMany', 'park', 'takeTurn'].flatMap((method) => [
    ['delay', 0.5, ['zero', 'negativeZero', 'subnormal', 'tiny', 'fraction']],
    ['maxRetry', 3, ['zero', 'negativeZero']],
    ['retryCount', 0, ['zero', 'negativeZero']],
  ].flatMap(([option, valid, accepts]) => [false, true].map((asText) => ({
    label: `${method}(topic, message, { ${option}${asText ? ' as text' : ''} })`,
    names: `options.${option}`,
    valid,
    // -0 as text is '0'; the others read the same as text.
    accepts,
    text: asText,
    call: async (value) => {
      const options = { [option]: asText ? String(value) : value }
      const i = calls++
      if (method === 'pushMany') return scratch.pushMany([{ topic, message: message(i), options }])
      if (method === 'park' || method === 'takeTurn') return scratch[method](topic, { ...message(i), event: `k${i}` }, options)
      return scratch.pushToQueue(topic, message(i), options)
    },
  })))),
  {
    label: 'pushToDlq(dlq, { diedAt })',
    names: 'entry.diedAt',
    valid: Date.now(),
    // JSON has no -0, NaN or Infinity: they are 0 and null (no time of death: now).
    accepts: ['zero', 'negativeZero', 'NaN', 'Infinity', 'negativeInfinity'],
    call: (value) => scratch.pushToDlq(scratchDlq, { topic, event: 'x', value: 1, diedAt: value }),
  },
  {
    label: 'deadLetters(dlq, { limit })',
    names: 'page.limit',
    valid: 10,
    extra: [10001],
    call: (value) => retry.deadLetters(dlq, { limit: value }),
  },
  ...['since', 'until'].flatMap((bound) => [
    {
      label: `deadLetters(dlq, { ${bound} })`,
      names: `.${bound}`,
      valid: Date.now(),
      accepts: ['zero', 'negativeZero'],
      call: (value) => retry.deadLetters(dlq, { [bound]: value }),
    },
    {
      label: `requeueDeadLetters(dlq, { ${bound} }, { dryRun })`,
      names: `.${bound}`,
      valid: Date.now(),
      accepts: ['zero', 'negativeZero'],
      call: (value) => retry.requeueDeadLetters(dlq, { [bound]: value }, { dryRun: true }),
    },
    {
      label: `removeDeadLetters(dlq, { ${bound} }, { dryRun })`,
      names: `.${bound}`,
      valid: Date.now(),
      accepts: ['zero', 'negativeZero'],
      call: (value) => retry.removeDeadLetters(dlq, { [bound]: value }, { dryRun: true }),
    },
  ]),
  {
    // Not a dry run: three dead letters match, so a rate that got through would pace real moves.
    label: 'requeueDeadLetters(dlq, { topic }, { ratePerSec })',
    names: 'options.ratePerSec',
    valid: null,
    // 1.5 a second is a pace: it would move them.
    skip: ['fraction'],
    extra: [0.0009, 2e6],
    call: (value) => retry.requeueDeadLetters(dlq, { topic }, { ratePerSec: value }),
  },
  {
    label: 'requeueDeadLetters(dlq, {}, { delayMs, dryRun })',
    names: 'options.delayMs',
    valid: 1000,
    accepts: ['zero', 'negativeZero'],
    extra: [366 * 86400000],
    call: (value) => retry.requeueDeadLetters(dlq, {}, { delayMs: value, dryRun: true }),
  },
  {
    label: 'requeueDeadLetter(dlq, id, { delayMs })',
    names: 'options.delayMs',
    valid: 1000,
    accepts: ['zero', 'negativeZero'],
    // No such id: a valid delay resolves to false and moves nothing.
    call: (value) => retry.requeueDeadLetter(dlq, 'no-such-id', { delayMs: value }),
  },
  {
    label: 'pause(topic, { untilMs })',
    names: 'options.untilMs',
    // Already past: resolves to false, pauses nothing.
    valid: 1000,
    call: (value) => retry.pause(topic, { untilMs: value }),
  },
  {
    label: 'history({ minutes })',
    names: 'options.minutes',
    valid: 60,
    extra: [2881],
    call: (value) => retry.history({ minutes: value }),
  },
]

describe('every number at its boundary', () => {
  test('each method and config key takes its valid values and refuses the rest with ERR_INVALID_ARG, never a panic', async () => {
    const wrong = []
    for (const target of METHODS) {
      if (target.valid !== null) {
        const got = await outcome(() => target.call(target.valid))
        if (got !== 'resolve') wrong.push(`${target.label} = ${target.valid} (valid): ${got.code}: ${got.message}`)
      }
      const values = [
        ...Object.entries(EXTREMES).filter(([name]) => !(target.skip || []).includes(name)),
        ...(target.extra || []).map((v) => [String(v), v]),
      ]
      for (const [name, value] of values) {
        const got = await outcome(() => target.call(value))
        const shown = `${target.label} = ${Object.is(value, -0) ? '-0' : String(value)}`
        if ((target.accepts || []).includes(name)) {
          if (got !== 'resolve') wrong.push(`${shown} (valid): ${got.code}: ${got.message}`)
        } else if (got === 'resolve') {
          wrong.push(`${shown}: accepted`)
        } else if (got.code !== 'ERR_INVALID_ARG' || !got.message.includes(target.names) || /panic/i.test(got.message)) {
          wrong.push(`${shown}: ${got.code}: ${got.message}`)
        }
      }
    }
    expect(wrong).toEqual([])
  })

  test('a page cursor that is no rank of the index is ERR_INVALID_ARG (Redis would refuse it as out of range)', async () => {
    for (const cursor of ['18446744073709551615', '9223372036854775807', '4294967296', '-1', '1.5', '1e3', 'NaN']) {
      for (const filter of [{}, { topic }]) {
        await expect(retry.deadLetters(dlq, { ...filter, cursor })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG', message: expect.stringContaining('cursor') })
      }
    }
    expect((await retry.deadLetters(dlq, { cursor: '4294967295' })).items).toEqual([])
  })

  test('the messages and dead letters stored before are intact, and nothing was paused', async () => {
    const redis = h.redisClient()
    try {
      expect(await snapshot(redis)).toEqual(before)
    } finally {
      redis.disconnect()
    }
  })
})

/** Runs the CLI; resolves to { code, stdout, stderr }. */
function run(args) {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [BIN, ...args], { env: { ...process.env, REDIS_URL: h.REDIS_URL }, timeout: 20000, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') return reject(err)
      resolve({ code: err ? err.code : 0, stdout, stderr })
    })
  })
}

// The numbers of the command line as text: each flag gets these and its own.
const CLI_NUMBERS = ['0', '-0', '0.0000000000000000000001', '1e-300', '4.9e-324', '-1', '1.5', '1e308', '99999999999999999999999', 'NaN', 'Infinity', '-Infinity']

/** Every numeric flag: the command it goes with, the values it must refuse besides CLI_NUMBERS, those of CLI_NUMBERS it takes. */
const FLAGS = [
  { flag: 'shards', command: ['stats'] },
  { flag: 'port', command: ['dashboard'], accepts: ['0'], extra: ['65536'] },
  { flag: 'minutes', command: ['history'], extra: ['2881'] },
  { flag: 'limit', command: ['dlq', 'list', dlq], extra: ['10001'] },
  { flag: 'since', command: ['dlq', 'list', dlq], accepts: ['0'], extra: ['99999999999999999999d', '9000000000000001', '275761-01-01'] },
  { flag: 'until', command: ['dlq', 'remove', dlq, '--dry-run'], accepts: ['0'], extra: ['99999999999999999999d', '9000000000000001'] },
  // 1.5 a second is a pace: it would move them.
  { flag: 'rate', command: ['dlq', 'requeue', dlq, '--topic', topic], accepts: ['1.5'], extra: ['0.0009', '2000000'] },
  { flag: 'delay', command: ['dlq', 'requeue', dlq, '--topic', topic, '--dry-run'], extra: ['99999999999999999999d', '366d', '1e308s'] },
  { flag: 'for', command: ['pause', '--topic', topic], extra: ['0s', '0.0001ms', '99999999999999999999d', '366d'] },
]

describe('every numeric flag of the CLI at its boundary', () => {
  test('a bad number is a usage error naming its flag (exit 2), never a panic', async () => {
    const wrong = []
    for (const { flag, command, accepts = [], extra = [] } of FLAGS) {
      for (const value of [...CLI_NUMBERS, ...extra]) {
        if (accepts.includes(value)) continue
        // --flag=value: `--flag -1` would read -1 as an option of its own.
        const { code, stdout, stderr } = await run([...command, `--${flag}=${value}`])
        if (code !== 2 || stdout !== '' || !stderr.startsWith(`error: --${flag} must be`) || /panic/i.test(stderr)) {
          wrong.push(`--${flag} ${value}: exit ${code}: ${stderr.split('\n')[0]}`)
        }
      }
    }
    expect(wrong).toEqual([])
  }, 300000)

  test('the messages and dead letters stored before are intact, and nothing was paused', async () => {
    const redis = h.redisClient()
    try {
      expect(await snapshot(redis)).toEqual(before)
    } finally {
      redis.disconnect()
    }
  })
})

describe('a requeue that fails midway', () => {
  test('says how many it moved, in its error and to onProgress', async () => {
    const good = h.unique('numbers-good')
    const broken = h.unique('numbers-broken')
    const failing = `${good}:dead-letters`
    const redis = h.redisClient()
    try {
      // The broken schedule's due set is a string: its requeue fails (WRONGTYPE) after the good
      // one, the newest, was moved.
      await redis.set(h.scheduleKeys(broken).due, 'not a sorted set')
      const now = Date.now()
      await retry.pushToDlq(failing, { topic, event: 'good', value: 1, diedAt: now, keyPrefix: good })
      await retry.pushToDlq(failing, { topic, event: 'broken', value: 2, diedAt: now - 1000, keyPrefix: broken })
      const reported = []
      const err = await outcome(() => retry.requeueDeadLetters(failing, {}, { onProgress: (n) => reported.push(n) }))
      expect(err).not.toBe('resolve')
      expect(err.message).not.toMatch(/panic/i)
      expect(err.requeued).toBe(1)
      expect(err.message).toContain('requeued 1 before this failure')
      await h.waitFor(() => reported[reported.length - 1] === 1, 10000)
      expect(await redis.zcard(h.scheduleKeys(good).due)).toBe(1)
      expect(Object.values(await redis.hgetall(failing)).map((text) => JSON.parse(text).event)).toEqual(['broken'])
    } finally {
      const keys = [...(await redis.keys(`*${good}*`)), ...(await redis.keys(`*${broken}*`))]
      if (keys.length) await redis.del(...keys)
      redis.disconnect()
    }
  })
})
