/**
 * The panel's state: what the server offers, each section's entities (or why they cannot be
 * shown), the runs store fed by the run stream, and what the user has selected. Views render
 * it and call its methods; commands drive it the same way.
 */
import { ISignal, Signal } from '@lumino/signaling';

import { ApiError, DispatchApi, Features, describeFailure } from './api';
import { RunStore, type IRunFilter } from './runs';
import { EventStream, type StreamState } from './sse';
import type {
  IApi,
  IDeadLetter,
  IEventSource,
  IFunction,
  IImage,
  IOrganization,
  IRun,
  ISecret,
  ISubscription
} from './types';

/** A list the panel shows: its items once read, or the sentence that says why not. */
export interface IListState<T> {
  items: T[] | null;
  error: string | null;
}

/** The lists the panel reads, by name. */
export interface ILists {
  functions: IListState<IFunction>;
  apis: IListState<IApi>;
  subscriptions: IListState<ISubscription>;
  sources: IListState<IEventSource>;
  deadLetters: IListState<IDeadLetter>;
  images: IListState<IImage>;
  baseImages: IListState<IImage>;
  secrets: IListState<ISecret>;
  organizations: IListState<IOrganization>;
}

/** A list's name. */
export type ListName = keyof ILists;

/** How often (ms) the function list is read while the panel is visible: the API has no
 * stream of function changes, and a deploy from a notebook should show within a second. */
export const FUNCTIONS_PERIOD = 500;
/** How often (ms) the other lists are read while the panel is visible. */
export const LISTS_PERIOD = 5000;

const empty = <T>(): IListState<T> => ({ items: null, error: null });

/** The state behind the Dispatch panel. */
export class PanelModel {
  readonly runs = new RunStore();
  features: Features | null = null;
  /** Set when the API cannot be reached at all: the panel shows only this, and a retry. */
  unreachable: string | null = null;
  streamState: StreamState = 'connecting';
  streamReason = '';
  lists: ILists = {
    functions: empty(),
    apis: empty(),
    subscriptions: empty(),
    sources: empty(),
    deadLetters: empty(),
    images: empty(),
    baseImages: empty(),
    secrets: empty(),
    organizations: empty()
  };
  runsError: string | null = null;
  /** The function whose details are open, and the one whose invoke form is open. */
  selectedFunction: string | null = null;
  invokeFunction: string | null = null;
  runFilter: IRunFilter = { function: '', status: '' };
  selectedRun: string | null = null;
  /** The outcome of the last action (or why it failed), shown above the sections. */
  notice: { text: string; error: boolean } | null = null;

  private readonly _changed = new Signal<this, void>(this);
  private readonly _focusRequested = new Signal<this, string>(this);
  private stream: EventStream | null = null;
  private timers: ReturnType<typeof setInterval>[] = [];
  private listTexts = new Map<ListName, string>();
  private started = false;

  constructor(readonly api: DispatchApi = new DispatchApi()) {
    this.runs.changed.connect(() => this._changed.emit());
  }

  /** Emitted after any change of state. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** Emitted when a command asks the view to move the focus to a part of it. */
  get focusRequested(): ISignal<this, string> {
    return this._focusRequested;
  }

  /** Ask the view to focus `part` (e.g. `invoke`, `runs`). */
  requestFocus(part: string): void {
    this._focusRequested.emit(part);
  }

  /** Read what the server offers, then every list, and open the run stream. */
  async start(): Promise<void> {
    this.started = true;
    try {
      this.features = await this.api.features();
      this.unreachable = null;
    } catch (error) {
      this.features = null;
      const failure =
        error instanceof ApiError
          ? error
          : new ApiError(
              0,
              error instanceof Error ? error.message : String(error)
            );
      this.unreachable =
        failure.kind === 'missing'
          ? `The Dispatch API is not served here (${this.api.url('')} answered 404): is the dispatch_kernel server extension enabled?`
          : describeFailure(failure, "Dispatch's API");
      this._changed.emit();
      return;
    }
    this._changed.emit();
    await Promise.all([this.refreshAll(), this.loadRuns()]);
    this.openStream();
  }

  /** Try again after the API was unreachable. */
  async retry(): Promise<void> {
    this.stream?.close();
    this.stream = null;
    await this.start();
  }

  /** Keep the lists fresh while the panel is shown; `false` stops the reading. */
  setVisible(visible: boolean): void {
    for (const timer of this.timers) {
      clearInterval(timer);
    }
    this.timers = [];
    if (!visible) {
      return;
    }
    if (!this.started) {
      void this.start();
    } else if (this.unreachable) {
      void this.retry();
    } else {
      void this.refreshAll();
    }
    this.timers.push(
      setInterval(() => {
        if (this.features && !this.unreachable) {
          void this.refresh('functions');
        }
      }, FUNCTIONS_PERIOD),
      setInterval(() => {
        if (this.unreachable) {
          void this.retry();
        } else if (this.features) {
          void this.refreshAll();
        }
      }, LISTS_PERIOD)
    );
  }

  /** Stop everything (the panel is disposed). */
  dispose(): void {
    this.setVisible(false);
    this.stream?.close();
    Signal.clearData(this);
  }

  /** Read every list the server offers. */
  async refreshAll(): Promise<void> {
    const names: ListName[] = [
      'functions',
      'subscriptions',
      'sources',
      'images',
      'baseImages',
      'secrets'
    ];
    if (this.features?.apis) {
      names.push('apis');
    }
    if (this.features?.deadLetters) {
      names.push('deadLetters');
    }
    if (this.features?.organizations) {
      names.push('organizations');
    }
    await Promise.all(names.map(name => this.refresh(name)));
  }

  /** Read one list; a failure is kept as that list's message, not thrown. */
  async refresh(name: ListName): Promise<void> {
    let next: IListState<unknown>;
    try {
      next = { items: await this.read(name), error: null };
    } catch (error) {
      if (error instanceof ApiError && error.kind === 'unreachable') {
        this.unreachable = describeFailure(error, 'Dispatch');
        this._changed.emit();
        return;
      }
      next = { items: null, error: describeFailure(error, LABELS[name]) };
    }
    // Re-render only on a change: the function list is read twice a second.
    const text = JSON.stringify(next);
    if (this.listTexts.get(name) === text) {
      return;
    }
    this.listTexts.set(name, text);
    (this.lists as unknown as Record<string, IListState<unknown>>)[name] = next;
    this._changed.emit();
  }

  private read(name: ListName): Promise<unknown[]> {
    const api = this.api;
    switch (name) {
      case 'functions':
        return api.listFunctions();
      case 'apis':
        return api.listApis();
      case 'subscriptions':
        return api.listSubscriptions();
      case 'sources':
        return api.listEventSources();
      case 'deadLetters':
        return api.listDeadLetters();
      case 'images':
        return api.listImages();
      case 'baseImages':
        return api.listBaseImages();
      case 'secrets':
        return api.listSecrets();
      case 'organizations':
        return api.listOrganizations();
    }
  }

  /** The first page of runs (newest first); later changes come from the stream. */
  async loadRuns(): Promise<void> {
    try {
      this.runs.reset(await this.api.listRuns({ limit: 200 }));
      this.runsError = null;
    } catch (error) {
      this.runsError = describeFailure(error, 'runs');
    }
    this._changed.emit();
  }

  private openStream(): void {
    this.stream?.close();
    this.stream = new EventStream(
      this.api.url('runs/stream'),
      this.api.settings,
      {
        onEvent: event => {
          if (event.event === 'run') {
            try {
              this.runs.update(JSON.parse(event.data) as IRun);
            } catch {
              // a record that is not JSON is not a run: nothing to show
            }
          }
        },
        onState: (state, reason) => {
          const reopened = state === 'open' && this.streamState === 'down';
          this.streamState = state;
          this.streamReason = reason ?? '';
          this._changed.emit();
          if (reopened) {
            void this.loadRuns(); // what changed while the stream was down
          }
        }
      },
      undefined,
      this.api.orgHeaders()
    );
    this.stream.open();
  }

  /** Switch organization (only offered when the server has identity). */
  async setOrg(org: string | null): Promise<void> {
    this.api.org = org;
    this.selectedFunction = this.invokeFunction = this.selectedRun = null;
    this.listTexts.clear();
    if (this.stream) {
      this.openStream(); // the stream carries one organization's runs: the new one's now
    }
    await Promise.all([this.refreshAll(), this.loadRuns()]);
  }

  /** Open or close a function's details. */
  selectFunction(name: string | null): void {
    this.selectedFunction = this.selectedFunction === name ? null : name;
    this._changed.emit();
  }

  /** Open the invoke form of `name` (null closes it). */
  openInvoke(name: string | null): void {
    this.invokeFunction = name;
    if (name) {
      this.selectedFunction = name;
    }
    this._changed.emit();
  }

  /** Filter the runs table. */
  setRunFilter(filter: Partial<IRunFilter>): void {
    this.runFilter = { ...this.runFilter, ...filter };
    this._changed.emit();
  }

  /** Open a run in the inspector (null closes it); reads the full record once. */
  async selectRun(id: string | null): Promise<void> {
    this.selectedRun = id;
    this._changed.emit();
    if (id) {
      try {
        this.runs.update(await this.api.getRun(id));
      } catch (error) {
        this.say(describeFailure(error, `run ${id}`), true);
      }
    }
  }

  /** Start a run; the run (QUEUED, or FAILED with an InputError the server found). */
  async invoke(fn: string, input: unknown): Promise<IRun | null> {
    try {
      const run = await this.api.invoke(fn, input);
      this.runs.update(run);
      this.say(`Started run ${run.id} of ${fn}.`, false);
      return run;
    } catch (error) {
      this.say(describeFailure(error, `invoking ${fn}`), true);
      return null;
    }
  }

  /** Cancel a queued or running run. */
  async cancel(id: string): Promise<void> {
    try {
      this.runs.update(await this.api.cancelRun(id));
      this.say(`Cancelled run ${id}.`, false);
    } catch (error) {
      this.say(describeFailure(error, `cancelling run ${id}`), true);
    }
  }

  /** Delete a function (the caller has asked for confirmation). */
  async deleteFunction(name: string): Promise<void> {
    try {
      await this.api.deleteFunction(name);
      if (this.selectedFunction === name) {
        this.selectedFunction = null;
      }
      if (this.invokeFunction === name) {
        this.invokeFunction = null;
      }
      this.say(`Deleted function ${name}.`, false);
    } catch (error) {
      this.say(describeFailure(error, `deleting ${name}`), true);
    }
    await this.refresh('functions');
  }

  /** Publish a test event. */
  async emit(type: string, data: unknown): Promise<void> {
    try {
      const event = (await this.api.emitEvent(type, data)) as { id?: string };
      this.say(
        `Event ${type} accepted${event?.id ? ` (id ${event.id})` : ''}.`,
        false
      );
    } catch (error) {
      this.say(describeFailure(error, 'emitting the event'), true);
    }
  }

  /** Show a one-line notice (an outcome or an error) at the top of the panel. */
  say(text: string, error: boolean): void {
    this.notice = { text, error };
    this._changed.emit();
  }
}

/** What each list is called in messages. */
export const LABELS: Record<ListName, string> = {
  functions: 'functions',
  apis: 'APIs',
  subscriptions: 'subscriptions',
  sources: 'event sources',
  deadLetters: 'dead letters',
  images: 'images',
  baseImages: 'base images',
  secrets: 'secrets',
  organizations: 'organizations'
};
