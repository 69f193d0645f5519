/**
 * The retry rules of every Memoturn SDK (the Python SDK's `_retryable`, `_delays`, `_settle`):
 * a 503, or a 409 whose type says nothing was applied, is retried with exponential backoff; a
 * connection error, and the gateway's `502 outcome-unknown` (its own connection to the node lost
 * after sending), are retried for idempotent calls only; a problem carrying a `txid` never is.
 */

/** Problem types that say the node could not take the call now, and applied nothing. */
export const RETRY_TYPES: ReadonlySet<string> = new Set([
  "not-owner",
  "lease-lost",
  "fenced",
  "store-unavailable",
  "no-route",
  "unavailable",
]);

/** The longest wait between two attempts, in milliseconds. */
export const BACKOFF_CAP_MS = 2000;

/** Waits before each retry: `retries` delays (`firstMs`, doubling, at most the cap), then null for the last attempt. */
export function* delays(firstMs: number, retries: number): Generator<number | null> {
  let delay: number | null = null;
  for (let i = 0; i < retries; i++) {
    delay = Math.min(BACKOFF_CAP_MS, delay === null ? firstMs : delay * 2);
    yield delay;
  }
  yield null;
}

/**
 * Whether a refusal says nothing was applied. A problem carrying a `txid` was committed
 * (ownership lapsed, or not yet durable): its outcome is unknown, and a retry could apply it twice.
 */
export function retryable(status: number, text: string): boolean {
  if (status !== 409 && status !== 503) return false;
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return status === 503;
  }
  if (typeof body !== "object" || body === null) return status === 503;
  const problem = body as { type?: unknown; txid?: unknown };
  if (problem.txid !== undefined && problem.txid !== null) return false;
  return (typeof problem.type === "string" && RETRY_TYPES.has(problem.type)) || status === 503;
}

/**
 * The gateway's `502 outcome-unknown`: its connection to the node was lost after sending (a node
 * draining on scale-in). For an idempotent call this is what a lost connection of the SDK's own
 * is, and is retried as one (sending a KV put again leaves the same value).
 */
export function connectionLost(status: number, text: string): boolean {
  if (status !== 502) return false;
  try {
    const body: unknown = JSON.parse(text);
    return typeof body === "object" && body !== null && (body as { type?: unknown }).type === "outcome-unknown";
  } catch {
    return false;
  }
}
