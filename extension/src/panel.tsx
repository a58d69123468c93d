/** The Dispatch panel: a Lumino widget (rendered with React) for the left sidebar. */
import { ReactWidget } from '@jupyterlab/ui-components';
import type { Message as LuminoMessage } from '@lumino/messaging';
import * as React from 'react';

import { Message, Section } from './common';
import { FunctionsView } from './functions';
import type { PanelModel } from './model';
import { ApisView, EventsView, ImagesView, SecretsView } from './others';
import { RunsView } from './runsview';

/** The id of the panel in JupyterLab's shell. */
export const PANEL_ID = 'dispatch-kernel-panel';

function count(items: unknown[] | null): number | null {
  return items ? items.length : null;
}

function PanelView(props: { model: PanelModel }): JSX.Element {
  const { model } = props;
  const [, setTick] = React.useState(0);
  const root = React.useRef<HTMLDivElement>(null);
  React.useEffect(() => {
    const rerender = () => setTick(tick => tick + 1);
    const focus = (_: unknown, part: string) => {
      // After the render that shows the part, move the focus (and the view) to it.
      setTimeout(() => {
        const node = root.current?.querySelector<HTMLElement>(
          part === 'runs'
            ? '[data-section="runs"] summary'
            : part === 'invoke'
              ? '.jp-Dispatch-invoke input, .jp-Dispatch-invoke textarea'
              : '.jp-Dispatch-inspector'
        );
        node?.closest('details')?.setAttribute('open', '');
        node?.scrollIntoView({ block: 'nearest' });
        node?.focus();
      }, 0);
    };
    model.changed.connect(rerender);
    model.focusRequested.connect(focus);
    return () => {
      model.changed.disconnect(rerender);
      model.focusRequested.disconnect(focus);
    };
  }, [model]);

  let body: JSX.Element;
  if (model.unreachable) {
    body = (
      <div className="jp-Dispatch-unreachable">
        <Message error>{model.unreachable}</Message>
        <button
          className="jp-Button jp-mod-styled jp-mod-accept"
          onClick={() => void model.retry()}
        >
          Retry
        </button>
      </div>
    );
  } else if (!model.features) {
    body = <Message>Connecting to Dispatch…</Message>;
  } else {
    const { lists, features } = model;
    body = (
      <>
        {features.organizations ? (
          <label className="jp-Dispatch-org">
            organization{' '}
            <select
              name="org"
              value={model.api.org ?? ''}
              onChange={e => void model.setOrg(e.target.value || null)}
            >
              <option value="">(default)</option>
              {(lists.organizations.items ?? []).map(org => (
                <option key={org.name} value={org.name}>
                  {org.name}
                </option>
              ))}
            </select>
          </label>
        ) : null}
        {model.notice ? (
          <div
            className={`jp-Dispatch-notice${model.notice.error ? ' jp-Dispatch-error' : ''}`}
            role="status"
          >
            {model.notice.text}
            <button
              className="jp-Dispatch-dismiss"
              aria-label="Dismiss"
              onClick={() => ((model.notice = null), setTick(t => t + 1))}
            >
              ×
            </button>
          </div>
        ) : null}
        <Section
          id="functions"
          title="Functions"
          count={count(lists.functions.items)}
          open
        >
          <FunctionsView model={model} />
        </Section>
        <Section id="runs" title="Runs" open>
          <RunsView model={model} />
        </Section>
        <Section
          id="events"
          title="Events"
          count={count(lists.subscriptions.items)}
        >
          <EventsView model={model} />
        </Section>
        <Section id="images" title="Images" count={count(lists.images.items)}>
          <ImagesView model={model} />
        </Section>
        {features.apis ? (
          <Section id="apis" title="APIs" count={count(lists.apis.items)}>
            <ApisView model={model} />
          </Section>
        ) : null}
        <Section
          id="secrets"
          title="Secrets"
          count={count(lists.secrets.items)}
        >
          <SecretsView model={model} />
        </Section>
      </>
    );
  }
  return (
    <div className="jp-Dispatch-panel" ref={root}>
      <header className="jp-Dispatch-header">
        <h2>Dispatch</h2>
        <button
          className="jp-Button jp-mod-styled jp-Dispatch-refresh"
          title="Read everything again"
          onClick={() =>
            void (model.unreachable
              ? model.retry()
              : Promise.all([model.refreshAll(), model.loadRuns()]))
          }
        >
          Refresh
        </button>
      </header>
      {body}
    </div>
  );
}

/** The sidebar widget: renders the model, and reads lists only while it is shown. */
export class DispatchPanel extends ReactWidget {
  constructor(readonly model: PanelModel) {
    super();
    this.id = PANEL_ID;
    this.addClass('jp-Dispatch');
    this.title.caption = 'Dispatch';
  }

  protected render(): JSX.Element {
    return <PanelView model={this.model} />;
  }

  protected onAfterShow(msg: LuminoMessage): void {
    super.onAfterShow(msg);
    this.model.setVisible(true);
  }

  protected onAfterHide(msg: LuminoMessage): void {
    super.onAfterHide(msg);
    this.model.setVisible(false);
  }

  dispose(): void {
    this.model.dispose();
    super.dispose();
  }
}
