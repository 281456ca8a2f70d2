// Starts a real `herald serve` on a free port and waits for it to listen.
import { spawn, execFileSync } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import path from "node:path";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const HERALD = process.env.HERALD_BIN ?? path.join(root, "target/debug/herald");
export const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
export const SECRET = "browser-test-secret-0123456789";
export const KEY = "browser-test-publish-key";

/** `herald serve --listen 127.0.0.1:0 ...args`; resolves once it listens. */
export function startHub(args) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("HERALD_")));
  const child = spawn(HERALD, ["serve", "--listen", "127.0.0.1:0", ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
  const lines = [];
  const waiters = [];
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream }).on("line", (line) => {
      lines.push(line);
      for (const w of [...waiters]) if (w.test(line)) { waiters.splice(waiters.indexOf(w), 1); w.resolve(line); }
    });
  }
  const waitForLine = (test) => new Promise((resolve, reject) => {
    const seen = lines.find(test);
    if (seen) return resolve(seen);
    const timer = setTimeout(() => reject(new Error("herald did not print the expected line:\n" + lines.join("\n"))), 10_000);
    waiters.push({ test, resolve: (l) => { clearTimeout(timer); resolve(l); } });
  });
  return waitForLine((l) => l.startsWith("herald listening on http://")).then((line) => ({
    url: line.slice("herald listening on ".length).trim(),
    waitForLine,
    stop: () => child.kill("SIGKILL"),
  }));
}

export function mintToken(sub, topics) {
  return execFileSync(HERALD, ["token", "--secret", SECRET, "--sub", sub, "--topics", topics.join(",")], { encoding: "utf8" }).trim();
}

/** An SSE stream read by Node's fetch; `next(name)` resolves with the next event of that name. */
export async function openStream(url, token) {
  const controller = new AbortController();
  const response = await fetch(url, { headers: { Authorization: "Bearer " + token }, signal: controller.signal });
  if (response.status !== 200) throw new Error("stream refused: " + response.status);
  const events = [];
  const waiters = [];
  (async () => {
    const decoder = new TextDecoder();
    let buffer = "";
    try {
      for await (const chunk of response.body) {
        buffer += decoder.decode(chunk, { stream: true });
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event = { event: "message", data: [], id: null };
          for (const line of block.split("\n")) {
            const [field, ...rest] = line.split(":");
            const value = rest.join(":").replace(/^ /, "");
            if (field === "event") event.event = value;
            else if (field === "data") event.data.push(value);
            else if (field === "id") event.id = value;
          }
          if (event.data.length === 0) continue;
          event.data = event.data.join("\n");
          events.push(event);
          for (const w of [...waiters]) if (w.name === event.event) { waiters.splice(waiters.indexOf(w), 1); w.resolve(event); }
        }
      }
    } catch { /* aborted */ }
  })();
  return {
    next: (name) => new Promise((resolve, reject) => {
      const seen = events.find((e) => e.event === name);
      if (seen) return resolve(seen);
      const timer = setTimeout(() => reject(new Error("no " + name + " event")), 10_000);
      waiters.push({ name, resolve: (e) => { clearTimeout(timer); resolve(e); } });
    }),
    close: () => controller.abort(),
  };
}
