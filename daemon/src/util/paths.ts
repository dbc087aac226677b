// Where the daemon keeps state and logs outside the store. systemd makes both (StateDirectory=,
// LogsDirectory= in daemon/systemd/qe-packets.service.in) owned by the service user. The
// environment overrides exist for tests and for running from a checkout, the same for the daemon
// and for the commands that share files with it (`qe-packets token`).
import { join } from 'node:path';

export const stateDir = (): string => process.env.QE_PACKETS_STATE_DIR || '/var/lib/qe-packets';
export const logDir = (): string => process.env.QE_PACKETS_LOG_DIR || '/var/log/qe-packets';

/** The API's tokens (hashes only). */
export const tokensPath = (): string => join(stateDir(), 'tokens.json');
/** Who extracted which packets: one JSON line per extraction and flow query. */
export const auditLogPath = (): string => join(logDir(), 'audit.log');
/** Qualevent's outbox: events not yet delivered to Qe-Server, and the ones it refused. */
export const qualeventDir = (): string => join(stateDir(), 'qualevent');
