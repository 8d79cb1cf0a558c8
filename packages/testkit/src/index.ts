export type {
  ChannelHarness, ChannelCapabilities, ChannelSuiteOptions, StoreHarness, StoreSuiteOptions, CodecSuiteOptions,
  CheckOptions, ChannelCheck, StoreCheck, CodecCheck,
} from "./types.js";
export { consumerSuite, consumerChecks, consumerPlan } from "./consumer.js";
export { producerSuite, producerChecks, producerPlan } from "./producer.js";
export { storeSuite, storeChecks, storePlan } from "./store.js";
export { codecSuite, codecChecks } from "./codec.js";
export { requireEnv } from "./env.js";
export { onChannel, seededRandom, testSeed, freePort, until } from "./util.js";
export { UNICODE_SAMPLES, largeText } from "./samples.js";
export { startSlackServer, type SlackServer, type SlackServerOptions, type SlackChannel, type SlackPostedMessage, type SlackCall } from "./slack-server.js";
export { startTcpProxy } from "./proxy.js";
export type { TcpProxy, TcpProxyOptions } from "./proxy.js";
