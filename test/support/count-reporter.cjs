// Mocha reporter: mocha's spec output on the console, plus the counts written to
// $KARAT_COUNTS_FILE (JSON) so scripts/test.mjs can print one summary line.
const fs = require('fs');
const Mocha = require('mocha');
const {EVENT_RUN_END, EVENT_TEST_PASS, EVENT_TEST_FAIL, EVENT_TEST_PENDING} = Mocha.Runner.constants;

class CountReporter extends Mocha.reporters.Spec {
  constructor(runner, options) {
    super(runner, options);
    const counts = {passed: 0, failed: 0, skipped: 0};
    runner.on(EVENT_TEST_PASS, () => counts.passed++);
    runner.on(EVENT_TEST_FAIL, () => counts.failed++);
    runner.on(EVENT_TEST_PENDING, () => counts.skipped++);
    runner.once(EVENT_RUN_END, () => {
      const file = process.env.KARAT_COUNTS_FILE;
      if (file) fs.writeFileSync(file, JSON.stringify(counts));
    });
  }
}
module.exports = CountReporter;
