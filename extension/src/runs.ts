/**
 * The runs the panel knows: a first page from `GET runs`, then every change the run stream
 * reports. The table, the inspector and the status-bar item all read this one store.
 */
import { ISignal, Signal } from '@lumino/signaling';

import type { IRun, RunStatus } from './types';

/** The statuses of a run that has not finished. */
export const IN_FLIGHT: ReadonlySet<RunStatus> = new Set<RunStatus>([
  'QUEUED',
  'RUNNING'
]);

/** A filter of the runs table: empty strings match everything. */
export interface IRunFilter {
  function: string;
  status: RunStatus | '';
}

/** Whether `run` passes `filter`. */
export function matches(run: IRun, filter: IRunFilter): boolean {
  return (
    (!filter.function || run.function === filter.function) &&
    (!filter.status || run.status === filter.status)
  );
}

/** Per-function figures the functions table shows. */
export interface IFunctionRuns {
  last?: IRun;
  failures: number;
}

/** Runs by id, newest first, at most `limit` of them (the oldest finished ones go first). */
export class RunStore {
  private readonly runs = new Map<string, IRun>();
  private readonly _changed = new Signal<this, void>(this);

  constructor(readonly limit = 500) {}

  /** Emitted after every change. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** Replace the known runs with a page read from the API. */
  reset(runs: IRun[]): void {
    this.runs.clear();
    for (const run of runs) {
      this.runs.set(run.id, run);
    }
    this.trim();
    this._changed.emit();
  }

  /**
   * Record a run as the stream reported it. A change that arrives late (a RUNNING record
   * after the SUCCEEDED one, say) does not take a finished run back.
   */
  update(run: IRun): void {
    const known = this.runs.get(run.id);
    if (known && !IN_FLIGHT.has(known.status) && IN_FLIGHT.has(run.status)) {
      return;
    }
    this.runs.set(run.id, run);
    this.trim();
    this._changed.emit();
  }

  /** One run, if known. */
  get(id: string): IRun | undefined {
    return this.runs.get(id);
  }

  /** The runs that pass `filter`, newest first. */
  list(filter: IRunFilter = { function: '', status: '' }): IRun[] {
    return [...this.runs.values()]
      .filter(run => matches(run, filter))
      .sort(
        (a, b) => b.times.queued - a.times.queued || (a.id < b.id ? 1 : -1)
      );
  }

  /** How many runs have not finished. */
  inFlight(): number {
    let count = 0;
    for (const run of this.runs.values()) {
      if (IN_FLIGHT.has(run.status)) {
        count++;
      }
    }
    return count;
  }

  /** How many runs failed in the `window` seconds before `now` (seconds since the epoch). */
  failuresSince(now: number, window = 60): number {
    let count = 0;
    for (const run of this.runs.values()) {
      const at = run.times.finished ?? run.times.queued;
      if (run.status === 'FAILED' && at >= now - window) {
        count++;
      }
    }
    return count;
  }

  /** The last run and the number of failed runs of each function, among the known runs. */
  byFunction(): Map<string, IFunctionRuns> {
    const figures = new Map<string, IFunctionRuns>();
    for (const run of this.runs.values()) {
      const entry = figures.get(run.function) ?? { failures: 0 };
      if (!entry.last || run.times.queued > entry.last.times.queued) {
        entry.last = run;
      }
      if (run.status === 'FAILED') {
        entry.failures++;
      }
      figures.set(run.function, entry);
    }
    return figures;
  }

  private trim(): void {
    if (this.runs.size <= this.limit) {
      return;
    }
    const finished = [...this.runs.values()]
      .filter(run => !IN_FLIGHT.has(run.status))
      .sort((a, b) => a.times.queued - b.times.queued);
    for (const run of finished.slice(0, this.runs.size - this.limit)) {
      this.runs.delete(run.id);
    }
  }
}
