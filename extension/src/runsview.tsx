/** The Runs section: a live table (fed by the run stream), its filters, and the inspector. */
import * as React from 'react';

import { Message, Status, onActivate } from './common';
import { formatJson, formatTime, runDuration } from './format';
import type { PanelModel } from './model';
import { IN_FLIGHT } from './runs';
import { RUN_STATUSES, type IRun, type RunStatus } from './types';

function Block(props: {
  title: string;
  text?: string;
  name: string;
}): JSX.Element | null {
  if (!props.text) {
    return null;
  }
  return (
    <>
      <div className="jp-Dispatch-hint">{props.title}</div>
      <pre className="jp-Dispatch-code" data-part={props.name}>
        {props.text}
      </pre>
    </>
  );
}

/** Everything a run record says, and cancel while it is in flight. */
export function RunInspector(props: {
  model: PanelModel;
  run: IRun;
}): JSX.Element {
  const { model, run } = props;
  return (
    <div
      className="jp-Dispatch-inspector"
      aria-label={`Run ${run.id}`}
      tabIndex={-1}
      data-run={run.id}
    >
      <div className="jp-Dispatch-formHeader">
        <strong>Run {run.id}</strong>
        <Status status={run.status} />
      </div>
      <dl>
        <dt>function</dt>
        <dd>
          {run.function}
          {run.function_revision ? ` (revision ${run.function_revision})` : ''}
        </dd>
        <dt>queued</dt>
        <dd>{formatTime(run.times.queued)}</dd>
        <dt>started</dt>
        <dd>{formatTime(run.times.started) || '—'}</dd>
        <dt>finished</dt>
        <dd>{formatTime(run.times.finished) || '—'}</dd>
        <dt>took</dt>
        <dd>{runDuration(run) || '—'}</dd>
        <dt>cold start</dt>
        <dd>{run.cold_start ? 'yes' : 'no'}</dd>
      </dl>
      <Block title="input" name="input" text={formatJson(run.input)} />
      <Block
        title="output"
        name="output"
        text={run.status === 'SUCCEEDED' ? formatJson(run.output) : ''}
      />
      <Block title="stdout" name="stdout" text={run.logs?.stdout} />
      <Block title="stderr" name="stderr" text={run.logs?.stderr} />
      {run.error ? (
        <div className="jp-Dispatch-error" data-part="error">
          {run.error.type}: {run.error.message}
        </div>
      ) : null}
      <Block
        title="stack trace"
        name="stacktrace"
        text={run.error?.stacktrace}
      />
      {run.event ? (
        <Block title="event" name="event" text={formatJson(run.event)} />
      ) : null}
      <div className="jp-Dispatch-actions">
        {IN_FLIGHT.has(run.status) ? (
          <button
            className="jp-Button jp-mod-styled jp-mod-warn"
            onClick={() => void model.cancel(run.id)}
          >
            Cancel run
          </button>
        ) : null}
        <button
          className="jp-Button jp-mod-styled jp-mod-reject"
          onClick={() => void model.selectRun(null)}
        >
          Close
        </button>
      </div>
    </div>
  );
}

/** The Runs section's content. */
export function RunsView(props: { model: PanelModel }): JSX.Element {
  const { model } = props;
  const filter = model.runFilter;
  const runs = model.runs.list(filter);
  const names = new Set<string>(
    (model.lists.functions.items ?? []).map(fn => fn.name)
  );
  for (const run of model.runs.list()) {
    names.add(run.function);
  }
  const selected = model.selectedRun
    ? model.runs.get(model.selectedRun)
    : undefined;
  return (
    <>
      <div className="jp-Dispatch-filters">
        <label>
          function{' '}
          <select
            name="run-function"
            value={filter.function}
            onChange={e => model.setRunFilter({ function: e.target.value })}
          >
            <option value="">all</option>
            {[...names].sort().map(name => (
              <option key={name} value={name}>
                {name}
              </option>
            ))}
          </select>
        </label>
        <label>
          status{' '}
          <select
            name="run-status"
            value={filter.status}
            onChange={e =>
              model.setRunFilter({ status: e.target.value as RunStatus | '' })
            }
          >
            <option value="">all</option>
            {RUN_STATUSES.map(status => (
              <option key={status} value={status}>
                {status}
              </option>
            ))}
          </select>
        </label>
        <span
          className={`jp-Dispatch-live jp-Dispatch-live-${model.streamState}`}
          title={model.streamReason}
        >
          {model.streamState === 'open'
            ? '● live'
            : model.streamState === 'down'
              ? '○ reconnecting…'
              : '○ connecting…'}
        </span>
      </div>
      {model.runsError ? <Message error>{model.runsError}</Message> : null}
      {runs.length === 0 ? (
        <Message>
          No runs
          {filter.function || filter.status ? ' match the filter' : ' yet'}.
        </Message>
      ) : (
        <table className="jp-Dispatch-table" aria-label="Runs">
          <thead>
            <tr>
              <th>run</th>
              <th>function</th>
              <th>status</th>
              <th>queued</th>
              <th>took</th>
            </tr>
          </thead>
          <tbody>
            {runs.slice(0, 100).map(run => {
              const open = () =>
                void model.selectRun(
                  model.selectedRun === run.id ? null : run.id
                );
              return (
                <tr
                  key={run.id}
                  data-run={run.id}
                  tabIndex={0}
                  aria-selected={model.selectedRun === run.id}
                  className={
                    model.selectedRun === run.id ? 'jp-mod-selected' : ''
                  }
                  onClick={open}
                  onKeyDown={onActivate(open)}
                >
                  <td className="jp-Dispatch-mono" title={run.id}>
                    {run.id.slice(-8)}
                  </td>
                  <td>{run.function}</td>
                  <td>
                    <Status status={run.status} />
                  </td>
                  <td className="jp-Dispatch-short">
                    {formatTime(run.times.queued).slice(11, 19)}
                  </td>
                  <td className="jp-Dispatch-short">{runDuration(run)}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      {selected ? <RunInspector model={model} run={selected} /> : null}
    </>
  );
}
