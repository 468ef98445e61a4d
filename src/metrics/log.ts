// The process logger: JSON lines on stdout (pino).
import { pino } from 'pino';

export const log = pino({
  level: process.env.WHARF_LOG_LEVEL ?? 'info',
  base: { service: 'wharf' },
});

export type Logger = typeof log;
