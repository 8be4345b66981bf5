// A service's view of the package: the tarballs a release publishes for this machine (made by
// scripts/pack.js, as `npm run pack:local` and the release workflow make them), installed into an
// empty app whose PATH holds only node, npm, npx and sh. Shared by packaging/pack.test.js (install, push,
// publish, CLI), packaging/loading.test.js (require, import, a bundle) and typescript.test.js.
const fs = require('fs')
const path = require('path')
const { execFileSync } = require('child_process')

const ROOT = path.join(__dirname, '..', '..')
const EXEC = { encoding: 'utf8', timeout: 120000, maxBuffer: 64 * 1024 * 1024 }

// This machine's package, as napi names it (glibc or musl told apart as index.js does).
const MUSL = process.platform === 'linux' && !process.report.getReport().header.glibcVersionRuntime
const ABI = {
  'linux-x64': MUSL ? 'linux-x64-musl' : 'linux-x64-gnu',
  'linux-arm64': MUSL ? undefined : 'linux-arm64-gnu',
  'darwin-x64': 'darwin-x64',
  'darwin-arm64': 'darwin-arm64',
  'win32-x64': 'win32-x64-msvc',
}[`${process.platform}-${process.arch}`]

/** Runs scripts/pack.js; its JSON summary. */
function pack(args) {
  // A debug build's binary is ten times a release one's: give the copies napi makes time.
  return JSON.parse(execFileSync(process.execPath, [path.join(ROOT, 'scripts', 'pack.js'), ...args], { ...EXEC, timeout: 300000, cwd: ROOT }))
}

/** npm's own CLI script: next to this node, or (a Node from a registry package ships none) on PATH. */
function npmCli() {
  const beside = path.join(path.dirname(process.execPath), 'npm')
  if (fs.existsSync(beside)) return fs.realpathSync(beside)
  for (const dir of (process.env.PATH || '').split(path.delimiter)) {
    const file = path.join(dir, 'npm')
    if (dir && fs.existsSync(file)) return fs.realpathSync(file)
  }
  throw new Error('npm not found next to node or on PATH')
}

/**
 * A directory holding only node (the one running the tests), npm, npx and sh (npx runs commands
 * through sh): the whole PATH of the app. No cargo, rustc or cc can be found through it. npm's
 * scripts start with `#!/usr/bin/env node`, so they run on that same node.
 */
function toolsOnlyPath(work) {
  const bin = path.join(work, 'bin')
  fs.mkdirSync(bin)
  const npm = npmCli()
  fs.symlinkSync(process.execPath, path.join(bin, 'node'))
  fs.symlinkSync(npm, path.join(bin, 'npm'))
  fs.symlinkSync(path.join(path.dirname(npm), 'npx-cli.js'), path.join(bin, 'npx'))
  fs.symlinkSync('/bin/sh', path.join(bin, 'sh'))
  return bin
}

/** The environment of a fresh shell with that PATH: nothing of npm's, cargo's or rustup's. */
function appEnv(bin) {
  const env = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (!/^(npm_|CARGO|RUSTUP|RUSTC|PATH$|NODE_PATH$|NAPI_RS)/i.test(key)) env[key] = value
  }
  return { ...env, PATH: bin }
}

/**
 * An app at dir (package.json with `extra` fields) with the tarballs installed; the install's
 * time in ms. Only the tarballs: the other platforms' optional packages are skipped (not
 * published from here, and not for this platform); prefer the npm cache, and do not wait long
 * on the registry for them.
 */
function installApp(dir, tarballs, bin, extra = {}) {
  fs.mkdirSync(dir, { recursive: true })
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true, ...extra }))
  const started = Date.now()
  execFileSync(
    path.join(bin, 'npm'),
    ['install', '--no-audit', '--no-fund', '--prefer-offline', '--fetch-retries=0', '--fetch-timeout=15000', ...tarballs],
    { ...EXEC, cwd: dir, env: appEnv(bin) },
  )
  return Date.now() - started
}

/** The package's `exports` subpaths (as imported) whose files the app's installed copy has. */
function shippedSubpaths(app) {
  const pkg = require('../../package.json')
  const installed = path.join(app, 'node_modules', pkg.name)
  return Object.entries(pkg.exports)
    .filter(([sub, target]) => sub !== './package.json' && fs.existsSync(path.join(installed, target.default)))
    .map(([sub]) => (sub === '.' ? pkg.name : `${pkg.name}/${sub.slice(2)}`))
}

/**
 * What a Nest service has installed besides the package, for its `nestjs` subpath (optional peer
 * dependencies the app's npm install does not fetch): linked from this repository's node_modules.
 */
function linkNestPeers(app) {
  fs.mkdirSync(path.join(app, 'node_modules'), { recursive: true })
  for (const peer of ['@nestjs', 'rxjs', 'reflect-metadata']) {
    fs.symlinkSync(path.join(ROOT, 'node_modules', peer), path.join(app, 'node_modules', peer))
  }
}

module.exports = { ROOT, EXEC, ABI, pack, toolsOnlyPath, appEnv, installApp, shippedSubpaths, linkNestPeers }
