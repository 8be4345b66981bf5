// Every way a service loads the package, against the tarballs a release publishes installed into
// an app (no Rust on PATH): CommonJS require, ESM import (an .mjs file, and a "type": "module"
// app), TypeScript (moduleResolution node16 and bundler: types resolve for the main entry and
// each subpath), and an esbuild bundle with the package external (a native addon cannot be
// bundled). Each app calls into the addon, so a loader that resolves but loads nothing fails.
const fs = require('fs')
const os = require('os')
const path = require('path')
const { execFileSync } = require('child_process')
const h = require('./helpers')
const { ROOT, EXEC, ABI, pack, toolsOnlyPath, appEnv, installApp } = require('./app')

const pkg = require('../package.json')

let work
let bin
let app
let subpaths

/** Runs `node args` in the app (its PATH only); stdout. */
function node(args, cwd = app) {
  return execFileSync(path.join(bin, 'node'), args, { ...EXEC, cwd, env: appEnv(bin) })
}

/** The package's `exports` subpaths whose files it ships (`./dashboard` once that lands). */
function shippedSubpaths() {
  const installed = path.join(app, 'node_modules', pkg.name)
  return Object.entries(pkg.exports)
    .filter(([sub, target]) => sub !== './package.json' && fs.existsSync(path.join(installed, target.default)))
    .map(([sub]) => (sub === '.' ? pkg.name : `${pkg.name}/${sub.slice(2)}`))
}

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

/** tsc -p dir (this repository's TypeScript) on the app's node; its errors, '' if none. */
function tsc(dir) {
  try {
    node([path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', dir], dir)
    return ''
  } catch (err) {
    return `${err.stdout}${err.stderr}` || err.message
  }
}

function expectWorking(out) {
  const result = JSON.parse(out)
  expect(result.headers).toEqual({ delay: '2', maxRetry: '3', retryCount: '0' })
  expect(result.scheduled).toBe(0)
  expect(result.subpaths[pkg.name]).toContain('KafkaRetry')
  expect(result.subpaths[`${pkg.name}/prometheus`]).toContain('registerMetrics')
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
  // What a TypeScript service has installed besides: Node's types and prom-client (whose types
  // prometheus.d.ts imports). Linked from this repository rather than fetched again.
  fs.mkdirSync(path.join(app, 'node_modules', '@types'), { recursive: true })
  fs.symlinkSync(path.join(ROOT, 'node_modules', '@types', 'node'), path.join(app, 'node_modules', '@types', 'node'))
  fs.symlinkSync(path.join(ROOT, 'node_modules', 'prom-client'), path.join(app, 'node_modules', 'prom-client'))
  subpaths = shippedSubpaths()
  expect(subpaths).toEqual(expect.arrayContaining([pkg.name, `${pkg.name}/prometheus`]))
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

test.each([
  ['node16', { module: 'node16', moduleResolution: 'node16' }],
  ['bundler', { module: 'esnext', moduleResolution: 'bundler' }],
])('TypeScript, moduleResolution %s: the types of the main entry and each subpath resolve', (name, options) => {
  const dir = path.join(app, `ts-${name}`)
  fs.mkdirSync(dir)
  fs.writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify({
    compilerOptions: { ...options, target: 'es2022', strict: true, noEmit: true, types: ['node'], skipLibCheck: false },
    include: ['*.ts', '*.mts', '*.cts'],
  }))
  // An import whose types do not resolve is an error under strict (TS7016); the expected errors
  // below fail the check if the types were `any`.
  const imports = subpaths.filter((s) => s !== pkg.name).map((s, i) => `import * as sub${i} from '${s}'\nexport const s${i}: object = sub${i}`).join('\n')
  const usage = `import { KafkaRetry, type KafkaRetryConfig } from '${pkg.name}'
import { registerMetrics } from '${pkg.name}/prometheus'
${imports}
const config: KafkaRetryConfig = { keyPrefix: 'orders' }
export const retry: KafkaRetry = new KafkaRetry(config)
export const headers: { delay: string } = KafkaRetry.headers()
export const register: typeof registerMetrics = registerMetrics
// @ts-expect-error keyPrefix is a string
export const wrong: KafkaRetryConfig = { keyPrefix: 1 }
// @ts-expect-error no such export
import { NoSuchThing } from '${pkg.name}'
export const none = NoSuchThing
`
  fs.writeFileSync(path.join(dir, name === 'node16' ? 'usage.mts' : 'usage.ts'), usage)
  // node16: an ES module and a CommonJS one import differently; both must see the types.
  if (name === 'node16') fs.writeFileSync(path.join(dir, 'usage.cts'), usage)
  expect(tsc(dir)).toBe('')
  // The check can fail: a package name that does not resolve.
  fs.writeFileSync(path.join(dir, 'broken.ts'), `import { KafkaRetry } from '${pkg.name}-missing'\nexport const r = KafkaRetry\n`)
  expect(tsc(dir)).toMatch(/broken\.ts.*error TS2307/)
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
