/**
 * Lexical helpers for Flink SQL text: a small tokenizer that knows string literals, quoted
 * identifiers, line comments and hint/block comments, which is all the dialect lint and the
 * loader need. It is deliberately not a parser: the grammar check is dt-sql-parser's job (in
 * the tests) and Confluent's (`npm run flink:check`).
 */

/** Kinds of token the lint reasons about. */
export type SqlTokenKind = 'word' | 'quoted' | 'string' | 'number' | 'symbol';

/** One token with its position in the text it came from. */
export interface SqlToken {
  /** What kind of token this is. */
  readonly kind: SqlTokenKind;
  /** The token as written (for `quoted`, without the backticks; for `string`, without quotes). */
  readonly text: string;
  /** Upper-cased `text` for words, `text` otherwise; what keyword comparisons use. */
  readonly upper: string;
  /** Offset of the token's first character. */
  readonly offset: number;
  /** Parenthesis depth the token sits at (the `(` itself is at the outer depth). */
  readonly depth: number;
}

/** Removes `--` line comments (outside literals and quoted identifiers) and trailing blank space. */
export function stripLineComments(sql: string): string {
  let out = '';
  let i = 0;
  while (i < sql.length) {
    const ch = sql[i];
    if (ch === "'" || ch === '`' || ch === '"') {
      const end = closingQuote(sql, i);
      out += sql.slice(i, end);
      i = end;
    } else if (ch === '-' && sql[i + 1] === '-') {
      while (i < sql.length && sql[i] !== '\n') i += 1;
    } else if (ch === '/' && sql[i + 1] === '*') {
      const end = sql.indexOf('*/', i + 2);
      const stop = end < 0 ? sql.length : end + 2;
      out += sql.slice(i, stop);
      i = stop;
    } else {
      out += ch;
      i += 1;
    }
  }
  return out
    .split('\n')
    .map((line) => line.replace(/\s+$/, ''))
    .filter((line, index, lines) => line.length > 0 || (index > 0 && lines[index - 1].length > 0))
    .join('\n')
    .trim();
}

function closingQuote(sql: string, start: number): number {
  const quote = sql[start];
  let i = start + 1;
  while (i < sql.length) {
    if (sql[i] === quote) {
      if (sql[i + 1] === quote) {
        i += 2;
        continue;
      }
      return i + 1;
    }
    i += 1;
  }
  return sql.length;
}

/**
 * Tokenizes SQL. Comments (including `/*+ hints *\/`) are skipped; hints carry table aliases
 * as strings, never columns, so the lint need not see them.
 */
export function tokenize(sql: string): SqlToken[] {
  const tokens: SqlToken[] = [];
  let depth = 0;
  let i = 0;
  while (i < sql.length) {
    const ch = sql[i];
    if (/\s/.test(ch)) {
      i += 1;
    } else if (ch === '-' && sql[i + 1] === '-') {
      while (i < sql.length && sql[i] !== '\n') i += 1;
    } else if (ch === '/' && sql[i + 1] === '*') {
      const end = sql.indexOf('*/', i + 2);
      i = end < 0 ? sql.length : end + 2;
    } else if (ch === "'" || ch === '`' || ch === '"') {
      const end = closingQuote(sql, i);
      const body = sql
        .slice(i + 1, Math.max(i + 1, end - 1))
        .split(ch + ch)
        .join(ch);
      const kind: SqlTokenKind = ch === "'" ? 'string' : 'quoted';
      tokens.push({ kind, text: body, upper: kind === 'quoted' ? body : body, offset: i, depth });
      i = end;
    } else if (/[A-Za-z_$]/.test(ch)) {
      let j = i + 1;
      while (j < sql.length && /[A-Za-z0-9_$]/.test(sql[j])) j += 1;
      const text = sql.slice(i, j);
      tokens.push({ kind: 'word', text, upper: text.toUpperCase(), offset: i, depth });
      i = j;
    } else if (/[0-9]/.test(ch)) {
      let j = i + 1;
      while (j < sql.length && /[0-9.eE]/.test(sql[j])) j += 1;
      const text = sql.slice(i, j);
      tokens.push({ kind: 'number', text, upper: text, offset: i, depth });
      i = j;
    } else {
      const two = sql.slice(i, i + 2);
      const text = ['<=', '>=', '<>', '!=', '||'].includes(two) ? two : ch;
      if (text === ')') depth -= 1;
      tokens.push({ kind: 'symbol', text, upper: text, offset: i, depth });
      if (text === '(') depth += 1;
      i += text.length;
    }
  }
  return tokens;
}

/**
 * Splits SQL into statements on `;` at parenthesis depth 0, outside literals and comments.
 * `EXECUTE STATEMENT SET BEGIN … END` counts as one statement. Empty pieces are dropped.
 */
export function splitStatements(sql: string): string[] {
  const tokens = tokenize(sql);
  const pieces: string[] = [];
  let start = 0;
  let inStatementSet = false;
  for (let k = 0; k < tokens.length; k += 1) {
    const t = tokens[k];
    if (t.kind === 'word' && t.upper === 'BEGIN' && tokens[k - 1]?.upper === 'SET' && tokens[k - 2]?.upper === 'STATEMENT') {
      inStatementSet = true;
    } else if (inStatementSet && t.kind === 'word' && t.upper === 'END') {
      inStatementSet = false;
    } else if (!inStatementSet && t.kind === 'symbol' && t.text === ';' && t.depth === 0) {
      pieces.push(sql.slice(start, t.offset));
      start = t.offset + 1;
    }
  }
  pieces.push(sql.slice(start));
  return pieces.filter((piece) => tokenize(piece).length > 0).map((piece) => piece.trim());
}

/** Index of the `)` that closes the `(` at `open`, or the last index when unbalanced. */
export function matchingParen(tokens: readonly SqlToken[], open: number): number {
  const depth = tokens[open].depth;
  for (let k = open + 1; k < tokens.length; k += 1) {
    if (tokens[k].text === ')' && tokens[k].kind === 'symbol' && tokens[k].depth === depth) return k;
  }
  return tokens.length - 1;
}

/** Whether the token is the word `upper` (keywords compare case-insensitively). */
export function isWord(token: SqlToken | undefined, ...upper: string[]): boolean {
  return token !== undefined && token.kind === 'word' && upper.includes(token.upper);
}

/** Whether the token is the symbol `text`. */
export function isSymbol(token: SqlToken | undefined, text: string): boolean {
  return token !== undefined && token.kind === 'symbol' && token.text === text;
}

/** An identifier's name: quoted identifiers as written, words as written. */
export function identifierName(token: SqlToken): string {
  return token.text;
}

/** Whether the token can be an identifier (a word or a back-quoted name). */
export function isIdentifierToken(token: SqlToken | undefined): token is SqlToken {
  return token !== undefined && (token.kind === 'word' || token.kind === 'quoted');
}

/**
 * Replaces `${NAME}` placeholders with `parameters[NAME]`; a placeholder without a value is an
 * error the caller reports with the file name.
 */
export function renderTemplate(
  sql: string,
  parameters: Readonly<Record<string, string>>,
): { readonly text: string; readonly missing: readonly string[]; readonly used: readonly string[] } {
  const missing: string[] = [];
  const used: string[] = [];
  const text = sql.replace(/\$\{([A-Z][A-Z0-9_]*)\}/g, (_match, name: string) => {
    if (!(name in parameters)) {
      missing.push(name);
      return `\${${name}}`;
    }
    if (!used.includes(name)) used.push(name);
    return parameters[name];
  });
  return { text, missing, used };
}
