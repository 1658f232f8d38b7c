import { readFileSync } from "node:fs";
import type { QueryResultRow } from "pg";
import { escapeIdentifier, escapeLiteral } from "pg";

/**
 * rota's SQL lives in .sql files: migrations in ./migrations, and one file per
 * table or concern in ./queries holding named statements, each with named
 * parameters:
 *
 *   -- name: Rescue
 *   select ... from {{schema}}.jobs ... limit :limit
 *
 * Beside each file, a module (queries/jobs.ts for jobs.sql) declares every
 * statement's parameters and row with `statement<Params, Row>()` and loads
 * the file with `defineQueries`; callers run a statement with
 * `db.run(q.Rescue, { limit })` and get typed rows back.
 *
 * At load, each `:name` becomes `$n` (the first name seen is $1; a name used
 * again keeps its number). `::type` is a cast, not a parameter, and string
 * literals, quoted identifiers and comments are left alone. `{{schema}}` is
 * replaced by the validated, quoted schema name (and `{{channel:NAME}}` by a
 * NOTIFY channel of that schema); every value goes in as a bind parameter.
 */
const NAME_LINE = /^--\s*name:\s*([A-Za-z][A-Za-z0-9]*)\s*$/;

export function parseNamedQueries(source: string, file: string): Map<string, string> {
  const queries = new Map<string, string>();
  let current: string | null = null;
  let lines: string[] = [];
  const flush = () => {
    if (current === null) return;
    const text = lines.join("\n").trim();
    if (text === "") throw new Error(`${file}: query ${current} is empty`);
    if (queries.has(current)) throw new Error(`${file}: query ${current} is defined twice`);
    queries.set(current, text);
  };
  for (const line of source.split("\n")) {
    const match = NAME_LINE.exec(line);
    if (match) {
      flush();
      current = match[1] as string;
      lines = [];
    } else if (current !== null) {
      lines.push(line);
    }
  }
  flush();
  return queries;
}

/**
 * `{{schema}}` becomes the quoted schema name; `{{channel:NAME}}` the string
 * literal of that schema's NOTIFY channel NAME (see channelName).
 */
export function bindSchema(sql: string, schema: string): string {
  return sql
    .replaceAll("{{schema}}", escapeIdentifier(schema))
    .replace(/\{\{channel:([a-z_]+)\}\}/g, (_, name: string) =>
      escapeLiteral(channelName(schema, name)),
    );
}

/** NOTIFY channel names are identifiers (at most 63 bytes): rota_<name>_<schema>. */
export function channelName(schema: string, name: string): string {
  return `rota_${name}_${schema}`;
}

/** The parameters of a statement that takes none. */
export type NoParams = Record<never, never>;

/** The row of a statement that returns none. */
export type NoRow = Record<string, never>;

/**
 * Type-only: a statement's parameter and row types. Never set at run time;
 * the parameters sit in a function's argument so that a statement taking
 * `{ id }` is not accepted where one taking nothing is.
 */
interface Types<P, R> {
  params: (params: P) => void;
  row: R;
}

/** What a query module declares for one statement of its .sql file. */
export interface Statement<P extends object, R extends QueryResultRow> {
  readonly types?: Types<P, R>;
  /** See StatementOptions. */
  readonly planEachCall?: boolean;
}

export interface StatementOptions {
  /**
   * Sent unnamed, so PostgreSQL plans it for each call's values instead of
   * keeping one prepared plan per connection, which after five calls may be
   * a generic plan made without the values. For a statement whose best plan
   * depends on them (a filter on a rare state takes its partial index, on a
   * common one the primary key), called seldom enough that planning each
   * call costs nothing that matters.
   */
  planEachCall?: boolean;
}

/**
 * Declares a statement's parameters (an object, by the names its SQL uses)
 * and the row it returns.
 */
export function statement<P extends object = NoParams, R extends QueryResultRow = NoRow>(
  options: StatementOptions = {},
): Statement<NoInfer<P>, NoInfer<R>> {
  return options.planEachCall ? { planEachCall: true } : {};
}

/** A statement bound to one schema, ready for `Database.run`. */
export interface NamedQuery<
  P extends object = NoParams,
  R extends QueryResultRow = QueryResultRow,
> {
  /** Stable per schema, so pg can keep it prepared on each connection. */
  readonly name: string;
  /** Prepared once per connection under `name`; false: sent unnamed, planned at each call. */
  readonly prepared: boolean;
  readonly text: string;
  /** The parameter names in `$n` order: params[0] is sent as $1. */
  readonly params: readonly string[];
  readonly types?: Types<P, R>;
}

/** The row type of a bound statement: `RowOf<typeof q.Upsert>`. */
export type RowOf<Q> = Q extends NamedQuery<never, infer R> ? R : never;

type Declared = Record<string, Statement<never, QueryResultRow>>;

/** The statements of one .sql file, bound to a schema. */
export type BoundQueries<D extends Declared> = {
  readonly [K in keyof D]: D[K] extends Statement<infer P, infer R> ? NamedQuery<P, R> : never;
};

export type QuerySet<D extends Declared> = (schema: string) => BoundQueries<D>;

/**
 * Loads `queries/<file>.sql` once and checks that it defines exactly the
 * declared statements, so a renamed or missing statement fails at import,
 * not at first use.
 */
export function defineQueries<const D extends Declared>(file: string, declared: D): QuerySet<D> {
  const path = new URL(`./queries/${file}.sql`, import.meta.url);
  return queriesFromSource(readFileSync(path, "utf8"), file, declared);
}

/** defineQueries over the text of a .sql file (`file` names it in errors and statement names). */
export function queriesFromSource<const D extends Declared>(
  source: string,
  file: string,
  declared: D,
): QuerySet<D> {
  const parsed = parseNamedQueries(source, `${file}.sql`);
  const names = Object.keys(declared);
  for (const found of parsed.keys()) {
    if (!Object.hasOwn(declared, found)) throw new Error(`${file}.sql: unexpected query ${found}`);
  }
  const compiled = new Map<string, CompiledStatement>();
  for (const name of names) {
    const sql = parsed.get(name);
    if (sql === undefined) throw new Error(`${file}.sql: missing query ${name}`);
    compiled.set(name, compilePlaceholders(sql, `${file}.sql: query ${name}`));
  }
  const bySchema = new Map<string, BoundQueries<D>>();
  return (schema) => {
    let bound = bySchema.get(schema);
    if (!bound) {
      const queries: Record<string, NamedQuery<never>> = {};
      for (const name of names) {
        const statement = compiled.get(name) as CompiledStatement;
        queries[name] = {
          name: `rota.${schema}.${file}.${name}`,
          prepared: declared[name]?.planEachCall !== true,
          text: bindSchema(statement.text, schema),
          params: statement.params,
        };
      }
      bound = queries as BoundQueries<D>;
      bySchema.set(schema, bound);
    }
    return bound;
  };
}

interface CompiledStatement {
  text: string;
  params: readonly string[];
}

/**
 * Replaces the `:name` parameters of one statement by `$1`, `$2`, ... in the
 * order names first appear (a name used again keeps its number), and returns
 * the names in that order. Skipped: `::` casts, string literals ('...',
 * E'...', $tag$...$tag$), quoted identifiers, comments, `{{...}}` templates,
 * and a colon right after an identifier character (an array slice `a[i:j]`).
 * A positional `$1` is refused: a statement names all of its parameters.
 */
export function compilePlaceholders(
  sql: string,
  where: string,
): { text: string; params: string[] } {
  const params: string[] = [];
  const numbers = new Map<string, number>();
  let text = "";
  let copied = 0;
  let i = 0;
  while (i < sql.length) {
    const c = sql[i];
    const next = sql[i + 1];
    if (c === "-" && next === "-") {
      const end = sql.indexOf("\n", i);
      i = end === -1 ? sql.length : end;
    } else if (c === "/" && next === "*") {
      i = blockCommentEnd(sql, i, where);
    } else if (c === "'") {
      i = quotedEnd(sql, i, "'", isEscapeString(sql, i), where);
    } else if (c === '"') {
      i = quotedEnd(sql, i, '"', false, where);
    } else if (c === "{" && next === "{") {
      const end = sql.indexOf("}}", i);
      if (end === -1) throw new Error(`${where}: unterminated {{`);
      i = end + 2;
    } else if (c === "$" && !isIdentChar(sql[i - 1])) {
      const tag = /^\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i, i + 64));
      if (tag) {
        const end = sql.indexOf(tag[0], i + tag[0].length);
        if (end === -1) throw new Error(`${where}: unterminated ${tag[0]} string`);
        i = end + tag[0].length;
      } else if (isDigit(next)) {
        throw new Error(
          `${where}: positional parameter $${/^\d+/.exec(sql.slice(i + 1))?.[0]}: name it (:name)`,
        );
      } else i++;
    } else if (c === ":" && next === ":") {
      i += 2;
    } else if (c === ":" && isIdentStart(next) && !isIdentChar(sql[i - 1])) {
      let end = i + 1;
      while (isIdentChar(sql[end])) end++;
      const name = sql.slice(i + 1, end);
      let number = numbers.get(name);
      if (number === undefined) {
        params.push(name);
        number = params.length;
        numbers.set(name, number);
      }
      text += `${sql.slice(copied, i)}$${number}`;
      copied = end;
      i = end;
    } else {
      i++;
    }
  }
  return { text: text + sql.slice(copied), params };
}

function isIdentStart(c: string | undefined): boolean {
  return c !== undefined && /[A-Za-z_]/.test(c);
}

function isIdentChar(c: string | undefined): boolean {
  return c !== undefined && /[A-Za-z0-9_$]/.test(c);
}

function isDigit(c: string | undefined): boolean {
  return c !== undefined && c >= "0" && c <= "9";
}

/** E'...' (or e'...'): a string in which a backslash escapes the next character. */
function isEscapeString(sql: string, quote: number): boolean {
  const before = sql[quote - 1];
  return (before === "E" || before === "e") && !isIdentChar(sql[quote - 2]);
}

/** The index just past the quoted string or identifier opening at `start` ('' and "" are escapes). */
function quotedEnd(
  sql: string,
  start: number,
  quote: string,
  backslashes: boolean,
  where: string,
): number {
  let i = start + 1;
  while (i < sql.length) {
    const c = sql[i];
    if (backslashes && c === "\\") i += 2;
    else if (c === quote && sql[i + 1] === quote) i += 2;
    else if (c === quote) return i + 1;
    else i++;
  }
  throw new Error(`${where}: unterminated ${quote}`);
}

/** The index just past the block comment opening at `start` (they nest in PostgreSQL). */
function blockCommentEnd(sql: string, start: number, where: string): number {
  let depth = 0;
  let i = start;
  while (i < sql.length) {
    if (sql[i] === "/" && sql[i + 1] === "*") {
      depth++;
      i += 2;
    } else if (sql[i] === "*" && sql[i + 1] === "/") {
      depth--;
      i += 2;
      if (depth === 0) return i;
    } else i++;
  }
  throw new Error(`${where}: unterminated /* comment`);
}

/**
 * The values of a statement's parameters in `$n` order. A declared
 * parameter that is undefined is a mistake in the caller, not a NULL: it
 * throws (pass null for NULL).
 */
export function bindValues(query: NamedQuery<never>, params: object | undefined): unknown[] {
  const names = query.params;
  const values = new Array<unknown>(names.length);
  for (let i = 0; i < names.length; i++) {
    const name = names[i] as string;
    const value = (params as Record<string, unknown> | undefined)?.[name];
    if (value === undefined) {
      throw new TypeError(`${query.name}: parameter ${name} is undefined (pass null for NULL)`);
    }
    values[i] = value;
  }
  return values;
}
