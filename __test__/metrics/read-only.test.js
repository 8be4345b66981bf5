// Read-only calls write nothing: stats(), metrics() and the CLI's stats on an unused schedule leave
// no shard record. Real Redis.
const path = require('path')
const { execFile } = require('child_process')
const { KafkaRetry } = require('../..')
const h = require('../helpers')

const BIN = path.join(__dirname, '..', '..', 'bin', 'kafka-redis-retry.js')

beforeAll(h.requireServers)

/** Runs the CLI; resolves to { code, stdout, stderr } (never rejects on a non-zero exit). */
function runCli(args, env = {}) {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, timeout: 20000, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') return reject(err)
      resolve({ code: err ? err.code : 0, stdout, stderr })
    })
  })
}

describe('read-only calls write nothing', () => {
  test('stats(), metrics() and the CLI stats on an unused schedule leave no shard record; a service with shards: 4 starts after them', async () => {
    const keyPrefix = h.unique('readonly')
    const redis = h.redisClient()
    const reader = new KafkaRetry({ keyPrefix })
    const service = new KafkaRetry({ keyPrefix, shards: 4 })
    try {
      expect((await reader.stats()).scheduled).toBe(0)
      expect(await reader.metrics()).toContain('kafka_retry_scheduled')
      const cli = await runCli(['stats', '--prefix', keyPrefix, '--json'], { REDIS_URL: h.REDIS_URL })
      expect(cli.code).toBe(0)
      expect(await redis.keys(`{${keyPrefix}}*`)).toEqual([])
      await service.pushToQueue('t', { event: 'e', value: '{}' }, { delay: '1' })
      expect(await redis.get(`{${keyPrefix}}:shards`)).toBe('4')
      // Now recorded: a reader with another shard count is told.
      const err = await reader.stats().catch((e) => e)
      expect(err.code).toBe('ERR_INVALID_ARG')
      expect(err.message).toMatch(/created with shards: 4/)
    } finally {
      await Promise.all([reader.close(), service.close()])
      redis.disconnect()
    }
  })
})
