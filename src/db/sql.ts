import { readFileSync } from "node:fs";
import { escapeIdentifier, escapeLiteral } from "pg";

/**
 * rota's SQL lives in .sql files: migrations in ./migrations, and one file per
 * table or concern in ./queries holding named statements:
 *
 *   -- name: ClaimJobs
 *   select ... from {{schema}}.jobs ...
 *
 * `{{schema}}` is replaced by the validated, quoted schema name (and
 * `{{channel:NAME}}` by a NOTIFY channel of that schema); every value goes in
 * as a bind parameter.
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

export interface NamedQuery {
  /** Stable per schema, so pg can keep it prepared on each connection. */
  name: string;
  text: string;
}

export type QuerySet<Name extends string> = (schema: string) => Record<Name, NamedQuery>;

/**
 * Loads `queries/<file>.sql` once and checks that it defines exactly `names`,
 * so a renamed or missing statement fails at import, not at first use.
 */
export function defineQueries<const Name extends string>(
  file: string,
  names: readonly Name[],
): QuerySet<Name> {
  const path = new URL(`./queries/${file}.sql`, import.meta.url);
  const parsed = parseNamedQueries(readFileSync(path, "utf8"), `${file}.sql`);
  const expected = new Set<string>(names);
  for (const found of parsed.keys()) {
    if (!expected.has(found)) throw new Error(`${file}.sql: unexpected query ${found}`);
  }
  for (const name of names) {
    if (!parsed.has(name)) throw new Error(`${file}.sql: missing query ${name}`);
  }
  const bySchema = new Map<string, Record<Name, NamedQuery>>();
  return (schema) => {
    let bound = bySchema.get(schema);
    if (!bound) {
      bound = {} as Record<Name, NamedQuery>;
      for (const name of names) {
        bound[name] = {
          name: `rota.${schema}.${file}.${name}`,
          text: bindSchema(parsed.get(name) as string, schema),
        };
      }
      bySchema.set(schema, bound);
    }
    return bound;
  };
}
