/** The Functions section: the table, a function's details, its invoke form and delete. */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import * as React from 'react';

import { Message, Status, onActivate } from './common';
import { apiUrls, formatJson, formatTime } from './format';
import { InvokeForm } from './invoke';
import type { PanelModel } from './model';
import type { IFunction } from './types';

/** Ask before deleting; delete when the user agrees. */
export async function confirmDelete(
  model: PanelModel,
  name: string
): Promise<void> {
  const answer = await showDialog({
    title: 'Delete function',
    body: `Delete the function "${name}"? Its runs stay; its routes and subscriptions stop working.`,
    buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Delete' })],
    // Enter keeps the function: deleting takes a deliberate choice.
    defaultButton: 0
  });
  if (answer.button.accept) {
    await model.deleteFunction(name);
  }
}

function urlsOf(model: PanelModel, fn: IFunction): string[] {
  const apis = model.lists.apis.items ?? [];
  return apis
    .filter(api => api.function === fn.name && api.enabled !== false)
    .flatMap(api => apiUrls(api, model.api.httpBase));
}

function Details(props: { model: PanelModel; fn: IFunction }): JSX.Element {
  const { model, fn } = props;
  const scaling = fn.scaling ?? {};
  return (
    <div className="jp-Dispatch-details" aria-label={`Details of ${fn.name}`}>
      <dl>
        <dt>handler</dt>
        <dd>
          {fn.handler} ({fn.convention})
        </dd>
        <dt>image</dt>
        <dd>{fn.image_name || fn.image || '—'}</dd>
        <dt>requirements</dt>
        <dd>{fn.requirements?.length ? fn.requirements.join(', ') : 'none'}</dd>
        <dt>secrets</dt>
        <dd>{fn.secrets?.length ? fn.secrets.join(', ') : 'none'}</dd>
        <dt>scaling</dt>
        <dd>
          {scaling.min_workers ?? 0}–{scaling.max_workers ?? '?'} workers
          {scaling.idle_timeout ? `, idle ${scaling.idle_timeout} s` : ''}
        </dd>
        <dt>timeout</dt>
        <dd>{fn.timeout ? `${fn.timeout} s` : 'none'}</dd>
        <dt>modified</dt>
        <dd>{formatTime(fn.modified)}</dd>
      </dl>
      <div className="jp-Dispatch-hint">input schema</div>
      <pre className="jp-Dispatch-code">
        {formatJson(fn.schema?.in ?? true)}
      </pre>
      {fn.schema?.out !== undefined ? (
        <>
          <div className="jp-Dispatch-hint">output schema</div>
          <pre className="jp-Dispatch-code">{formatJson(fn.schema.out)}</pre>
        </>
      ) : null}
      <div className="jp-Dispatch-actions">
        <button
          className="jp-Button jp-mod-styled jp-mod-accept"
          onClick={() => model.openInvoke(fn.name)}
        >
          Invoke…
        </button>
        <button
          className="jp-Button jp-mod-styled"
          onClick={() => {
            model.setRunFilter({ function: fn.name });
            model.requestFocus('runs');
          }}
        >
          Show runs
        </button>
        <button
          className="jp-Button jp-mod-styled jp-mod-warn"
          onClick={() => void confirmDelete(model, fn.name)}
        >
          Delete…
        </button>
      </div>
      {model.invokeFunction === fn.name ? (
        <InvokeForm model={model} fn={fn} />
      ) : null}
    </div>
  );
}

/** The Functions section's content. */
export function FunctionsView(props: { model: PanelModel }): JSX.Element {
  const { model } = props;
  const { items, error } = model.lists.functions;
  if (error) {
    return <Message error>{error}</Message>;
  }
  if (items === null) {
    return <Message>Loading…</Message>;
  }
  if (items.length === 0) {
    return (
      <Message>
        No functions yet: deploy one with a %%dispatch cell or `dispatch create
        function`.
      </Message>
    );
  }
  const figures = model.runs.byFunction();
  const selected = items.find(fn => fn.name === model.selectedFunction);
  return (
    <>
      <table className="jp-Dispatch-table" aria-label="Functions">
        <thead>
          <tr>
            <th>name</th>
            <th>status</th>
            <th>driver</th>
            <th>rev</th>
            {model.features?.apis ? <th>URL</th> : null}
            <th>last run</th>
            <th>failed</th>
          </tr>
        </thead>
        <tbody>
          {items.map(fn => {
            const figure = figures.get(fn.name);
            const open = () => model.selectFunction(fn.name);
            return (
              <tr
                key={fn.name}
                data-function={fn.name}
                tabIndex={0}
                aria-selected={model.selectedFunction === fn.name}
                className={
                  model.selectedFunction === fn.name ? 'jp-mod-selected' : ''
                }
                onClick={open}
                onKeyDown={onActivate(open)}
              >
                <td>{fn.name}</td>
                <td>
                  <Status status={fn.status} reason={fn.reason} />
                </td>
                <td className="jp-Dispatch-short">{fn.driver}</td>
                <td className="jp-Dispatch-short">{fn.revision}</td>
                {model.features?.apis ? (
                  <td>
                    {urlsOf(model, fn).map(url => (
                      <a
                        key={url}
                        href={url}
                        target="_blank"
                        rel="noreferrer"
                        onClick={e => e.stopPropagation()}
                      >
                        {url.replace(window.location.origin, '')}
                      </a>
                    ))}
                  </td>
                ) : null}
                <td>
                  {figure?.last ? <Status status={figure.last.status} /> : '—'}
                </td>
                <td>{figure?.failures ?? 0}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
      {selected ? <Details model={model} fn={selected} /> : null}
    </>
  );
}
