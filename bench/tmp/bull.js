const { Queue } = require('bullmq')
const IORedis = require('ioredis')
async function main() {
  for (const conc of [1, 64, 256]) {
    const connection = new IORedis({ maxRetriesPerRequest: null })
    const name = 'bench-bull-' + Date.now()
    const q = new Queue(name, { connection, prefix: 'bench-bullmq' })
    await q.waitUntilReady()
    const N = conc === 1 ? 3000 : 20000
    let i = 0
    const t0 = process.hrtime.bigint()
    await Promise.all(Array.from({ length: conc }, async () => {
      while (i < N) { const k = i++; await q.add('retry', { topic: 'bench-topic', event: 'e', value: JSON.stringify({ msgId: `${name}-${k}`, n: k }) }, { delay: 3600000 }) }
    }))
    const ms = Number(process.hrtime.bigint() - t0) / 1e6
    console.log(conc, (N / ms * 1000).toFixed(0), '/s', await q.getDelayedCount())
    await q.obliterate({ force: true }); await q.close(); connection.disconnect()
  }
}
main()
