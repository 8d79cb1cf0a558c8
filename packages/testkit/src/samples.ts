/** Text that trips encoders: astral emoji, ZWJ sequences, CJK, RTL, combining marks, BOM-like and quotes. */
export const UNICODE_SAMPLES: readonly string[] = [
  "emoji 🛰️🌍📍 and a family 👨‍👩‍👧‍👦 and a flag 🇳🇿",
  "CJK 地理空间消息 ジオフェンス 지오펜스",
  "RTL مرحبا بالعالم and שלום עולם",
  "combining e\u0301 a\u0308 Z\u0324\u0354\u0367\u0311\u0313 and NFC é",
  'quotes "double" \'single\' \\backslash\\ tab\tend',
  "astral 𝔊𝔢𝔬𝔚𝔞𝔱𝔠𝔥 and a lone BOM \uFEFF inside",
];

export const LARGE_DEFAULT_BYTES = 256 * 1024;

/** Printable ASCII text of exactly `bytes` bytes that starts with `tag`, so it is identifiable. */
export function largeText(tag: string, bytes: number): string {
  const unit = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
  const head = `${tag}:`;
  let body = "";
  while (head.length + body.length < bytes) body += unit;
  return (head + body).slice(0, bytes);
}
