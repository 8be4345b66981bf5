const { KafkaRetry } = require('/work/main')
const Redis = require('ioredis')
async function main() {
  const prefix = 'bench-explore-' + Date.now()
  const r = new KafkaRetry({ keyPrefix: prefix })
  const redis = new Redis()
  const conc = 256, N = 150000
  let i = 0
  const t0 = process.hrtime.bigint()
  await Promise.all(Array.from({ length: conc }, async () => {
    while (i < N) { const k = i++; await r.pushToQueue('bench-topic', { event: 'e', value: JSON.stringify({ msgId: `${prefix}-${conc}-${k}`, n: k }) }, { delay: '60', maxRetry: '3', retryCount: '0' }) }
  }))
  const ms = Number(process.hrtime.bigint() - t0) / 1e6
  console.log(conc, (N / ms * 1000).toFixed(0), '/s', await redis.zcard(`{${prefix}}:due`))
  await redis.del(`{${prefix}}:due`, `{${prefix}}:entries`, `{${prefix}}:seen`)
  await r.close(); redis.disconnect()
}
main()
