#!/usr/bin/env node
// `npm run lint` part: docker-compose.yml (or the files given) must be valid YAML that the Compose
// Specification's JSON schema accepts, so a key Docker Compose would refuse is caught without
// Docker. The schema comes with the dclint devDependency (its schemas/compose.schema.json, the
// compose-spec project's schema, Apache-2.0); only its YAML and schema check runs here, not its
// style rules. Exits 1 naming the file and the first fault the schema reports.
const path = require('path')
const { DCLinter } = require('dclint')

const root = path.join(__dirname, '..')
const files = process.argv.length > 2 ? process.argv.slice(2) : [path.join(root, 'docker-compose.yml')]

let failed = 0
for (const file of files) {
  const { messages } = DCLinter.validateFile(file)
  for (const m of messages) {
    process.stderr.write(`${path.relative(process.cwd(), file)}:${m.line}:${m.column}: ${m.rule}: ${m.message}\n`)
  }
  if (messages.length > 0) failed++
}
if (failed > 0) process.exit(1)
console.log(`${files.length} compose file(s) match the Compose Specification`)
