/** Small formatting rules the views share (kept apart so they can be unit-tested). */
import type { IApi, IRun } from './types';

/** A time (seconds since the epoch) as local date and time; empty when absent. */
export function formatTime(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined) {
    return '';
  }
  const date = new Date(seconds * 1000);
  const pad = (n: number, width = 2) => String(n).padStart(width, '0');
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.` +
    pad(date.getMilliseconds(), 3)
  );
}

/** A duration in seconds, in the unit that reads best. */
export function formatDuration(seconds: number): string {
  if (seconds < 1) {
    return `${Math.round(seconds * 1000)} ms`;
  }
  if (seconds < 120) {
    return `${seconds.toFixed(seconds < 10 ? 2 : 1)} s`;
  }
  return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
}

/** How long a run took (or has taken so far, at `now`); empty before it starts. */
export function runDuration(
  run: IRun,
  now: number = Date.now() / 1000
): string {
  const { started, finished } = run.times;
  if (started === null || started === undefined) {
    return '';
  }
  return formatDuration(Math.max(0, (finished ?? now) - started));
}

/** Any JSON value as indented text (undefined as empty). */
export function formatJson(value: unknown): string {
  if (value === undefined) {
    return '';
  }
  return JSON.stringify(value, null, 2);
}

/** The URLs an API's routes answer at on this server (`httpBase` is `{base}dispatch/http`). */
export function apiUrls(api: IApi, httpBase: string, origin = ''): string[] {
  if (api.hosts && api.hosts.length) {
    return (api.paths ?? []).flatMap(path =>
      api.hosts!.map(host => `//${host}${path}`)
    );
  }
  const base = httpBase.replace(/\/$/, '');
  return (api.paths ?? []).map(path => `${origin}${base}/${api.org}${path}`);
}

/** What the status-bar item says: runs in flight, and failures of the last minute if any. */
export function statusText(inFlight: number, failures: number): string {
  return `Dispatch: ${inFlight} in flight${failures ? `, ${failures} failed (1 min)` : ''}`;
}
