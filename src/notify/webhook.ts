/**
 * Slack-compatible incoming webhook: POST {text, blocks}. The webhook URL is itself the credential (anyone holding it
 * can post), so only its host is ever logged or reported.
 */
import { Agent, request, type Dispatcher } from 'undici';
import type { FormattedNotification } from './format';
import { errorCode, type AttemptResult } from './retry';

export interface WebhookChannelOptions {
  readonly url: string;
  /** A dispatcher with a custom CA (see tlsUndiciAgent in src/tls.ts); default: a verifying Agent. */
  readonly dispatcher?: Dispatcher;
  readonly connectTimeoutMs: number;
}

// Slack mrkdwn treats these three as control characters.
const escapeMrkdwn = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function webhookBody(message: FormattedNotification): { text: string; blocks: unknown[] } {
  return {
    text: `${message.subject}\n${message.text}`,
    blocks: [
      {
        type: 'section',
        text: { type: 'mrkdwn', text: `*${escapeMrkdwn(message.subject)}*\n${escapeMrkdwn(message.text)}` },
      },
    ],
  };
}

export function webhookHost(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return 'invalid-url';
  }
}

export class WebhookChannel {
  readonly host: string;
  private readonly dispatcher: Dispatcher;
  private readonly ownsDispatcher: boolean;

  constructor(private readonly opts: WebhookChannelOptions) {
    this.host = webhookHost(opts.url);
    this.ownsDispatcher = opts.dispatcher === undefined;
    this.dispatcher = opts.dispatcher ?? new Agent({ connect: { timeout: opts.connectTimeoutMs } });
  }

  async attempt(message: FormattedNotification, timeoutMs: number): Promise<AttemptResult> {
    try {
      const res = await request(this.opts.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(webhookBody(message)),
        dispatcher: this.dispatcher,
        signal: AbortSignal.timeout(timeoutMs),
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
      // Drain so the connection returns to the pool; the reply text is not needed and may echo the request.
      await res.body.dump();
      if (res.statusCode >= 200 && res.statusCode < 300) return { ok: true };
      const retryable = res.statusCode === 408 || res.statusCode === 429 || res.statusCode >= 500;
      const retryAfter = Number(res.headers['retry-after']);
      return {
        ok: false,
        error: `HTTP_${res.statusCode}`,
        retryable,
        ...(Number.isFinite(retryAfter) && retryAfter > 0 ? { retryAfterMs: retryAfter * 1000 } : {}),
      };
    } catch (err) {
      return { ok: false, error: errorCode(err), retryable: true };
    }
  }

  async close(): Promise<void> {
    if (this.ownsDispatcher) await this.dispatcher.close();
  }
}
