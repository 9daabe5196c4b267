// Runs the CSAF 2.0 schema test and every mandatory test (CSAF 2.0 section 6.1) of the
// BSI's reference validator on each JSON file named on the command line, and prints one
// JSON object: {"FILE": {"isValid": bool, "errors": [{"test", "instancePath", "message"}]}}.
import { readFile } from 'node:fs/promises'
import validate from '@secvisogram/csaf-validator-lib/validate.js'
import * as mandatory from '@secvisogram/csaf-validator-lib/mandatoryTests.js'
import * as schema from '@secvisogram/csaf-validator-lib/schemaTests.js'

const tests = [schema.csaf_2_0, ...Object.values(mandatory)]
const out = {}
for (const file of process.argv.slice(2)) {
  const doc = JSON.parse(await readFile(file, 'utf8'))
  const result = await validate(tests, doc)
  out[file] = {
    isValid: result.isValid,
    ran: result.tests.map((t) => t.name),
    errors: result.tests.flatMap((t) =>
      t.errors.map((e) => ({ test: t.name, instancePath: e.instancePath, message: e.message })),
    ),
  }
}
process.stdout.write(JSON.stringify(out, null, 2) + '\n')
