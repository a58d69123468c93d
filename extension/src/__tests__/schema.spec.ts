import { InputValidator, formFor, initialValues, readForm } from '../schema';

const schema = {
  type: 'object',
  properties: {
    name: { type: 'string', minLength: 1, description: 'who' },
    times: { type: 'integer', minimum: 1, maximum: 5, default: 1 },
    ratio: { type: 'number' },
    loud: { type: 'boolean' },
    mood: { enum: ['calm', 'busy'] },
    tags: { type: 'array', items: { type: 'string' } }
  },
  required: ['name']
};

describe('formFor', () => {
  it('makes one field per property, of the kind its type says', () => {
    const spec = formFor(schema);
    expect(spec.fields!.map(f => [f.name, f.kind, f.required])).toEqual([
      ['name', 'string', true],
      ['times', 'integer', false],
      ['ratio', 'number', false],
      ['loud', 'boolean', false],
      ['mood', 'enum', false],
      ['tags', 'json', false]
    ]);
    expect(spec.fields![0].description).toBe('who');
    expect(initialValues(spec)).toEqual({
      name: '',
      times: '1',
      ratio: '',
      loud: false,
      mood: '',
      tags: ''
    });
  });

  it('asks for raw JSON when the schema is not an object with properties', () => {
    expect(formFor(undefined).fields).toBeNull();
    expect(formFor(true).fields).toBeNull();
    expect(formFor({ type: 'array' }).fields).toBeNull();
    expect(formFor({ type: 'object' }).fields).toBeNull();
  });
});

describe('readForm', () => {
  const spec = formFor(schema);

  it('turns typed text into typed values and leaves empty fields out', () => {
    const values = {
      ...initialValues(spec),
      name: 'Ada',
      times: '3',
      ratio: '0.5',
      loud: true,
      mood: '"busy"',
      tags: '["a"]'
    };
    expect(readForm(spec, values)).toEqual({
      input: {
        name: 'Ada',
        times: 3,
        ratio: 0.5,
        loud: true,
        mood: 'busy',
        tags: ['a']
      },
      errors: []
    });
    expect(readForm(spec, { ...initialValues(spec), times: '' }).input).toEqual(
      { loud: false }
    );
  });

  it('says which fields cannot be read, and gives no input then', () => {
    const values = {
      ...initialValues(spec),
      times: 'three',
      ratio: '1.5',
      tags: '[a'
    };
    const result = readForm(spec, { ...values, times: '2.5' });
    expect(result.input).toBeUndefined();
    expect(result.errors[0]).toBe('times: "2.5" is not a whole number');
    expect(readForm(spec, values).errors).toEqual([
      'times: "three" is not a number',
      expect.stringMatching(/^tags: not valid JSON/)
    ]);
  });
});

describe('InputValidator', () => {
  it('refuses what the schema refuses, naming the field', () => {
    const validator = new InputValidator(schema);
    expect(validator.validate({ name: 'Ada', times: 2 })).toEqual([]);
    expect(validator.validate({ times: 9 })).toEqual([
      'name: required',
      'times: must be <= 5'
    ]);
    expect(validator.validate({ name: '' })).toEqual([
      'name: must NOT have fewer than 1 characters'
    ]);
    expect(validator.validate([])).toEqual(['input: must be object']);
  });

  it('accepts a draft-07 schema, and anything when there is no schema', () => {
    const draft7 = new InputValidator({
      $schema: 'http://json-schema.org/draft-07/schema#',
      type: 'object',
      required: ['x']
    });
    expect(draft7.problem).toBeNull();
    expect(draft7.validate({})).toEqual(['x: required']);
    expect(new InputValidator(undefined).validate(42)).toEqual([]);
    expect(new InputValidator(true).validate(42)).toEqual([]);
    expect(new InputValidator(false).validate(42)).toEqual([
      'input: boolean schema is false'
    ]);
  });

  it('checks nothing (and says why) when the schema cannot be compiled', () => {
    const validator = new InputValidator({
      type: 'object',
      properties: { x: { $ref: '#/nowhere' } }
    });
    expect(validator.problem).toMatch(/nowhere/);
    expect(validator.validate({ x: 1 })).toEqual([]);
  });
});
