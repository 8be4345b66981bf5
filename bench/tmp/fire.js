const { KafkaRetry } = require('/work/main')
const Redis = require('ioredis')
async function main() {
  const prefix = 'bench-fire-' + Date.now()
  const r = new KafkaRetry({ keyPrefix: prefix, brokers: '127.0.0.1:9092' })
  const redis = new Redis()
  const N = 50000
  let i = 0
  await Promise.all(Array.from({ length: 256 }, async () => {
    while (i < N) { const k = i++; await r.pushToQueue('bench-fire-topic', { event: 'e', value: JSON.stringify({ msgId: `${prefix}-${k}`, n: k }) }, { delay: '0', maxRetry: '3', retryCount: '0' }) }
  }))
  const K = `{${prefix}}`
  console.log('pushed', await redis.zcard(`${K}:due`))
  const l = new KafkaRetry({ keyPrefix: prefix, brokers: '127.0.0.1:9092' })
  const t0 = Date.now()
  await l.queueListener(null, prefix + ':dlq')
  for (;;) {
    const [a, b] = await Promise.all([redis.zcard(`${K}:due`), redis.zcard(`${K}:lease`)])
    if (a + b === 0) break
    await new Promise((res) => setTimeout(res, 5))
  }
  const ms = Date.now() - t0
  console.log('fired', N, 'in', ms, 'ms', (N / ms * 1000).toFixed(0), '/s', 'hlen', await redis.hlen(`${K}:entries`))
  await l.close(); await r.close()
  await redis.del(`${K}:due`, `${K}:entries`, `${K}:seen`, `${K}:lease`)
  redis.disconnect()
}
main()
