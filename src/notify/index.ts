export * from './events';
export {
  formatNotification,
  formatDuration,
  formatBytes,
  type FormattedNotification,
  type FormatOptions,
} from './format';
export {
  createNotifier,
  NotificationNotDeliveredError,
  type Notifier,
  type NotifierOptions,
  type SendResult,
  type ChannelOutcome,
  type ChannelName,
} from './notifier';
export type { RetryPolicy } from './retry';
