#!/usr/bin/env node
// The third-party notices of a platform package: the binary links every Rust crate it depends
// on and three C libraries (librdkafka with what it bundles, OpenSSL for Kafka TLS, zlib)
// statically, and their licenses ask that their texts travel with it.
//
//   node scripts/notices.js [RUST_TARGET_TRIPLE]   prints the notices (default: this machine's)
//
// Read from `cargo metadata` (the crates of the locked dependency graph, for that target, that
// the binary links: normal dependencies of the addon and of its dependencies) and from each
// crate's own license files; identical texts are written once.
'use strict'

const crypto = require('crypto')
const fs = require('fs')
const path = require('path')
const { execFileSync } = require('child_process')

const ROOT = path.join(__dirname, '..')
const LICENSE_FILE = /^(licen[cs]e|copying|notice)([-._].*)?$/i
// C sources built into the binary by a crate's build script; the crate's own license files cover
// only its Rust code. Included when the crate is anywhere in the graph (openssl-src is a build
// dependency of openssl-sys, whose output is linked).
const C_LIBRARIES = {
  'rdkafka-sys': { name: 'librdkafka (and the libraries it bundles)', files: ['librdkafka/LICENSES.txt'] },
  'openssl-src': { name: 'OpenSSL', files: ['openssl/LICENSE.txt'] },
  'libz-sys': { name: 'zlib', files: ['src/zlib/LICENSE'] },
}

function metadata(triple) {
  const args = ['metadata', '--format-version', '1', '--locked']
  if (triple) args.push('--filter-platform', triple)
  return JSON.parse(execFileSync('cargo', args, { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 << 20, stdio: ['ignore', 'pipe', 'pipe'] }))
}

/** The packages the binary links: the root's normal dependencies, transitively (not the root). */
function linked(meta) {
  const nodes = new Map(meta.resolve.nodes.map((n) => [n.id, n]))
  const seen = new Set()
  const stack = [meta.resolve.root]
  while (stack.length) {
    const id = stack.pop()
    if (seen.has(id)) continue
    seen.add(id)
    for (const dep of nodes.get(id).deps) {
      if (dep.dep_kinds.some((k) => k.kind === null)) stack.push(dep.pkg)
    }
  }
  seen.delete(meta.resolve.root)
  return meta.packages.filter((p) => seen.has(p.id)).sort((a, b) => a.name.localeCompare(b.name) || a.version.localeCompare(b.version))
}

function licenseTexts(dir, names) {
  return names
    .filter((name) => fs.existsSync(path.join(dir, name)))
    .map((name) => ({ name, text: fs.readFileSync(path.join(dir, name), 'utf8').trim() }))
}

/** The notices, as Markdown text. */
function notices(triple) {
  const meta = metadata(triple)
  const packages = linked(meta)
  // text hash -> { text, users: ["crate version (file)"] }
  const texts = new Map()
  const add = (user, text) => {
    const key = crypto.createHash('sha256').update(text.replace(/\s+/g, ' ')).digest('hex')
    if (!texts.has(key)) texts.set(key, { text, users: [] })
    texts.get(key).users.push(user)
  }
  const lines = []
  lines.push('# Third-party notices', '')
  lines.push(`The kafka-redis-retry binary${triple ? ` for ${triple}` : ''} contains the following software, linked statically.`)
  lines.push('Each is listed with its license; the license texts follow (each text once, with the software it covers).', '')
  lines.push('## C libraries', '')
  const all = new Map(meta.packages.map((p) => [p.name, p]))
  for (const [crate, lib] of Object.entries(C_LIBRARIES)) {
    const pkg = all.get(crate)
    if (!pkg) continue
    const dir = path.dirname(pkg.manifest_path)
    const found = licenseTexts(dir, lib.files)
    if (!found.length) throw new Error(`${crate} ${pkg.version}: none of ${lib.files.join(', ')} found in ${dir}`)
    lines.push(`- ${lib.name}, built from the sources in the crate ${crate} ${pkg.version}`)
    for (const file of found) add(`${lib.name} (${crate} ${pkg.version}: ${file.name})`, file.text)
  }
  lines.push('', '## Rust crates', '')
  for (const pkg of packages) {
    const dir = path.dirname(pkg.manifest_path)
    const files = fs.readdirSync(dir).filter((f) => LICENSE_FILE.test(f)).sort()
    lines.push(`- ${pkg.name} ${pkg.version}: ${pkg.license || pkg.license_file || 'see its license file'}`)
    const found = licenseTexts(dir, files)
    if (!found.length) {
      if (!pkg.license) throw new Error(`${pkg.name} ${pkg.version}: no license declared and no license file`)
      continue
    }
    for (const file of found) add(`${pkg.name} ${pkg.version} (${file.name})`, file.text)
  }
  lines.push('', '## License texts', '')
  for (const { text, users } of texts.values()) {
    lines.push(`### ${users.join(', ')}`, '', '```text', text.replace(/```/g, '` ` `'), '```', '')
  }
  return `${lines.join('\n').trimEnd()}\n`
}

module.exports = { notices }

if (require.main === module) process.stdout.write(notices(process.argv[2]))
