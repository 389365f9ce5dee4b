/**
 * Email over SMTP with nodemailer. The SMTP URL may carry credentials (smtp://user:pass@host:587), so only its host
 * is logged. Certificates are always verified; a private CA is given as a PEM bundle, never by switching checks off.
 */
import nodemailer, { type Transporter } from 'nodemailer';
import type SMTPTransport from 'nodemailer/lib/smtp-transport';
import type { FormattedNotification } from './format';
import { errorCode, type AttemptResult } from './retry';

export interface EmailChannelOptions {
  readonly smtpUrl: string;
  readonly from: string;
  readonly to: readonly string[];
  /** PEM CA bundle for a mail server with a private CA. */
  readonly ca?: string | Buffer;
  readonly connectTimeoutMs: number;
}

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]', '::1']);

export function smtpTransportOptions(
  smtpUrl: string,
  opts: { ca?: string | Buffer; connectTimeoutMs: number; socketTimeoutMs: number },
): SMTPTransport.Options {
  const u = new URL(smtpUrl);
  const secure = u.protocol === 'smtps:';
  const user = decodeURIComponent(u.username);
  return {
    host: u.hostname,
    port: u.port ? Number(u.port) : secure ? 465 : 587,
    secure,
    // Off the loopback interface, refuse to send over plain text: the server must offer STARTTLS.
    requireTLS: !secure && !LOOPBACK.has(u.hostname),
    ...(user ? { auth: { user, pass: decodeURIComponent(u.password) } } : {}),
    tls: { rejectUnauthorized: true, ...(opts.ca ? { ca: opts.ca } : {}) },
    connectionTimeout: opts.connectTimeoutMs,
    greetingTimeout: opts.connectTimeoutMs,
    socketTimeout: opts.socketTimeoutMs,
    dnsTimeout: opts.connectTimeoutMs,
  };
}

export class EmailChannel {
  readonly host: string;
  constructor(private readonly opts: EmailChannelOptions) {
    this.host = new URL(opts.smtpUrl).host;
  }

  async attempt(message: FormattedNotification, timeoutMs: number): Promise<AttemptResult> {
    const transport: Transporter<SMTPTransport.SentMessageInfo> = nodemailer.createTransport(
      smtpTransportOptions(this.opts.smtpUrl, {
        ...(this.opts.ca ? { ca: this.opts.ca } : {}),
        connectTimeoutMs: Math.min(this.opts.connectTimeoutMs, timeoutMs),
        socketTimeoutMs: timeoutMs,
      }),
    );
    let timer: NodeJS.Timeout | undefined;
    try {
      // nodemailer's own timeouts bound each step; this bounds the whole exchange.
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(Object.assign(new Error('timeout'), { name: 'TimeoutError' })), timeoutMs);
      });
      await Promise.race([
        transport.sendMail({
          from: this.opts.from,
          to: [...this.opts.to],
          subject: message.subject,
          text: message.text,
        }),
        timeout,
      ]);
      return { ok: true };
    } catch (err) {
      const responseCode = (err as { responseCode?: unknown }).responseCode;
      const code = errorCode(err);
      // 5xx from the server and authentication failures will not fix themselves on the next try.
      const permanent = code === 'EAUTH' || (typeof responseCode === 'number' && responseCode >= 500);
      return {
        ok: false,
        error: typeof responseCode === 'number' ? `${code}_${responseCode}` : code,
        retryable: !permanent,
      };
    } finally {
      clearTimeout(timer);
      transport.close();
    }
  }
}
