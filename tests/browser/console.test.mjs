// The developer console in real headless Chromium against a real hub.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { startHub, mintToken, openStream, CHROMIUM, SECRET, KEY } from "./hub.mjs";

let browser;
before(async () => {
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
});
after(async () => {
  await browser?.close();
});

test("asks for the key, shows live streams, and publishes from its form", async () => {
  const hub = await startHub(["--jwt-secret", SECRET, "--publish-key", KEY, "--console"]);
  const stream = await openStream(hub.url + "/events?topic=orders/1", mintToken("alice", ["orders/*"]));
  const page = await browser.newPage();
  try {
    await page.goto(hub.url + "/console");
    const source = await (await fetch(hub.url + "/console")).text();
    assert.ok(!source.includes(KEY), "the page source holds no key");
    await page.locator("#key").waitFor();
    assert.equal(await page.locator("#console").isVisible(), false);

    await page.fill("#key", "not-the-key");
    await page.click("#login-form button");
    await page.locator("#login-error", { hasText: "invalid publish key" }).waitFor();
    assert.equal(await page.locator("#console").isVisible(), false, "a wrong key opens nothing");

    await page.fill("#key", KEY);
    await page.click("#login-form button");
    await page.locator("#connections", { hasText: /^1$/ }).waitFor();
    await page.locator("#top-users td", { hasText: "alice" }).waitFor();
    await page.locator("#top-topics td", { hasText: "orders/1" }).waitFor();

    await page.selectOption("#target-kind", "user");
    await page.fill("#target", "alice");
    await page.fill("#event", "console_test");
    await page.fill("#data", '{"hello": "browser"}');
    await page.click("#publish-form button");
    const result = await page.locator("#publish-result", { hasText: "Published" }).textContent();
    const id = result.replace("Published ", "").trim();
    const received = await stream.next("console_test");
    assert.deepEqual([received.id, JSON.parse(received.data)], [id, { hello: "browser" }]);
    await page.locator("#events tr[data-event=console_test]").waitFor();

    await page.fill("#data", "{broken");
    await page.click("#publish-form button");
    await page.locator("#publish-result.error", { hasText: "not valid JSON" }).waitFor();

    // Event data is shown as text, never as markup.
    const hostile = '<img src=x id=injected onerror="document.title=\'pwned\'">';
    const published = await fetch(hub.url + "/publish", {
      method: "POST",
      headers: { Authorization: "Bearer " + KEY, "Content-Type": "application/json" },
      body: JSON.stringify({ event: "hostile", data: hostile }),
    });
    assert.equal(published.status, 200);
    await page.locator("#events tr[data-event=hostile]", { hasText: "<img" }).waitFor();
    assert.equal(await page.locator("#injected").count(), 0);
    assert.notEqual(await page.title(), "pwned");
  } finally {
    await page.close();
    stream.close();
    hub.stop();
  }
});

test("development mode opens straight from the banner link and drops the key from the URL", async () => {
  const hub = await startHub([]);
  const page = await browser.newPage();
  try {
    const line = await hub.waitForLine((l) => l.includes("/console#key="));
    await page.goto(line.trim());
    await page.locator("#status.live").waitFor();
    assert.equal(await page.locator("#login").isVisible(), false);
    assert.ok(!page.url().includes("key="), "the key is removed from the address bar: " + page.url());
  } finally {
    await page.close();
    hub.stop();
  }
});
