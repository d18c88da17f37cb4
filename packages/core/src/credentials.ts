import { readFileSync } from "node:fs";
import { codedErrorClass } from "@zkgrid/errors";
import { parseAcl } from "./acl.js";
import type { ZkError } from "./errors.js";
import type { Acl } from "./types.js";

/**
 * Credentials or ACL entries given wrongly on a command line or in the environment: a usage error
 * (programs exit with status 2). Its message never contains a secret.
 */
export const CredentialsError = codedErrorClass("@zkgrid/core/CredentialsError", "INVALID_CREDENTIALS");
export type CredentialsError = InstanceType<typeof CredentialsError>;

/** What `readCredentials` resolves: pass both on to `connect()`. */
export interface GridCredentials {
  /** Digest credentials "user:password"; undefined when none were given. */
  auth: string[] | undefined;
  /** Extra ACL entries for the nodes this process creates; undefined when none were given. */
  acl: Acl[] | undefined;
}

export interface CredentialSources {
  /** The value of `--auth`: the path of a file holding the credentials. */
  authFile?: string | undefined;
  /** The value of `--acl`: entries in zkCli's syntax (see parseAcl). */
  acl?: string | undefined;
  /** Where ZKGRID_AUTH_FILE, ZKGRID_AUTH and ZKGRID_ACL are read (default: process.env). */
  env?: NodeJS.ProcessEnv;
}

const ON_ARGV =
  "--auth takes the path of a file holding user:password, not the credentials themselves: a password " +
  "on the command line is visible to every user of the machine in ps. Write them to a file only you can " +
  "read (chmod 600) and pass its path, or set ZKGRID_AUTH_FILE=<file> or ZKGRID_AUTH=user:password";

/**
 * The credentials and ACL entries a zkgrid program was given, from, in this order: `--auth <file>`,
 * ZKGRID_AUTH_FILE (a file), ZKGRID_AUTH (the credentials themselves); and `--acl`, else ZKGRID_ACL.
 * A credentials file holds one `user:password` per line (blank lines and lines starting with "#" are
 * skipped; spaces around a line are dropped). Throws CredentialsError, e.g. for a literal
 * `user:password` given to `--auth`.
 */
export function readCredentials(sources: CredentialSources): GridCredentials {
  const env = sources.env ?? process.env;
  let auth: string[] | undefined;
  if (sources.authFile !== undefined) auth = readCredentialsFile(sources.authFile, "--auth");
  else if (env.ZKGRID_AUTH_FILE) auth = readCredentialsFile(env.ZKGRID_AUTH_FILE, "ZKGRID_AUTH_FILE");
  else if (env.ZKGRID_AUTH) {
    const credentials = env.ZKGRID_AUTH.trim();
    if (!isCredentials(credentials)) throw new CredentialsError("ZKGRID_AUTH: expected user:password");
    auth = [credentials];
  }
  const aclText = sources.acl ?? env.ZKGRID_ACL;
  let acl: Acl[] | undefined;
  if (aclText !== undefined && aclText.trim() !== "") {
    try {
      acl = parseAcl(aclText);
    } catch (error) {
      throw new CredentialsError(
        `${sources.acl === undefined ? "ZKGRID_ACL" : "--acl"}: ${(error as ZkError).message}`,
      );
    }
  }
  return { auth, acl };
}

function isCredentials(text: string): boolean {
  return text.indexOf(":") > 0;
}

function readCredentialsFile(path: string, from: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    // Never echo the value: it may be the password itself.
    if (code === "ENOENT" && isCredentials(path) && from === "--auth") throw new CredentialsError(ON_ARGV);
    throw new CredentialsError(`${from}: cannot read the credentials file (${code ?? String(error)})`);
  }
  const credentials: string[] = [];
  const lines = text.split("\n");
  for (const [index, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    if (!isCredentials(line)) {
      throw new CredentialsError(`${from}: line ${index + 1} of the credentials file is not user:password`);
    }
    credentials.push(line);
  }
  if (credentials.length === 0)
    throw new CredentialsError(`${from}: the credentials file holds no user:password`);
  return credentials;
}
