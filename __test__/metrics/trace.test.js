// Traces continue across retries: with @opentelemetry/api installed, the listener calls the
// producer inside the context extracted from the message's stored traceparent/tracestate/baggage,
// so the kafkajs instrumentation's span of the retry's send belongs to the original trace.
// Without it, nothing is loaded. Each case runs in a child process (__test__/children/trace.js):
// the instrumentation patches Node's require, which jest's module registry bypasses.
const fs = require('fs')
const os = require('os')
const path = require('path')
const { execFile } = require('child_process')
const h = require('../helpers')

const ROOT = path.join(__dirname, '..', '..')
const CHILD = path.join(__dirname, '..', 'children', 'trace.js')

beforeAll(h.requireServers)

function child(args, env = {}) {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [CHILD, ...args], { env: { ...process.env, ...env }, timeout: 60000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${err.message}\n${stderr}`))
      else resolve(JSON.parse(stdout))
    })
  })
}

test('an instrumented kafkajs send of a retry belongs to the original trace (send and a produce wrapper)', async () => {
  const topic = h.unique('trace')
  await h.createTopics(topic)
  const { original, results } = await child(['instrumented', ROOT], { TOPIC: topic, PREFIX: h.unique('trace') })
  for (const kind of ['send', 'produce']) {
    // The retry's span: a child of the original consumer span, same trace.
    expect(results[kind].traced).toEqual({ traceId: original.traceId, parentSpanId: original.spanId })
    // A retry without trace headers starts a root span: what every retry got before.
    expect(results[kind].control.traceId).not.toBe(original.traceId)
    expect(results[kind].control.parentSpanId).toBeNull()
  }
})

test('without @opentelemetry/api installed nothing is loaded and the headers go out unchanged', async () => {
  // The package alone in a directory with no node_modules above it.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kafka-redis-retry-no-otel-'))
  try {
    for (const file of fs.readdirSync(ROOT).filter((f) => ['package.json', 'native.js', 'lib'].includes(f) || f.endsWith('.node'))) {
      fs.cpSync(path.join(ROOT, file), path.join(dir, file), { recursive: true })
    }
    const env = { TOPIC: 'no-broker-needed', PREFIX: h.unique('no-otel'), NODE_PATH: '' }
    const absent = await child(['plain', dir], env)
    expect(absent.traceparent).toBe('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01')
    expect(absent.loaded).toEqual([])
    // The same copy where the package can be resolved (NODE_PATH): it is loaded, so the check
    // above can fail.
    const present = await child(['plain', dir], { ...env, PREFIX: h.unique('otel'), NODE_PATH: path.join(ROOT, 'node_modules') })
    expect(present.traceparent).toBe(absent.traceparent)
    expect(present.loaded.some((file) => file.includes(path.join('@opentelemetry', 'api')))).toBe(true)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})
