// Validates CSAF 2.0 documents with the CSAF project's validator library
// (@secvisogram/csaf-validator-lib, pinned by package-lock.json).
//   node validate.mjs FILE...
// Runs the strict CSAF 2.0 JSON schema and every mandatory test (section 6.1): any error
// fails (exit 1). Then runs the optional ("recommended", 6.2) and informative (6.3)
// tests and prints their findings, which never fail the run. Skipped: informative 6.3.6
// and 6.3.7 (they fetch every URL in the document over the network; the tests run
// offline) and 6.3.8 (spell check; needs hunspell dictionaries).
import { readFileSync } from 'node:fs'
import validateStrict from '@secvisogram/csaf-validator-lib/validateStrict.js'
import { csaf_2_0_strict } from '@secvisogram/csaf-validator-lib/schemaTests.js'
import * as mandatory from '@secvisogram/csaf-validator-lib/mandatoryTests.js'
import * as optional from '@secvisogram/csaf-validator-lib/optionalTests.js'
import * as informative from '@secvisogram/csaf-validator-lib/informativeTests.js'

const skipped = new Set(['informativeTest_6_3_6', 'informativeTest_6_3_7', 'informativeTest_6_3_8'])
let failed = false
for (const file of process.argv.slice(2)) {
  const doc = JSON.parse(readFileSync(file, 'utf8'))
  const strict = await validateStrict([csaf_2_0_strict, ...Object.values(mandatory)], doc)
  const findings = await validateStrict(
    [...Object.values(optional), ...Object.values(informative).filter((t) => !skipped.has(t.name))],
    doc
  )
  const errors = strict.tests.flatMap((t) => t.errors.map((e) => `${t.name}: ${e.instancePath} ${e.message}`))
  console.log(`${file}: ${doc.document?.category} ${doc.document?.tracking?.status} TLP:${doc.document?.distribution?.tlp?.label}` +
    ` schema+mandatory: ${errors.length} error(s) [${strict.tests.length} tests]`)
  for (const e of errors) console.log(`  ERROR ${e}`)
  for (const t of findings.tests) {
    for (const w of t.warnings ?? []) console.log(`  recommended/informative ${t.name}: warning ${w.instancePath} ${w.message}`)
    for (const w of t.infos ?? []) console.log(`  recommended/informative ${t.name}: info ${w.instancePath} ${w.message}`)
    for (const w of t.errors ?? []) console.log(`  recommended/informative ${t.name}: error ${w.instancePath} ${w.message}`)
  }
  if (errors.length || !strict.isValid) failed = true
}
process.exit(failed ? 1 : 0)
