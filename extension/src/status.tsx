/** The status-bar item: runs in flight and failures in the last minute; a click opens the panel. */
import { ReactWidget } from '@jupyterlab/ui-components';
import * as React from 'react';

import { statusText } from './format';
import type { PanelModel } from './model';

function StatusView(props: {
  model: PanelModel;
  onOpen: () => void;
}): JSX.Element {
  const { model } = props;
  const [, setTick] = React.useState(0);
  React.useEffect(() => {
    const rerender = () => setTick(tick => tick + 1);
    model.changed.connect(rerender);
    // "The last minute" moves on without any run changing.
    const timer = setInterval(rerender, 5000);
    return () => {
      model.changed.disconnect(rerender);
      clearInterval(timer);
    };
  }, [model]);
  const failures = model.runs.failuresSince(Date.now() / 1000);
  return (
    <button
      className={`jp-Dispatch-statusItem${failures ? ' jp-Dispatch-statusItem-failed' : ''}`}
      title="Open the Dispatch panel"
      onClick={props.onOpen}
    >
      {model.unreachable
        ? 'Dispatch: unreachable'
        : statusText(model.runs.inFlight(), failures)}
    </button>
  );
}

/** The status-bar widget. */
export class DispatchStatus extends ReactWidget {
  constructor(
    private readonly model: PanelModel,
    private readonly onOpen: () => void
  ) {
    super();
    this.addClass('jp-Dispatch-status-bar');
  }

  protected render(): JSX.Element {
    return <StatusView model={this.model} onOpen={this.onOpen} />;
  }
}
