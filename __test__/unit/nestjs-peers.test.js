// kafka-redis-retry/nestjs's Nest packages are optional peer dependencies: a service without Nest
// installs and loads nothing of it. Each case runs in a child Node, where require.cache is
// Node's own (jest keeps a registry of its own), at the repository root (Nest is installed there
// as a devDependency, so the second case can see the subpath load it).
'use strict'

const path = require('path')
const { execFileSync } = require('child_process')
const pkg = require('../../package.json')

const ROOT = path.join(__dirname, '..', '..')
const PEERS = ['@nestjs/common', '@nestjs/core', '@nestjs/microservices', 'reflect-metadata', 'rxjs']

/** The files of node_modules/<peer>/ in require.cache after `source` ran in a child Node. */
const peersLoaded = (source) =>
  JSON.parse(
    execFileSync(process.execPath, ['-e', `${source}
      const loaded = Object.keys(require.cache).map((f) => f.split('/node_modules/').pop())
      console.log(JSON.stringify(${JSON.stringify(PEERS)}.filter((p) => loaded.some((f) => f.startsWith(p + '/')))))`], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, REDIS_URL: 'redis://127.0.0.1:1' } }),
  )

test('the main entry loads nothing of Nest, rxjs or reflect-metadata', () => {
  expect(peersLoaded(`const { KafkaRetry } = require('.'); KafkaRetry.headers()`)).toEqual([])
})

test('the nestjs subpath does load them (so the check above can fail)', () => {
  expect(peersLoaded(`require('reflect-metadata'); require('./nestjs')`)).toEqual(expect.arrayContaining(['@nestjs/common', 'rxjs']))
})

test('the Nest packages are optional peer dependencies, and devDependencies for the tests', () => {
  for (const peer of PEERS) {
    expect(pkg.peerDependencies[peer]).toBeDefined()
    expect(pkg.peerDependenciesMeta[peer]).toEqual({ optional: true })
    expect(pkg.devDependencies[peer]).toBeDefined()
    expect(pkg.dependencies || {}).not.toHaveProperty(peer)
  }
  expect(pkg.exports['./nestjs']).toEqual({ types: './nestjs/index.d.ts', default: './nestjs/index.js' })
  expect(pkg.files).toContain('nestjs/')
})
