'use strict'
// Ports on 127.0.0.1 for the servers the tests, the soak and the Kafka cluster start themselves.
const net = require('net')

/** A TCP port nothing listens on right now (for throwaway servers). */
async function freePort() {
  const [port] = await freePorts(1)
  return port
}

/**
 * `n` distinct free ports. Each listener stays open until all are taken: separate `freePort()`
 * calls may hand out the same port twice, which a server given both then refuses.
 */
async function freePorts(n) {
  const servers = []
  try {
    for (let i = 0; i < n; i++) {
      const server = net.createServer()
      servers.push(server)
      await new Promise((resolve, reject) => {
        server.once('error', reject)
        server.listen(0, '127.0.0.1', resolve)
      })
    }
    return servers.map((server) => server.address().port)
  } finally {
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(() => resolve()))))
  }
}

/** Whether something accepts connections at `host`:`port` within `timeoutMs`. */
function reachable(host, port, timeoutMs = 2000) {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port })
    const done = (ok) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(timeoutMs, () => done(false))
    socket.once('connect', () => done(true))
    socket.once('error', () => done(false))
  })
}

/** Whether something accepts connections on 127.0.0.1:`port` (gives up after 1 s). */
const portOpen = (port) => reachable('127.0.0.1', port, 1000)

module.exports = { freePort, freePorts, reachable, portOpen }
