'use strict'
// A three-node Apache Kafka cluster (KRaft, every node broker and controller, replication factor 3,
// min.insync.replicas 2) on free ports with data directories of its own, for the broker failover
// test (__test__/faults/failover.test.js) and `npm run soak`. Its nodes can be SIGKILLed and started
// again one by one. The jars are the ones `scripts/services.sh apache-kafka-jars` fetches.
//
//   const { startKafkaCluster } = require('./scripts/services/kafka-cluster')
//   const cluster = await startKafkaCluster({ dir })   // cluster.brokers: 'host:port,...'
//   await cluster.kill(1); await cluster.start(1); await cluster.stop()
//
// As a command (what `scripts/services.sh kafka-cluster start|stop|env` runs): `start DIR` starts
// the nodes detached and records them in DIR/cluster.json, `env DIR` prints
// `export KAFKA_CLUSTER_BROKERS=...`, `stop DIR` stops them.
const fs = require('fs')
const path = require('path')
const crypto = require('crypto')
const { spawn, execFileSync } = require('child_process')
const { freePorts, portOpen } = require('./ports')

const ROOT = path.resolve(__dirname, '..', '..')
// Small heaps: the machine the tests run on is shared, and three JVMs start at once.
const DEFAULT_HEAP = '-Xms128m -Xmx384m'
const MAIN = 'kafka.Kafka'

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** Apache Kafka's jars: KAFKA_RETRY_APACHE_JARS (scripts/test.sh exports it), else fetched by services.sh. */
function apacheJars() {
  if (process.env.KAFKA_RETRY_APACHE_JARS) return process.env.KAFKA_RETRY_APACHE_JARS
  const out = execFileSync('bash', [path.join(ROOT, 'scripts', 'services.sh'), 'apache-kafka-jars'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  return out.trim().split('\n').pop()
}

function properties(node, nodes, dir) {
  // Three nodes: replication factor 3, min.insync.replicas 2; fewer (`size`), as many as there are.
  const replicas = Math.min(3, nodes.length)
  const minIsr = Math.min(2, nodes.length)
  const voters = nodes.map((n) => `${n.id}@127.0.0.1:${n.controller}`).join(',')
  return [
    '# Written by scripts/services/kafka-cluster.js: one node of a KRaft cluster (each node broker and controller).',
    'process.roles=broker,controller',
    `node.id=${node.id}`,
    `controller.quorum.voters=${voters}`,
    `listeners=PLAINTEXT://127.0.0.1:${node.port},CONTROLLER://127.0.0.1:${node.controller}`,
    `advertised.listeners=PLAINTEXT://127.0.0.1:${node.port}`,
    'controller.listener.names=CONTROLLER',
    'inter.broker.listener.name=PLAINTEXT',
    'listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
    `log.dirs=${path.join(dir, `node-${node.id}`, 'data')}`,
    'auto.create.topics.enable=true',
    'num.partitions=3',
    `default.replication.factor=${replicas}`,
    `min.insync.replicas=${minIsr}`,
    'unclean.leader.election.enable=false',
    `offsets.topic.replication.factor=${replicas}`,
    `transaction.state.log.replication.factor=${replicas}`,
    `transaction.state.log.min.isr=${minIsr}`,
    `share.coordinator.state.topic.replication.factor=${replicas}`,
    `share.coordinator.state.topic.min.isr=${minIsr}`,
    'group.initial.rebalance.delay.ms=0',
    // A killed node is fenced (its partitions get a new leader) after 3 s without a heartbeat
    // instead of the default 9 s, so a failover test does not spend most of its time waiting.
    'broker.heartbeat.interval.ms=500',
    'broker.session.timeout.ms=3000',
    '',
  ].join('\n')
}

function log4j(file) {
  fs.writeFileSync(file, [
    'status = warn',
    'appender.stdout.type = Console',
    'appender.stdout.name = STDOUT',
    'appender.stdout.layout.type = PatternLayout',
    'appender.stdout.layout.pattern = [%d] %p %m (%c)%n',
    'rootLogger.level = WARN',
    'rootLogger.appenderRef.stdout.ref = STDOUT',
    'logger.kafka.name = kafka.server.KafkaServer',
    'logger.kafka.level = INFO',
    '',
  ].join('\n'))
}

/**
 * Starts the cluster and waits until every node is in the metadata. `dir` holds each node's
 * properties, data and log (created if missing; emptied first). `detached`: the nodes outlive
 * this process (the command's `start`).
 */
async function startKafkaCluster({ dir, size = 3, heap = process.env.KAFKA_CLUSTER_HEAP || DEFAULT_HEAP, jars = apacheJars(), detached = false, readyTimeoutMs = 120000 } = {}) {
  if (!dir) throw new Error('startKafkaCluster: dir is required')
  fs.rmSync(dir, { recursive: true, force: true })
  fs.mkdirSync(dir, { recursive: true })
  const nodes = []
  const ports = await freePorts(2 * size)
  for (let id = 1; id <= size; id++) nodes.push({ id, port: ports[2 * id - 2], controller: ports[2 * id - 1] })
  const log4jFile = path.join(dir, 'log4j2.properties')
  log4j(log4jFile)
  const java = [...heap.split(/\s+/).filter(Boolean), '-XX:+UseG1GC', '-Djava.awt.headless=true', `-Dlog4j2.configurationFile=${log4jFile}`, '-cp', `${jars}/*`]
  let id
  // A cluster id starting with '-' would be read as an option by StorageTool.
  do id = crypto.randomBytes(16).toString('base64url')
  while (id.startsWith('-'))
  for (const node of nodes) {
    fs.mkdirSync(path.join(dir, `node-${node.id}`), { recursive: true })
    node.props = path.join(dir, `node-${node.id}`, 'server.properties')
    node.log = path.join(dir, `node-${node.id}`, 'kafka.log')
    node.address = `127.0.0.1:${node.port}`
    fs.writeFileSync(node.props, properties(node, nodes, dir))
  }
  // Formatting is a JVM each; in parallel.
  await Promise.all(nodes.map((node) => new Promise((resolve, reject) => {
    const child = spawn('java', [...java, 'kafka.tools.StorageTool', 'format', '-t', id, '-c', node.props], { stdio: ['ignore', 'ignore', 'pipe'] })
    let err = ''
    child.stderr.on('data', (d) => { err += d })
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`formatting node ${node.id} failed (${code}): ${err.slice(-1000)}`))))
  })))

  const spawnNode = (node) => {
    const out = fs.openSync(node.log, 'a')
    const child = spawn('java', [...java, MAIN, node.props], { stdio: ['ignore', out, out], detached })
    fs.closeSync(out)
    if (detached) child.unref()
    node.child = child
    node.pid = child.pid
    return child
  }
  nodes.forEach(spawnNode)

  const brokers = nodes.map((n) => n.address).join(',')
  const { Kafka, logLevel } = require(path.join(ROOT, 'node_modules', 'kafkajs'))
  const kafka = new Kafka({ clientId: 'kafka-cluster', brokers: brokers.split(','), logLevel: logLevel.NOTHING, retry: { retries: 2, initialRetryTime: 200 } })

  /** Node ids in the metadata a live node answers with. */
  async function liveIds() {
    const admin = kafka.admin()
    try {
      await admin.connect()
      const { brokers: live } = await admin.describeCluster()
      return live.map((b) => b.nodeId)
    } catch {
      return []
    } finally {
      await admin.disconnect().catch(() => {})
    }
  }

  async function waitFor(check, timeoutMs, what) {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      if (await check()) return
      for (const node of nodes) {
        if (node.child && node.child.exitCode !== null && !node.stopped) {
          throw new Error(`Kafka node ${node.id} exited (${node.child.exitCode}) while waiting for ${what}: ${tail(node.log)}`)
        }
      }
      if (Date.now() > deadline) throw new Error(`Kafka cluster: no ${what} within ${timeoutMs} ms; node 1 log: ${tail(nodes[0].log)}`)
      await sleep(250)
    }
  }

  const cluster = {
    dir,
    nodes,
    /** 'host:port,host:port,host:port' */
    brokers,
    kafka,
    /** The leader node id of each partition of `topic`, by partition. */
    async leaders(topic) {
      const admin = kafka.admin()
      await admin.connect()
      try {
        const { topics } = await admin.fetchTopicMetadata({ topics: [topic] })
        return Object.fromEntries(topics[0].partitions.map((p) => [p.partitionId, p.leader]))
      } finally {
        await admin.disconnect().catch(() => {})
      }
    },
    /** Creates `topic` with `partitions` partitions, every one led by node `leader` (replicas on all nodes). */
    async createTopic(topic, { partitions = 3, leader = 1 } = {}) {
      const others = nodes.map((n) => n.id).filter((i) => i !== leader)
      const admin = kafka.admin()
      await admin.connect()
      try {
        await admin.createTopics({
          waitForLeaders: true,
          topics: [{ topic, replicaAssignment: Array.from({ length: partitions }, (_, partition) => ({ partition, replicas: [leader, ...others] })) }],
        })
      } finally {
        await admin.disconnect()
      }
    },
    /** SIGKILLs (or `signal`s) node `id` and waits for it to exit. */
    async kill(id, signal = 'SIGKILL') {
      const node = nodes.find((n) => n.id === id)
      node.stopped = true
      const child = node.child
      if (child.exitCode !== null || child.signalCode !== null) return
      await new Promise((resolve) => {
        child.once('exit', resolve)
        child.kill(signal)
      })
    },
    /** Starts node `id` again (same data directory) and waits until the others see it. */
    async start(id, timeoutMs = 60000) {
      const node = nodes.find((n) => n.id === id)
      node.stopped = false
      spawnNode(node)
      await waitFor(async () => (await liveIds()).includes(id), timeoutMs, `node ${id} back in the metadata`)
    },
    /** Kills every node and deletes `dir` unless `keep`. */
    async stop({ keep = false } = {}) {
      await Promise.all(nodes.map((n) => cluster.kill(n.id).catch(() => {})))
      if (!keep) fs.rmSync(dir, { recursive: true, force: true })
    },
  }
  try {
    await waitFor(async () => (await Promise.all(nodes.map((n) => portOpen(n.port)))).every(Boolean), readyTimeoutMs, 'listening nodes')
    await waitFor(async () => (await liveIds()).length === size, readyTimeoutMs, `${size} live brokers`)
  } catch (err) {
    await cluster.stop({ keep: true })
    throw err
  }
  return cluster
}

function tail(file) {
  try {
    return fs.readFileSync(file, 'utf8').slice(-1500)
  } catch {
    return '(no log)'
  }
}

module.exports = { startKafkaCluster, apacheJars }

// ------------------------------------------------------------------------------ command line --

function alive(pid, props) {
  try {
    process.kill(pid, 0)
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(props)
  } catch {
    return false
  }
}

async function main([command, dir]) {
  if (!['start', 'stop', 'env'].includes(command) || !dir) {
    process.stderr.write('usage: kafka-cluster.js start|stop|env DIR\n')
    process.exit(2)
  }
  const record = path.join(dir, 'cluster.json')
  const recorded = fs.existsSync(record) ? JSON.parse(fs.readFileSync(record, 'utf8')) : null
  const running = recorded ? recorded.nodes.filter((n) => alive(n.pid, n.props)) : []
  if (command === 'env') {
    if (!recorded || !running.length) throw new Error(`no cluster running from ${dir}: run start first`)
    process.stdout.write(`export KAFKA_CLUSTER_BROKERS=${recorded.brokers}\n`)
  } else if (command === 'start') {
    if (recorded && running.length === recorded.nodes.length) {
      process.stdout.write(`kafka-cluster: reused ${recorded.brokers} (pids ${running.map((n) => n.pid).join(' ')})\n`)
      return
    }
    for (const n of running) process.kill(n.pid, 'SIGKILL')
    const t0 = Date.now()
    const cluster = await startKafkaCluster({ dir, detached: true })
    const nodes = cluster.nodes.map(({ id, port, controller, pid, props, log }) => ({ id, port, controller, pid, props, log }))
    fs.writeFileSync(record, JSON.stringify({ brokers: cluster.brokers, nodes }, null, 2))
    process.stdout.write(`kafka-cluster: started 3 Apache Kafka nodes at ${cluster.brokers} (pids ${nodes.map((n) => n.pid).join(' ')}, ${Date.now() - t0} ms to ready, data and logs in ${dir})\n`)
  } else {
    if (!running.length) {
      fs.rmSync(record, { force: true })
      process.stdout.write('kafka-cluster: not running\n')
      return
    }
    for (const n of running) process.kill(n.pid, 'SIGTERM')
    const deadline = Date.now() + 60000
    while (running.some((n) => alive(n.pid, n.props)) && Date.now() < deadline) await sleep(200)
    for (const n of running.filter((m) => alive(m.pid, m.props))) process.kill(n.pid, 'SIGKILL')
    fs.rmSync(record, { force: true })
    process.stdout.write(`kafka-cluster: stopped pids ${running.map((n) => n.pid).join(' ')}\n`)
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(() => process.exit(0), (err) => {
    process.stderr.write(`kafka-cluster: error: ${err.message}\n`)
    process.exit(1)
  })
}
