// Child process of __test__/metrics/trace.test.js (plain Node, not jest: the kafkajs instrumentation
// patches Node's own `require`, and the absence check reads Node's module cache).
//
//   node __test__/children/trace.js instrumented <package dir>  OpenTelemetry SDK + kafkajs instrumentation; a
//     retry pushed with the consumed message's traceparent is sent through kafkajs (`send`, and a
//     `produce` wrapper); prints the send spans of it and of a control pushed without one.
//   node __test__/children/trace.js plain <package dir>  no OpenTelemetry set up; a retry with a traceparent
//     through a recording `produce`; prints its headers and the @opentelemetry modules loaded.
//
// Env: REDIS_URL, KAFKA_BROKERS, TOPIC, PREFIX.
'use strict'
const path = require('path')

const [mode, packageDir] = process.argv.slice(2)
const { TOPIC, PREFIX } = process.env

const waitFor = async (check, timeoutMs) => {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out')
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

async function instrumented() {
  const api = require('@opentelemetry/api')
  const { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } = require('@opentelemetry/sdk-trace-base')
  const { AsyncLocalStorageContextManager } = require('@opentelemetry/context-async-hooks')
  const { W3CTraceContextPropagator } = require('@opentelemetry/core')
  const { KafkaJsInstrumentation } = require('@opentelemetry/instrumentation-kafkajs')
  const exporter = new InMemorySpanExporter()
  api.trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }))
  api.context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
  api.propagation.setGlobalPropagator(new W3CTraceContextPropagator())
  // Enabled on construction: patches kafkajs when it is required below.
  new KafkaJsInstrumentation()
  const { Kafka, logLevel } = require('kafkajs')
  const { KafkaRetry } = require(packageDir)

  const kafka = new Kafka({ clientId: 'trace-child', brokers: process.env.KAFKA_BROKERS.split(','), logLevel: logLevel.NOTHING })
  const producer = kafka.producer({ allowAutoTopicCreation: true })
  await producer.connect()

  // The consumer's span of the original message: what a traced consumer has when it fails.
  const original = api.trace.getTracer('test').startSpan('process original')
  const consumed = {}
  api.propagation.inject(api.trace.setSpan(api.ROOT_CONTEXT, original), consumed)
  original.end()
  // As kafkajs hands headers to the consumer: Buffers.
  const kafkaHeaders = { traceparent: Buffer.from(consumed.traceparent), retryCount: Buffer.from('0') }

  const results = {}
  const kinds = {
    send: producer,
    produce: { produce: (topic, key, value, headers) => producer.send({ topic, messages: [{ key, value, headers }] }) },
  }
  for (const [kind, target] of Object.entries(kinds)) {
    const retry = new KafkaRetry({ keyPrefix: `${PREFIX}-${kind}`, pollIntervalMs: 100 })
    await retry.queueListener(target)
    // Pushed outside any active context, as a consumer's catch block after its span ended.
    await api.context.with(api.ROOT_CONTEXT, async () => {
      await retry.pushToQueue(TOPIC, { event: `traced-${kind}`, value: '{}' }, { ...KafkaRetry.headers(kafkaHeaders), delay: '0.0005' })
      await retry.pushToQueue(TOPIC, { event: `control-${kind}`, value: '{}' }, { ...KafkaRetry.headers({}), delay: '0.0005' })
    })
    const spanOf = (key) =>
      exporter.getFinishedSpans().find((s) => s.name === `send ${TOPIC}` && s.attributes['messaging.kafka.message.key'] === key)
    await waitFor(() => spanOf(`traced-${kind}`) && spanOf(`control-${kind}`), 20000)
    const describe = (span) => ({
      traceId: span.spanContext().traceId,
      parentSpanId: (span.parentSpanContext && span.parentSpanContext.spanId) || span.parentSpanId || null,
    })
    results[kind] = { traced: describe(spanOf(`traced-${kind}`)), control: describe(spanOf(`control-${kind}`)) }
    await retry.close()
  }
  await producer.disconnect()
  const context = original.spanContext()
  return { original: { traceId: context.traceId, spanId: context.spanId }, results }
}

async function plain() {
  const { KafkaRetry } = require(packageDir)
  const produced = []
  const retry = new KafkaRetry({ keyPrefix: PREFIX, pollIntervalMs: 100 })
  await retry.queueListener({ produce: async (topic, key, value, headers) => produced.push(headers) })
  const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'
  await retry.pushToQueue(TOPIC, { event: 'e', value: '{}' }, { ...KafkaRetry.headers({ traceparent }), delay: '0.0005' })
  await waitFor(() => produced.length > 0, 10000)
  await retry.close()
  const loaded = Object.keys(require.cache).filter((file) => file.split(path.sep).includes('@opentelemetry'))
  return { traceparent: produced[0].traceparent, loaded }
}

;(mode === 'instrumented' ? instrumented() : plain()).then(
  (result) => {
    process.stdout.write(JSON.stringify(result))
    process.exit(0)
  },
  (err) => {
    console.error(err && err.stack ? err.stack : err)
    process.exit(1)
  },
)
