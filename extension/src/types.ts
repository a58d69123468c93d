/**
 * The shapes of Dispatch's REST API v1 that the panel reads
 * (dispatch_kernel/server/openapi.yaml is the reference).
 */

/** Fields every Dispatch entity carries. */
export interface IEntity {
  name: string;
  org: string;
  id: string;
  revision: number;
  created?: number;
  modified?: number;
  status?: string;
  reason?: string;
  tags?: Record<string, string>;
}

/** A JSON Schema, as a function declares for its input and output. */
export type JsonSchema = boolean | { [key: string]: any };

/** A deployed function. */
export interface IFunction extends IEntity {
  handler: string;
  convention: string;
  driver: string;
  image?: string;
  image_name?: string;
  requirements?: string[];
  schema?: { in?: JsonSchema; out?: JsonSchema };
  secrets?: string[];
  timeout?: number | null;
  resources?: { memory?: number; cpu?: number };
  scaling?: {
    min_workers?: number;
    max_workers?: number;
    idle_timeout?: number;
  };
}

/** The states of a run; the first two are "in flight". */
export type RunStatus =
  'QUEUED' | 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'CANCELLED';

/** Every run status, in the order a run goes through them. */
export const RUN_STATUSES: RunStatus[] = [
  'QUEUED',
  'RUNNING',
  'SUCCEEDED',
  'FAILED',
  'CANCELLED'
];

/** One run of a function. */
export interface IRun {
  id: string;
  org: string;
  function: string;
  function_revision?: number;
  status: RunStatus;
  input?: unknown;
  output?: unknown;
  error?: { type: string; message: string; stacktrace?: string } | null;
  logs?: { stdout?: string; stderr?: string };
  event?: Record<string, unknown> | null;
  http?: Record<string, unknown> | null;
  times: { queued: number; started?: number | null; finished?: number | null };
  cold_start?: boolean;
}

/** An API: HTTP routes to a function. */
export interface IApi extends IEntity {
  function: string;
  methods?: string[];
  paths?: string[];
  hosts?: string[];
  enabled?: boolean;
}

/** A subscription: events of a type pattern run a function. */
export interface ISubscription extends IEntity {
  function: string;
  event_type: string;
  max_attempts?: number;
}

/** A running event driver (schedule, webhook, vcenter). */
export interface IEventSource extends IEntity {
  type: string;
  url?: string;
}

/** An event given up after its subscription's attempts. */
export interface IDeadLetter {
  subscription?: string;
  event?: Record<string, unknown>;
  error?: string;
  attempts?: number;
  [key: string]: unknown;
}

/** An image or a base image. */
export interface IImage extends IEntity {
  base_image?: string;
  image_url?: string;
  language?: string;
  requirements?: string[];
}

/** A secret: the panel only ever shows its name and key names. */
export interface ISecret extends IEntity {
  keys: string[];
}

/** An organization (offered once the server has identity). */
export interface IOrganization {
  name: string;
}
