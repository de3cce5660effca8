import { FlinkSQL } from 'dt-sql-parser';
import { flinkStack } from './helpers';

/**
 * Grammar check with dt-sql-parser 4.5.1's FlinkSQL parser (open-source Flink grammar). It lacks
 * some Flink and Confluent syntax, so the text is rewritten for the parser only — the deployed
 * text is never rewritten:
 *   1. `DISTRIBUTED BY (…) INTO n BUCKETS` is removed;
 *   2. `ALTER TABLE t MODIFY WATERMARK FOR c AS e` becomes a CREATE TABLE declaring the same
 *      watermark, so the watermark expression is still parsed;
 *   3. `ARRAY_AGG(` is renamed `ARRAY_AGG_FN(`, a user-function-shaped name (the grammar has no
 *      ARRAY_AGG and mis-reads a quoted function name with nested calls).
 */
export function rewriteForParser(sql: string): string {
  return (
    sql
      .replace(/DISTRIBUTED\s+BY\s+(HASH\s*)?\([^)]*\)\s+INTO\s+\d+\s+BUCKETS/gi, '')
      .replace(
        /^ALTER\s+TABLE\s+(\S+)\s+MODIFY\s+WATERMARK\s+FOR\s+(\S+)\s+AS\s+([\s\S]+)$/i,
        (_m, table: string, column: string, expression: string) =>
          `CREATE TABLE ${table} (${column} TIMESTAMP_LTZ(3), WATERMARK FOR ${column} AS ${expression}) WITH ('changelog.mode' = 'append')`,
      )
      .replace(/\bARRAY_AGG\s*\(/gi, 'ARRAY_AGG_FN(')
      // The grammar has no TRY_CAST; it takes exactly CAST's arguments.
      .replace(/\bTRY_CAST\s*\(/gi, 'CAST(')
      // Nor the aggregate FILTER (WHERE …) clause (Flink SQL has it); dropped for parsing only.
      .replace(/\)\s*FILTER\s*\(\s*WHERE\s+[^()]*\)/gi, ')')
      // Nor the array value constructor ARRAY[a, b] (rtb-ranking v5's heartbeat keys); parsed as
      // a function call with the same arguments.
      .replace(/\bARRAY\s*\[([^[\]]*)\]/gi, 'ARRAY_FN($1)')
  );
}

const parser = new FlinkSQL();
const statements = flinkStack().pipelines.flatMap((p) => p.statements);

describe('every deployed statement parses with dt-sql-parser FlinkSQL', () => {
  it('loads the parser in the test runner (ESM build transformed to CommonJS)', () => {
    expect(parser.validate('SELECT 1')).toEqual([]);
  });

  it.each(statements.map((s) => [s.source, s.sql] as const))('%s parses', (_source, sql) => {
    const errors = parser.validate(rewriteForParser(sql));
    expect(errors.map((e) => `${e.startLine}:${e.startColumn} ${e.message}`)).toEqual([]);
  });

  it('rejects a statement with a syntax error, so the check can fail', () => {
    expect(parser.validate(rewriteForParser('INSERT INTO `x` SELEC a FROM `y`')).length).toBeGreaterThan(0);
  });

  it('never deploys the rewritten text', () => {
    const ranking = statements.find((s) => s.source.includes('insert-rtb-rankings'));
    expect(ranking?.sql).toContain('ARRAY_AGG(');
    const rankingsTable = statements.find((s) => s.source.includes('create-rtb-rankings'));
    expect(rankingsTable?.sql).toMatch(/DISTRIBUTED BY \(`placement`, `category`\) INTO 6 BUCKETS/);
  });
});
