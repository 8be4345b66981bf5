// docs/troubleshooting.md quotes what the user sees: each quoted text is what the package prints
// (produced here where no server is needed, else found in the source that writes it), so a reworded
// error fails this test instead of leaving the page quoting a text nobody sees any more.
const fs = require('fs')
const path = require('path')
const { KafkaRetry } = require('../..')
const h = require('../helpers')

const ROOT = path.join(__dirname, '..', '..')
const PAGE = fs.readFileSync(path.join(ROOT, 'docs', 'troubleshooting.md'), 'utf8')
const read = (file) => fs.readFileSync(path.join(ROOT, file), 'utf8')

/** The fenced block under the `## ` heading that starts with `heading`. */
function block(heading) {
  const at = PAGE.indexOf(`\n## ${heading}`)
  expect(at).toBeGreaterThan(0)
  return /```\n([\s\S]*?)\n```/.exec(PAGE.slice(at))[1]
}

test('`config has no key`: the text the constructor throws', () => {
  let err
  try {
    new KafkaRetry({ redisURL: 'redis://127.0.0.1:6379' })
  } catch (e) {
    err = e
  }
  expect(`${err.code}: ${err.message}`).toBe(block('`config has no key`'))
})

test('`message.value must be JSON text`: the text pushToQueue rejects with', async () => {
  const retry = new KafkaRetry({ keyPrefix: h.unique('trouble') })
  try {
    const err = await h.rejection(retry.pushToQueue('orders', { event: 'e', value: 'hello' }, {}))
    expect(`${err.code}: ${err.message}`).toBe(block('`message.value must be JSON text`'))
  } finally {
    await retry.close()
  }
})

test('the 2-minute default is what KafkaRetry.headers() gives a message without headers', () => {
  expect(KafkaRetry.headers(undefined)).toEqual({ delay: '2', maxRetry: '3', retryCount: '0' })
  expect(PAGE).toContain("`{ delay: '2', maxRetry: '3', retryCount: '0' }`")
})

test('NOPERM, SASL and the empty page: the texts come from the code that writes them', () => {
  const noperm = block('`NOPERM`').split('\n')[0]
  expect(noperm).toBe('ERR_REDIS_UNAVAILABLE: Redis read of the recorded shard count failed')
  expect(read('crates/engine/src/store/schedule/shard_record.rs')).toContain('"read of the recorded shard count"')
  expect(read('crates/engine/src/error.rs')).toContain('format!("Redis {what} failed")')

  const sasl = block('SASL or TLS errors')
  expect(sasl).toMatch(/^publishing to topic "orders" failed\n/)
  const errors = read('crates/engine/src/publisher/errors.rs')
  expect(errors).toContain('format!("publishing to topic {topic:?} failed")')
  expect(errors).toContain('"the producer\'s last broker error: {reason}"')
  expect(read('crates/engine/src/publisher/kafka.rs')).toContain('.set("message.timeout.ms", "30000")')

  expect(PAGE).toContain('`no dead letters in kafka-retry:dead-letters`')
  const bin = read('bin/kafka-redis-retry.js')
  expect(bin).toContain('`no dead letters in ${clean(name)}')
  expect(bin).toContain('`${ctx.prefix}:dead-letters`')
})
