// Scores a cache-tests results file the way cache-tests.fyi counts "required" tests: a test
// with no `kind` or `kind: 'required'` passes when its result is exactly `true`.
// Usage: node cache_tests_score.mjs SUITE_DIR RESULTS_JSON
import fs from 'fs'
import path from 'path'
import { pathToFileURL } from 'url'

const [suiteDir, resultsFile] = process.argv.slice(2)
const index = (await import(pathToFileURL(path.join(suiteDir, 'tests', 'index.mjs')).href)).default
const results = JSON.parse(fs.readFileSync(resultsFile, 'utf8'))
let total = 0
let pass = 0
const failed = []
for (const suite of index) {
  for (const test of suite.tests) {
    if (test.kind && test.kind !== 'required') continue
    total++
    if (results[test.id] === true) pass++
    else failed.push(`${test.id} ${String(JSON.stringify(results[test.id])).slice(0, 120)}`)
  }
}
console.log(`${pass}/${total}`)
for (const f of failed) console.log(f)
