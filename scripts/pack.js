#!/usr/bin/env node
// Packs what a release publishes: the main package (JavaScript, types, CLI; no binary) and one
// package per platform holding its `.node`, as npm tarballs. The release workflow publishes
// exactly these tarballs; `npm run pack:local` makes the ones for this machine.
//
//   node scripts/pack.js [--artifacts DIR] [--out DIR] [--all]
//
// --artifacts  where the built `kafka-redis-retry.<platform>.node` files are (default: the repository
//              root, where `napi build --platform` writes them)
// --out        where the tarballs go (default: dist/)
// --all        every target of package.json `napi.targets` must have its binary (the release):
//              napi's own `napi artifacts` and `napi prepublish` place and check them. Without
//              it, the platforms whose binary is there are packed (locally: this machine's).
//
// Either way the main package's optionalDependencies name every target's package at this
// version, as napi prepublish writes them, so the main tarball is the same.
// Prints a JSON summary: [{ name, file, bytes, unpackedBytes, files }].
'use strict'

const fs = require('fs')
const os = require('os')
const path = require('path')
const { execFileSync } = require('child_process')
const { parseArgs } = require('util')
const { notices } = require('./notices')

const ROOT = path.join(__dirname, '..')
const NAPI = path.join(ROOT, 'node_modules', '@napi-rs', 'cli', 'dist', 'cli.js')

function run(cmd, args, cwd) {
  return execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
}

/** `npm pack` of dir into out; the summary of the tarball. */
function npmPack(dir, out) {
  const [info] = JSON.parse(run('npm', ['pack', '--json', '--pack-destination', out], dir))
  const file = path.join(out, info.filename)
  return {
    name: info.name,
    file,
    bytes: fs.statSync(file).size,
    unpackedBytes: info.unpackedSize,
    files: info.files.map((f) => f.path).sort(),
  }
}

/** Copies what the main package's `files` list names (and package.json, npm/) into stage. */
function stageRoot(pkg, stage) {
  for (const entry of ['package.json', 'npm', ...pkg.files]) {
    const from = path.join(ROOT, entry.replace(/\/$/, ''))
    if (!fs.existsSync(from)) throw new Error(`${entry} (package.json files) does not exist`)
    fs.cpSync(from, path.join(stage, entry.replace(/\/$/, '')), { recursive: true })
  }
  // LICENSE and README are packed by npm whatever `files` says.
  for (const extra of ['LICENSE', 'README.md']) {
    if (fs.existsSync(path.join(ROOT, extra))) fs.copyFileSync(path.join(ROOT, extra), path.join(stage, extra))
  }
}

/** Writes a field into a package.json. */
function edit(file, change) {
  const pkg = JSON.parse(fs.readFileSync(file, 'utf8'))
  change(pkg)
  fs.writeFileSync(file, `${JSON.stringify(pkg, null, 2)}\n`)
}

async function main() {
  const { values } = parseArgs({
    options: {
      artifacts: { type: 'string', default: ROOT },
      out: { type: 'string', default: path.join(ROOT, 'dist') },
      all: { type: 'boolean', default: false },
    },
  })
  const artifacts = path.resolve(values.artifacts)
  const out = path.resolve(values.out)
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'))
  const { readNapiConfig } = await import('@napi-rs/cli')
  const config = await readNapiConfig(path.join(ROOT, 'package.json'))
  const binary = (target) => `${config.binaryName}.${target.platformArchABI}.node`

  // The generated loader checks the platform package's version against the one it was built
  // with: after `npm version`, `npm run build` must have regenerated it.
  if (!fs.readFileSync(path.join(ROOT, 'native.js'), 'utf8').includes(`expected ${pkg.version} but got`)) {
    throw new Error(`native.js was generated for another version than ${pkg.version}: run npm run build and commit it`)
  }

  const stage = fs.mkdtempSync(path.join(os.tmpdir(), 'kafka-redis-retry-stage-'))
  try {
    stageRoot(pkg, stage)
    // The licenses of what each binary links statically travel with it (written first: napi
    // prepublish checks that every file a platform package lists is there).
    for (const target of config.targets) {
      fs.writeFileSync(path.join(stage, 'npm', target.platformArchABI, 'THIRD_PARTY_NOTICES.md'), notices(target.triple))
    }
    let packed
    if (values.all) {
      // The release: napi copies every artifact into its npm/<platform> package (failing on a
      // missing one), then checks each package and writes optionalDependencies.
      // (napi bounds what it may touch by the enclosing git repository: the stage is one.)
      run('git', ['init', '--quiet'], stage)
      run('git', ['-c', 'user.name=pack', '-c', 'user.email=pack@localhost', 'commit', '--quiet', '--allow-empty', '-m', 'stage'], stage)
      run(process.execPath, [NAPI, 'artifacts', '--output-dir', artifacts, '--npm-dir', 'npm'], stage)
      run(process.execPath, [NAPI, 'pre-publish', '--tag-style', 'npm', '--skip-optional-publish'], stage)
      packed = config.targets
    } else {
      packed = config.targets.filter((target) => fs.existsSync(path.join(artifacts, binary(target))))
      if (!packed.length) {
        throw new Error(`no built binary in ${artifacts} (run npm run build): looked for ${config.targets.map(binary).join(', ')}`)
      }
      for (const target of packed) {
        fs.copyFileSync(path.join(artifacts, binary(target)), path.join(stage, 'npm', target.platformArchABI, binary(target)))
      }
      // What napi prepublish writes (see --all): every target's package, at this version.
      edit(path.join(stage, 'package.json'), (p) => {
        p.optionalDependencies = { ...p.optionalDependencies }
        for (const target of config.targets) p.optionalDependencies[`${config.packageName}-${target.platformArchABI}`] = p.version
      })
    }
    // npm provenance checks that repository.url is the repository the workflow ran in.
    if (process.env.GITHUB_REPOSITORY) {
      const repository = {
        type: 'git',
        url: `git+${process.env.GITHUB_SERVER_URL || 'https://github.com'}/${process.env.GITHUB_REPOSITORY}.git`,
      }
      const manifests = [path.join(stage, 'package.json'), ...packed.map((t) => path.join(stage, 'npm', t.platformArchABI, 'package.json'))]
      for (const file of manifests) edit(file, (p) => (p.repository = repository))
    }

    fs.mkdirSync(out, { recursive: true })
    const summary = packed.map((target) => npmPack(path.join(stage, 'npm', target.platformArchABI), out))
    summary.push(npmPack(stage, out))
    for (const item of summary) {
      const mine = item.name === config.packageName ? [] : [binary(packed.find((t) => item.name.endsWith(t.platformArchABI)))]
      const bad = item.files.filter((f) => f.endsWith('.node') && !mine.includes(f))
      if (bad.length || mine.some((f) => !item.files.includes(f))) {
        throw new Error(`${item.name}: unexpected binaries ${JSON.stringify(item.files)}`)
      }
    }
    process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`)
  } finally {
    fs.rmSync(stage, { recursive: true, force: true })
  }
}

main().catch((err) => {
  process.stderr.write(`pack: ${(err && err.stderr) || ''}${(err && err.message) || err}\n`)
  process.exitCode = 1
})
