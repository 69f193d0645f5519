/** What a refused (or unanswered) call throws. */

/**
 * The server answered with a problem (RFC 9457 body: `type`, `detail`, maybe `txid`), or, as
 * status 0 and type `unreachable`, not at all. A `txid` means the write was committed though the
 * answer is a refusal (ownership lapsed, or not yet durable): its outcome is known to the server.
 */
export class ProblemError extends Error {
  readonly status: number;
  readonly type: string;
  readonly detail: string;
  readonly txid: number | null;

  constructor(status: number, type: string, detail: string, txid: number | null = null) {
    super(`${status} ${type}: ${detail}`);
    this.name = "ProblemError";
    this.status = status;
    this.type = type;
    this.detail = detail;
    this.txid = txid;
  }

  /** The problem a refusal describes (a body that is no problem is kept as its text). */
  static fromResponse(status: number, statusText: string, text: string): ProblemError {
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      return new ProblemError(status, "http-error", text || statusText);
    }
    if (typeof body !== "object" || body === null || Array.isArray(body)) {
      return new ProblemError(status, "error", text);
    }
    const problem = body as { type?: unknown; detail?: unknown; txid?: unknown };
    return new ProblemError(
      status,
      typeof problem.type === "string" ? problem.type : "error",
      typeof problem.detail === "string" ? problem.detail : text,
      typeof problem.txid === "number" ? problem.txid : null,
    );
  }
}
