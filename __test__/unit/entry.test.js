// The package's entry (lib/index.js) over napi's loader (native.js): it hands the native module
// the JavaScript of lib/ and exports `KafkaRetry`, a JavaScript class extending the native one
// (lib/kafka-retry.js: statics, getters and `instanceof` are napi's).
// Needs the built addon, no server (nothing here connects). Each case runs in a child Node:
// jest loads a .node file once per process, so the state before the entry ran cannot be seen
// from a test file.
'use strict'

const path = require('path')
const { execFileSync } = require('child_process')

const ROOT = path.join(__dirname, '..', '..')

/** Runs `source` in a child Node at the repository root; what it printed, parsed. */
const inChild = (source) =>
  JSON.parse(execFileSync(process.execPath, ['-e', source], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, REDIS_URL: 'redis://127.0.0.1:1' } }))

test('the entry exports a class extending the native one and the loader\'s target, not installHelpers', () => {
  const seen = inChild(`
    const pkg = require('.')
    const native = require('./native.js')
    console.log(JSON.stringify({
      keys: Object.keys(pkg),
      extends: Object.getPrototypeOf(pkg.KafkaRetry) === native.KafkaRetry,
      instance: (() => {
        const retry = new pkg.KafkaRetry({ keyPrefix: 'entry-test' })
        const seen = [retry instanceof pkg.KafkaRetry, retry instanceof native.KafkaRetry, retry.keyPrefix]
        retry.close().catch(() => {})
        return seen
      })(),
      name: pkg.KafkaRetry.name,
      target: pkg.__napiBindingTarget,
      headers: pkg.KafkaRetry.headers(),
      main: require.resolve('.') === require.resolve('./lib/index.js'),
    }))
  `)
  expect(seen).toEqual({
    keys: ['KafkaRetry', '__napiBindingTarget'],
    extends: true,
    instance: [true, true, 'entry-test'],
    name: 'KafkaRetry',
    target: 'native',
    headers: { delay: '2', maxRetry: '3', retryCount: '0' },
    main: true,
  })
})

test('the native module alone (no entry) says so when it needs the JavaScript layer; through the entry it has it', () => {
  const run = (load) =>
    inChild(`
      const { KafkaRetry } = require(${JSON.stringify(load)})
      const retry = new KafkaRetry({ keyPrefix: 'entry-test' })
      let outcome
      try {
        // A message that is not an object: handleInOrder's JavaScript rejects it, before Redis.
        retry.handleInOrder('t', null, () => {}).then(
          () => console.log(JSON.stringify({ outcome: 'resolved' })),
          (e) => console.log(JSON.stringify({ outcome: 'rejected', code: e.code, message: e.message })),
        ).finally(() => retry.close().catch(() => {}))
      } catch (e) {
        console.log(JSON.stringify({ outcome: 'threw', message: e.message }))
        retry.close().catch(() => {})
      }
    `)
  expect(run('./native.js')).toEqual({
    outcome: 'threw',
    message: 'kafka-redis-retry: the native module was loaded without its JavaScript layer: require the package (lib/index.js), not native.js',
  })
  expect(run('.')).toEqual({ outcome: 'rejected', code: 'ERR_INVALID_ARG', message: 'message must be the kafkajs message eachMessage receives, got null' })
})

test('installHelpers refuses an object without every helper', () => {
  const seen = inChild(`
    const native = require('./native.js')
    const errors = []
    for (const helpers of [{}, { publishBatch() {}, producerShape() {}, handleInOrder() {}, deliverEvents() {}, progressGuard: 1 }]) {
      try {
        native.installHelpers(helpers)
        errors.push(null)
      } catch (e) {
        errors.push(e.message)
      }
    }
    console.log(JSON.stringify(errors))
  `)
  expect(seen).toEqual(['installHelpers: publishBatch must be a function', 'installHelpers: progressGuard must be a function'])
})
