import type { BackendDefinition, Producer } from "@geowatch/core";
import type { z } from "zod";

export interface WebhookOptions {
  /** Endpoint each record is POSTed to. Required. */
  url: string;
  /** Per-request timeout in ms. Default 10000. */
  timeoutMs?: number;
}
export declare const webhookOptions: z.ZodObject;
export declare function webhookProducer(options: WebhookOptions): Producer;
export declare const webhookBackend: BackendDefinition;
