import { createHash, timingSafeEqual } from "node:crypto";

const digest = (s: string) => createHash("sha256").update(s).digest();

/**
 * Checks HTTP Basic credentials in constant time: both the user and the password digests are always
 * compared (equal-length SHA-256 digests, so neither length nor the first differing byte shows in timing).
 */
export function basicAuth(header: string | undefined, auth: { username: string; password?: string }): "ok" | "disabled" | "denied" {
  if (!auth.password) return "disabled";
  const m = /^Basic\s+(\S+)$/i.exec(header ?? "");
  const decoded = m ? Buffer.from(m[1]!, "base64").toString("utf8") : "";
  const i = decoded.indexOf(":");
  const userOk = timingSafeEqual(digest(i >= 0 ? decoded.slice(0, i) : ""), digest(auth.username));
  const passOk = timingSafeEqual(digest(i >= 0 ? decoded.slice(i + 1) : ""), digest(auth.password));
  return userOk && passOk && i >= 0 ? "ok" : "denied";
}
