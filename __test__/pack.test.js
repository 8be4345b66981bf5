// How services get the package: `npm pack`, install the tarball into a fresh project, push and
// publish from there.
const fs = require('fs')
const os = require('os')
const path = require('path')
const { execFileSync } = require('child_process')
const h = require('./helpers')

beforeAll(h.requireServers)

test('the packed tarball installs into a fresh project and pushes and publishes', () => {
  const root = path.join(__dirname, '..')
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'kafka-retry-pack-'))
  try {
    const out = execFileSync('npm', ['pack', '--json', '--pack-destination', work], { cwd: root, encoding: 'utf8' })
    const [{ filename, files }] = JSON.parse(out)
    const packed = files.map((f) => f.path)
    expect(packed).toEqual(expect.arrayContaining(['index.js', 'index.d.ts', 'package.json', 'README.md']))
    expect(packed.some((f) => f.endsWith('.node'))).toBe(true)
    expect(packed).toContain('bin/kafka-retry.js')

    const app = path.join(work, 'app')
    fs.mkdirSync(app)
    fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }))
    execFileSync('npm', ['install', '--no-audit', '--no-fund', path.join(work, path.basename(filename))], {
      cwd: app,
      encoding: 'utf8',
    })
    const prefix = h.unique('pack')
    const script = `
      const { KafkaRetry } = require('kafka-retry')
      ;(async () => {
        const retry = new KafkaRetry({ keyPrefix: ${JSON.stringify(prefix)} })
        const published = []
        await retry.queueListener({ produce: async (topic, key, value, headers) => published.push({ topic, key, value, headers }) })
        await retry.pushToQueue('orders', { event: 'Created', value: '{"id":7}' }, KafkaRetry.headers({ delay: Buffer.from('0') }))
        const deadline = Date.now() + 5000
        while (!published.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
        await retry.close()
        console.log(JSON.stringify(published))
      })()
    `
    const result = JSON.parse(execFileSync(process.execPath, ['-e', script], { cwd: app, encoding: 'utf8', env: process.env, timeout: 20000 }))
    // The command line tool is installed with the package.
    const stats = JSON.parse(execFileSync(path.join(app, 'node_modules', '.bin', 'kafka-retry'), ['stats', '--json', '--prefix', prefix], { cwd: app, encoding: 'utf8', env: process.env, timeout: 20000 }))
    expect(stats).toMatchObject({ scheduled: 0, inflight: 0 })
    expect(result).toHaveLength(1)
    expect(result[0]).toMatchObject({ topic: 'orders', key: 'Created', headers: { retryCount: '1', delay: '0' } })
    expect(JSON.parse(result[0].value).id).toBe(7)
  } finally {
    fs.rmSync(work, { recursive: true, force: true })
  }
})
