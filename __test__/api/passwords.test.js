// Passwords in every Redis URL form are never shown: not in the addon's errors, not by the CLI.
// Real Redis (and a password-protected redis-server of the test's own).
const path = require('path')
const { execFile } = require('child_process')
const { KafkaRetry } = require('../..')
const h = require('../helpers')
const s = require('../helpers/servers')

const BIN = path.join(__dirname, '..', '..', 'bin', 'kafka-redis-retry.js')

beforeAll(h.requireServers)
afterAll(() => s.stopAll())

/** Runs the CLI; resolves to { code, stdout, stderr } (never rejects on a non-zero exit). */
function runCli(args, env = {}) {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, timeout: 20000, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') return reject(err)
      resolve({ code: err ? err.code : 0, stdout, stderr })
    })
  })
}

describe('passwords are never shown', () => {
  const SECRET = 'p@ss'
  const forms = (port) => [
    `redis://user:${SECRET}@127.0.0.1:${port}`,
    `redis://:${SECRET}@127.0.0.1:${port}/0`,
    `redis://127.0.0.1:${port}/0?password=${encodeURIComponent('s3cret')}`,
    `redis+unix:///tmp/${h.unique('nosock')}.sock?pass=s3cret`,
  ]
  const leaks = (text) => ['p@ss', 'ss@', 'user:p', 's3cret'].filter((part) => text.includes(part))

  test('in the error of a failed push, whatever the URL form', async () => {
    const port = await h.freePort() // nothing listens
    for (const redisUrl of forms(port)) {
      const retry = new KafkaRetry({ redisUrl, keyPrefix: h.unique('redact'), redisTimeoutMs: 500 })
      try {
        const err = await retry.pushToQueue('t', { event: 'e', value: '{}' }, { delay: '1' }).catch((e) => e)
        expect(err.code).toBe('ERR_REDIS_UNAVAILABLE')
        expect(err.message).toMatch(/127\.0\.0\.1|\.sock/) // it does say where
        expect({ redisUrl, leaks: leaks(`${err.message} ${err.stack}`) }).toEqual({ redisUrl, leaks: [] })
      } finally {
        await retry.close()
      }
    }
  })

  test('by the CLI, failing or not', async () => {
    const port = await h.freePort()
    for (const url of forms(port)) {
      const r = await runCli(['stats', '--prefix', h.unique('redact')], { REDIS_URL: url })
      expect(r.code).not.toBe(0)
      expect({ url, leaks: leaks(r.stdout + r.stderr) }).toEqual({ url, leaks: [] })
    }
    // A server with that password: the CLI prints where it looked, without the password.
    const server = await s.startServer(['--requirepass', SECRET])
    const r = await runCli(['stats', '--prefix', h.unique('redact')], { REDIS_URL: `redis://default:${SECRET}@127.0.0.1:${server.port}` })
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' })
    expect(r.stdout).toContain(`at redis://***@127.0.0.1:${server.port}`)
    expect(leaks(r.stdout)).toEqual([])
  })
})
