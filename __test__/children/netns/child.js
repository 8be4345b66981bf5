// Child process of the silent drop test in __test__/faults/heal.test.js, run inside the private network
// namespace of __test__/children/netns/run.sh (plain Node, not jest).
//
//   node child.js            the listener process: a KafkaRetry pushing every 100 ms and listening
//                            through a recording `produce`; starts the pusher process
//   node child.js pusher     another process pushing every 500 ms, whose messages reach the
//                            listener only through the wake-up channel (pollIntervalMs is 60 s)
//
// Prints one JSON line per event: {ready}, {push, n, at, ok|code, t}, {pub, n, at, t}, {error,
// message, t}, {dropped, t}. Reads commands on stdin: `drop` (black-holes the listener process's
// own connections to Redis with tc: no FIN, no RST), `quiet` (the listener stops pushing), `stop`
// (nobody pushes), `exit`.
//
// Env: REDIS_PORTS (one port, a server; several, a cluster's nodes), PREFIX, REDIS_TIMEOUT_MS.
'use strict'
const fs = require('fs')
const path = require('path')
const { execFileSync, fork } = require('child_process')
const { KafkaRetry } = require(path.resolve(__dirname, '../../..'))

const role = process.argv[2] === 'pusher' ? 'P' : 'L'
const ports = process.env.REDIS_PORTS.split(' ').map(Number)
const cluster = ports.length > 1
const out = (line) => process.stdout.write(`${JSON.stringify({ ...line, t: Date.now() })}\n`)

let errors = 0
const retry = new KafkaRetry({
  redisUrl: ports.map((port) => `redis://127.0.0.1:${port}`).join(','),
  cluster,
  // On a cluster, a shard per master: the listener's work reaches every node.
  shards: ports.length,
  keyPrefix: process.env.PREFIX,
  redisTimeoutMs: Number(process.env.REDIS_TIMEOUT_MS),
  pollIntervalMs: 60000,
  leaseMs: 4000,
  onEvent: (event) => {
    if (event.type === 'error' && errors++ < 200) out({ error: event.code, message: event.message, who: role })
  },
})

// Pushes one message due in `delayMs` every `everyMs` while `pushing`; each push's outcome is
// printed.
let pushing = true
let n = 0
function pushEvery(everyMs, delayMs) {
  const delay = String(delayMs / 60000) // minutes
  const timer = setInterval(() => {
    if (!pushing) return
    const at = Date.now()
    const message = { src: role, n: n++, at }
    retry
      .pushToQueue('silent-drop-topic', { event: 'k', value: message }, { delay, maxRetry: '5', retryCount: '0' })
      .then(
        () => out({ push: role, n: message.n, at, ok: true }),
        (err) => out({ push: role, n: message.n, at, code: err.code }),
      )
  }, everyMs)
  return timer
}

// This process's established connections to the namespace's Redis: the local ports `ss` lists
// for our pid (the shared connection, to each master on a cluster, and the wake-up subscription).
function ownPorts() {
  const text = execFileSync('ss', ['-tnpH', 'state', 'established'], { encoding: 'utf8' })
  return text
    .split('\n')
    .filter((line) => line.includes(`pid=${process.pid},`))
    .map((line) => /127\.0\.0\.1:(\d+)\s+127\.0\.0\.1:(\d+)/.exec(line))
    .filter((m) => m && ports.includes(Number(m[2])))
    .map((m) => Number(m[1]))
}

function drop(local) {
  for (const p of local) {
    for (const dir of ['sport', 'dport']) {
      execFileSync('tc', ['filter', 'add', 'dev', 'lo', 'parent', '1:', 'protocol', 'ip', 'prio', '1',
        'u32', 'match', 'ip', dir, String(p), '0xffff', 'flowid', '1:20'])
    }
  }
}

async function main() {
  if (role === 'P') {
    const timer = pushEvery(500, 100)
    process.on('message', async (command) => {
      if (command === 'stop') pushing = false
      if (command === 'exit') {
        clearInterval(timer)
        await retry.close()
        process.exit(0)
      }
    })
    out({ ready: 'P' })
    return
  }
  await retry.queueListener({
    produce: async (topic, key, value) => {
      const message = JSON.parse(value)
      out({ pub: message.src, n: message.n, at: message.at })
    },
  })
  const pusher = fork(__filename, ['pusher'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const timer = pushEvery(100, 200)
  // The namespace's own tcp_retries2 (Linux's default, 15: the kernel gives up on a dead
  // connection after about 15 minutes), printed so the test can hold it to the default.
  out({ ready: 'L', tcpRetries2: Number(fs.readFileSync('/proc/sys/net/ipv4/tcp_retries2', 'utf8')) })
  let buffered = ''
  process.stdin.on('data', async (chunk) => {
    buffered += chunk.toString()
    let nl
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const command = buffered.slice(0, nl).trim()
      buffered = buffered.slice(nl + 1)
      if (command === 'drop') {
        const local = ownPorts()
        drop(local)
        out({ dropped: local })
      } else if (command === 'quiet') {
        pushing = false
      } else if (command === 'stop') {
        pushing = false
        pusher.send('stop')
      } else if (command === 'exit') {
        clearInterval(timer)
        pusher.send('exit')
        await new Promise((resolve) => pusher.once('exit', resolve))
        await retry.close()
        process.exit(0)
      }
    }
  })
}

main().catch((err) => {
  process.stderr.write(`${err.stack}\n`)
  process.exit(1)
})
