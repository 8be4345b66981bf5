// docs/nestjs.md's full example, run as written: the ```ts block under "## A full example",
// transpiled by TypeScript (decorators as a Nest project compiles them), its topic, group, dead
// letter hash and keyPrefix made unique and its import pointed at this checkout, started as a
// Nest microservice on the test broker. Two orders are produced: one is charged after two retries
// through Redis, the other dead-lettered at once; SIGTERM closes the application and ends
// the process.
const fs = require('fs')
const os = require('os')
const path = require('path')
const { spawn } = require('child_process')
const ts = require('typescript')
const h = require('../helpers')
const { KafkaRetry } = require('../..')

const ROOT = path.join(__dirname, '..', '..')
let work
let child
let retry

/** The first ```ts block after `heading` in docs/nestjs.md. */
function exampleBlock(heading) {
  const page = fs.readFileSync(path.join(ROOT, 'docs', 'nestjs.md'), 'utf8')
  const start = page.indexOf(`\n${heading}\n`)
  if (start < 0) throw new Error(`docs/nestjs.md has no heading ${heading}`)
  const match = /```ts\n([\s\S]*?)```/.exec(page.slice(start))
  return match[1]
}

/** `text` with every `from` replaced by `to`; fails when `from` is not in it (the page changed). */
function replaceAll(text, from, to) {
  expect({ from, found: text.includes(from) }).toEqual({ from, found: true })
  return text.split(from).join(to)
}

afterAll(async () => {
  if (child && child.exitCode === null) child.kill('SIGKILL')
  if (retry) await retry.close()
  if (work) fs.rmSync(work, { recursive: true, force: true })
})

test("docs/nestjs.md's full example: an order charged after two retries through Redis, a bad one dead-lettered, SIGTERM closes it", async () => {
  await h.requireServers()
  const topic = h.unique('nest-docs-orders')
  const prefix = h.unique('nest-docs')
  const dlq = h.unique('nest-docs-dlq')
  await h.createTopics(topic)

  let source = exampleBlock('## A full example')
  source = replaceAll(source, "'kafka-redis-retry/nestjs'", JSON.stringify(path.join(ROOT, 'nestjs')))
  source = replaceAll(source, "@EventPattern('orders')", `@EventPattern(${JSON.stringify(topic)})`)
  source = replaceAll(source, "keyPrefix: 'orders-service'", `keyPrefix: ${JSON.stringify(prefix)}`)
  source = replaceAll(source, "dlqName: 'DEAD_LETTER_QUEUE'", `dlqName: ${JSON.stringify(dlq)}`)
  // A new group on a new topic: read it from the start, so orders produced while the group
  // forms are not skipped (the example's consumer starts at the end, as a service's would).
  source = replaceAll(source, "consumer: { groupId: 'orders-service' }", `consumer: { groupId: ${JSON.stringify(h.unique('nest-docs-group'))} }, subscribe: { fromBeginning: true }`)
  const { outputText, diagnostics } = ts.transpileModule(source, {
    compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, experimentalDecorators: true, emitDecoratorMetadata: true },
    reportDiagnostics: true,
  })
  expect(diagnostics).toEqual([])
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'kafka-redis-retry-nest-docs-'))
  const file = path.join(work, 'main.js')
  fs.writeFileSync(file, outputText)

  let out = ''
  child = spawn(process.execPath, [file], {
    env: { ...process.env, NODE_PATH: path.join(ROOT, 'node_modules'), REDIS_URL: h.REDIS_URL, KAFKA_BROKERS: h.KAFKA_BROKERS.join(',') },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  child.stdout.on('data', (chunk) => (out += chunk))
  child.stderr.on('data', (chunk) => (out += chunk))
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })))
  await h.waitFor(() => out.includes('listening') || child.exitCode !== null, 60000)
  expect(out).toContain('listening')

  const producer = h.kafka().producer()
  await producer.connect()
  await producer.send({ topic, messages: [{ key: 'o-1', value: '{"id":"o-1","sku":"A-1"}' }, { key: 'o-2', value: '{"id":"o-2"}' }] })
  await producer.disconnect()

  await h.waitFor(() => out.includes('order o-1 charged'), 60000)
  expect(out).toContain('order o-1 charged after 3 calls')

  retry = new KafkaRetry({ redisUrl: h.REDIS_URL, keyPrefix: prefix })
  let page
  await h.waitFor(async () => (page = await retry.deadLetters(dlq)).items.length > 0, 20000)
  expect(page.items).toHaveLength(1)
  expect(page.items[0]).toMatchObject({ topic, event: 'o-2', value: { id: 'o-2' }, error: expect.objectContaining({ message: 'order o-2 has no sku' }) })
  expect((await retry.stats()).scheduled).toBe(0)

  // enableShutdownHooks: Nest runs app.close() (the instance's close() among its hooks), then
  // raises the signal again, so the process ends by SIGTERM, and promptly: nothing keeps it.
  const killedAt = Date.now()
  child.kill('SIGTERM')
  expect(await exited).toEqual({ code: null, signal: 'SIGTERM' })
  expect(Date.now() - killedAt).toBeLessThan(15000)
})
