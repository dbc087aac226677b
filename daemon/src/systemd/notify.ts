// sd_notify(3) through the sd-notify package (libsystemd's own implementation). Outside systemd
// (no NOTIFY_SOCKET) every call is a no-op and libsystemd is not even loaded.
import { createRequire } from 'node:module';

interface SdNotify {
  ready(): void;
  stopping(pid?: number): void;
  watchdog(): void;
  /** WATCHDOG_USEC in ms, 0 when the watchdog is off for this process. */
  watchdogInterval(): number;
  sendStatus(text: string): void;
}

export interface Notifier {
  readonly active: boolean;
  ready(): void;
  stopping(): void;
  watchdog(): void;
  watchdogIntervalMs(): number;
  status(text: string): void;
}

export function systemdNotifier(env: NodeJS.ProcessEnv = process.env): Notifier {
  if (!env.NOTIFY_SOCKET) {
    return { active: false, ready() {}, stopping() {}, watchdog() {}, watchdogIntervalMs: () => 0, status() {} };
  }
  const sd = createRequire(import.meta.url)('sd-notify') as SdNotify;
  return {
    active: true,
    ready: () => sd.ready(),
    stopping: () => sd.stopping(process.pid),
    watchdog: () => sd.watchdog(),
    watchdogIntervalMs: () => sd.watchdogInterval(),
    // One line: systemctl status shows it as is.
    status: (text) => sd.sendStatus(text.replace(/\s*\n\s*/g, ' ')),
  };
}
