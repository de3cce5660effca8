/**
 * Captures the JSON lines Powertools writes (log lines on stdout and stderr, EMF metrics on
 * stdout) while `work` runs, parsed.
 */
export async function captureJsonLines<T>(work: () => Promise<T>): Promise<{ result?: T; error?: unknown; lines: Array<Record<string, unknown>> }> {
  const chunks: string[] = [];
  const capture = (chunk: string | Uint8Array): boolean => {
    chunks.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
    return true;
  };
  const out = jest.spyOn(process.stdout, 'write').mockImplementation(capture);
  const err = jest.spyOn(process.stderr, 'write').mockImplementation(capture);
  let result: T | undefined;
  let error: unknown;
  try {
    result = await work();
  } catch (thrown) {
    error = thrown;
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
  const lines = chunks
    .join('')
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
  return { result, error, lines };
}
