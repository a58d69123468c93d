/**
 * The invoke form's model: the fields a function's input schema asks for, the input a filled
 * form makes, and the schema check that runs before anything is sent (ajv, the JSON Schema
 * validator JupyterLab itself uses for settings).
 */
import Ajv2020 from 'ajv/dist/2020';
import type { ErrorObject, ValidateFunction } from 'ajv';

import type { JsonSchema } from './types';

/** How a field is edited. */
export type FieldKind =
  'string' | 'number' | 'integer' | 'boolean' | 'enum' | 'json';

/** One input of the form: a top-level property of an object schema. */
export interface IField {
  name: string;
  kind: FieldKind;
  required: boolean;
  title: string;
  description?: string;
  options?: unknown[];
  default?: unknown;
}

/** The form a schema makes: fields, or null when only raw JSON can say the input. */
export interface IFormSpec {
  fields: IField[] | null;
}

function kindOf(schema: { [key: string]: any }): FieldKind {
  if (Array.isArray(schema.enum) && schema.enum.length > 0) {
    return 'enum';
  }
  const type = Array.isArray(schema.type)
    ? schema.type.filter((t: string) => t !== 'null')
    : [schema.type];
  if (
    type.length === 1 &&
    ['string', 'number', 'integer', 'boolean'].includes(type[0])
  ) {
    return type[0];
  }
  return 'json';
}

/**
 * The form for `schema`: one field per property of an object schema; null (raw JSON only)
 * for any other schema, or none.
 */
export function formFor(schema: JsonSchema | undefined): IFormSpec {
  if (
    !schema ||
    typeof schema !== 'object' ||
    schema.type !== 'object' ||
    !schema.properties
  ) {
    return { fields: null };
  }
  const required = new Set<string>(
    Array.isArray(schema.required) ? schema.required : []
  );
  const fields = Object.entries(schema.properties as Record<string, any>).map(
    ([name, property]): IField => {
      const prop = property && typeof property === 'object' ? property : {};
      return {
        name,
        kind: kindOf(prop),
        required: required.has(name),
        title: typeof prop.title === 'string' ? prop.title : name,
        description:
          typeof prop.description === 'string' ? prop.description : undefined,
        options: Array.isArray(prop.enum) ? prop.enum : undefined,
        default: prop.default
      };
    }
  );
  return { fields };
}

/** What the form holds for each field: the text typed (or a checkbox's state). */
export type FormValues = Record<string, string | boolean>;

/** The starting values of a form: each field's default, else empty. */
export function initialValues(spec: IFormSpec): FormValues {
  const values: FormValues = {};
  for (const field of spec.fields ?? []) {
    if (field.kind === 'boolean') {
      values[field.name] = field.default === true;
    } else if (field.default !== undefined) {
      values[field.name] =
        field.kind === 'string'
          ? String(field.default)
          : JSON.stringify(field.default);
    } else {
      values[field.name] = '';
    }
  }
  return values;
}

/** The outcome of reading a form: the input, or the problems that keep it from being sent. */
export interface IReadResult {
  input?: unknown;
  errors: string[];
}

/** Turn the typed values into the input object; a field left empty is left out. */
export function readForm(spec: IFormSpec, values: FormValues): IReadResult {
  const input: Record<string, unknown> = {};
  const errors: string[] = [];
  for (const field of spec.fields ?? []) {
    const raw = values[field.name];
    if (field.kind === 'boolean') {
      input[field.name] = raw === true;
      continue;
    }
    const text = typeof raw === 'string' ? raw : '';
    if (text.trim() === '') {
      continue; // the schema check reports it when it is required
    }
    if (field.kind === 'string') {
      input[field.name] = text;
    } else if (field.kind === 'number' || field.kind === 'integer') {
      const value = Number(text.trim());
      if (!Number.isFinite(value)) {
        errors.push(`${field.name}: "${text}" is not a number`);
      } else if (field.kind === 'integer' && !Number.isInteger(value)) {
        errors.push(`${field.name}: "${text}" is not a whole number`);
      } else {
        input[field.name] = value;
      }
    } else if (field.kind === 'enum') {
      const option = (field.options ?? []).find(
        o => JSON.stringify(o) === text
      );
      if (option === undefined) {
        errors.push(`${field.name}: choose one of the options`);
      } else {
        input[field.name] = option;
      }
    } else {
      const parsed = parseJson(text);
      if (parsed.error) {
        errors.push(`${field.name}: ${parsed.error}`);
      } else {
        input[field.name] = parsed.value;
      }
    }
  }
  return errors.length ? { errors } : { input, errors };
}

/** Parse JSON text; the value, or a sentence saying what is wrong. */
export function parseJson(text: string): { value?: unknown; error?: string } {
  try {
    return { value: JSON.parse(text) };
  } catch (error) {
    return {
      error: `not valid JSON (${error instanceof Error ? error.message : error})`
    };
  }
}

function describe(error: ErrorObject): string {
  const where = error.instancePath
    ? error.instancePath.slice(1).replace(/\//g, '.')
    : error.keyword === 'required'
      ? String(
          (error.params as { missingProperty?: string }).missingProperty ??
            'input'
        )
      : 'input';
  if (error.keyword === 'required') {
    return `${where}: required`;
  }
  return `${where}: ${error.message ?? 'is not valid'}`;
}

/** Checks inputs against one schema; a schema ajv cannot compile checks nothing (the server still does). */
export class InputValidator {
  private readonly check: ValidateFunction | null;
  /** Why the schema could not be compiled, if it could not. */
  readonly problem: string | null = null;

  constructor(schema: JsonSchema | undefined) {
    let check: ValidateFunction | null = null;
    if (schema !== undefined && schema !== true) {
      try {
        const ajv = new Ajv2020({
          strict: false,
          allErrors: true,
          validateFormats: false
        });
        check = ajv.compile(
          typeof schema === 'boolean' ? schema : stripMeta(schema)
        );
      } catch (error) {
        this.problem = error instanceof Error ? error.message : String(error);
      }
    }
    this.check = check;
  }

  /** The problems with `input` (none: it may be sent). */
  validate(input: unknown): string[] {
    if (!this.check || this.check(input)) {
      return [];
    }
    return (this.check.errors ?? []).map(describe);
  }
}

// A draft-07 `$schema` would make the 2020-12 validator refuse to compile; the keywords a
// function's input uses mean the same in both.
function stripMeta(schema: { [key: string]: any }): { [key: string]: any } {
  const rest = { ...schema };
  delete rest.$schema;
  return rest;
}
