// The types a TypeScript service sees, against the tarballs a release publishes installed into an
// app: with moduleResolution node16 and nodenext (an ES module and a CommonJS one each) and bundler, the types of
// the main entry and of each subpath resolve (strict: an import without types is an error), and
// are the package's (a wrong config value and a missing export are errors).
const fs = require('fs')
const os = require('os')
const path = require('path')
const { execFileSync } = require('child_process')
const { ROOT, EXEC, ABI, pack, toolsOnlyPath, appEnv, installApp, shippedSubpaths } = require('../helpers/app')

const pkg = require('../../package.json')

let work
let bin
let app
let subpaths

beforeAll(() => {
  if (!ABI) throw new Error(`no prebuilt package for ${process.platform}-${process.arch}`)
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'kafka-redis-retry-typescript-'))
  const packed = pack(['--out', path.join(work, 'dist')])
  bin = toolsOnlyPath(work)
  app = path.join(work, 'app')
  installApp(app, packed.map((p) => p.file), bin)
  // What a TypeScript service has installed besides: Node's types and prom-client (whose types
  // prometheus.d.ts imports). Linked from this repository rather than fetched again.
  fs.mkdirSync(path.join(app, 'node_modules', '@types'), { recursive: true })
  fs.symlinkSync(path.join(ROOT, 'node_modules', '@types', 'node'), path.join(app, 'node_modules', '@types', 'node'))
  fs.symlinkSync(path.join(ROOT, 'node_modules', 'prom-client'), path.join(app, 'node_modules', 'prom-client'))
  subpaths = shippedSubpaths(app)
  expect(subpaths).toEqual(expect.arrayContaining([pkg.name, `${pkg.name}/prometheus`]))
})

afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true })
})

/** tsc -p dir (this repository's TypeScript) on the app's node; its errors, '' if none. */
function tsc(dir) {
  try {
    execFileSync(path.join(bin, 'node'), [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', dir], { ...EXEC, cwd: dir, env: appEnv(bin) })
    return ''
  } catch (err) {
    return `${err.stdout}${err.stderr}` || err.message
  }
}

test.each([
  ['node16', { module: 'node16', moduleResolution: 'node16' }],
  ['nodenext', { module: 'nodenext', moduleResolution: 'nodenext' }],
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
import { KafkaRetryModule } from '${pkg.name}/nestjs'
${imports}
const config: KafkaRetryConfig = { keyPrefix: 'orders' }
export const retry: KafkaRetry = new KafkaRetry(config)
export const headers: { delay: string } = KafkaRetry.headers()
export const register: typeof registerMetrics = registerMetrics
// The nestjs subpath's types stand alone (Nest 12's are ES modules): no Nest installed here.
export const nest: { global: boolean } = KafkaRetryModule.forRoot(config, { listener: { dlqName: 'DLQ' } })
// @ts-expect-error listener.dlqName is a string
KafkaRetryModule.forRoot(config, { listener: { dlqName: 1 } })
// @ts-expect-error keyPrefix is a string
export const wrong: KafkaRetryConfig = { keyPrefix: 1 }
// @ts-expect-error no such export
import { NoSuchThing } from '${pkg.name}'
export const none = NoSuchThing
`
  const nodeStyle = name === 'node16' || name === 'nodenext'
  fs.writeFileSync(path.join(dir, nodeStyle ? 'usage.mts' : 'usage.ts'), usage)
  // node16/nodenext: an ES module and a CommonJS one import differently; both must see the types.
  if (nodeStyle) fs.writeFileSync(path.join(dir, 'usage.cts'), usage)
  expect(tsc(dir)).toBe('')
  // The check can fail: a package name that does not resolve.
  fs.writeFileSync(path.join(dir, 'broken.ts'), `import { KafkaRetry } from '${pkg.name}-missing'\nexport const r = KafkaRetry\n`)
  expect(tsc(dir)).toMatch(/broken\.ts.*error TS2307/)
})

