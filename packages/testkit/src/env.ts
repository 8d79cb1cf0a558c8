/**
 * The value of an environment variable a conformance test needs. Throws (never skips) when it is unset,
 * so a missing server fails loudly with `hint` saying how to start it.
 */
export function requireEnv(name: string, hint: string): string {
  const value = process.env[name];
  if (value === undefined || value.trim() === "") {
    throw new Error(`[geowatch-testkit] ${name} is not set. ${hint}`);
  }
  return value;
}
