// Shopify's toxiproxy for the network-fault suite (faults/chaos.test.js): the server binary that
// `scripts/services.sh toxiproxy-bin` builds (TOXIPROXY_BIN, which scripts/test.sh exports), started
// on a free loopback port, and its HTTP API through fetch (no client library).
const fs = require('fs')
const path = require('path')
const { spawn } = require('child_process')
const h = require('.')

const ROOT = path.resolve(__dirname, '../..')

/** The server binary; throws (the suite fails, never skips) when it is not built. */
function toxiproxyBinary() {
  const file = process.env.TOXIPROXY_BIN || path.join(ROOT, '.services/bin/toxiproxy-server')
  if (!fs.existsSync(file)) {
    throw new Error(`toxiproxy is not installed at ${file}: run \`bash scripts/services.sh toxiproxy-bin\` (builds it with go install) ` +
      'and export TOXIPROXY_BIN, as scripts/test.sh does')
  }
  return file
}

/**
 * Starts toxiproxy's server; resolves to its API: `proxy(name, listenPort, upstreamPort)` creates a
 * proxy and returns `{ add(type, stream, attributes), remove(name), clear() }`, and `stop()`.
 */
async function startToxiproxy() {
  const port = await h.freePort()
  const server = spawn(toxiproxyBinary(), ['-host', '127.0.0.1', '-port', String(port)], {
    // One line per connection at info level; warnings are enough to explain a failure.
    env: { ...process.env, LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  server.log = ''
  const keep = (d) => {
    server.log = (server.log + d.toString()).slice(-20000)
  }
  server.stdout.on('data', keep)
  server.stderr.on('data', keep)
  const base = `http://127.0.0.1:${port}`
  const api = async (method, what, body) => {
    const res = await fetch(`${base}${what}`, {
      method,
      headers: body ? { 'content-type': 'application/json' } : {},
      body: body ? JSON.stringify(body) : undefined,
    })
    const text = await res.text()
    if (!res.ok) throw new Error(`toxiproxy ${method} ${what}: ${res.status} ${text}`)
    return text ? JSON.parse(text) : null
  }
  const up = await h.waitFor(async () => {
    if (server.exitCode !== null) return false
    try {
      return (await fetch(`${base}/version`)).ok
    } catch {
      return false
    }
  }, 15000, 50)
  if (!up) {
    server.kill('SIGKILL')
    throw new Error(`toxiproxy did not answer on ${base}: ${server.log}`)
  }

  let counter = 0
  return {
    server,
    /** A proxy from 127.0.0.1:`listenPort` to 127.0.0.1:`upstreamPort`. */
    async proxy(name, listenPort, upstreamPort) {
      await api('POST', '/proxies', { name, listen: `127.0.0.1:${listenPort}`, upstream: `127.0.0.1:${upstreamPort}`, enabled: true })
      const names = new Set()
      return {
        name,
        /** Adds a toxic on `stream` ('upstream': towards the server, 'downstream': back); returns its name. */
        async add(type, stream, attributes) {
          counter += 1
          const toxic = `${type}-${stream}-${counter}`
          await api('POST', `/proxies/${name}/toxics`, { name: toxic, type, stream, toxicity: 1, attributes })
          names.add(toxic)
          return toxic
        },
        async remove(toxic) {
          names.delete(toxic)
          await api('DELETE', `/proxies/${name}/toxics/${toxic}`)
        },
        /** Removes every toxic this proxy has (what a scenario left on a failure too). */
        async clear() {
          const { toxics } = await api('GET', `/proxies/${name}`)
          for (const t of toxics) await api('DELETE', `/proxies/${name}/toxics/${t.name}`)
          names.clear()
        },
      }
    },
    async stop() {
      if (server.exitCode === null && server.signalCode === null) server.kill('SIGKILL')
      await h.exited(server, 5000).catch(() => {})
    },
  }
}

module.exports = { startToxiproxy, toxiproxyBinary }
