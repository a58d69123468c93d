/** Pieces every section of the panel uses: a collapsible section, messages, status badges. */
import * as React from 'react';

/** A section of the panel: a disclosure whose heading is a real, focusable summary. */
export function Section(props: {
  id: string;
  title: string;
  count?: number | null;
  open?: boolean;
  children: React.ReactNode;
}): JSX.Element {
  return (
    <details
      className="jp-Dispatch-section"
      data-section={props.id}
      open={props.open}
    >
      <summary className="jp-Dispatch-sectionTitle">
        {props.title}
        {props.count !== null && props.count !== undefined ? (
          <span className="jp-Dispatch-count">{props.count}</span>
        ) : null}
      </summary>
      <div className="jp-Dispatch-sectionBody">{props.children}</div>
    </details>
  );
}

/** A message in place of content: why it cannot be shown, or that there is nothing yet. */
export function Message(props: {
  error?: boolean;
  children: React.ReactNode;
}): JSX.Element {
  return (
    <div
      className={`jp-Dispatch-message${props.error ? ' jp-Dispatch-error' : ''}`}
      role={props.error ? 'alert' : 'status'}
    >
      {props.children}
    </div>
  );
}

/** A status, coloured by what it means (theme colours, so dark themes read as well). */
export function Status(props: {
  status?: string;
  reason?: string;
}): JSX.Element {
  const status = props.status ?? 'UNKNOWN';
  return (
    <span
      className={`jp-Dispatch-status jp-Dispatch-status-${status}`}
      title={props.reason || status}
    >
      {status}
      {props.reason && status === 'ERROR' ? (
        <span className="jp-Dispatch-reason">: {props.reason}</span>
      ) : null}
    </span>
  );
}

/** Keyboard activation for a table row that acts like a button. */
export function onActivate(
  action: () => void
): (event: React.KeyboardEvent) => void {
  return event => {
    if (event.key === 'Enter' || event.key === ' ') {
      event.preventDefault();
      action();
    }
  };
}

/** A simple table of entities: one row per item, the given columns. */
export function EntityTable<T>(props: {
  label: string;
  items: T[];
  columns: [string, (item: T) => React.ReactNode][];
  rowKey: (item: T) => string;
}): JSX.Element {
  return (
    <table className="jp-Dispatch-table" aria-label={props.label}>
      <thead>
        <tr>
          {props.columns.map(([title]) => (
            <th key={title}>{title}</th>
          ))}
        </tr>
      </thead>
      <tbody>
        {props.items.map(item => (
          <tr key={props.rowKey(item)}>
            {props.columns.map(([title, cell]) => (
              <td key={title}>{cell(item)}</td>
            ))}
          </tr>
        ))}
      </tbody>
    </table>
  );
}
