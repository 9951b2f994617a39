// Accessibility checks with axe-core in a Playwright page: inject axe.min.js, run every rule on the
// whole document, and report the serious and critical violations in a form a person can act on.
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const AXE = require.resolve("axe-core/axe.min.js");

/** Impacts that fail a check. "moderate" and "minor" are reported by axe but do not fail. */
export const FAILING = new Set(["serious", "critical"]);

/** Runs axe on the page; resolves to its violations (all impacts). */
export async function axeViolations(page) {
  if (!(await page.evaluate(() => typeof window.axe === "object").catch(() => false))) {
    await page.addScriptTag({ path: AXE });
  }
  return page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ["violations"] });
    return r.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      helpUrl: v.helpUrl,
      nodes: v.nodes.map((n) => ({ target: n.target.map((t) => (Array.isArray(t) ? t.join(" >>> ") : t)).join(" "), impact: n.impact, summary: n.failureSummary })),
    }));
  });
}

/** A readable list of the failing violations, "" when there are none. */
export function describeViolations(label, violations) {
  const bad = violations.filter((v) => FAILING.has(v.impact));
  if (!bad.length) return "";
  const lines = [`${label}: ${bad.length} serious/critical accessibility violation(s)`];
  for (const v of bad) {
    lines.push(`  [${v.impact}] ${v.id}: ${v.help} (${v.helpUrl})`);
    for (const n of v.nodes.slice(0, 10)) lines.push(`      ${n.target}${n.summary ? `\n        ${n.summary.replace(/\n/g, "\n        ")}` : ""}`);
    if (v.nodes.length > 10) lines.push(`      … and ${v.nodes.length - 10} more`);
  }
  return lines.join("\n");
}

/** Throws with every serious or critical violation on the page (rule, impact, targets, help). */
export async function expectAccessible(page, label) {
  const text = describeViolations(label, await axeViolations(page));
  if (text) throw new Error(text);
}

/**
 * Collects failures across several screens so that one run shows all of them: `await a.check(page, "x")`
 * for each screen, then `a.assert()` at the end of the test.
 */
export function axeCollector() {
  const failures = [];
  return {
    async check(page, label) {
      const text = describeViolations(label, await axeViolations(page));
      if (text) {
        failures.push(text);
        console.log(text);
      }
    },
    assert() {
      if (failures.length) throw new Error(`accessibility violations:\n${failures.join("\n")}`);
    },
  };
}
