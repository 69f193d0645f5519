// What every test file shares: the daemon the tests run against (started by
// tests/test_typescript_sdk.py, which passes its URL and admin token) and unique names.
import { Memoturn, type MemoturnOptions } from "@memoturn/sdk";

const url = process.env["MEMOTURN_URL"];
if (!url) {
  throw new Error("MEMOTURN_URL is not set: run these tests with `pytest tests/test_typescript_sdk.py`");
}

export const URL = url;
export const TOKEN = process.env["MEMOTURN_TOKEN"];

/** A client of the test daemon, authenticated when the daemon has auth on. */
export function client(options: MemoturnOptions = {}): Memoturn {
  return new Memoturn(URL, { ...(TOKEN ? { token: TOKEN } : {}), ...options });
}

let counter = 0;

/** A database or profile name no other test uses. */
export function unique(prefix: string): string {
  counter += 1;
  return `${prefix}-${process.pid}-${counter}`;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
