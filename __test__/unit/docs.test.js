// The docs held to the code they describe (no server needed): every config key the types accept
// has a row in the Config table (docs/api.md), every error code the engine raises a row in the
// Errors table (the README, the front page), every Redis key the store names a row in "What is
// stored in Redis" (docs/storage-format.md), every method of the class a line in the API block,
// and the documented ACL rule is the one the redis-prod suite grants.
const fs = require('fs')
const path = require('path')

/** The repository root: the nearest folder above this file with a package.json (this file may move). */
function repoRoot() {
  let dir = __dirname
  while (!fs.existsSync(path.join(dir, 'package.json'))) dir = path.dirname(dir)
  return dir
}
const ROOT = repoRoot()
const read = (file) => fs.readFileSync(path.join(ROOT, file), 'utf8')

// Where each described thing lives in the code, and where its table lives in the docs: one place
// to change when a file moves.
const CODE = {
  types: 'index.d.ts',
  errors: 'crates/engine/src/error.rs',
  keys: 'crates/engine/src/store/keys.rs',
}
const TABLES = {
  config: { file: 'docs/api.md', heading: '### Config' },
  errors: { file: 'README.md', heading: '## Errors' },
  keys: { file: 'docs/storage-format.md', heading: '# What is stored in Redis' },
}

/** The lines of the section of `file` under `heading`, up to the next heading of any level. */
function section({ file, heading }) {
  const lines = read(file).split('\n')
  const start = lines.findIndex((l) => l.trim() === heading)
  if (start < 0) throw new Error(`${file} has no heading ${heading}`)
  const rest = lines.slice(start + 1)
  const end = rest.findIndex((l) => /^#{1,6} /.test(l))
  return end < 0 ? rest : rest.slice(0, end)
}

/** The backticked names in the first cell of each table row of a section. */
function firstCells(table) {
  const names = new Set()
  for (const line of section(table)) {
    const cell = /^\| ([^|]+) \|/.exec(line)
    if (!cell) continue
    for (const m of cell[1].matchAll(/`([^`]+)`/g)) names.add(m[1])
  }
  return names
}

test('the Config table has a row for every key of KafkaRetryConfig, and no other', () => {
  const types = read(CODE.types)
  const body = /export interface KafkaRetryConfig \{([\s\S]*?)\n\}/.exec(types)[1]
  const keys = [...body.matchAll(/^ {2}(\w+)\?:/gm)].map((m) => m[1]).sort()
  expect(keys.length).toBeGreaterThan(20)
  expect([...firstCells(TABLES.config)].sort()).toEqual(keys)
})

test('the Errors table has a row for every error code the engine raises, and no other', () => {
  const codes = [...read(CODE.errors).matchAll(/=> "(ERR_[A-Z_]+)"/g)].map((m) => m[1]).sort()
  expect(codes).toContain('ERR_INTERNAL')
  expect([...firstCells(TABLES.errors)].filter((c) => c.startsWith('ERR_')).sort()).toEqual(codes)
})

test('"What is stored in Redis" has a row for every key the store names', () => {
  const rows = [...firstCells(TABLES.keys)]
  // A key in the store's keys module is a format! of the hash tag or the dead letter hash's name and a suffix.
  const suffixes = [...read(CODE.keys).matchAll(/format!\("(?:\{\{\{(?:tag|prefix)\}\}\}|\{tag\}|\{dlq_name\})(:[a-z:]+)"\)/g)].map((m) => m[1])
  expect(suffixes).toEqual(expect.arrayContaining([':due', ':paused', ':index', ':index:scan']))
  for (const suffix of suffixes) {
    expect({ suffix, documented: rows.some((r) => r === `{keyPrefix}${suffix}` || r === `<dlqName>${suffix}` || r.startsWith(`{keyPrefix}${suffix}:`)) }).toEqual({ suffix, documented: true })
  }
})

/** The path of the jest suite `name` (e.g. `redis-prod.test.js`) wherever it lives under __test__/. */
function suiteFile(name) {
  const walk = (dir) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name)
      if (entry.isDirectory() && entry.name !== 'node_modules') {
        const found = walk(full)
        if (found) return found
      } else if (entry.name === name) return full
    }
    return null
  }
  const found = walk(path.join(ROOT, '__test__'))
  if (!found) throw new Error(`no ${name} under __test__/`)
  return found
}

test('the ACL rule in "Running Redis for production" is the one the redis-prod suite grants its user', () => {
  const documented = /^ACL SETUSER retry on >secret (.+)$/m.exec(read('docs/redis-production.md'))[1]
  const tested = /const rule = 'on >retry-secret (.+)'$/m.exec(fs.readFileSync(suiteFile('redis-prod.test.js'), 'utf8'))[1]
  expect(documented).toBe(tested)
})

test('every method of the KafkaRetry class is in the API block of docs/api.md (the job methods in docs/dashboard.md)', () => {
  const cls = /export declare class KafkaRetry \{([\s\S]*?)\n\}/.exec(read(CODE.types))[1]
  const members = [...cls.matchAll(/^ {2}(?:static |get )?(\w+)[<(]/gm)].map((m) => m[1]).filter((n) => n !== 'constructor')
  expect(members).toEqual(expect.arrayContaining(['pushToQueue', 'queueListener', 'headers', 'keyPrefix', 'handleInOrder', 'startJob']))
  const apiBlock = /## API\n\n```ts\n([\s\S]*?)```/.exec(read(TABLES.config.file))[1]
  const dashboard = read('docs/dashboard.md')
  const undocumented = [...new Set(members)].filter((name) =>
    !new RegExp(`(?:retry|KafkaRetry)\\.${name}\\b`).test(apiBlock) && !new RegExp(`\`${name}(?:\\([^\`]*\\))?\``).test(dashboard))
  expect(undocumented).toEqual([])
})
