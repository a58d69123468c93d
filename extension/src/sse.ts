/**
 * Server-sent events over fetch: the run stream is read with ServerConnection (so it carries
 * the same credentials as every other request) instead of EventSource, which can send neither
 * a token header nor anything but cookies.
 */
import { ServerConnection } from '@jupyterlab/services';

/** One server-sent event. */
export interface IServerEvent {
  event: string;
  data: string;
  id?: string;
}

/**
 * An incremental parser of the text/event-stream format: feed it text as it arrives, in
 * chunks cut anywhere, and it returns the events completed so far.
 */
export class EventStreamParser {
  private buffer = '';
  private event = '';
  private data: string[] = [];
  private id: string | undefined;

  /** Parse `chunk`; the events it completes. */
  feed(chunk: string): IServerEvent[] {
    this.buffer += chunk;
    const events: IServerEvent[] = [];
    let newline: number;
    while ((newline = this.nextLineEnd()) >= 0) {
      let line = this.buffer.slice(0, newline);
      // A CRLF pair is one line end; a CR alone is one too.
      const skip =
        this.buffer[newline] === '\r' && this.buffer[newline + 1] === '\n'
          ? 2
          : 1;
      this.buffer = this.buffer.slice(newline + skip);
      if (line.endsWith('\r')) {
        line = line.slice(0, -1);
      }
      const done = this.line(line);
      if (done) {
        events.push(done);
      }
    }
    return events;
  }

  private nextLineEnd(): number {
    const lf = this.buffer.indexOf('\n');
    const cr = this.buffer.indexOf('\r');
    if (cr >= 0 && cr === this.buffer.length - 1) {
      // A CR at the end may be the first half of a CRLF: wait for more text.
      return lf;
    }
    if (lf < 0) {
      return cr;
    }
    return cr < 0 ? lf : Math.min(lf, cr);
  }

  private line(line: string): IServerEvent | null {
    if (line === '') {
      if (this.data.length === 0) {
        this.event = '';
        return null;
      }
      const done = {
        event: this.event || 'message',
        data: this.data.join('\n'),
        id: this.id
      };
      this.event = '';
      this.data = [];
      return done;
    }
    if (line.startsWith(':')) {
      return null; // a comment: the keep-alive
    }
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) {
      value = value.slice(1);
    }
    if (field === 'event') {
      this.event = value;
    } else if (field === 'data') {
      this.data.push(value);
    } else if (field === 'id') {
      this.id = value;
    }
    return null;
  }
}

/** The state of a stream's connection, for the panel to show. */
export type StreamState = 'connecting' | 'open' | 'down';

/** Callbacks of an EventStream. */
export interface IStreamHandlers {
  onEvent(event: IServerEvent): void;
  onState(state: StreamState, reason?: string): void;
}

/**
 * An event stream kept open: reconnects after a drop with a growing delay (capped), and
 * says each change of state. `close()` ends it for good.
 */
export class EventStream {
  private controller: AbortController | null = null;
  private closed = false;
  private delay = 500;
  private timer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    private readonly url: string,
    private readonly settings: ServerConnection.ISettings,
    private readonly handlers: IStreamHandlers,
    private readonly maxDelay = 10000,
    private readonly headers: Record<string, string> = {}
  ) {}

  /** Connect (again). */
  open(): void {
    if (this.closed) {
      return;
    }
    this.handlers.onState('connecting');
    void this.run();
  }

  /** Stop for good. */
  close(): void {
    this.closed = true;
    if (this.timer) {
      clearTimeout(this.timer);
    }
    this.controller?.abort();
  }

  private async run(): Promise<void> {
    const controller = (this.controller = new AbortController());
    let reason = 'the stream ended';
    try {
      const response = await ServerConnection.makeRequest(
        this.url,
        {
          signal: controller.signal,
          headers: { ...this.headers, Accept: 'text/event-stream' }
        },
        this.settings
      );
      if (!response.ok || !response.body) {
        reason = `HTTP ${response.status}`;
        throw new Error(reason);
      }
      this.delay = 500;
      this.handlers.onState('open');
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      const parser = new EventStreamParser();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) {
          break;
        }
        for (const event of parser.feed(
          decoder.decode(value, { stream: true })
        )) {
          this.handlers.onEvent(event);
        }
      }
    } catch (error) {
      if (!(error instanceof Error && error.message === reason)) {
        reason = error instanceof Error ? error.message : String(error);
      }
    }
    if (this.closed) {
      return;
    }
    this.handlers.onState('down', reason);
    this.timer = setTimeout(() => this.open(), this.delay);
    this.delay = Math.min(this.delay * 2, this.maxDelay);
  }
}
