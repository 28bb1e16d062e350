// Scores a cache-tests results file the way the suite's own results page (cache-tests.fyi)
// reads "required" tests: a test with no `kind` or `kind: 'required'` passes only when its
// own result is exactly `true` AND every test named in its `depends_on` passed (a `check`
// test counts as passed when it answered yes). A prerequisite that failed, or a setup step
// that failed, makes the test fail, as on the results page (its "dependency failed" and
// "setup failed" marks).
// Prints `PASS/TOTAL` on the first line, then one line per failed required test.
// Usage: node cache_tests_score.mjs SUITE_DIR RESULTS_JSON
import fs from 'fs'
import path from 'path'
import { pathToFileURL } from 'url'

const [suiteDir, resultsFile] = process.argv.slice(2)
const index = (await import(pathToFileURL(path.join(suiteDir, 'tests', 'index.mjs')).href)).default
const results = JSON.parse(fs.readFileSync(resultsFile, 'utf8'))
const byId = new Map()
for (const suite of index) for (const test of suite.tests) byId.set(test.id, test)

// Whether `id` passed on its own and through all its prerequisites.
const memo = new Map()
function passed (id, seen = new Set()) {
  if (memo.has(id)) return memo.get(id)
  const test = byId.get(id)
  let ok = test !== undefined && results[id] === true && !seen.has(id)
  if (ok) {
    seen.add(id)
    for (const dep of test.depends_on || []) {
      if (!passed(dep, seen)) ok = false
    }
  }
  memo.set(id, ok)
  return ok
}

// Why a test failed: its own result, or the first prerequisite that failed.
function why (id) {
  const own = results[id]
  if (own !== true) return String(JSON.stringify(own)).slice(0, 120)
  const dep = (byId.get(id).depends_on || []).find(d => !passed(d))
  return `prerequisite ${dep} failed: ${String(JSON.stringify(results[dep])).slice(0, 100)}`
}

let total = 0
let pass = 0
const failed = []
for (const suite of index) {
  for (const test of suite.tests) {
    if (test.kind && test.kind !== 'required') continue
    total++
    if (passed(test.id)) pass++
    else failed.push(`${test.id} ${why(test.id)}`)
  }
}
console.log(`${pass}/${total}`)
for (const f of failed) console.log(f)
