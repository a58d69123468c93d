/**
 * The invoke form: fields generated from a function's input schema, or raw JSON. What the
 * user typed is checked against the schema before anything is sent; a refused input stays in
 * the form with the reasons beside it.
 */
import * as React from 'react';

import type { PanelModel } from './model';
import {
  InputValidator,
  formFor,
  initialValues,
  parseJson,
  readForm,
  type FormValues,
  type IField
} from './schema';
import type { IFunction } from './types';

function FieldInput(props: {
  fn: string;
  field: IField;
  value: string | boolean;
  onChange: (value: string | boolean) => void;
}): JSX.Element {
  const { field, value } = props;
  const id = `jp-Dispatch-invoke-${props.fn}-${field.name}`;
  let control: JSX.Element;
  if (field.kind === 'boolean') {
    control = (
      <input
        id={id}
        name={field.name}
        type="checkbox"
        checked={value === true}
        onChange={e => props.onChange(e.target.checked)}
      />
    );
  } else if (field.kind === 'enum') {
    control = (
      <select
        id={id}
        name={field.name}
        value={String(value)}
        onChange={e => props.onChange(e.target.value)}
      >
        <option value="">(none)</option>
        {(field.options ?? []).map(option => (
          <option key={JSON.stringify(option)} value={JSON.stringify(option)}>
            {typeof option === 'string' ? option : JSON.stringify(option)}
          </option>
        ))}
      </select>
    );
  } else if (field.kind === 'json') {
    control = (
      <textarea
        id={id}
        name={field.name}
        rows={2}
        value={String(value)}
        placeholder="JSON"
        onChange={e => props.onChange(e.target.value)}
      />
    );
  } else {
    control = (
      <input
        id={id}
        name={field.name}
        type="text"
        inputMode={field.kind === 'string' ? 'text' : 'decimal'}
        value={String(value)}
        placeholder={field.kind}
        onChange={e => props.onChange(e.target.value)}
      />
    );
  }
  return (
    <div className="jp-Dispatch-field">
      <label htmlFor={id}>
        {field.title}
        {field.required ? ' *' : ''}{' '}
        <span className="jp-Dispatch-hint">{field.kind}</span>
      </label>
      {control}
      {field.description ? (
        <div className="jp-Dispatch-hint">{field.description}</div>
      ) : null}
    </div>
  );
}

/** The invoke form of one function. */
export function InvokeForm(props: {
  model: PanelModel;
  fn: IFunction;
}): JSX.Element {
  const { model, fn } = props;
  const schema = fn.schema?.in;
  const spec = React.useMemo(() => formFor(schema), [JSON.stringify(schema)]);
  const validator = React.useMemo(
    () => new InputValidator(schema),
    [JSON.stringify(schema)]
  );
  const [raw, setRaw] = React.useState(spec.fields === null);
  const [values, setValues] = React.useState<FormValues>(() =>
    initialValues(spec)
  );
  const [text, setText] = React.useState('{}');
  const [errors, setErrors] = React.useState<string[]>([]);
  const [sending, setSending] = React.useState(false);

  const read = (): { input?: unknown; errors: string[] } => {
    if (raw) {
      const parsed = parseJson(text);
      return parsed.error
        ? { errors: [`input: ${parsed.error}`] }
        : { input: parsed.value, errors: [] };
    }
    return readForm(spec, values);
  };

  const switchMode = () => {
    if (!raw) {
      const current = readForm(spec, values);
      setText(JSON.stringify(current.input ?? {}, null, 2));
    }
    setErrors([]);
    setRaw(!raw);
  };

  const submit = async (event: React.FormEvent) => {
    event.preventDefault();
    const result = read();
    const problems = result.errors.length
      ? result.errors
      : validator.validate(result.input);
    setErrors(problems);
    if (problems.length) {
      return; // refused here: nothing is sent
    }
    setSending(true);
    const run = await model.invoke(fn.name, result.input);
    setSending(false);
    if (run) {
      model.setRunFilter({ function: '', status: '' });
      void model.selectRun(run.id);
      model.requestFocus('inspector');
    }
  };

  return (
    <form
      className="jp-Dispatch-invoke"
      aria-label={`Invoke ${fn.name}`}
      onSubmit={submit}
      noValidate
    >
      <div className="jp-Dispatch-formHeader">
        <strong>Invoke {fn.name}</strong>
        <label className="jp-Dispatch-hint">
          <input
            type="checkbox"
            name="raw"
            checked={raw}
            disabled={spec.fields === null}
            onChange={switchMode}
          />{' '}
          raw JSON
        </label>
      </div>
      {raw ? (
        <div className="jp-Dispatch-field">
          <label htmlFor={`jp-Dispatch-raw-${fn.name}`}>Input (JSON)</label>
          <textarea
            id={`jp-Dispatch-raw-${fn.name}`}
            name="input"
            rows={5}
            className="jp-Dispatch-code"
            value={text}
            onChange={e => setText(e.target.value)}
          />
        </div>
      ) : (
        (spec.fields ?? []).map(field => (
          <FieldInput
            key={field.name}
            fn={fn.name}
            field={field}
            value={values[field.name] ?? ''}
            onChange={value => setValues({ ...values, [field.name]: value })}
          />
        ))
      )}
      {errors.length ? (
        <ul className="jp-Dispatch-error jp-Dispatch-formErrors" role="alert">
          {errors.map(error => (
            <li key={error}>{error}</li>
          ))}
        </ul>
      ) : null}
      {validator.problem ? (
        <div className="jp-Dispatch-hint">
          The input schema cannot be checked here ({validator.problem}); the
          server checks it.
        </div>
      ) : null}
      <div className="jp-Dispatch-actions">
        <button
          type="submit"
          className="jp-Button jp-mod-styled jp-mod-accept"
          disabled={sending}
        >
          {sending ? 'Sending…' : 'Run'}
        </button>
        <button
          type="button"
          className="jp-Button jp-mod-styled jp-mod-reject"
          onClick={() => model.openInvoke(null)}
        >
          Close
        </button>
      </div>
    </form>
  );
}
