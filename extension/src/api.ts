/**
 * The panel's REST client: Dispatch's public API v1 under `{baseUrl}dispatch/v1/`, reached
 * through JupyterLab's ServerConnection, which adds the login token or cookie and the XSRF
 * header on writes. Nothing here is private to the panel: any client may make these calls.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import type {
  IApi,
  IDeadLetter,
  IEventSource,
  IFunction,
  IImage,
  IOrganization,
  IRun,
  ISecret,
  ISubscription,
  RunStatus
} from './types';

/** Where the API lives below the server's base URL. */
export const API_PATH = 'dispatch/v1';

/** The header naming the organization of a request (Dispatch's own). */
export const ORG_HEADER = 'X-Dispatch-Org';

/** What went wrong with a request, in the terms the panel explains to its user. */
export type FailureKind =
  'unreachable' | 'forbidden' | 'missing' | 'invalid' | 'conflict' | 'server';

/** A request that failed: its HTTP status (0 when nothing answered) and the server's message. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly body: unknown = null
  ) {
    super(message);
    this.name = 'ApiError';
  }

  /** The kind of failure, which decides how the panel words it. */
  get kind(): FailureKind {
    return failureKind(this.status);
  }
}

/** Classify an HTTP status (0: no answer at all). */
export function failureKind(status: number): FailureKind {
  if (status === 0 || status === 502 || status === 503 || status === 504) {
    return 'unreachable';
  }
  if (status === 401 || status === 403) {
    return 'forbidden';
  }
  if (status === 404) {
    return 'missing';
  }
  if (status === 409) {
    return 'conflict';
  }
  if (status >= 400 && status < 500) {
    return 'invalid';
  }
  return 'server';
}

/** A sentence for the user about a failed request to `what` (a section or an action). */
export function describeFailure(error: unknown, what: string): string {
  if (!(error instanceof ApiError)) {
    return `${what}: ${error instanceof Error ? error.message : String(error)}`;
  }
  switch (error.kind) {
    case 'unreachable':
      return `The Dispatch API is unreachable (${error.message}). Is the server running with the dispatch_kernel extension?`;
    case 'forbidden':
      return `You may not see ${what} (${error.status}: ${error.message}).`;
    case 'missing':
      return `${what}: not found (${error.message}).`;
    default:
      return `${what}: ${error.message} (${error.status}).`;
  }
}

/** The paths this server's API offers, read from its OpenAPI document. */
export class Features {
  constructor(private readonly paths: Set<string>) {}

  /** Whether the server offers `path` (as written in the OpenAPI document, e.g. `/apis`). */
  has(path: string): boolean {
    return this.paths.has(path);
  }

  /** Whether functions can have HTTP routes (the API gateway). */
  get apis(): boolean {
    return this.has('/apis');
  }

  /** Whether the server keeps dead letters. */
  get deadLetters(): boolean {
    return this.has('/dead-letters');
  }

  /** Whether the server has identity (organizations to pick from). */
  get organizations(): boolean {
    return this.has('/iam/organizations');
  }

  /** The features of an OpenAPI document. */
  static fromOpenApi(document: unknown): Features {
    const paths =
      (document as { paths?: Record<string, unknown> })?.paths ?? {};
    return new Features(new Set(Object.keys(paths)));
  }
}

/** The query of `GET runs`. */
export interface IRunQuery {
  function?: string;
  status?: RunStatus | '';
  limit?: number;
}

/** Dispatch's REST API, as the panel uses it. */
export class DispatchApi {
  /** The organization requests are made in, when the server has identity (else its default). */
  org: string | null = null;

  constructor(
    readonly settings: ServerConnection.ISettings = ServerConnection.makeSettings()
  ) {}

  /** The absolute URL of `path` below the API root, with `query` (empty values left out). */
  url(
    path: string,
    query: Record<string, string | number | undefined> = {}
  ): string {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) {
      if (value !== undefined && value !== '') {
        params.set(key, String(value));
      }
    }
    const search = params.toString();
    const base = URLExt.join(this.settings.baseUrl, API_PATH, path);
    return search ? `${base}?${search}` : base;
  }

  /**
   * The headers that put a request in the picked organization: Dispatch's `X-Dispatch-Org`
   * (none without a pick, so the server uses the caller's default).
   */
  orgHeaders(): Record<string, string> {
    return this.org ? { [ORG_HEADER]: this.org } : {};
  }

  /** The base URL of the HTTP routes of APIs (the gateway served beside the API). */
  get httpBase(): string {
    return URLExt.join(this.settings.baseUrl, 'dispatch/http');
  }

  /** Make a request; the parsed JSON answer, or an ApiError. */
  async request<T>(
    path: string,
    init: RequestInit = {},
    query: Record<string, string | number | undefined> = {}
  ): Promise<T> {
    let response: Response;
    try {
      const headers = new Headers(init.headers);
      for (const [name, value] of Object.entries(this.orgHeaders())) {
        headers.set(name, value);
      }
      response = await ServerConnection.makeRequest(
        this.url(path, query),
        { ...init, headers },
        this.settings
      );
    } catch (error) {
      throw new ApiError(
        0,
        error instanceof Error ? error.message : String(error)
      );
    }
    const text = await response.text();
    let body: unknown = null;
    if (text) {
      try {
        body = JSON.parse(text);
      } catch {
        body = text;
      }
    }
    if (!response.ok && !(response.status === 422 && path === 'runs')) {
      const message =
        (body as { message?: string } | null)?.message ??
        (response.statusText || `HTTP ${response.status}`);
      throw new ApiError(response.status, message, body);
    }
    return body as T;
  }

  /** What this server's API offers. */
  async features(): Promise<Features> {
    return Features.fromOpenApi(await this.request('openapi.json'));
  }

  async listFunctions(): Promise<IFunction[]> {
    return (await this.request<{ items: IFunction[] }>('functions')).items;
  }

  async getFunction(name: string): Promise<IFunction> {
    return this.request<IFunction>(`functions/${encodeURIComponent(name)}`);
  }

  async deleteFunction(name: string): Promise<void> {
    await this.request(`functions/${encodeURIComponent(name)}`, {
      method: 'DELETE'
    });
  }

  async listRuns(query: IRunQuery = {}): Promise<IRun[]> {
    const { function: fn, status, limit } = query;
    return (
      await this.request<{ items: IRun[] }>(
        'runs',
        {},
        { function: fn, status: status ?? '', limit }
      )
    ).items;
  }

  async getRun(id: string): Promise<IRun> {
    return this.request<IRun>(`runs/${encodeURIComponent(id)}`);
  }

  /** Start a run of `fn` with `input` (the queued run; a 422 answer is the FAILED run). */
  async invoke(fn: string, input: unknown): Promise<IRun> {
    return this.request<IRun>('runs', {
      method: 'POST',
      body: JSON.stringify({ function: fn, input })
    });
  }

  async cancelRun(id: string): Promise<IRun> {
    return this.request<IRun>(`runs/${encodeURIComponent(id)}/cancel`, {
      method: 'POST'
    });
  }

  async listApis(): Promise<IApi[]> {
    return (await this.request<{ items: IApi[] }>('apis')).items;
  }

  async listSubscriptions(): Promise<ISubscription[]> {
    return (await this.request<{ items: ISubscription[] }>('subscriptions'))
      .items;
  }

  async listEventSources(): Promise<IEventSource[]> {
    return (await this.request<{ items: IEventSource[] }>('event-sources'))
      .items;
  }

  async listDeadLetters(): Promise<IDeadLetter[]> {
    return (await this.request<{ items: IDeadLetter[] }>('dead-letters')).items;
  }

  /** Publish a plain JSON event; the accepted CloudEvent. */
  async emitEvent(
    type: string,
    data: unknown,
    source = 'jupyterlab/dispatch-panel'
  ): Promise<unknown> {
    return this.request('events', {
      method: 'POST',
      body: JSON.stringify({ type, data, source })
    });
  }

  async listImages(): Promise<IImage[]> {
    return (await this.request<{ items: IImage[] }>('images')).items;
  }

  async listBaseImages(): Promise<IImage[]> {
    return (await this.request<{ items: IImage[] }>('base-images')).items;
  }

  async listSecrets(): Promise<ISecret[]> {
    return (await this.request<{ items: ISecret[] }>('secrets')).items;
  }

  async listOrganizations(): Promise<IOrganization[]> {
    return (await this.request<{ items: IOrganization[] }>('iam/organizations'))
      .items;
  }
}
