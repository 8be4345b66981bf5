// Every way a service loads the package at run time, against the tarballs a release publishes
// installed into an app (no Rust on PATH): CommonJS require, ESM import (an .mjs file, and a
// "type": "module" app), and an esbuild bundle with the package external (a native addon cannot
// be bundled). Each app calls into the addon, so a loader that resolves but loads nothing fails.
// The types of each entry: typescript.test.js.
const fs = require('fs')
const os = require('os')
const path = require('path')
const { execFileSync } = require('child_process')
const h = require('../helpers')
const { EXEC, ABI, pack, toolsOnlyPath, appEnv, installApp, shippedSubpaths, linkNestPeers } = require('../helpers/app')

const pkg = require('../../package.json')

let work
let bin
let app
let subpaths

// What each app prints: the class works (a static call and a Redis round trip), and every
// subpath's exports are there.
const BODY = (load) => `
  const { KafkaRetry } = ${load(pkg.name)}
  const retry = new KafkaRetry({ keyPrefix: process.env.PREFIX })
  const stats = await retry.stats()
  await retry.close()
  const subpaths = {}
  for (const sub of JSON.parse(process.env.SUBPATHS)) subpaths[sub] = Object.keys(${load('sub', true)}).sort()
  console.log(JSON.stringify({ headers: KafkaRetry.headers(), scheduled: stats.scheduled, subpaths }))
`

function expectWorking(out) {
  const result = JSON.parse(out)
  expect(result.headers).toEqual({ delay: '2', maxRetry: '3', retryCount: '0' })
  expect(result.scheduled).toBe(0)
  expect(result.subpaths[pkg.name]).toContain('KafkaRetry')
  expect(result.subpaths[`${pkg.name}/prometheus`]).toContain('registerMetrics')
  expect(result.subpaths[`${pkg.name}/nestjs`]).toEqual(expect.arrayContaining(['KafkaRetryModule', 'RetryThroughQueue']))
  for (const sub of subpaths) expect(result.subpaths[sub].length).toBeGreaterThan(0)
}

function env() {
  return { ...appEnv(bin), PREFIX: h.unique('loading'), SUBPATHS: JSON.stringify(subpaths) }
}

beforeAll(async () => {
  await h.requireServers()
  if (!ABI) throw new Error(`no prebuilt package for ${process.platform}-${process.arch}`)
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'kafka-redis-retry-loading-'))
  const packed = pack(['--out', path.join(work, 'dist')])
  bin = toolsOnlyPath(work)
  app = path.join(work, 'app')
  installApp(app, packed.map((p) => p.file), bin)
  subpaths = shippedSubpaths(app)
  expect(subpaths).toEqual(expect.arrayContaining([pkg.name, `${pkg.name}/prometheus`, `${pkg.name}/nestjs`]))
  // Without Nest installed, the nestjs subpath says what to install (its peers are optional).
  let missing = ''
  try {
    execFileSync(path.join(bin, 'node'), ['-e', `require('${pkg.name}/nestjs')`], { ...EXEC, cwd: app, env: appEnv(bin), stdio: 'pipe' })
  } catch (err) {
    missing = String(err.stderr)
  }
  expect(missing).toContain('kafka-redis-retry/nestjs needs @nestjs/common, an optional peer dependency: npm install @nestjs/common')
  linkNestPeers(app)
})

afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true })
})

test('CommonJS: require() of the package and each subpath', () => {
  const file = path.join(app, 'service.cjs')
  fs.writeFileSync(file, `;(async () => {${BODY((p, dynamic) => `require(${dynamic ? p : JSON.stringify(p)})`)}})().catch((e) => { console.error(e); process.exitCode = 1 })`)
  expectWorking(execFileSync(path.join(bin, 'node'), [file], { ...EXEC, cwd: app, env: env() }))
})

test('ESM: import { KafkaRetry } from an .mjs file, and from a "type": "module" app', () => {
  // Static named imports: Node must see the CommonJS loader's named exports.
  const esm = `import { KafkaRetry as Named } from '${pkg.name}'
import { registerMetrics } from '${pkg.name}/prometheus'
import whole from '${pkg.name}'
if (Named !== whole.KafkaRetry || typeof registerMetrics !== 'function') throw new Error('named and default exports differ')
${BODY((p, dynamic) => `await import(${dynamic ? p : JSON.stringify(p)})`)}`
  fs.writeFileSync(path.join(app, 'service.mjs'), esm)
  expectWorking(execFileSync(path.join(bin, 'node'), ['service.mjs'], { ...EXEC, cwd: app, env: env() }))

  const moduleApp = path.join(app, 'module-app')
  fs.mkdirSync(moduleApp)
  fs.writeFileSync(path.join(moduleApp, 'package.json'), JSON.stringify({ name: 'module-app', private: true, type: 'module' }))
  fs.writeFileSync(path.join(moduleApp, 'index.js'), esm)
  expectWorking(execFileSync(path.join(bin, 'node'), ['index.js'], { ...EXEC, cwd: moduleApp, env: env() }))
})

test('esbuild: a service bundled with the package external runs from its node_modules', () => {
  const esbuild = require('esbuild')
  const source = path.join(app, 'bundle-src.js')
  fs.writeFileSync(source, `const util = require('util')\n;(async () => {${BODY((p, dynamic) => `require(${dynamic ? p : JSON.stringify(p)})`)}})().catch((e) => { console.error(util.inspect(e)); process.exitCode = 1 })`)
  const out = path.join(app, 'dist', 'service.js')
  // The way napi packages are bundled: the package (and so its .node loader) stays external.
  esbuild.buildSync({ entryPoints: [source], bundle: true, platform: 'node', outfile: out, external: [pkg.name, `${pkg.name}/*`], absWorkingDir: app, logLevel: 'warning' })
  expect(fs.readFileSync(out, 'utf8')).not.toContain('napi')
  expectWorking(execFileSync(path.join(bin, 'node'), [out], { ...EXEC, cwd: app, env: env() }))

  // The ESM flavour of the same bundle.
  const esmSource = path.join(app, 'bundle-src.mjs')
  fs.writeFileSync(esmSource, `import { KafkaRetry } from '${pkg.name}'\nconsole.log(JSON.stringify(KafkaRetry.headers()))\n`)
  const esmOut = path.join(app, 'dist', 'service.mjs')
  esbuild.buildSync({ entryPoints: [esmSource], bundle: true, platform: 'node', format: 'esm', outfile: esmOut, external: [pkg.name], absWorkingDir: app, logLevel: 'warning' })
  expect(JSON.parse(execFileSync(path.join(bin, 'node'), [esmOut], { ...EXEC, cwd: app, env: env() }))).toEqual({ delay: '2', maxRetry: '3', retryCount: '0' })
})
