import { defineStage } from "@geowatch/core";
import { geoserverEventsStage } from "./geoserver-stage.js";
import { geoserverEventsStageSchema, subscriptionsStageSchema } from "./options.js";
import { subscriptionsStage as makeSubscriptionsStage } from "./stage.js";

/** `stage: subscriptions`: one message per subscribed recipient, routed to the sink of their channel. */
export const subscriptionsStage = defineStage({
  name: "subscriptions",
  description: "expands an event into one message per subscribed recipient (event types, layers, areas), routed by channel",
  options: subscriptionsStageSchema,
  create: (o, ctx) => makeSubscriptionsStage(o, ctx),
});

/** `stage: geoserver_events`: GeoServer notification-module JSON to GeoWatch envelopes. */
export const geoserverEvents = defineStage({
  name: "geoserver_events",
  description: "turns GeoServer notification-module messages (catalog and WFS-T events) into GeoWatch envelopes",
  options: geoserverEventsStageSchema,
  create: (o, ctx) => geoserverEventsStage(o, ctx),
});

export { openSubscriptionStore, validateSubscription } from "./store.js";
export type { Area, Subscription, SubscriptionInput, SubscriptionStore } from "./store.js";
export { footprint } from "./stage.js";
export { geoserverMapping, geoserverEnvelope } from "./geoserver.js";
export { subscriptionsStageSchema, geoserverEventsStageSchema } from "./options.js";
export type { SubscriptionsStageOptions, GeoserverEventsStageOptions } from "./options.js";
