// How services get the package: the two tarballs a release publishes for this machine (the main
// package and this platform's binary package, made by scripts/pack.js as `npm run pack:local` and
// the release workflow make them) installed into an empty app whose PATH has no cargo, rustc or
// C compiler; the app then pushes, publishes to the broker through the internal producer, and runs
// the CLI.
const fs = require('fs')
const os = require('os')
const path = require('path')
const { execFileSync } = require('child_process')
const h = require('../helpers')

const { ROOT, EXEC, ABI, pack, toolsOnlyPath, appEnv, installApp } = require('../helpers/app')

const pkg = require('../../package.json')
const TARGET_ABIS = ['linux-x64-gnu', 'linux-arm64-gnu', 'linux-x64-musl', 'darwin-x64', 'darwin-arm64', 'win32-x64-msvc']

// Exactly what each package publishes.
const DASHBOARD_FILES = ['assets/dashboard.css', 'assets/dashboard.js', 'audit.js', 'bulk-pages.js', 'bulk.js', 'chart.js', 'fields.js', 'html.js', 'index.d.ts', 'index.js', 'jobs.js', 'metrics-route.js', 'operator.js', 'pages.js', 'security.js'].map((f) => `dashboard/${f}`)
const LIB_FILES = ['deliver-events.js', 'handle-in-order.js', 'index.js', 'kafka-retry.js', 'producer-shape.js', 'progress-guard.js', 'publish-batch.js', 'push-pack.js', 'retrying.js'].map((f) => `lib/${f}`)
const OBSERVABILITY_FILES = ['README.md', 'alerts.test.yml', 'alerts.yml', 'grafana-dashboard.json'].map((f) => `observability/${f}`)
const MAIN_FILES = ['LICENSE', 'README.md', 'bin/kafka-redis-retry.js', ...DASHBOARD_FILES, 'index.d.ts', ...LIB_FILES, 'native.js', 'nestjs/index.d.ts', 'nestjs/index.js', ...OBSERVABILITY_FILES, 'package.json', 'prometheus.d.ts', 'prometheus.js']
const platformFiles = (abi) => ['README.md', 'THIRD_PARTY_NOTICES.md', `kafka-redis-retry.${abi}.node`, 'package.json']

let work
let packed

/** The files of a tarball, extracted into a fresh directory. */
function extract(tarball) {
  const dir = fs.mkdtempSync(path.join(work, 'x-'))
  execFileSync('tar', ['-xzf', tarball, '-C', dir])
  return path.join(dir, 'package')
}

/** Every file under dir with its content, for comparing two extracted packages. */
function contents(dir) {
  const out = {}
  for (const entry of fs.readdirSync(dir, { recursive: true })) {
    const file = path.join(dir, entry)
    if (fs.statSync(file).isFile()) out[entry] = fs.readFileSync(file).toString('base64')
  }
  return out
}

beforeAll(async () => {
  await h.requireServers()
  if (!ABI) throw new Error(`no prebuilt package for ${process.platform}-${process.arch}`)
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'kafka-redis-retry-pack-'))
  packed = pack(['--out', path.join(work, 'dist')])
})

afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true })
})

test('the main tarball holds no binary and names every platform package; this platform\'s holds the binary', () => {
  const main = packed.find((p) => p.name === pkg.name)
  const platform = packed.find((p) => p.name === `${pkg.name}-${ABI}`)
  expect(packed).toHaveLength(2)
  expect(main.files).toEqual(MAIN_FILES)
  expect(platform.files).toEqual(platformFiles(ABI))
  // The licenses of what the binary links statically: the C libraries and the locked crates.
  const notices = fs.readFileSync(path.join(extract(platform.file), 'THIRD_PARTY_NOTICES.md'), 'utf8')
  const lock = fs.readFileSync(path.join(ROOT, 'Cargo.lock'), 'utf8')
  const locked = (name) => new RegExp(`name = "${name}"\\nversion = "([^"]+)"`).exec(lock)[1]
  for (const lib of ['librdkafka', 'OpenSSL', 'zlib']) expect(notices).toMatch(new RegExp(`^- ${lib}\\b`, 'm'))
  for (const crate of ['redis', 'rdkafka', 'rustls', 'tokio', 'napi']) expect(notices).toContain(`\n- ${crate} ${locked(crate)}: `)
  expect(notices).toMatch(/Apache License\s+Version 2\.0/)
  expect(notices).not.toContain('- kafka-redis-retry ')
  const manifest = JSON.parse(fs.readFileSync(path.join(extract(main.file), 'package.json'), 'utf8'))
  expect(manifest.optionalDependencies).toEqual(Object.fromEntries(TARGET_ABIS.map((abi) => [`${pkg.name}-${abi}`, pkg.version])))
  const platformDir = extract(platform.file)
  expect(JSON.parse(fs.readFileSync(path.join(platformDir, 'package.json'), 'utf8'))).toMatchObject({
    name: `${pkg.name}-${ABI}`,
    version: pkg.version,
    main: `kafka-redis-retry.${ABI}.node`,
    os: [process.platform],
    cpu: [process.arch],
  })
  // The binary is the one the build made.
  expect(fs.readFileSync(path.join(platformDir, `kafka-redis-retry.${ABI}.node`)).equals(fs.readFileSync(path.join(ROOT, `kafka-redis-retry.${ABI}.node`)))).toBe(true)
  console.log(packed.map((p) => `${path.basename(p.file)}: ${p.bytes} bytes (unpacked ${p.unpackedBytes})`).join('\n'))
})

test('a release pack (--all: napi artifacts and napi prepublish) makes the same main and platform tarballs', () => {
  // The other platforms' binaries are stand-ins: only their presence is checked by napi.
  const artifacts = path.join(work, 'artifacts')
  fs.mkdirSync(artifacts)
  for (const abi of TARGET_ABIS) {
    const file = path.join(artifacts, `kafka-redis-retry.${abi}.node`)
    if (abi === ABI) fs.copyFileSync(path.join(ROOT, `kafka-redis-retry.${abi}.node`), file)
    else fs.writeFileSync(file, 'stand-in')
  }
  const release = pack(['--all', '--artifacts', artifacts, '--out', path.join(work, 'release')])
  expect(release.map((p) => p.name).sort()).toEqual([pkg.name, ...TARGET_ABIS.map((abi) => `${pkg.name}-${abi}`)].sort())
  for (const local of packed) {
    const same = release.find((p) => p.name === local.name)
    expect(contents(extract(same.file))).toEqual(contents(extract(local.file)))
  }
})

test('npm publish --dry-run of every package a release publishes lists exactly the intended files', () => {
  // The release's tarballs (pack --all, made by the test above): what the workflow publishes.
  const release = fs.readdirSync(path.join(work, 'release')).filter((f) => f.endsWith('.tgz'))
  expect(release).toHaveLength(1 + TARGET_ABIS.length)
  for (const file of release) {
    const out = execFileSync('npm', ['publish', '--dry-run', '--json', path.join(work, 'release', file)], { ...EXEC, cwd: work })
    const [published] = Object.values(JSON.parse(out))
    const files = published.files.map((f) => f.path).sort()
    const abi = TARGET_ABIS.find((a) => published.name === `${pkg.name}-${a}`)
    expect([published.name, files]).toEqual([published.name, abi ? platformFiles(abi).sort() : [...MAIN_FILES].sort()])
    expect(published.version).toBe(pkg.version)
  }
})

test('installed from the two tarballs with no Rust toolchain on PATH, it pushes, publishes and runs the CLI', async () => {
  const bin = toolsOnlyPath(work)
  const env = appEnv(bin)
  for (const tool of ['cargo', 'rustc', 'cc']) {
    expect(() => execFileSync('/bin/sh', ['-c', `command -v ${tool}`], { env, encoding: 'utf8' })).toThrow()
  }
  const app = path.join(work, 'app')
  const installMs = installApp(app, packed.map((p) => p.file), bin)
  console.log(`npm install of the two tarballs without Rust (Node ${process.version}): ${installMs} ms`)
  const installed = fs.readdirSync(path.join(app, 'node_modules')).filter((d) => !d.startsWith('.'))
  expect(installed.sort()).toEqual([pkg.name, `${pkg.name}-${ABI}`].sort())

  const topic = h.unique('pack-topic')
  const prefix = h.unique('pack')
  await h.createTopics(topic)
  const { consumer, seen } = await h.consume(topic)
  try {
    // The app: push one message due now; the listener publishes it through the internal
    // (rdkafka) producer to the broker.
    const script = `
      const { KafkaRetry } = require('kafka-redis-retry')
      ;(async () => {
        const retry = new KafkaRetry({ keyPrefix: ${JSON.stringify(prefix)} })
        await retry.queueListener()
        await retry.pushToQueue(${JSON.stringify(topic)}, { event: 'Created', value: '{"id":7}' }, KafkaRetry.headers({ delay: Buffer.from('0') }))
        const deadline = Date.now() + 30000
        let stats = await retry.stats()
        // published counts the broker's confirmation; the ack (inflight back to 0) follows it.
        while (!(stats.published && !stats.inflight) && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 50))
          stats = await retry.stats()
        }
        await retry.close()
        // The dashboard costs a service nothing until it is required.
        if (Object.keys(require.cache).some((file) => file.includes('/dashboard/'))) throw new Error('dashboard loaded')
        if (typeof require('kafka-redis-retry/dashboard').handler !== 'function') throw new Error('no dashboard handler')
        console.log(JSON.stringify(stats))
      })().catch((err) => { console.error(err); process.exitCode = 1 })
    `
    const stats = JSON.parse(execFileSync(path.join(bin, 'node'), ['-e', script], { ...EXEC, cwd: app, env }))
    expect(stats).toMatchObject({ published: 1, scheduled: 0, inflight: 0 })
    await h.waitFor(() => seen.length > 0, 20000)
    expect(seen).toHaveLength(1)
    expect(seen[0]).toMatchObject({ key: 'Created', value: { id: 7 }, headers: { retryCount: '1', delay: '0' } })

    // The command line tool comes with the package (npm_config_yes=false: npx would refuse to
    // fetch a package of that name from the registry instead).
    const npx = { ...EXEC, cwd: app, env: { ...env, npm_config_yes: 'false' } }
    const help = execFileSync(path.join(bin, 'npx'), ['kafka-redis-retry', '--help'], npx)
    expect(help).toMatch(/^Usage: kafka-redis-retry \[options\] <command> \[arguments\]/)
    const cliStats = JSON.parse(execFileSync(path.join(bin, 'npx'), ['kafka-redis-retry', 'stats', '--json', '--prefix', prefix], npx))
    expect(cliStats).toMatchObject({ scheduled: 0, inflight: 0 })
  } finally {
    await consumer.disconnect()
  }
})
