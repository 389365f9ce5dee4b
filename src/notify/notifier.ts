/**
 * Sends notification events to the configured channels. Called from an activity: `send` never throws and always
 * returns within `totalTimeoutMs` (plus a few milliseconds), so a dead mail server or webhook cannot stall an attempt.
 * The activity calls `deliver`, which throws when a message did not arrive, so the attempt fails and the activity's
 * retry policy tries again; the workflow, not the notifier, decides that the run goes on regardless.
 */
import type { Dispatcher } from 'undici';
import { FmReimportError } from '../errors';
import { ERROR_CODES } from '../error-codes';
import type { Logger } from '../logger';
import { EmailChannel } from './email';
import {
  InvalidNotifyEventError,
  isLongCooldown,
  NOTIFY_EVENT_TYPES,
  type NotifyEvent,
  type NotifyEventType,
} from './events';
import { formatNotification, type FormatOptions, type FormattedNotification } from './format';
import { retryUntil, type AttemptResult, type RetryPolicy } from './retry';
import { WebhookChannel } from './webhook';

export type ChannelName = 'webhook' | 'email';

export interface ChannelOutcome {
  readonly channel: ChannelName;
  readonly ok: boolean;
  readonly attempts: number;
  readonly durationMs: number;
  /** A stable code such as HTTP_500, ECONNREFUSED, TIMEOUT; never a server reply or URL. */
  readonly error?: string;
  /** The channel refused the message for good (a 4xx answer, refused credentials): sending again will not help. */
  readonly permanent?: true;
}

export interface SendResult {
  readonly event: NotifyEventType | 'unknown';
  /** True when every configured channel delivered (or the event was deliberately skipped). */
  readonly ok: boolean;
  readonly channels: readonly ChannelOutcome[];
  /** Set when the event was not sent at all. */
  readonly skipped?: 'BELOW_COOLDOWN_THRESHOLD' | 'NOTIFY_EVENT_INVALID' | 'NO_CHANNELS';
}

/**
 * Thrown by `deliver` when a message did not reach every configured channel. Names the event type, channels
 * and error codes only: never a URL, a server reply or anything from the event.
 */
export class NotificationNotDeliveredError extends FmReimportError {
  override readonly name = 'NotificationNotDeliveredError';
  readonly code = ERROR_CODES.NOTIFICATION_NOT_DELIVERED;
  override readonly retryable: boolean;
  constructor(result: SendResult) {
    const failed = result.channels.filter((c) => !c.ok);
    const why = result.skipped ?? failed.map((c) => `${c.channel} ${c.error ?? 'ERROR'}`).join(', ');
    super(`notification ${result.event} not delivered: ${why || 'ERROR'}`);
    // An invalid event stays invalid, and a channel that refused it for good refuses it again.
    this.retryable = result.skipped !== 'NOTIFY_EVENT_INVALID' && !failed.some((c) => c.permanent);
  }
}

export interface NotifierOptions {
  readonly webhookUrl?: string;
  readonly smtpUrl?: string;
  readonly emailFrom?: string;
  readonly emailTo: readonly string[];
  readonly logger: Logger;
  readonly retry: RetryPolicy;
  /** Drops cooldown_long events at or below this many seconds (NOTIFY_COOLDOWN_THRESHOLD_SECONDS). */
  readonly cooldownThresholdSeconds?: number;
  /** Bound on connecting to a channel. Default 5 s. */
  readonly connectTimeoutMs?: number;
  /** Bound on one attempt on one channel. Default 10 s. */
  readonly attemptTimeoutMs?: number;
  /** Bound on the whole `send`, retries included. Default 30 s: well inside a short activity's timeout. */
  readonly totalTimeoutMs?: number;
  /** undici dispatcher for the webhook, e.g. with a private CA (src/tls.ts). */
  readonly webhookDispatcher?: Dispatcher;
  /** PEM CA bundle for the SMTP server. */
  readonly smtpCa?: string | Buffer;
  /** Adds links to the Temporal Web UI. */
  readonly format?: FormatOptions;
}

export interface Notifier {
  send(event: NotifyEvent): Promise<SendResult>;
  /** `send`, but a message that did not reach every channel (nor was skipped) throws NotificationNotDeliveredError. */
  deliver(event: NotifyEvent): Promise<SendResult>;
  /** Which channels are configured, for start-up logs. */
  readonly channels: readonly ChannelName[];
  close(): Promise<void>;
}

interface Channel {
  readonly name: ChannelName;
  readonly host: string;
  attempt(message: FormattedNotification, timeoutMs: number): Promise<AttemptResult>;
}

export function createNotifier(opts: NotifierOptions): Notifier {
  const log = opts.logger.child({ component: 'notify' });
  const connectTimeoutMs = opts.connectTimeoutMs ?? 5_000;
  const attemptTimeoutMs = opts.attemptTimeoutMs ?? 10_000;
  const totalTimeoutMs = opts.totalTimeoutMs ?? 30_000;

  const webhook = opts.webhookUrl
    ? new WebhookChannel({
        url: opts.webhookUrl,
        connectTimeoutMs,
        ...(opts.webhookDispatcher ? { dispatcher: opts.webhookDispatcher } : {}),
      })
    : undefined;
  const channels: Channel[] = [];
  if (webhook) {
    channels.push({ name: 'webhook', host: webhook.host, attempt: (m, t) => webhook.attempt(m, t) });
  }
  if (opts.smtpUrl) {
    if (!opts.emailFrom || opts.emailTo.length === 0) {
      log.warn('email notifications disabled: NOTIFY_EMAIL_FROM and NOTIFY_EMAIL_TO are both needed');
    } else {
      const email = new EmailChannel({
        smtpUrl: opts.smtpUrl,
        from: opts.emailFrom,
        to: opts.emailTo,
        connectTimeoutMs,
        ...(opts.smtpCa ? { ca: opts.smtpCa } : {}),
      });
      channels.push({ name: 'email', host: email.host, attempt: (m, t) => email.attempt(m, t) });
    }
  }

  const deliver = async (ch: Channel, message: FormattedNotification, type: string, deadline: number) => {
    const started = Date.now();
    const r = await retryUntil(
      (left) => ch.attempt(message, Math.min(attemptTimeoutMs, left)),
      opts.retry,
      deadline,
      (attempt, error, willRetry) =>
        log.warn(
          { channel: ch.name, host: ch.host, event: type, attempt, error, willRetry },
          'notification attempt failed',
        ),
    );
    const outcome: ChannelOutcome = {
      channel: ch.name,
      ok: r.ok,
      attempts: r.attempts,
      durationMs: Date.now() - started,
      ...(r.error !== undefined && !r.ok ? { error: r.error } : {}),
      ...(r.permanent ? { permanent: r.permanent } : {}),
    };
    if (r.ok) log.info({ channel: ch.name, host: ch.host, event: type, attempts: r.attempts }, 'notification sent');
    else log.error({ ...outcome, host: ch.host, event: type }, 'notification not delivered');
    return outcome;
  };

  const sendTo = async (event: NotifyEvent, targets: readonly Channel[]): Promise<SendResult> => {
    // Checked rather than trusted: the event crosses an activity boundary from workflow code of any version.
    const raw = (event as { type?: unknown } | null | undefined)?.type;
    const type: SendResult['event'] = NOTIFY_EVENT_TYPES.find((t) => t === raw) ?? 'unknown';
    try {
      if (
        event.type === 'cooldown_long' &&
        opts.cooldownThresholdSeconds !== undefined &&
        !isLongCooldown(event.cooldownSeconds, opts.cooldownThresholdSeconds)
      ) {
        return { event: type, ok: true, channels: [], skipped: 'BELOW_COOLDOWN_THRESHOLD' };
      }
      const message = formatNotification(event, opts.format);
      if (targets.length === 0) return { event: type, ok: true, channels: [], skipped: 'NO_CHANNELS' };
      const deadline = Date.now() + totalTimeoutMs;
      const outcomes = await Promise.all(targets.map((ch) => deliver(ch, message, type, deadline)));
      return { event: type, ok: outcomes.every((o) => o.ok), channels: outcomes };
    } catch (err) {
      if (err instanceof InvalidNotifyEventError) {
        log.error({ event: type, fields: err.paths }, 'notification event rejected');
        return { event: type, ok: false, channels: [], skipped: 'NOTIFY_EVENT_INVALID' };
      }
      log.error({ event: type, errName: (err as Error)?.name }, 'notification failed unexpectedly');
      return { event: type, ok: false, channels: [] };
    }
  };

  // Channels that took a message some other channel did not, by message: the notify activity's next attempt sends it
  // only where it is still missing, so the mailbox does not get it again for every retry a dead webhook causes. Held
  // until the message reaches every channel, or ten minutes (well past the notify activity's retries).
  const partly = new Map<string, { channels: Set<ChannelName>; untilMs: number }>();
  const notifier: Notifier = {
    channels: channels.map((c) => c.name),
    async deliver(event) {
      const key = JSON.stringify(event);
      for (const [k, p] of partly) if (p.untilMs < Date.now()) partly.delete(k);
      const done = partly.get(key)?.channels ?? new Set<ChannelName>();
      const result = await sendTo(
        event,
        channels.filter((c) => !done.has(c.name)),
      );
      if (result.ok) {
        partly.delete(key);
        return result;
      }
      for (const c of result.channels) if (c.ok) done.add(c.channel);
      if (done.size > 0) partly.set(key, { channels: done, untilMs: Date.now() + 10 * 60_000 });
      throw new NotificationNotDeliveredError(result);
    },
    send: (event) => sendTo(event, channels),
    async close() {
      await webhook?.close();
    },
  };
  return notifier;
}
