import { EventStreamParser } from '../sse';

describe('EventStreamParser', () => {
  it('reads events cut anywhere into chunks', () => {
    const text =
      ': open\n\nevent: run\ndata: {"id": "a"}\n\nevent: run\ndata: {"id": "b"}\n\n';
    for (let cut = 0; cut <= text.length; cut++) {
      const parser = new EventStreamParser();
      const events = [
        ...parser.feed(text.slice(0, cut)),
        ...parser.feed(text.slice(cut))
      ];
      expect(events).toEqual([
        { event: 'run', data: '{"id": "a"}', id: undefined },
        { event: 'run', data: '{"id": "b"}', id: undefined }
      ]);
    }
  });

  it('joins data lines, accepts CRLF and CR, and names unnamed events message', () => {
    const parser = new EventStreamParser();
    expect(parser.feed('data: one\r\ndata:two\r\rid: 7\ndata: x\n')).toEqual([
      { event: 'message', data: 'one\ntwo', id: undefined }
    ]);
    expect(parser.feed('\n')).toEqual([
      { event: 'message', data: 'x', id: '7' }
    ]);
  });

  it('keeps an event that has not ended, and ignores comments and unknown fields', () => {
    const parser = new EventStreamParser();
    expect(
      parser.feed(': keep-alive\nretry: 10\nevent: run\ndata: {}')
    ).toEqual([]);
    expect(parser.feed('\n')).toEqual([]);
    expect(parser.feed('\n')).toEqual([
      { event: 'run', data: '{}', id: undefined }
    ]);
  });

  it('makes no event of a blank line without data', () => {
    const parser = new EventStreamParser();
    expect(parser.feed('event: run\n\n\n')).toEqual([]);
  });
});
