/** Bounded retry with exponential backoff for notification channels. */

export interface RetryPolicy {
  /** Total attempts, including the first. */
  readonly attempts: number;
  /** Delay before the second attempt; doubles after each further failure. */
  readonly baseDelayMs: number;
  /** Upper bound for one backoff delay. */
  readonly maxDelayMs?: number;
}

export type AttemptResult =
  | { readonly ok: true }
  | { readonly ok: false; readonly error: string; readonly retryable: boolean; readonly retryAfterMs?: number };

export interface RetryOutcome {
  readonly ok: boolean;
  readonly attempts: number;
  readonly error?: string;
  /** Set when the last failure will not fix itself (a 4xx answer, refused credentials): trying later is pointless. */
  readonly permanent?: true;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Runs `attempt` until it succeeds, fails permanently, runs out of attempts, or the next try could not start before
 * `deadline` (epoch ms). `attempt` receives the time it may take; it must not throw.
 */
export async function retryUntil(
  attempt: (timeLeftMs: number, n: number) => Promise<AttemptResult>,
  policy: RetryPolicy,
  deadline: number,
  onFailure?: (n: number, error: string, willRetry: boolean) => void,
): Promise<RetryOutcome> {
  const attempts = Math.max(1, Math.floor(policy.attempts));
  const maxDelay = policy.maxDelayMs ?? 30_000;
  let last = 'ERROR';
  for (let n = 1; n <= attempts; n++) {
    const left = deadline - Date.now();
    if (left <= 0) return { ok: false, attempts: n - 1, error: n === 1 ? 'DEADLINE' : last };
    const r = await attempt(left, n);
    if (r.ok) return { ok: true, attempts: n };
    last = r.error;
    const backoff = Math.min(maxDelay, policy.baseDelayMs * 2 ** (n - 1));
    // A little jitter so several workers retrying the same receiver do not hit it in lockstep.
    const delay = Math.max(r.retryAfterMs ?? 0, Math.round(backoff * (0.8 + Math.random() * 0.4)));
    const willRetry = r.retryable && n < attempts && Date.now() + delay < deadline;
    onFailure?.(n, r.error, willRetry);
    if (!willRetry) return { ok: false, attempts: n, error: last, ...(r.retryable ? {} : { permanent: true }) };
    await sleep(delay);
  }
  return { ok: false, attempts, error: last };
}

/** A short, stable error code from anything thrown: never a message, which could quote a URL or a server reply. */
export function errorCode(err: unknown): string {
  const e = err as { code?: unknown; name?: unknown; cause?: unknown } | null;
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError') return 'TIMEOUT';
  for (const v of [e?.code, (e?.cause as { code?: unknown } | undefined)?.code]) {
    if (typeof v === 'string' && /^[A-Z][A-Z0-9_]{0,47}$/.test(v)) return v;
  }
  return 'ERROR';
}
