import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { RotaError } from "../errors.js";

/** A dashboard token: who holds it (named in the audit of each action), and what it may do. */
export interface DashboardToken {
  /** Recorded as the actor of each action taken with this token. */
  name: string;
  token: string;
  /** Sees everything, changes nothing. */
  readOnly?: boolean;
}

/** The cookie a login link sets: the token itself, HttpOnly and SameSite=Strict. */
export const TOKEN_COOKIE = "rota_dashboard";

/** The shortest token accepted: a guessable token is no token. */
const MIN_TOKEN_LENGTH = 16;

/** A fresh random token (192 bits, URL-safe). */
export function generateToken(): string {
  return randomBytes(24).toString("base64url");
}

/**
 * Who may use the dashboard, and the CSRF tokens of their forms. A form's
 * CSRF token is an HMAC of its holder's token under a secret of this
 * process: another site cannot read it (the cookie is HttpOnly and
 * SameSite=Strict), and it changes when the dashboard restarts.
 */
export class Access {
  private readonly tokens: readonly DashboardToken[];
  private readonly secret = randomBytes(32);

  constructor(tokens: readonly DashboardToken[]) {
    const names = new Set<string>();
    for (const entry of tokens) {
      if (
        !entry ||
        typeof entry.token !== "string" ||
        entry.token.length < MIN_TOKEN_LENGTH ||
        typeof entry.name !== "string" ||
        entry.name.trim() === ""
      ) {
        throw new RotaError(
          "INVALID_OPTION",
          `Each dashboard token needs a name and a token of at least ${MIN_TOKEN_LENGTH} characters (generate one with \`openssl rand -base64 24\`).`,
          { details: { field: "tokens" } },
        );
      }
      if (names.has(entry.name)) {
        throw new RotaError("INVALID_OPTION", `Two dashboard tokens are named "${entry.name}".`, {
          details: { field: "tokens" },
        });
      }
      names.add(entry.name);
    }
    if (tokens.length === 0) {
      throw new RotaError("INVALID_OPTION", "The dashboard needs at least one token.", {
        details: { field: "tokens" },
      });
    }
    this.tokens = tokens;
  }

  /** The holder of `token`, compared in constant time; undefined for none. */
  holder(token: string | undefined | null): DashboardToken | undefined {
    if (!token) return undefined;
    const given = Buffer.from(token);
    let found: DashboardToken | undefined;
    for (const entry of this.tokens) {
      const known = Buffer.from(entry.token);
      if (known.length === given.length && timingSafeEqual(known, given)) found = entry;
    }
    return found;
  }

  /** The CSRF token of forms shown to `holder`. */
  csrfFor(holder: DashboardToken): string {
    return createHmac("sha256", this.secret)
      .update(`${holder.name}\u0000${holder.token}`)
      .digest("base64url");
  }

  /** Whether `given` is `holder`'s CSRF token (constant time). */
  csrfValid(holder: DashboardToken, given: unknown): boolean {
    if (typeof given !== "string") return false;
    const expected = Buffer.from(this.csrfFor(holder));
    const actual = Buffer.from(given);
    return expected.length === actual.length && timingSafeEqual(expected, actual);
  }
}

/**
 * The tokens the environment configures: ROTA_DASHBOARD_TOKEN (full access)
 * and ROTA_DASHBOARD_READONLY_TOKEN, each `token` or `name:token`.
 */
export function tokensFromEnvironment(env: NodeJS.ProcessEnv = process.env): DashboardToken[] {
  const tokens: DashboardToken[] = [];
  const read = (value: string | undefined, fallbackName: string, readOnly: boolean) => {
    if (value === undefined || value === "") return;
    const colon = value.indexOf(":");
    const named = colon > 0 && value.length - colon - 1 >= MIN_TOKEN_LENGTH;
    tokens.push({
      name: named ? value.slice(0, colon) : fallbackName,
      token: named ? value.slice(colon + 1) : value,
      readOnly,
    });
  };
  read(env.ROTA_DASHBOARD_TOKEN, "operator", false);
  read(env.ROTA_DASHBOARD_READONLY_TOKEN, "viewer", true);
  return tokens;
}
