// scripts/check-links.js (in npm run lint): it passes on the repository's docs, and it fails on a
// broken relative link and on a broken #anchor, in a throwaway tree made here. No server needed.
const fs = require('fs')
const os = require('os')
const path = require('path')
const { execFileSync } = require('child_process')

/** The repository root: the nearest folder above this file with a package.json (this file may move). */
function repoRoot() {
  let dir = __dirname
  while (!fs.existsSync(path.join(dir, 'package.json'))) dir = path.dirname(dir)
  return dir
}
const ROOT = repoRoot()
const SCRIPT = path.join(ROOT, 'scripts', 'check-links.js')
const { slug, anchorsOf, check, docFiles } = require(SCRIPT)

/** A throwaway tree with `files` ({ relative path: text }), removed after `fn`. */
function withTree(files, fn) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'links-'))
  try {
    for (const [rel, text] of Object.entries(files)) {
      fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true })
      fs.writeFileSync(path.join(dir, rel), text)
    }
    return fn(dir)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

/** The check run as `npm run lint` runs it, on `root`: its exit status and what it printed. */
function run(root) {
  try {
    return { status: 0, out: execFileSync(process.execPath, [SCRIPT, root], { encoding: 'utf8', stdio: 'pipe' }) }
  } catch (err) {
    return { status: err.status, out: err.stdout + err.stderr }
  }
}

test('headings get GitHub\'s anchors: lowercase, punctuation dropped, spaces to hyphens, repeats numbered', () => {
  expect(slug('During an incident: find, replay, pause, slow down')).toBe('during-an-incident-find-replay-pause-slow-down')
  expect(slug('`KafkaRetry.headers()` and `dlqName`')).toBe('kafkaretryheaders-and-dlqname')
  expect(slug('Producers & secured Kafka')).toBe('producers--secured-kafka')
  expect(slug('Pushing a batch (pushMany)')).toBe('pushing-a-batch-pushmany')
  const anchors = anchorsOf('# Top\n## Soak\n```sh\n# not a heading\n```\n### Soak\n<a id="custom"></a>\n')
  expect([...anchors].sort()).toEqual(['custom', 'soak', 'soak-1', 'top'])
})

test('every relative link and anchor of the repository\'s docs resolves', () => {
  const files = docFiles(ROOT)
  expect(files).toEqual(expect.arrayContaining(['README.md', 'ARCHITECTURE.md', 'CHANGELOG.md', 'BENCHMARKS.md', 'docs/README.md']))
  expect(check(ROOT, files)).toEqual([])
  expect(run(ROOT).status).toBe(0)
})

test('a link to a missing file fails the check, naming the file and line', () => {
  withTree({
    'README.md': '# Front\n\nSee [the guide](docs/guide.md) and [nothing](docs/missing.md).\n',
    'docs/guide.md': '# Guide\n',
  }, (dir) => {
    expect(check(dir, docFiles(dir))).toEqual(['README.md:3: docs/missing.md (no such file)'])
    const { status, out } = run(dir)
    expect(status).toBe(1)
    expect(out).toContain('README.md:3: docs/missing.md (no such file)')
  })
})

test('an anchor that names no heading fails the check, in the same file and in another', () => {
  withTree({
    'README.md': '# Front\n\n## Install\n\n[ok](#install), [ok too](docs/guide.md#dead-letters-and-incidents)\n[bad](#instal) `[code](#nothing)`, [a text over\ntwo lines](#nowhere)\n',
    'docs/guide.md': '# Guide\n\n## Dead letters and incidents\n\n[back](../README.md#front) [wrong](../README.md#five-minute-start)\n```md\n[inside a code block](nowhere.md)\n```\n',
  }, (dir) => {
    expect(check(dir, docFiles(dir))).toEqual([
      'README.md:6: #instal (no heading or anchor "instal" in README.md)',
      'README.md:7: #nowhere (no heading or anchor "nowhere" in README.md)',
      'docs/guide.md:5: ../README.md#five-minute-start (no heading or anchor "five-minute-start" in README.md)',
    ])
    expect(run(dir).status).toBe(1)
  })
})
