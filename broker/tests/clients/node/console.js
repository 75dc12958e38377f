// The web console in Debian's Chromium, driven by Playwright (playwright-core,
// no downloaded browser). Driven by test_console.py, which runs the cluster:
//
//   node console.js URL SCREENSHOT_DIR
//
// Visits every page and keeps a screenshot of each; waits for the placement
// map to show a replica being added (a move under way); waits for a group's
// lag to appear, prints LAG_SEEN (the test then drains the group) and waits
// for it to reach 0. Prints DONE at the end; any failure exits non-zero.
"use strict";

const { chromium } = require("playwright-core");
const path = require("path");

const [url, shots] = process.argv.slice(2);
const PAGES = ["overview", "brokers", "topics", "placement", "groups", "moves", "quorum", "transactions", "operator"];

function say(line) {
  process.stdout.write(line + "\n");
}

async function main() {
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const page = await browser.newPage({ viewport: { width: 1366, height: 800 } });
  const offsite = [];
  page.on("request", (r) => {
    if (!r.url().startsWith(url)) offsite.push(r.url());
  });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));

  await page.goto(url);
  await page.waitForSelector("body[data-updated]", { timeout: 30000 });
  for (const name of PAGES) {
    await page.click(`nav a[data-page="${name}"]`);
    await page.waitForSelector(`nav a[data-page="${name}"][aria-current="page"]`);
    await page.waitForSelector("main h2", { timeout: 10000 });
    await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
  }

  // Keyboard: the skip link is the first stop, and it moves focus to the content.
  await page.keyboard.press("Tab");
  const first = await page.evaluate(() => document.activeElement.textContent);
  if (first !== "Skip to content") throw new Error(`the first Tab stop is ${JSON.stringify(first)}`);

  // The placement map during a move: a replica being added, shown as "+".
  await page.click('nav a[data-page="placement"]');
  await page.waitForSelector("table.map td.A", { timeout: 90000 });
  const moving = await page.$$eval("table.map td.A", (cells) => cells.map((c) => c.getAttribute("aria-label")));
  say(`MOVING ${moving.length} ${moving[0]}`);
  await page.screenshot({ path: path.join(shots, "placement-moving.png"), fullPage: true });
  await page.click('nav a[data-page="moves"]');
  await page.waitForSelector("main table", { timeout: 10000 });
  await page.screenshot({ path: path.join(shots, "moves-in-progress.png"), fullPage: true });

  // Lag appears for the group, then drains.
  await page.click('nav a[data-page="groups"]');
  const lag = () => page.$eval('[data-lag="console-group"]', (e) => Number(e.textContent.replace(/,/g, "")));
  await page.waitForSelector('[data-lag="console-group"]', { timeout: 60000 });
  await page.waitForFunction(() => {
    const e = document.querySelector('[data-lag="console-group"]');
    return e && Number(e.textContent.replace(/,/g, "")) > 0;
  }, null, { timeout: 60000 });
  say(`LAG_SEEN ${await lag()}`);
  await page.screenshot({ path: path.join(shots, "groups-lagging.png"), fullPage: true });
  await page.waitForFunction(() => {
    const e = document.querySelector('[data-lag="console-group"]');
    return e && e.textContent === "0";
  }, null, { timeout: 90000 });
  await page.screenshot({ path: path.join(shots, "groups-drained.png"), fullPage: true });

  await browser.close();
  if (errors.length) throw new Error(`script errors: ${errors.join("; ")}`);
  if (offsite.length) throw new Error(`requests off the console: ${offsite.join(", ")}`);
  say("DONE");
}

main().catch((e) => {
  process.stderr.write(`${e.stack || e}\n`);
  process.exit(1);
});
