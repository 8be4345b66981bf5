#!/usr/bin/env node
'use strict'
// Every relative link and #anchor in the Markdown docs resolves: the file exists, and an anchor
// names a heading of the target (GitHub's slugs) or an explicit <a id>/<a name>. Part of
// `npm run lint`; exits 1 listing each broken link as file:line. External links (https:, mailto:)
// are not fetched: the check must pass offline.

const fs = require('fs')
const path = require('path')

/** The docs the check covers, relative to the repository root: the front page, docs/, the top-level notes and observability/'s README. */
function docFiles(root) {
  const files = ['README.md', 'ARCHITECTURE.md', 'CHANGELOG.md', 'BENCHMARKS.md', 'observability/README.md'].filter((f) => fs.existsSync(path.join(root, f)))
  const walk = (dir) => {
    const full = path.join(root, dir)
    if (!fs.existsSync(full)) return
    for (const entry of fs.readdirSync(full, { withFileTypes: true })) {
      const rel = path.posix.join(dir, entry.name)
      // docs/api/ is TypeDoc's generated HTML (npm run docs), not written by hand.
      if (entry.isDirectory() && rel !== 'docs/api') walk(rel)
      else if (entry.isFile() && entry.name.endsWith('.md')) files.push(rel)
    }
  }
  walk('docs')
  return files
}

/** GitHub's anchor for a heading's text: lowercase, markup and punctuation dropped, spaces to hyphens. */
function slug(text) {
  return text
    .replace(/<[^>]*>/g, '') // inline HTML tags
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1') // links keep their text
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\p{M}\s_-]/gu, '') // punctuation, backticks, emphasis marks
    .replace(/\s/g, '-')
}

/** The lines of a Markdown text with fenced code blocks blanked (their `#` lines are not headings, their links not links). */
function proseLines(text) {
  let fence = null
  return text.split('\n').map((line) => {
    const open = /^\s{0,3}(`{3,}|~{3,})/.exec(line)
    if (fence) {
      const close = /^\s{0,3}(`{3,}|~{3,})\s*$/.exec(line)
      if (close && close[1][0] === fence[0] && close[1].length >= fence.length) fence = null
      return ''
    }
    if (open) {
      fence = open[1]
      return ''
    }
    return line
  })
}

/** Every anchor a Markdown text defines: heading slugs (repeats get -1, -2, ... as on GitHub) and <a id|name>. */
function anchorsOf(text) {
  const anchors = new Set()
  const seen = new Map()
  for (const line of proseLines(text)) {
    const heading = /^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$/.exec(line)
    if (heading) {
      const base = slug(heading[1])
      const n = seen.get(base) || 0
      seen.set(base, n + 1)
      anchors.add(n === 0 ? base : `${base}-${n}`)
    }
    for (const m of line.matchAll(/<a\s+(?:[^>]*\s)?(?:id|name)="([^"]+)"/g)) anchors.add(m[1])
  }
  return anchors
}

/** The links of a Markdown text outside code: `[text](target)`, `![alt](target)` and `[ref]: target`, with their line numbers (a link's text may span lines). */
function linksOf(text) {
  // Inline code spans (within one paragraph) hold no links: blanked, keeping their newlines so line numbers stay right.
  const prose = proseLines(text).join('\n').replace(/(`+)(?:(?!\n[ \t]*\n)[\s\S])*?\1/g, (span) => span.replace(/[^\n]/g, ' '))
  const lineAt = (index) => prose.slice(0, index).split('\n').length
  const links = []
  for (const m of prose.matchAll(/!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) links.push({ target: m[1], line: lineAt(m.index + m[0].indexOf('](')) })
  for (const m of prose.matchAll(/^ {0,3}\[[^\]\n]+\]:[ \t]*<?(\S+?)>?(?:[ \t]+"[^"\n]*")?[ \t]*$/gm)) links.push({ target: m[1], line: lineAt(m.index) })
  return links.sort((a, b) => a.line - b.line)
}

/**
 * The broken links of `files` (paths relative to `root`), as `file:line: target (why)` strings;
 * empty when every relative link and anchor resolves.
 */
function check(root, files) {
  const problems = []
  const anchorCache = new Map()
  const anchorsIn = (file) => {
    if (!anchorCache.has(file)) anchorCache.set(file, anchorsOf(fs.readFileSync(file, 'utf8')))
    return anchorCache.get(file)
  }
  for (const rel of files) {
    const file = path.join(root, rel)
    for (const { target, line } of linksOf(fs.readFileSync(file, 'utf8'))) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith('//')) continue // https:, mailto:, ...
      const hash = target.indexOf('#')
      const filePart = decodeURIComponent(hash < 0 ? target : target.slice(0, hash))
      const anchor = hash < 0 ? null : decodeURIComponent(target.slice(hash + 1))
      const dest = filePart === '' ? file : path.resolve(path.dirname(file), filePart.split('?')[0])
      const where = `${rel}:${line}: ${target}`
      if (!fs.existsSync(dest)) {
        problems.push(`${where} (no such file)`)
        continue
      }
      if (anchor === null || anchor === '') continue
      if (!dest.endsWith('.md')) {
        // GitHub's line anchors (#L10, #L10-L20) on source files.
        if (!/^L\d+(-L\d+)?$/.test(anchor)) problems.push(`${where} (an anchor into a file that is not Markdown)`)
        continue
      }
      if (!anchorsIn(dest).has(anchor)) problems.push(`${where} (no heading or anchor "${anchor}" in ${path.relative(root, dest)})`)
    }
  }
  return problems
}

module.exports = { docFiles, slug, anchorsOf, linksOf, check }

if (require.main === module) {
  const root = path.resolve(process.argv[2] || path.join(__dirname, '..'))
  const files = docFiles(root)
  const problems = check(root, files)
  for (const p of problems) console.error(p)
  if (problems.length > 0) {
    console.error(`check-links: ${problems.length} broken link(s) in ${files.length} files`)
    process.exit(1)
  }
  console.log(`check-links: every relative link and anchor in ${files.length} files resolves`)
}
