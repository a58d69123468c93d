/** The Events, Images, APIs and Secrets sections: lists, plus emitting a test event. */
import * as React from 'react';

import { EntityTable, Message, Status } from './common';
import { apiUrls, formatJson } from './format';
import type { IListState, PanelModel } from './model';
import { parseJson } from './schema';

/** A list's content: its message when it cannot be shown, else `render(items)`. */
function ListOf<T>(props: {
  state: IListState<T>;
  empty: string;
  render: (items: T[]) => JSX.Element;
}): JSX.Element {
  const { items, error } = props.state;
  if (error) {
    return <Message error>{error}</Message>;
  }
  if (items === null) {
    return <Message>Loading…</Message>;
  }
  if (items.length === 0) {
    return <Message>{props.empty}</Message>;
  }
  return props.render(items);
}

function EmitForm(props: { model: PanelModel }): JSX.Element {
  const [type, setType] = React.useState('test.event');
  const [data, setData] = React.useState('{}');
  const [problem, setProblem] = React.useState('');
  const submit = async (event: React.FormEvent) => {
    event.preventDefault();
    const parsed = parseJson(data);
    if (!type.trim()) {
      setProblem('type: required');
      return;
    }
    if (parsed.error) {
      setProblem(`data: ${parsed.error}`);
      return;
    }
    setProblem('');
    await props.model.emit(type.trim(), parsed.value);
  };
  return (
    <form
      className="jp-Dispatch-invoke"
      aria-label="Emit a test event"
      onSubmit={submit}
      noValidate
    >
      <strong>Emit a test event</strong>
      <div className="jp-Dispatch-field">
        <label htmlFor="jp-Dispatch-emit-type">type</label>
        <input
          id="jp-Dispatch-emit-type"
          type="text"
          value={type}
          onChange={e => setType(e.target.value)}
        />
      </div>
      <div className="jp-Dispatch-field">
        <label htmlFor="jp-Dispatch-emit-data">data (JSON)</label>
        <textarea
          id="jp-Dispatch-emit-data"
          rows={2}
          className="jp-Dispatch-code"
          value={data}
          onChange={e => setData(e.target.value)}
        />
      </div>
      {problem ? (
        <div className="jp-Dispatch-error" role="alert">
          {problem}
        </div>
      ) : null}
      <div className="jp-Dispatch-actions">
        <button type="submit" className="jp-Button jp-mod-styled jp-mod-accept">
          Emit
        </button>
      </div>
    </form>
  );
}

/** Subscriptions, event sources, dead letters (when offered), and the emit form. */
export function EventsView(props: { model: PanelModel }): JSX.Element {
  const { model } = props;
  return (
    <>
      <div className="jp-Dispatch-hint">subscriptions</div>
      <ListOf
        state={model.lists.subscriptions}
        empty="No subscriptions."
        render={items => (
          <EntityTable
            label="Subscriptions"
            items={items}
            rowKey={s => s.name}
            columns={[
              ['name', s => s.name],
              ['event type', s => s.event_type],
              ['function', s => s.function],
              ['attempts', s => s.max_attempts ?? '']
            ]}
          />
        )}
      />
      <div className="jp-Dispatch-hint">event sources</div>
      <ListOf
        state={model.lists.sources}
        empty="No event sources."
        render={items => (
          <EntityTable
            label="Event sources"
            items={items}
            rowKey={s => s.name}
            columns={[
              ['name', s => s.name],
              ['type', s => s.type],
              ['status', s => <Status status={s.status} reason={s.reason} />]
            ]}
          />
        )}
      />
      {model.features?.deadLetters ? (
        <>
          <div className="jp-Dispatch-hint">dead letters</div>
          <ListOf
            state={model.lists.deadLetters}
            empty="No dead letters."
            render={items => (
              <EntityTable
                label="Dead letters"
                items={items}
                rowKey={d =>
                  `${d.subscription}/${(d.event as { id?: string })?.id ?? formatJson(d.event)}`
                }
                columns={[
                  ['subscription', d => d.subscription ?? ''],
                  [
                    'event',
                    d => String((d.event as { type?: string })?.type ?? '')
                  ],
                  ['attempts', d => d.attempts ?? ''],
                  ['error', d => d.error ?? '']
                ]}
              />
            )}
          />
        </>
      ) : null}
      <EmitForm model={model} />
    </>
  );
}

/** Images and base images. */
export function ImagesView(props: { model: PanelModel }): JSX.Element {
  const { model } = props;
  return (
    <>
      <ListOf
        state={model.lists.images}
        empty="No images: functions run in the default environment."
        render={items => (
          <EntityTable
            label="Images"
            items={items}
            rowKey={i => i.name}
            columns={[
              ['name', i => i.name],
              ['status', i => <Status status={i.status} reason={i.reason} />],
              ['base', i => i.base_image ?? ''],
              [
                'reference',
                i => (
                  <span className="jp-Dispatch-mono">{i.image_url ?? ''}</span>
                )
              ]
            ]}
          />
        )}
      />
      <div className="jp-Dispatch-hint">base images</div>
      <ListOf
        state={model.lists.baseImages}
        empty="No base images."
        render={items => (
          <EntityTable
            label="Base images"
            items={items}
            rowKey={i => i.name}
            columns={[
              ['name', i => i.name],
              ['status', i => <Status status={i.status} reason={i.reason} />],
              [
                'reference',
                i => (
                  <span className="jp-Dispatch-mono">{i.image_url ?? ''}</span>
                )
              ]
            ]}
          />
        )}
      />
    </>
  );
}

/** APIs: routes to functions, with the URLs they answer at. */
export function ApisView(props: { model: PanelModel }): JSX.Element {
  const { model } = props;
  return (
    <ListOf
      state={model.lists.apis}
      empty="No APIs: give a function routes with %%dispatch --route or POST apis."
      render={items => (
        <EntityTable
          label="APIs"
          items={items}
          rowKey={a => a.name}
          columns={[
            ['name', a => a.name],
            ['function', a => a.function],
            ['methods', a => (a.methods ?? []).join(' ')],
            [
              'URL',
              a =>
                apiUrls(a, model.api.httpBase).map(url => (
                  <div key={url} className="jp-Dispatch-mono">
                    {url}
                  </div>
                ))
            ],
            ['enabled', a => (a.enabled === false ? 'no' : 'yes')]
          ]}
        />
      )}
    />
  );
}

/** Secrets: names and key names, never values. */
export function SecretsView(props: { model: PanelModel }): JSX.Element {
  return (
    <ListOf
      state={props.model.lists.secrets}
      empty="No secrets."
      render={items => (
        <EntityTable
          label="Secrets"
          items={items}
          rowKey={s => s.name}
          columns={[
            ['name', s => s.name],
            ['keys', s => (s.keys ?? []).join(', ')]
          ]}
        />
      )}
    />
  );
}
