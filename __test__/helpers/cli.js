// The command line tool, bin/kafka-redis-retry.js, run as a child process.
const path = require('path')
const { execFile } = require('child_process')
const { REDIS_URL } = require('.')

const BIN = path.join(__dirname, '..', '..', 'bin', 'kafka-redis-retry.js')
/** A Redis address where nothing listens. */
const UNREACHABLE = 'redis://127.0.0.1:1'

/** Runs the CLI; resolves to { code, stdout, stderr, ms } (never rejects on a non-zero exit). */
function run(args, env = {}) {
  const started = Date.now()
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { env: { ...process.env, REDIS_URL, ...env }, timeout: 20000, encoding: 'utf8' },
      (err, stdout, stderr) => {
        if (err && err.killed) return reject(new Error(`kafka-redis-retry ${args.join(' ')} did not exit within 20 s`))
        if (err && typeof err.code !== 'number') return reject(err)
        resolve({ code: err ? err.code : 0, stdout, stderr, ms: Date.now() - started })
      },
    )
  })
}

module.exports = { BIN, UNREACHABLE, run }
